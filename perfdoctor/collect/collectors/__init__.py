"""One collector per source of measurements; each streams its records to `RUN/raw/<name>.jsonl`."""

"""Collection, inside the script's process: the session, the step clock, the collectors, and the
stream writer that appends what they measure to `RUN/raw` while the job runs."""

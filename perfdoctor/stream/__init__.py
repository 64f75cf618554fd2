"""The raw stream: what collection hands to analysis, as files in `RUN/raw`.

Collectors append records to append-only JSON Lines streams while the job runs (`lines`), files
that are replaced are written atomically (`atomic`), and `rundir` reads both back into the shapes
the analysis expects (`assemble`). Nothing here imports torch.
"""

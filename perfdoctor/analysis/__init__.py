"""From raw measurements to RunData: the run directory's raw files and traces (load.py) or foreign
traces (foreign.py), turned into typed sections, one analysis per module."""

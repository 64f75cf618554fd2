"""perfdoctor: find out why PyTorch training is slow and what to change, with numbers."""

__version__ = "0.1.0"

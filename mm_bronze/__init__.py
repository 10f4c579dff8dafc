"""mm-bronze: land raw healthcare data once, durably, with full lineage."""

__version__ = "0.1.0"

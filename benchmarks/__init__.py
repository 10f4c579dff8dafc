"""Benchmarks for mm-bronze: `make bench` (python -m benchmarks)."""

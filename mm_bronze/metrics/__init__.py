"""Prometheus metrics: one registry per process, counted where each door answers."""

from mm_bronze.metrics.door import DoorMetrics, format_label
from mm_bronze.metrics.registry import ConsumerMetrics, Metrics

__all__ = ["ConsumerMetrics", "DoorMetrics", "Metrics", "format_label"]

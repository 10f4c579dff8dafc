"""A scrape: the bus gauges refreshed, then the registry in the Prometheus text format."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from mm_bronze.metrics.registry import Metrics

# The classic text format (0.0.4), which every Prometheus version reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


async def scrape(metrics: Metrics) -> bytes:
    """The text a ``GET /metrics`` answers."""
    refreshes = [gauge.refresh() for gauge in (metrics.bus, metrics.readiness) if gauge]
    await asyncio.gather(*refreshes)
    return generate_latest(metrics.registry)

"""``mm_bronze_bus_backlog`` and ``mm_bronze_dead_letters``, asked of the bus at each scrape.

``refresh`` runs before each scrape, bounded by ``timeout``: when the bus (or the database
holding the embedded queue) does not answer in time, the scrape still answers, without
these two gauges, and the reason is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mm_bronze.bus import Bus
    from mm_bronze.bus.base import BusCounts

log = structlog.get_logger(__name__)

REFRESH_TIMEOUT = 3.0


class BusGauges(Collector):
    """A collector of the last counts ``refresh`` obtained (none when it failed)."""

    def __init__(self, bus: Bus, groups: Mapping[str, str], timeout: float = REFRESH_TIMEOUT):
        self._bus = bus
        self._groups = dict(groups)  # topic → consumer group
        self._timeout = timeout
        self._counts: BusCounts | None = None

    async def refresh(self) -> None:
        try:
            self._counts = await asyncio.wait_for(self._bus.counts(self._groups), self._timeout)
        except Exception as exc:  # a scrape answers whatever the bus does
            self._counts = None
            log.warning("bus counts unavailable for metrics", error=type(exc).__name__)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._counts
        if counts is None:
            return
        backlog = GaugeMetricFamily(
            "mm_bronze_bus_backlog",
            "Messages on the bus not yet processed (embedded queue depth, or Kafka lag).",
            labels=["topic"],
        )
        for topic, count in sorted(counts.backlog.items()):
            backlog.add_metric([topic], count)
        yield backlog
        dead = GaugeMetricFamily(
            "mm_bronze_dead_letters",
            "Dead letters kept (by source topic on the embedded queue; Kafka: the DLQ topic).",
            labels=["topic"],
        )
        for topic, count in sorted(counts.dead_letters.items()):
            dead.add_metric([topic], count)
        yield dead

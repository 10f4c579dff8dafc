"""``mm_bronze_ready{check}``: what ``/readyz`` says, at each scrape, for every process.

A process without the HTTP door (``serve --consumers``) has no ``/readyz`` to probe; this
gauge lets Prometheus alert on its readiness all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

Readiness = Callable[[], Awaitable[dict[str, str]]]


class ReadinessGauge(Collector):
    """1 for each check that is ``ok``, else 0, as of the last ``refresh``."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness
        self._checks: dict[str, str] = {}

    async def refresh(self) -> None:
        try:
            self._checks = await self._readiness()  # each check is bounded by its own timeout
        except Exception as exc:  # a scrape answers whatever the checks do
            self._checks = {}
            log.warning("readiness unavailable for metrics", error=type(exc).__name__)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ready = GaugeMetricFamily(
            "mm_bronze_ready",
            "1 when the check /readyz names is ok, else 0 (database, bus, storage, roles).",
            labels=["check"],
        )
        for check, state in sorted(self._checks.items()):
            ready.add_metric([check], 1 if state == "ok" else 0)
        yield ready

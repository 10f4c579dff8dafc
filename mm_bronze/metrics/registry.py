"""The process's metrics: a registry of its own (never the global one) and every family."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from mm_bronze.metrics.bus import BusGauges
from mm_bronze.metrics.door import FORMATS, OTHER, UNKNOWN, DoorMetrics
from mm_bronze.metrics.readiness import Readiness, ReadinessGauge

if TYPE_CHECKING:
    from mm_bronze.bus import Bus

# No ``*_created`` series beside each counter: nothing here reads them.
disable_created_metrics()

# Seconds to an answer: a small payload is answered in milliseconds, a large one in seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STORED = "stored"
DUPLICATE = "duplicate"
FAILED = "failed"
SOURCES = ("api", "sftp", "mllp")
# The formats each door can answer for (others are bound on first use).
_DOOR_FORMATS = {
    "http": (*FORMATS[:4], OTHER),
    "mllp": ("hl7/text",),
    "sftp": (*FORMATS, UNKNOWN),
}


class Metrics:
    """Every metric one mm-bronze process exposes, in ``registry``."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.submissions = Counter(
            "mm_bronze_submissions",
            "Submissions answered by a door, by format and outcome.",
            ["door", "format", "outcome"],
            registry=registry,
        )
        self.submission_bytes = Counter(
            "mm_bronze_submission_bytes",
            "Bytes of accepted submissions.",
            ["door"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "mm_bronze_request_duration_seconds",
            "Seconds from a submission's start to the door's answer.",
            ["door"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.stored = Counter(
            "mm_bronze_stored",
            "Submissions the consumers recorded, by source and result.",
            ["source", "result"],
            registry=registry,
        )
        for source in SOURCES:  # present, at 0, in every process: absent is not zero
            for result in (STORED, DUPLICATE, FAILED):
                self.stored.labels(source, result)
        self.consumer_batch = Histogram(
            "mm_bronze_consumer_batch_seconds",
            "Seconds a consumer took to store, record and acknowledge one batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.mllp_connections = Gauge(
            "mm_bronze_mllp_connections", "Open MLLP connections.", registry=registry
        )
        self.sftp_sessions = Gauge(
            "mm_bronze_sftp_sessions", "Open SFTP sessions.", registry=registry
        )
        self._doors: dict[str, DoorMetrics] = {}
        self.bus: BusGauges | None = None
        self.readiness: ReadinessGauge | None = None

    def watch_bus(self, bus: Bus, groups: Mapping[str, str]) -> None:
        """Report the backlog of each topic in ``groups`` (topic → group) and dead letters."""
        self.bus = BusGauges(bus, groups)
        self.registry.register(self.bus)

    def watch_readiness(self, readiness: Readiness) -> None:
        """Report each readiness check (``/readyz``'s ``checks``) as ``mm_bronze_ready``."""
        self.readiness = ReadinessGauge(readiness)
        self.registry.register(self.readiness)

    def door(self, name: str) -> DoorMetrics:
        """The counters of door ``name`` (``http``, ``mllp`` or ``sftp``)."""
        door = self._doors.get(name)
        if door is None:
            connections = {"mllp": self.mllp_connections, "sftp": self.sftp_sessions}.get(name)
            door = self._doors[name] = DoorMetrics(
                name,
                self.submissions,
                self.submission_bytes,
                self.request_duration,
                _DOOR_FORMATS.get(name, ()),
                connections,
            )
        return door

    def consumer(self, source: str) -> ConsumerMetrics:
        """The counters of the consumers of ``source`` (``api``, ``sftp``, ``mllp``)."""
        return ConsumerMetrics(self, source)


class ConsumerMetrics:
    """What the persist pipeline of one source counts."""

    def __init__(self, metrics: Metrics, source: str) -> None:
        self.stored = metrics.stored.labels(source, STORED)
        self.duplicate = metrics.stored.labels(source, DUPLICATE)
        self.failed = metrics.stored.labels(source, FAILED)
        self._batch = metrics.consumer_batch

    def batch_done(self, started: float) -> None:
        self._batch.observe(time.perf_counter() - started)

"""What a front door counts: each answer by format and outcome, accepted bytes, time to answer.

Label values are bounded whatever senders do: the format is one of ``FORMATS`` (or
``other`` for a format mm-bronze does not know, ``unknown`` when the door could not tell),
the outcome one of ``OUTCOMES``. Counter children are bound once and cached, so counting an
answer costs one dictionary lookup, one increment and one histogram observation.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = "accepted"
REJECTED = "rejected"
TOO_LARGE = "too_large"
UNAUTHORIZED = "unauthorized"
UNAVAILABLE = "unavailable"
OUTCOMES = (ACCEPTED, REJECTED, TOO_LARGE, UNAUTHORIZED, UNAVAILABLE)

# Formats the doors validate, and ``file`` for what SFTP lands without recognising it.
FORMATS = ("fhir/json", "fhir/xml", "fhir/ndjson", "hl7/text", "file")
OTHER = "other"
UNKNOWN = "unknown"
_LABELS = {tuple(f.split("/")): f for f in FORMATS if "/" in f}


def format_label(fmt: str, content_type: str) -> str:
    """The bounded label of a declared or detected format."""
    if fmt == "file":
        return "file"
    return _LABELS.get((fmt, content_type), OTHER)


class DoorMetrics:
    """The counters of one door (``http``, ``mllp``, ``sftp``)."""

    def __init__(
        self,
        door: str,
        submissions: Counter,
        submission_bytes: Counter,
        duration: Histogram,
        formats: tuple[str, ...],
        connections: Gauge | None = None,
    ) -> None:
        self.door = door
        self._submissions = submissions
        self._children = {
            (fmt, outcome): submissions.labels(door, fmt, outcome)
            for fmt in formats
            for outcome in OUTCOMES
        }
        self._bytes = submission_bytes.labels(door)
        self._duration = duration.labels(door)
        self.connections = connections  # open connections (MLLP) or sessions (SFTP)

    def answered(self, fmt: str, outcome: str, started: float, size: int = 0) -> None:
        """Count one answer given ``started`` (``time.perf_counter()``) ago; ``size`` bytes
        are counted for accepted submissions."""
        child = self._children.get((fmt, outcome))
        if child is None:  # a label outside the pre-bound set, still bounded
            child = self._children[(fmt, outcome)] = self._submissions.labels(
                self.door, fmt, outcome
            )
        child.inc()
        if size:
            self._bytes.inc(size)
        self._duration.observe(time.perf_counter() - started)

    def refused(self, fmt: str, outcome: str) -> None:
        """Count an answer that took no measurable time of the door's (a refused login)."""
        child = self._children.get((fmt, outcome))
        if child is None:
            child = self._children[(fmt, outcome)] = self._submissions.labels(
                self.door, fmt, outcome
            )
        child.inc()

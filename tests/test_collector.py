"""Serving processes collect garbage with a larger young generation (``mm_bronze.collector``)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mm_bronze import collector


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tune_raises_only_the_young_threshold(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    collector.tune()
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNG, 10, 10)


def test_a_validation_worker_is_tuned_at_start() -> None:
    code = (
        "import gc, os\n"
        "from mm_bronze.formats.workers import _start_worker\n"
        "_start_worker(os.getppid())\n"
        "print(gc.get_threshold()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == collector.YOUNG

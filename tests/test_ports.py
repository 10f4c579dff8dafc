"""Test workers draw ports from slices apart from each other's."""

from __future__ import annotations

import pytest

from tests import ports


def test_each_worker_has_a_slice_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(ports._share(10000, 32768))
    assert slices == [(10000, 17589), (17589, 25178), (25178, 32767)]


def test_one_process_draws_from_the_whole_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert ports._share(10000, 32768) == (10000, 32768)

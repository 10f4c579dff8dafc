"""The tests' own waiting helper: it returns the first accepted answer and fails clearly."""

from __future__ import annotations

import itertools

import pytest

from tests.polling import wait_for, wait_for_async


def test_returns_the_first_answer_done_accepts() -> None:
    answers = itertools.count()
    assert wait_for(lambda: next(answers), lambda n: n >= 3, every=0) == 3


def test_a_timeout_names_what_was_awaited_the_last_answer_and_the_detail() -> None:
    with pytest.raises(AssertionError) as failure:
        wait_for(lambda: 7, lambda n: n > 7, timeout=0.05, what="eight", detail=lambda: "a log")
    assert str(failure.value) == "timed out after 0.05 s waiting for eight; last: 7\na log"


def test_the_probe_is_asked_once_even_with_no_time_left() -> None:
    assert wait_for(lambda: "ready", timeout=0) == "ready"


async def test_the_async_wait_takes_coroutine_and_plain_probes() -> None:
    answers = itertools.count()

    async def probe() -> int:
        return next(answers)

    assert await wait_for_async(probe, lambda n: n == 2, every=0) == 2
    assert await wait_for_async(lambda: next(answers), lambda n: n == 5, every=0) == 5
    with pytest.raises(AssertionError, match="waiting for nothing; last: None"):
        await wait_for_async(lambda: None, timeout=0, what="nothing")

"""Waiting for what another process, thread or task does: ask a probe again and again until its
answer is the one wanted, or fail saying what was awaited and what was seen last.

The probe is asked at least once, and once more after the time is up, so a slow machine that
wakes late still gets a last look before the test fails."""

from __future__ import annotations

import asyncio
import inspect
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    done: Callable[[T], object] = bool,
    *,
    timeout: float = 30,
    every: float = 0.05,
    what: str = "the condition",
    detail: Callable[[], object] | None = None,
) -> T:
    """The first answer of ``probe`` that ``done`` accepts (by default: a truthy one). On
    failure the message names ``what`` was awaited, the last answer and, if given, what
    ``detail`` says then (a server's log, say)."""
    deadline = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= deadline
        value = probe()
        if done(value):
            return value
        if last:
            raise AssertionError(_failure(timeout, what, value, detail))
        time.sleep(every)


@overload
async def wait_for_async(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], object] = ...,
    *,
    timeout: float = ...,
    every: float = ...,
    what: str = ...,
    detail: Callable[[], object] | None = ...,
) -> T: ...


@overload
async def wait_for_async(
    probe: Callable[[], T],
    done: Callable[[T], object] = ...,
    *,
    timeout: float = ...,
    every: float = ...,
    what: str = ...,
    detail: Callable[[], object] | None = ...,
) -> T: ...


async def wait_for_async(
    probe: Callable[[], Any],
    done: Callable[[Any], object] = bool,
    *,
    timeout: float = 30,
    every: float = 0.05,
    what: str = "the condition",
    detail: Callable[[], object] | None = None,
) -> Any:
    """``wait_for`` in a task: ``probe`` may be a coroutine function, and the wait sleeps the
    task, not the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= deadline
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if done(value):
            return value
        if last:
            raise AssertionError(_failure(timeout, what, value, detail))
        await asyncio.sleep(every)


def wait_listening(
    port: int,
    *,
    timeout: float = 30,
    proc: subprocess.Popen[bytes] | None = None,
    detail: Callable[[], object] | None = None,
) -> None:
    """Until something accepts connections on ``port`` of this host (failing at once if
    ``proc``, the process expected to listen there, has exited; ``detail`` as for
    ``wait_for``)."""

    def listening() -> bool:
        if proc is not None and proc.poll() is not None:
            exited = f"the process for port {port} exited with {proc.returncode}"
            raise RuntimeError(exited if detail is None else f"{exited}\n{detail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    wait_for(listening, timeout=timeout, what=f"something listening on port {port}", detail=detail)


def _failure(timeout: float, what: str, value: object, detail: Callable[[], object] | None) -> str:
    message = f"timed out after {timeout} s waiting for {what}; last: {value!r}"
    return message if detail is None else f"{message}\n{detail()}"

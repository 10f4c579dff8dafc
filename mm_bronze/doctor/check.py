"""One doctor check's outcome: passed, failed (with the fix to apply) or not applicable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec

Status = Literal["ok", "fail", "skip"]

# A check that cannot finish in this time is failed, never waited on: services that are
# down must not make the doctor hang.
CHECK_TIMEOUT = 15.0


class Check(msgspec.Struct, kw_only=True):
    """``name`` of the check, ``status``, what was found (``detail``) and, when it failed,
    what to do about it (``fix``)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def passed(name: str, detail: str) -> Check:
    return Check(name=name, status="ok", detail=detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, status="fail", detail=detail, fix=fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name=name, status="skip", detail=detail)


async def bounded(
    name: str, probe: Callable[[], Awaitable[Check]], fix: str, timeout: float = CHECK_TIMEOUT
) -> Check:
    """Run ``probe``; a probe that takes longer than ``timeout`` seconds fails with ``fix``."""
    try:
        return await asyncio.wait_for(probe(), timeout)
    except TimeoutError:
        return failed(name, f"no answer within {timeout:g} s", fix)


def describe(exc: BaseException) -> str:
    """One line about an error: its type and first line, without payload contents."""
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

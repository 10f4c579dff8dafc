"""Helpers for HTTP door tests: post, wait for a status, read what was stored."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx


def wait_status(client: httpx.Client, uuid: str, want: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/ingest/{uuid}")
        if response.status_code == 200:
            last = response.json()
            if last["status"] in want:
                return last
        time.sleep(0.05)
    raise AssertionError(f"{uuid} never reached {want}; last: {last}")


def stored_bytes(storage_path: str) -> bytes:
    assert storage_path.startswith("file://"), storage_path
    return Path(urlparse(storage_path).path).read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""Helpers for HTTP door tests: post, wait for a status, read what was stored."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from urllib.parse import urlparse

import httpx

from tests.polling import wait_for


async def post_many(url: str, bodies: list[bytes], concurrency: int = 16) -> list[str]:
    """POST each of ``bodies`` as an R4 Observation, ``concurrency`` at a time: their uuids."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(body: bytes) -> str:
            async with gate:
                response = await client.post("/ingest/fhir/json/R4/observation", content=body)
                assert response.status_code == 202, response.text
                return str(response.json()["uuid"])

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def wait_status(client: httpx.Client, uuid: str, want: set[str], timeout: float = 30) -> dict:
    def status() -> dict:
        response = client.get(f"/ingest/{uuid}")
        return response.json() if response.status_code == 200 else {}

    return wait_for(
        status,
        lambda last: last.get("status") in want,
        timeout=timeout,
        what=f"{uuid} to reach {sorted(want)}",
    )


def stored_bytes(storage_path: str) -> bytes:
    assert storage_path.startswith("file://"), storage_path
    return Path(urlparse(storage_path).path).read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

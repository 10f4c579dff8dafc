"""HTTP ingest on the Kafka bus vs the embedded PostgreSQL queue, in one run.

Run with ``python -m benchmarks.kafka_bus [payloads] [concurrency]``. Starts its own
PostgreSQL (embedded), Tansu broker and ``mm-bronze serve --all`` processes, posts the same
small FHIR payloads to each, and prints accepted/s and end-to-end stored/s with their ratio.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from tests.services.kafka import TEST_CONSUMER_ENV, TansuBroker
from tests.services.mm_bronze import MmBronze
from tests.services.postgres import create_database, postgres_server

ROUTE = "/ingest/fhir/json/R4/resource"


async def drive(server: MmBronze, dsn: str, payloads: int, concurrency: int) -> tuple[float, float]:
    """Post ``payloads`` distinct bodies; return (accepted/s, stored/s)."""
    gate = asyncio.Semaphore(concurrency)
    tag = time.monotonic_ns()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def post(n: int) -> None:
            body = b'{"resourceType": "Patient", "id": "b%d-%d"}' % (tag, n)
            async with gate:
                response = await client.post(ROUTE, content=body)
            response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(post(n) for n in range(payloads)))
        accepted = time.perf_counter() - start
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            cur = await conn.execute("SELECT count(*) FROM ingestion.submissions")
            row = await cur.fetchone()
            if row and row[0] >= payloads:
                break
            await asyncio.sleep(0.05)
    stored = time.perf_counter() - start
    return payloads / accepted, payloads / stored


def main() -> None:
    payloads = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp)) as admin:
        broker = TansuBroker(Path(tmp)).start()
        try:
            results = {}
            for name, extra in (
                ("embedded", {}),
                ("kafka", {"KAFKA_SERVERS": broker.servers, **TEST_CONSUMER_ENV}),
            ):
                dsn = create_database(admin)
                env = {"POSTGRES_DSN": dsn, "MM_BRONZE_LOG_LEVEL": "warning", **extra}
                server = MmBronze(Path(tmp) / name, env=env).start()
                try:
                    asyncio.run(drive(server, dsn, 50, concurrency))  # warm up, join groups
                    results[name] = asyncio.run(drive(server, dsn, payloads, concurrency))
                finally:
                    server.stop()
        finally:
            broker.stop()
    (ea, es), (ka, ks) = results["embedded"], results["kafka"]
    print(f"payloads={payloads} concurrency={concurrency}")
    print(f"embedded bus: {ea:8.0f} accepted/s {es:8.0f} stored/s")
    print(f"kafka bus:    {ka:8.0f} accepted/s {ks:8.0f} stored/s")
    print(f"kafka/embedded: accepted x{ka / ea:.2f}, stored x{ks / es:.2f}")


if __name__ == "__main__":
    main()

"""Many senders at once: every message acknowledged in order and stored exactly once."""

from __future__ import annotations

import asyncio

import psycopg

from tests.ingest.mllp.helpers import END, START, oru, parse_ack
from tests.polling import wait_for_async, wait_listening
from tests.services.mm_bronze import MmBronze

CONNECTIONS = 50
MESSAGES = 100


async def send_pipelined(port: int, messages: list[bytes]) -> list[bytes]:
    """Write every message without waiting, read one ACK per message; return the ACKs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def write_all() -> None:
        for message in messages:
            writer.write(START + message + END)
            await writer.drain()

    writing = asyncio.create_task(write_all())
    acks: list[bytes] = []
    buffer = b""
    while len(acks) < len(messages):
        chunk = await asyncio.wait_for(reader.read(65536), 120)
        assert chunk, f"connection closed after {len(acks)} ACKs"
        buffer += chunk
        *complete, buffer = buffer.split(END)
        acks += [frame.removeprefix(START) for frame in complete]
    await writing
    writer.close()
    await writer.wait_closed()
    return acks


async def test_50_connections_of_100_messages(server: MmBronze, module_dsn: str) -> None:
    wait_listening(server.mllp_port)
    sent = [[f"C{c:02d}M{m:03d}" for m in range(MESSAGES)] for c in range(CONNECTIONS)]
    results = await asyncio.gather(
        *(send_pipelined(server.mllp_port, [oru(i) for i in ids]) for ids in sent)
    )
    for ids, acks in zip(sent, results, strict=True):
        parsed = [parse_ack(a) for a in acks]
        assert {a.code for a in parsed} == {"AA"}
        assert [a.control_id for a in parsed] == ids  # answered in the order sent

    total = CONNECTIONS * MESSAGES

    def recorded() -> list[tuple]:
        with psycopg.connect(module_dsn) as conn:
            return conn.execute(
                "SELECT s.source_metadata->>'control_id', s.source_metadata->>'remote_port',"
                " s.is_duplicate, r.fingerprint"
                " FROM ingestion.submissions s JOIN ingestion.raw_ingestion r USING (object_id)"
                " WHERE s.ingestion_source = 'mllp' ORDER BY s.received_at, s.submission_id"
            ).fetchall()

    rows = await wait_for_async(
        recorded,
        lambda rows: len(rows) >= total,
        timeout=120,
        every=0.2,
        what=f"{total} MLLP submissions recorded",
    )
    assert len(rows) == total
    assert len({fingerprint for *_, fingerprint in rows}) == total
    assert not any(duplicate for _, _, duplicate, _ in rows)
    by_connection: dict[str, list[str]] = {}
    for control_id, port, _, _ in rows:
        by_connection.setdefault(port, []).append(control_id)
    # Each connection's messages reached the bus (and were stamped) in the order sent.
    assert sorted(by_connection.values()) == sent

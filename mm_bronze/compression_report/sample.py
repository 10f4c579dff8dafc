"""A sample of stored payloads: rows from ``ingestion.raw_ingestion``, bytes from storage,
decompressed when they were stored compressed."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from mm_bronze.compression_report.progress import Progress
from mm_bronze.errors import BronzeError
from mm_bronze.settings import Settings
from mm_bronze.storage import ObjectStore
from mm_bronze.storage.compression import decode

MiB = 1024 * 1024
MAX_SAMPLE_BYTES = 64 * MiB  # the sample stops growing here: measuring must stay short

_QUERY = """
SELECT storage_path, compression, object_size FROM ingestion.raw_ingestion
WHERE (%(format)s::text IS NULL OR format = %(format)s)
  AND (%(content_type)s::text IS NULL OR content_type = %(content_type)s)
ORDER BY {order}
LIMIT %(count)s
"""
ORDERS = {"newest": "received_at DESC", "random": "random()"}
# What ``--format`` could have named, when it named nothing stored.
_FORMATS = """
SELECT concat_ws('-', format, content_type) AS name, count(*) FROM ingestion.raw_ingestion
GROUP BY name ORDER BY name
"""


@dataclass
class Sample:
    """The payloads read, and why others were left out."""

    payloads: list[bytes] = field(default_factory=list)
    order: str = "newest"
    format: str | None = None
    elsewhere: int = 0  # stored under another storage URL than the configured one
    missing: int = 0  # recorded, but not found in storage
    truncated: bool = False  # stopped at MAX_SAMPLE_BYTES
    # The formats stored (name, objects), read only when ``format`` matched none.
    stored_formats: list[tuple[str, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.payloads)


async def read_sample(
    settings: Settings, *, count: int, fmt: str | None = None, order: str = "newest"
) -> Sample:
    """Up to ``count`` payloads (newest or random) of format ``fmt`` (``fhir``, ``fhir-json``,
    ``hl7``...); raises ``BronzeError`` when the metadata tables cannot be read."""
    from mm_bronze.runtime import open_database

    name, _, content_type = (fmt or "").partition("-")
    params = {"format": name or None, "content_type": content_type or None, "count": count}
    async with open_database(settings, migrate=False) as db, db.pool.connection() as conn:
        try:
            cur = await conn.execute(_QUERY.format(order=ORDERS[order]), params)
        except psycopg.errors.UndefinedTable as exc:
            raise BronzeError(
                "no metadata tables in this database: run `mm-bronze migrate`, then store data"
            ) from exc
        rows = await cur.fetchall()
        sample = Sample(order=order, format=fmt)
        if not rows and fmt:
            cur = await conn.execute(_FORMATS)
            sample.stored_formats = [(name, count) for name, count in await cur.fetchall()]
    progress = Progress(len(rows))
    async with ObjectStore(settings.storage_url, settings.storage.options) as store:
        for storage_path, compression, size in rows:
            progress.advance(label="reading objects")
            if sample.size + size > MAX_SAMPLE_BYTES and sample.payloads:
                sample.truncated = True
                break
            try:
                key = store.key_for(storage_path)
            except ValueError:
                sample.elsewhere += 1
                continue
            try:
                stored = await store.read_bytes(key)
            except FileNotFoundError:
                sample.missing += 1
                continue
            sample.payloads.append(b"".join(decode(compression, (stored,))))
    progress.close()
    return sample

"""API clients: named bearer tokens, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.errors import BronzeError

Pool = AsyncConnectionPool[AsyncConnection]
TOKEN_PREFIX = "mmb_"


def hash_token(token: str) -> bytes:
    # Tokens are 256-bit random values, so a fast hash is enough (no password KDF needed).
    return hashlib.sha256(token.encode()).digest()


async def add_client(pool: Pool, name: str) -> str:
    """Create client ``name`` and return its new token (shown once, stored hashed)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO ingestion.api_clients (name, token_hash) VALUES (%s, %s)",
                (name, hash_token(token)),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise BronzeError(f"client {name!r} already exists") from exc
    return token


async def remove_client(pool: Pool, name: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute("DELETE FROM ingestion.api_clients WHERE name = %s", (name,))
        return cur.rowcount > 0


async def list_clients(pool: Pool) -> list[tuple[str, str]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, created_at::text FROM ingestion.api_clients ORDER BY name"
        )
        return [(name, created) for name, created in await cur.fetchall()]


async def client_for_token(pool: Pool, token: str) -> str | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name FROM ingestion.api_clients WHERE token_hash = %s", (hash_token(token),)
        )
        row = await cur.fetchone()
        return row[0] if row else None


async def client_count(pool: Pool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM ingestion.api_clients")
        row = await cur.fetchone()
        return int(row[0]) if row else 0

"""API clients: named bearer tokens, stored as SHA-256 hashes, each with a role."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.errors import BronzeError

Pool = AsyncConnectionPool[AsyncConnection]
TOKEN_PREFIX = "mmb_"
ROLES = ("ingest", "read", "admin")


@dataclass(frozen=True)
class Client:
    """An authenticated API client. ``ingest`` submits and reads its own submissions;
    ``read`` reads its own submissions and the operations surface; ``admin`` sees all."""

    name: str
    role: str = "ingest"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def may_ingest(self) -> bool:
        return self.role in ("ingest", "admin")


def hash_token(token: str) -> bytes:
    # Tokens are 256-bit random values, so a fast hash is enough (no password KDF needed).
    return hashlib.sha256(token.encode()).digest()


async def add_client(pool: Pool, name: str, role: str = "ingest") -> str:
    """Create client ``name`` and return its new token (shown once, stored hashed).

    From then on tokens are required for good, even after the last client is removed.
    """
    if role not in ROLES:
        raise BronzeError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO ingestion.api_clients (name, token_hash, role) VALUES (%s, %s, %s)",
                (name, hash_token(token), role),
            )
            await conn.execute(
                "INSERT INTO ingestion.access_policy (tokens_required) VALUES (true)"
                " ON CONFLICT (singleton) DO UPDATE SET tokens_required = true"
            )
    except psycopg.errors.UniqueViolation as exc:
        raise BronzeError(f"client {name!r} already exists") from exc
    return token


async def remove_client(pool: Pool, name: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute("DELETE FROM ingestion.api_clients WHERE name = %s", (name,))
        return cur.rowcount > 0


async def list_clients(pool: Pool) -> list[tuple[str, str, str]]:
    """(name, role, created) of every client, by name."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, role, created_at::text FROM ingestion.api_clients ORDER BY name"
        )
        return [(name, role, created) for name, role, created in await cur.fetchall()]


async def client_for_token(pool: Pool, token: str) -> Client | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT name, role FROM ingestion.api_clients WHERE token_hash = %s",
            (hash_token(token),),
        )
        row = await cur.fetchone()
        return Client(row[0], row[1]) if row else None


# Whether any client has ever existed (then anonymous access is over for good).
TOKENS_REQUIRED = "SELECT coalesce(bool_or(tokens_required), false) FROM ingestion.access_policy"
CLIENT_COUNT = "SELECT count(*) FROM ingestion.api_clients"


async def tokens_required(pool: Pool) -> bool:
    """Whether any client has ever existed (then anonymous access is over for good)."""
    async with pool.connection() as conn:
        cur = await conn.execute(TOKENS_REQUIRED)
        row = await cur.fetchone()
        return bool(row[0]) if row else False


async def client_count(pool: Pool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(CLIENT_COUNT)
        row = await cur.fetchone()
        return int(row[0]) if row else 0

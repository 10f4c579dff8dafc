"""Bearer-token authentication of API clients, with a short cache in front of PostgreSQL."""

from __future__ import annotations

import time

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.errors import BronzeError
from mm_bronze.metadata import clients

CACHE_SECONDS = 5.0


class Unauthorized(BronzeError):
    """The request carries no valid token."""


class Authenticator:
    """Maps ``Authorization: Bearer <token>`` to a client name.

    With ``open_access`` (loopback bind) and no client configured, requests without a token
    are accepted as anonymous. Once any client exists, every request needs a valid token.
    """

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection], *, open_access: bool) -> None:
        self._pool = pool
        self._open_access = open_access
        self._tokens: dict[str, tuple[str, float]] = {}
        self._count: tuple[int, float] = (0, 0.0)

    async def authenticate(self, authorization: str | None) -> str | None:
        """The client name (None for anonymous access); raises ``Unauthorized``."""
        now = time.monotonic()
        if authorization is None:
            if self._open_access and await self._client_count(now) == 0:
                return None
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        cached = self._tokens.get(token)
        if cached is not None and now - cached[1] < CACHE_SECONDS:
            return cached[0]
        name = await clients.client_for_token(self._pool, token)
        if name is None:
            self._tokens.pop(token, None)
            raise Unauthorized("invalid token")
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[token] = (name, now)
        return name

    async def _client_count(self, now: float) -> int:
        count, at = self._count
        if now - at >= CACHE_SECONDS:
            count = await clients.client_count(self._pool)
            self._count = (count, now)
        return count

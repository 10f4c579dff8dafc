"""Bearer-token authentication of API clients, with a short cache in front of PostgreSQL."""

from __future__ import annotations

import time

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from mm_bronze.errors import BronzeError, Unavailable
from mm_bronze.metadata import clients
from mm_bronze.metadata.clients import Client

CACHE_SECONDS = 5.0


class Unauthorized(BronzeError):
    """The request carries no valid token."""


class AuthUnavailable(Unavailable):
    """The database that knows the clients cannot be reached: the caller answers 503."""


class Authenticator:
    """Maps ``Authorization: Bearer <token>`` to a client.

    With ``open_access`` (loopback bind) and no client ever configured, requests without a
    token are accepted as anonymous. Once any client has existed, every request needs a
    valid token, even after the last client is removed.
    """

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection], *, open_access: bool) -> None:
        self._pool = pool
        self._open_access = open_access
        self._tokens: dict[str, tuple[Client, float]] = {}
        self._required: tuple[bool, float] = (False, -CACHE_SECONDS)

    async def authenticate(self, authorization: str | None) -> Client | None:
        """The client (None for anonymous access); raises ``Unauthorized``, or
        ``AuthUnavailable`` when the database cannot tell."""
        try:
            return await self._authenticate(authorization)
        except psycopg.Error as exc:  # PoolTimeout included: the pool found no connection
            raise AuthUnavailable(f"clients cannot be read: {type(exc).__name__}") from exc

    async def _authenticate(self, authorization: str | None) -> Client | None:
        now = time.monotonic()
        if authorization is None:
            if self._open_access and not await self._tokens_required(now):
                return None
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        cached = self._tokens.get(token)
        if cached is not None and now - cached[1] < CACHE_SECONDS:
            return cached[0]
        client = await clients.client_for_token(self._pool, token)
        if client is None:
            self._tokens.pop(token, None)
            raise Unauthorized("invalid token")
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[token] = (client, now)
        return client

    async def _tokens_required(self, now: float) -> bool:
        required, at = self._required
        if not required and now - at >= CACHE_SECONDS:
            required = await clients.tokens_required(self._pool)
            self._required = (required, now)
        return required

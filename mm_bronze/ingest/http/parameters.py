"""Query parameters a route does not take, or takes more than once: a 400 that names them,
never silently ignored (a misspelt parameter would otherwise change nothing without a word)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response

from mm_bronze.ingest.http.responses import error
from mm_bronze.query_parameters import misused

Handler = Callable[[Request], Awaitable[Response]]


def parameter_refusal(request: Request, known: Sequence[str] = ()) -> Response | None:
    """The ``400 invalid_parameter`` naming the first query parameter of ``request`` that
    is not in ``known`` or is repeated; None when every parameter is fine."""
    if (wrong := misused(request.query_params.multi_items(), known)) is None:
        return None
    name, why = wrong
    return error(400, "invalid_parameter", f"{name}: {why}", parameter=name)


def without_parameters(handler: Handler) -> Handler:
    """``handler`` for a route that takes no query parameter and no token: any parameter is
    refused before ``handler`` runs."""

    async def checked(request: Request) -> Response:
        if (refusal := parameter_refusal(request)) is not None:
            return refusal
        return await handler(request)

    return checked

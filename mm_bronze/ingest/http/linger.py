"""Answer early refusals in a way every client sees, then close promptly.

When the app answers before it has read the whole request body (413, 401, 400, 422, 503),
hypercorn closes the connection as soon as the response is complete. A client still
sending its body then gets a reset instead of the answer; one that sends its whole body
before reading (Python's ``http.client``) never sees it. And when hypercorn's queue of unread
body chunks is full at that moment, its close waits for queue space no one frees: the
connection hangs for good.

So this middleware sends such a response whole but holds back its end (a zero-byte
end-of-body, which puts nothing on the wire for a response with a length), reads and
discards the rest of the request body for a short, bounded while (``LINGER_BYTES``,
``LINGER_SECONDS``: what a normal client needs to finish sending and read the answer), then
ends the response, and keeps emptying hypercorn's queue until it hands over its disconnect,
so the connection closes (the response already says ``Connection: close``).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LINGER_BYTES = 16 * 1024 * 1024
LINGER_SECONDS = 2.0
RELEASE_SECONDS = 30.0  # the longest the queue is emptied while waiting for the disconnect


class LingeringClose:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._releasing: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ended = False

        async def tracked_receive() -> Message:
            nonlocal ended
            message = await receive()
            ended = ended or _ends_body(message)
            return message

        async def lingering_send(message: Message) -> None:
            if ended or message["type"] != "http.response.body" or message.get("more_body"):
                await send(message)
                return
            await send({**message, "more_body": True})
            if not await _drain(receive):
                task = asyncio.create_task(_release(receive))
                self._releasing.add(task)
                task.add_done_callback(self._releasing.discard)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app(scope, tracked_receive, lingering_send)


def _ends_body(message: Message) -> bool:
    return message["type"] == "http.disconnect" or not message.get("more_body", False)


async def _drain(receive: Receive) -> bool:
    """Discard the unread body within the linger bounds; whether it ended."""
    drained = 0
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            while drained <= LINGER_BYTES:
                message = await receive()
                if _ends_body(message):
                    return True
                drained += len(message.get("body", b""))
    except TimeoutError:
        pass
    return False


async def _release(receive: Receive) -> None:
    """Empty hypercorn's queue until its disconnect arrives, so it can close the socket."""
    try:
        async with asyncio.timeout(RELEASE_SECONDS):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass

"""The validator interface: fed the payload chunk by chunk, as it arrives."""

from __future__ import annotations

from typing import Any, Protocol


class PayloadValidator(Protocol):
    """Validates one payload incrementally; never holds more than it needs in memory.

    ``feed`` may raise ``InvalidPayload`` as soon as the bytes seen so far are wrong;
    ``finish`` raises it for problems found at the end and otherwise returns the metadata
    extracted from the payload (JSON-serialisable, never patient data).
    """

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> dict[str, Any]: ...

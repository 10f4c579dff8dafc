"""FHIR JSON: a well-formed JSON object with a ``resourceType``."""

from __future__ import annotations

from typing import Any

import ijson
import msgspec

from mm_bronze.errors import InvalidPayload

# Bodies up to this size are parsed at once with msgspec (fast); larger ones stream through
# ijson's push parser so they are never held whole in memory.
BUFFER_LIMIT = 4 * 1024 * 1024


class _Head(msgspec.Struct):
    resourceType: str | None = None
    type: object = None  # a code in Bundle, a CodeableConcept elsewhere


class _Events:
    """Collects the top-level keys we extract from ijson's event stream."""

    def __init__(self) -> None:
        self.depth = 0
        self.key: str | None = None
        self.top: dict[str, Any] = {}
        self.started = False

    def send(self, event: tuple[str, Any]) -> None:
        kind, value = event
        if not self.started:
            self.started = True
            if kind != "start_map":
                raise InvalidPayload("FHIR JSON must be a JSON object")
        if kind in ("start_map", "start_array"):
            self.depth += 1
        elif kind in ("end_map", "end_array"):
            self.depth -= 1
        elif self.depth == 1 and kind == "map_key":
            self.key = value
        elif self.depth == 1 and self.key in ("resourceType", "type") and kind == "string":
            self.top.setdefault(self.key, value)


class FhirJsonValidator:
    def __init__(self) -> None:
        self._buffer: list[bytes] = []
        self._size = 0
        self._events: _Events | None = None
        self._coro: Any = None

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._coro is None and self._size <= BUFFER_LIMIT:
            self._buffer.append(chunk)
            return
        if self._coro is None:
            self._events = _Events()
            self._coro = ijson.basic_parse_coro(self._events, use_float=True)
            buffered, self._buffer = self._buffer, []
            for part in buffered:
                self._send(part)
        self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        try:
            self._coro.send(chunk)
        except ijson.JSONError as exc:
            raise InvalidPayload(f"malformed JSON: {exc}") from None

    def finish(self) -> dict[str, Any]:
        if self._coro is None:
            try:
                head = msgspec.json.decode(b"".join(self._buffer), type=_Head)
            except msgspec.ValidationError:
                raise InvalidPayload(
                    "FHIR JSON must be a JSON object with a string resourceType"
                ) from None
            except msgspec.DecodeError as exc:
                raise InvalidPayload(_malformed(exc)) from None
            top = {"resourceType": head.resourceType, "type": head.type}
        else:
            try:
                self._coro.close()
            except ijson.JSONError as exc:
                raise InvalidPayload(f"malformed JSON: {exc}") from None
            assert self._events is not None
            top = self._events.top
        resource_type = top.get("resourceType")
        if not resource_type:
            raise InvalidPayload("FHIR JSON must have a resourceType")
        meta: dict[str, Any] = {"resource_type": resource_type}
        if resource_type == "Bundle" and isinstance(top.get("type"), str):
            meta["bundle_type"] = top["type"]
        return meta


def _malformed(exc: Exception) -> str:
    return "malformed JSON: " + str(exc).removeprefix("JSON is malformed: ")

"""HL7 v2 (ER7 text): an ``MSH`` (or ``FHS``/``BHS`` batch) header after an optional BOM."""

from __future__ import annotations

import re
from typing import Any

from mm_bronze.errors import InvalidPayload

HEAD_LIMIT = 64 * 1024
_HEADER = re.compile(rb"(MSH|FHS|BHS)([^\r\n\w])")


class Hl7v2Validator:
    def __init__(self) -> None:
        self._head = bytearray()
        self._checked = False
        self._meta: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> None:
        if self._checked:
            return
        self._head += chunk
        text = bytes(self._head).removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
        if len(text) >= 4:
            self._check(text)
        elif len(self._head) > HEAD_LIMIT:
            raise InvalidPayload("not HL7 v2: no MSH segment at the start")

    def _check(self, text: bytes) -> None:
        match = _HEADER.match(text)
        if match is None:
            raise InvalidPayload("not HL7 v2: the message must start with an MSH segment")
        segment_end = re.search(rb"[\r\n]", text)
        if segment_end is None and len(text) < HEAD_LIMIT:
            return  # wait for the whole first segment
        self._checked = True
        first = text[: segment_end.start()] if segment_end else text
        msh = re.search(rb"(?:^|[\r\n])MSH(.)", text)
        if msh is not None:
            sep = msh.group(1)
            line = text[msh.start() :].lstrip(b"\r\n").split(b"\r")[0].split(b"\n")[0]
            fields = line.split(sep)
            # fields[0] is "MSH", fields[1] the encoding characters, so MSH-n is fields[n-1].
            self._meta = {
                "message_type": _field(fields, 9),
                "control_id_present": bool(_field(fields, 10)),
                "hl7_version": _field(fields, 12),
            }
        self._meta["header"] = first[:3].decode()

    def finish(self) -> dict[str, Any]:
        if not self._checked:
            text = bytes(self._head).removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
            if len(text) < 4:
                raise InvalidPayload("not HL7 v2: the message must start with an MSH segment")
            self._check(text)
            self._checked = True
        return self._meta


def _field(fields: list[bytes], n: int) -> str | None:
    value = fields[n - 1] if len(fields) >= n else b""
    return value.decode("utf-8", "replace") or None

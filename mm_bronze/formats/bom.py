"""The UTF-8 byte-order mark some senders put before a body: accepted, looked past, recorded."""

from __future__ import annotations

BOM = b"\xef\xbb\xbf"


class LeadingBom:
    """Tells whether a body starts with a BOM, however its first bytes are split in chunks."""

    def __init__(self) -> None:
        self.found: bool | None = None  # None until the first bytes tell
        self._head = b""

    def first(self, chunk: bytes) -> bytes | None:
        """Before ``found`` is known: the first bytes (held back, BOM included) together with
        ``chunk`` once they tell, or None while they could still be a BOM."""
        head = self._head + chunk
        if len(head) < len(BOM) and BOM.startswith(head):
            self._head = head
            return None
        self._head = b""
        self.found = head.startswith(BOM)
        return head

    def held(self) -> bytes:
        """At the body's end: what is still held back (too short to be a BOM)."""
        head, self._head = self._head, b""
        if self.found is None:
            self.found = False
        return head

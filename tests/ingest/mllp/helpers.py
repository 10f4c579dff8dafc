"""Helpers for MLLP door tests: a raw-socket MLLP client, ACK parsing, stored rows."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

import psycopg

from tests.polling import wait_for

START, END = b"\x0b", b"\x1c\r"


class RawMllp:
    """A blocking MLLP client on a plain socket, for byte-level control."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buf = b""

    def __enter__(self) -> RawMllp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: bytes) -> None:
        self.sock.sendall(START + message + END)

    def read_frame(self) -> bytes | None:
        """The next frame from the server, or None when it closed the connection."""
        while END not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk
        data, _, self._buf = self._buf.partition(END)
        assert data.startswith(START), data[:20]
        return data[1:]

    def ask(self, message: bytes) -> bytes:
        self.send(message)
        ack = self.read_frame()
        assert ack is not None, "connection closed instead of an ACK"
        return ack

    def closed_by_server(self, timeout: float = 30) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


@dataclass
class Ack:
    code: str
    control_id: str
    text: str
    msh: list[str]
    err: list[str] | None


def parse_ack(data: bytes) -> Ack:
    segments = [s for s in data.decode("utf-8", "replace").split("\r") if s]
    by_id = {s[:3]: s.split("|") for s in segments}
    assert segments[0].startswith("MSH|"), data[:80]
    msa = by_id["MSA"]
    return Ack(
        code=msa[1],
        control_id=msa[2] if len(msa) > 2 else "",
        text=msa[3] if len(msa) > 3 else "",
        msh=by_id["MSH"],
        err=by_id.get("ERR"),
    )


def header_fields(data: bytes) -> dict[str, list[str]]:
    """The first MSH, FHS and BHS segments split on '|' (MSH-n is fields[n-1])."""
    out: dict[str, list[str]] = {}
    for segment in re.split(rb"\r\n|\r|\n", data.removeprefix(b"\xef\xbb\xbf")):
        name = segment[:3].decode("latin-1")
        if name in ("MSH", "FHS", "BHS") and name not in out:
            out[name] = segment.decode("latin-1").split("|")
    return out


def field(fields: list[str] | None, n: int) -> str:
    if not fields:
        return ""
    return fields[n - 1] if len(fields) >= n else ""


def oru(control_id: str, *, accept_ack: str = "", app_ack: str = "", extra: str = "") -> bytes:
    """A small valid ORU^R01 v2.5.1 message."""
    segments = [
        f"MSH|^~\\&|LAB^1.2.3^ISO|HOSP|BRONZE|DATA|20250101120000||ORU^R01^ORU_R01|{control_id}|P|"
        f"2.5.1|||{accept_ack}|{app_ack}",
        f"PID|1||{control_id}^^^HOSP^MR||Doe^Jane",
        "OBR|1||F1|12345^Test^LN",
        f"OBX|1|ST|12345^Test^LN||value {extra}||||||F",
    ]
    return "\r".join(segments).encode() + b"\r"


def stored_rows(dsn: str, sha256_hex: str) -> list[tuple]:
    """(submission uuid, is_duplicate, storage_path, source_metadata, data_version, subtype)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT s.submission_id::text, s.is_duplicate, r.storage_path, s.source_metadata,"
            " s.data_version, s.subtype, s.ingestion_source"
            " FROM ingestion.submissions s JOIN ingestion.raw_ingestion r USING (object_id)"
            " WHERE r.fingerprint = %s ORDER BY s.received_at",
            (bytes.fromhex(sha256_hex),),
        ).fetchall()


def wait_rows(dsn: str, sha256_hex: str, count: int, timeout: float = 60) -> list[tuple]:
    return wait_for(
        lambda: stored_rows(dsn, sha256_hex),
        lambda rows: len(rows) >= count,
        timeout=timeout,
        what=f"{count} submissions of {sha256_hex}",
    )

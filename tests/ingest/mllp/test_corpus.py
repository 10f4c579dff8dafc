"""Every HL7 v2 file of the corpus over MLLP, with the `hl7` package's client and raw sockets."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from hl7.client import MLLPClient

from mm_bronze import formats
from mm_bronze.errors import InvalidPayload
from tests.ingest.http.helpers import stored_bytes
from tests.ingest.mllp.helpers import (
    RawMllp,
    field,
    header_fields,
    oru,
    parse_ack,
    stored_rows,
    wait_rows,
)
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze


@dataclass
class Case:
    name: str
    data: bytes
    accept: bool  # expected to be accepted (stored) rather than rejected
    enhanced: bool  # MSH-15/16 valued: commit acknowledgements CA/CR
    accept_ack: str  # MSH-15
    control_id: str  # what MSA-2 must echo
    version: str
    subtype: str

    @property
    def code(self) -> str:
        if self.enhanced:
            return "CA" if self.accept else "CR"
        return "AA" if self.accept else "AR"

    @property
    def acked(self) -> bool:
        if not self.enhanced:
            return True
        mode = self.accept_ack or "AL"
        return mode == "AL" or (mode == "ER" and not self.accept) or (mode == "SU" and self.accept)


def validator_rejects(data: bytes) -> bool:
    validator = formats.validator_for("hl7", "text")
    try:
        validator.feed(data)
        validator.finish()
    except InvalidPayload:
        return True
    return False


def load_cases(corpus: Path) -> list[Case]:
    cases = []
    for row in (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]:
        path, _size, _sha, kind, expected, note = row.split("\t")
        if kind != "hl7v2":
            continue
        data = (corpus / path).read_bytes()
        # Manifest notes read "msgs=…; … | <level>: <why>"; syntax and framing faults are
        # rejected by any parser; deeper levels are rejected when the door's validator does.
        level = note.partition(" | ")[2]
        if expected == "valid":
            accept = True
        elif level.startswith(("syntax", "framing")):
            accept = False
        else:
            accept = not validator_rejects(data)
        headers = header_fields(data)
        msh = headers.get("MSH")
        batch_id = field(headers.get("BHS"), 11) or field(headers.get("FHS"), 11)
        kind_, trigger = [*field(msh, 9).split("^"), ""][:2]
        subtype = f"{kind_}_{trigger}".lower() if trigger else kind_.lower()
        cases.append(
            Case(
                name=path,
                data=data,
                accept=accept,
                enhanced=bool(field(msh, 15) or field(msh, 16)),
                accept_ack=field(msh, 15),
                control_id=batch_id or field(msh, 10),
                version=field(msh, 12).split("^")[0] or "unknown",
                subtype=subtype or ("batch" if "FHS" in headers else "unknown"),
            )
        )
    return cases


@pytest.fixture(scope="module")
def cases(corpus: Path) -> list[Case]:
    found = load_cases(corpus)
    assert len(found) >= 30, "the corpus should hold every HL7 v2 test file"
    assert any(not c.accept for c in found) and any(not c.acked for c in found)
    return found


@pytest.fixture(scope="module")
def port(server: MmBronze) -> int:
    wait_listening(server.mllp_port)
    return server.mllp_port


def check_ack(case: Case, ack_bytes: bytes) -> None:
    ack = parse_ack(ack_bytes)
    assert (ack.code, ack.control_id) == (case.code, case.control_id), case.name
    sent = header_fields(case.data).get("MSH") or header_fields(case.data)["FHS"]
    # The ACK's MSH swaps sender and receiver.
    assert ack.msh[2:6] == [sent[4], sent[5], sent[2], sent[3]], case.name
    assert ack.msh[8].startswith("ACK"), case.name
    if case.accept:
        assert ack.err is None, case.name
    else:
        assert ack.err is not None and ack.text, case.name


def probe(n: int) -> bytes:
    return oru(f"PROBE{n}", extra=str(n))


def test_corpus_with_the_hl7_package_client(port: int, cases: list[Case], module_dsn: str) -> None:
    with MLLPClient("127.0.0.1", port) as client:
        for n, case in enumerate(cases):
            if case.acked:
                client.socket.settimeout(30)
                check_ack(case, client.send_message(case.data).strip(b"\x0b\x1c\r"))
                continue
            # Enhanced mode with MSH-15 "NE": nothing comes back, and the next message on
            # the connection is answered first (the server answers in order).
            client.socket.settimeout(0.5)
            with pytest.raises(socket.timeout):
                client.send_message(case.data)
            client.socket.settimeout(30)
            ack = parse_ack(client.send_message(probe(n)).strip(b"\x0b\x1c\r"))
            assert (ack.code, ack.control_id) == ("AA", f"PROBE{n}"), case.name
    check_stored(cases, module_dsn, submissions=1)


def test_corpus_with_raw_sockets(port: int, cases: list[Case], module_dsn: str) -> None:
    # Runs after the hl7-client test: every accepted file is now a duplicate, still "AA".
    with RawMllp(port) as conn:
        for n, case in enumerate(cases):
            if case.acked:
                check_ack(case, conn.ask(case.data))
            else:
                conn.send(case.data)
                ack = parse_ack(conn.ask(probe(1000 + n)))
                assert (ack.code, ack.control_id) == ("AA", f"PROBE{1000 + n}"), case.name
    check_stored(cases, module_dsn, submissions=2)


def check_stored(cases: list[Case], dsn: str, submissions: int) -> None:
    for case in cases:
        digest = hashlib.sha256(case.data).hexdigest()
        if not case.accept:
            assert stored_rows(dsn, digest) == [], case.name
            continue
        rows = wait_rows(dsn, digest, submissions)
        assert len(rows) == submissions, case.name
        assert [dup for _, dup, *_ in rows] == [False] + [True] * (submissions - 1), case.name
        _uuid, _dup, path, meta, version, subtype, source = rows[-1]
        assert stored_bytes(path) == case.data, case.name
        assert (source, version, subtype) == ("mllp", case.version, case.subtype), case.name
        assert meta["remote_addr"] == "127.0.0.1", case.name
        assert (meta["control_id"] or "") == case.control_id, case.name


def test_the_ack_control_id_names_the_submission(port: int, module_dsn: str) -> None:
    message = oru("NAMED1")
    with RawMllp(port) as conn:
        ack = parse_ack(conn.ask(message))
    assert (ack.code, ack.control_id) == ("AA", "NAMED1")
    ((submission, *_rest),) = wait_rows(module_dsn, hashlib.sha256(message).hexdigest(), 1)
    assert ack.msh[9] == submission.replace("-", "")[:20].upper()  # the ACK's own MSH-10


def test_an_error_after_many_warnings_is_an_ar_not_a_dropped_connection(port: int) -> None:
    # One frame: messages whose MSH-2 doubles a character (each a warning), more of them
    # than a submission's findings keep, then a message missing PID-3.
    unusual = [oru(f"WARN{n}").replace(b"|^~\\&|", b"|^~\\&&|", 1) for n in range(25)]
    frame = b"".join(unusual) + oru("LAST").replace(b"||LAST^^^HOSP^MR|", b"|||", 1)
    with RawMllp(port) as conn:
        ack = parse_ack(conn.ask(frame))
        assert (ack.code, ack.control_id) == ("AR", "WARN0")
        assert "PID-3" in ack.text
        assert parse_ack(conn.ask(oru("AFTER"))).code == "AA", "the connection stays usable"

"""What an SFTP upload is: HL7 v2 subtypes as the MLLP door records them; a UTF-8 BOM
never hides a file's kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from mm_bronze.ingest.sftp import kind as sftp_kind
from mm_bronze.ingest.sftp.kind import KindDetector
from tests.formats.mutations import HL7_SEEDS, JSON_SEEDS, NDJSON_SEEDS, XML_SEEDS, inputs

ALL_SEEDS = HL7_SEEDS + JSON_SEEDS + NDJSON_SEEDS + XML_SEEDS


@pytest.mark.parametrize(
    ("name", "version", "subtype"),
    [
        ("PHLIP_FLU_2.5.1_VALID_MESSAGE.txt", "2.5.1", "oru_r01"),
        ("COVID-Test_Full_Batch_Headers_Multiple_Messages_v2_5_1_COVID-TEST_Partner.txt",
         "2.5.1", "oru_r01"),
        ("COVID-Test_Full_Batch_Headers_No_Message_v2_5_1.txt", "unknown", "batch"),
    ],
)  # fmt: skip
def test_hl7_subtype_is_message_type_and_trigger(
    corpus: Path, name: str, version: str, subtype: str
) -> None:
    detector = KindDetector(name, "R4")
    detector.feed((corpus / "hl7v2" / name).read_bytes())
    kind = detector.finish()
    assert (kind.format, kind.content_type, kind.version, kind.subtype) == (
        "hl7", "text", version, subtype,
    )  # fmt: skip


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("fhir-r4-resources/json/observation-example.json", ("fhir", "json")),
        ("fhir-r4-bundles/hospitalInformation1603148702656.json", ("fhir", "json")),
        ("ndjson/Patient.000.ndjson", ("fhir", "ndjson")),
        ("hl7v2/sample_win.hl7", ("hl7", "text")),
    ],
)
@pytest.mark.parametrize("chunk", [2, 65536])
def test_a_bom_does_not_change_what_a_file_is(
    corpus: Path, path: str, kind: tuple[str, str], chunk: int
) -> None:
    body = (corpus / path).read_bytes()
    assert not body.startswith(BOM)
    for data in (body, BOM + body):
        detector = KindDetector("upload.bin", "R4")
        for start in range(0, len(data), chunk):
            detector.feed(data[start : start + chunk])
        found = detector.finish()
        assert (found.format, found.content_type) == kind, found.metadata
        if found.format == "fhir":
            assert found.metadata.get("bom") is (True if data is not body else None)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_ndjson_lines_are_counted_wherever_the_writes_cut_them(corpus: Path, chunk: int) -> None:
    body = BOM + (corpus / "ndjson" / "Patient.000.ndjson").read_bytes()
    detector = KindDetector("upload.ndjson", "R4")
    for start in range(0, len(body), chunk):
        detector.feed(body[start : start + chunk])
    found = detector.finish()
    lines = [line for line in body.split(b"\n") if line.strip()]
    assert found.metadata["resources"] == len(lines)
    assert found.metadata["resource_types"] == {"Patient": len(lines)}
    assert found.metadata["bom"] is True


def test_an_ndjson_line_longer_than_the_limit_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp_kind, "LINE_LIMIT", 1000)
    monkeypatch.setattr(sftp_kind, "HEAD_BYTES", 16)  # decided at the first write
    detector = KindDetector("big.ndjson", "R4")
    detector.feed(b'{"resourceType": "Patient"}\n{"resourceType": "Binary", "data": "')
    validator = detector._validator
    assert isinstance(validator, sftp_kind.NdjsonValidator)
    for _ in range(100):  # a 10 MB line in 100 KB writes would be held and copied: it is not
        detector.feed(b"A" * 100)
    assert validator._partial == []
    detector.feed(b'"}\n')
    found = detector.finish()
    assert (found.format, found.content_type, found.subtype) == ("file", "ndjson", "ndjson")
    assert found.metadata == {
        "looked_like": "ndjson",
        "validation_error": "NDJSON line 2 is longer than 1000 bytes: not checked",
    }


class Broken:
    """A validator with a defect: it raises what no check expects."""

    def __init__(self, where: str) -> None:
        self.where = where

    def feed(self, chunk: bytes) -> None:
        if self.where == "feed":
            raise IndexError("a defect that quotes the file: Zyxwvut")

    def finish(self) -> dict:
        raise IndexError("a defect that quotes the file: Zyxwvut")


@pytest.mark.parametrize("where", ["feed", "finish"])
def test_a_validator_that_fails_unexpectedly_still_lands_the_file(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setattr(sftp_kind, "_validator", lambda candidate: Broken(where))
    detector = KindDetector("PHLIP_FLU_2.5.1_VALID_MESSAGE.txt", "R4")
    with capture_logs() as logs:
        detector.feed((corpus / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt").read_bytes())
        found = detector.finish()
    assert (found.format, found.content_type, found.subtype) == ("file", "plain", "txt")
    assert found.metadata == {
        "looked_like": "hl7v2",
        "validation_error": "the validator failed unexpectedly (IndexError)",
    }
    assert [(line["event"], line["error"]) for line in logs] == [
        ("sftp validation failed", "IndexError")
    ]
    assert "Zyxwvut" not in repr(logs)


def test_a_first_line_nested_too_deep_lands_as_a_file() -> None:
    deep = b'{"extension":[' * 3000
    detector = KindDetector("deep.json", "R4")
    detector.feed(deep + b"\n{}\n")
    found = detector.finish()
    assert (found.format, found.subtype) == ("file", "json")
    assert found.metadata["looked_like"] == "fhir-json"


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=inputs(ALL_SEEDS),
    name=st.sampled_from(["a.json", "b.xml", "c.ndjson", "d.hl7", "e.txt", "f"]),
    chunk=st.sampled_from([1, 7, 4096, 65536]),
)
def test_no_upload_makes_the_detector_raise(data: bytes, name: str, chunk: int) -> None:
    detector = KindDetector(name, "R4")
    for start in range(0, len(data), chunk):
        detector.feed(data[start : start + chunk])
    detector.finish()

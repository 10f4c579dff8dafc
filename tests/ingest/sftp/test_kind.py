"""An uploaded file's kind is found from its content: a UTF-8 byte order mark never hides it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.ingest.sftp.kind import KindDetector

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus"
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
def test_a_bom_does_not_change_what_a_file_is(path: str, kind: tuple[str, str], chunk: int) -> None:
    body = (CORPUS / path).read_bytes()
    assert not body.startswith(BOM)
    for data in (body, BOM + body):
        detector = KindDetector("upload.bin", "R4")
        for start in range(0, len(data), chunk):
            detector.feed(data[start : start + chunk])
        found = detector.finish()
        assert (found.format, found.content_type) == kind, found.metadata
        if found.format == "fhir":
            assert found.metadata.get("bom") is (True if data is not body else None)

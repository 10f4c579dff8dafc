"""The subtype of HL7 v2 over SFTP is the one the MLLP door records: type and trigger."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.ingest.sftp.kind import KindDetector


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

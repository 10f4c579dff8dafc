"""``mm-bronze validate`` and ``mm-bronze fhir split``, run as users run them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.services.mm_bronze import run_cli


def test_validate_reports_each_file_and_fails_if_any_is_invalid(corpus: Path) -> None:
    good = corpus / "fhir-r4-resources" / "json" / "patient-example.json"
    hl7 = corpus / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt"
    ndjson = corpus / "ndjson" / "Patient.000.ndjson"
    result = run_cli("validate", str(good), str(hl7), str(ndjson))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"OK      {good} (fhir/json): Patient")
    assert lines[1] == f"OK      {hl7} (hl7/text): 1 message(s) ORU^R01 v2.5.1"
    assert lines[2] == f"OK      {ndjson} (fhir/ndjson): 13 resources on 13 lines"

    bad = corpus / "hl7v2" / "DC_v25_HL7_bad.txt"
    result = run_cli("validate", str(good), str(bad))
    assert result.returncode == 1
    assert (
        f"INVALID {bad} (hl7/text): PID-3 (Patient Identifier List) is required but empty "
        "[message 1, segment 3 (PID)]"
    ) in result.stdout
    assert "error: OBR-4 (Universal Service Identifier) is required but empty" in result.stdout


def test_validate_a_directory_with_the_doors_messages(corpus: Path) -> None:
    result = run_cli("validate", str(corpus / "fhir-invalid"))
    assert result.returncode == 1
    invalid = [line for line in result.stdout.splitlines() if line.startswith("INVALID")]
    assert len(invalid) == 16
    assert any("ai4.json (fhir/json): Patient.birthDate is not a valid date" in i for i in invalid)
    assert any("malformed JSON: expected ',' or '}' [line 15, column 11]" in i for i in invalid)


def test_validate_levels_and_explicit_format(tmp_path: Path) -> None:
    odd = tmp_path / "message.dat"
    odd.write_bytes(b"junk\rMSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||7^^^H^MR\r")
    assert run_cli("validate", str(odd)).returncode == 1
    lenient = run_cli("validate", "--level", "lenient", "--format", "hl7", str(odd))
    assert lenient.returncode == 0
    assert "error: segment 1: data before the first MSH segment" in lenient.stdout
    resource = tmp_path / "resource.txt"
    resource.write_text('{"resourceType": "Requirements", "status": "draft"}')
    assert run_cli("validate", str(resource)).returncode == 1  # R4 by default
    assert run_cli("validate", "--fhir-version", "R5", str(resource)).returncode == 0


def test_fhir_split_writes_one_file_per_resource(corpus: Path, tmp_path: Path) -> None:
    bundles = corpus / "fhir-r4-bundles"
    out = tmp_path / "resources"
    result = run_cli("fhir", "split", str(bundles), "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(out.rglob("*.json"))
    entries = [e for p in bundles.glob("*.json") for e in json.loads(p.read_bytes())["entry"]]
    # Every resource is written; one that several bundles hold identically is one file.
    written = {json.dumps(json.loads(p.read_bytes()), sort_keys=True) for p in files}
    assert written == {json.dumps(e["resource"], sort_keys=True) for e in entries}
    assert len(files) == len(written)
    assert f"{len(entries)} resources written to {len(files)} files under {out}" in result.stdout
    patient = json.loads(
        (out / "Patient" / "475d72ca-91c7-7211-97e3-f000af33fc04.json").read_text()
    )
    assert patient["resourceType"] == "Patient"
    for path in files:
        assert json.loads(path.read_text())["resourceType"] == path.parent.name

    not_a_bundle = corpus / "fhir-r4-resources" / "json" / "patient-example.json"
    result = run_cli("fhir", "split", str(not_a_bundle), "--out", str(out))
    assert result.returncode == 1
    assert "not a FHIR Bundle" in result.stderr

"""``mm-bronze validate`` and ``mm-bronze fhir split``, run as users run them."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import shutil
import subprocess
import sys
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


def test_validate_reads_gzip_files_decoded_as_the_door_reads_gzip_bodies(
    corpus: Path, tmp_path: Path
) -> None:
    ndjson = (corpus / "ndjson" / "Patient.000.ndjson").read_bytes()
    hl7 = (corpus / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt").read_bytes()
    packed = tmp_path / "Patient.000.ndjson.gz"
    packed.write_bytes(gzip.compress(ndjson))
    unnamed = tmp_path / "message.gz"  # no inner extension: told by content, as uncompressed
    unnamed.write_bytes(gzip.compress(hl7))
    cut = tmp_path / "cut.ndjson.gz"
    cut.write_bytes(gzip.compress(ndjson)[:-8])
    corrupt = tmp_path / "corrupt.json.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"x" * 30)
    invalid = tmp_path / "invalid.json.gz"
    invalid.write_bytes(gzip.compress(b'{"resourceType": "Patient", "gender": 7}'))

    result = run_cli("validate", str(packed), str(unnamed))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[:2] == [
        f"OK      {packed} (fhir/ndjson): 13 resources on 13 lines",
        f"OK      {unnamed} (hl7/text): 1 message(s) ORU^R01 v2.5.1",
    ]
    result = run_cli("validate", str(cut), str(corrupt), str(invalid))
    assert result.returncode == 1
    assert result.stdout.splitlines()[:3] == [
        f"INVALID {cut}: not valid gzip: the file ends before the end of its gzip stream",
        f"INVALID {corrupt}: not valid gzip: Unknown compression method",
        f"INVALID {invalid} (fhir/json): Patient.gender must be a JSON string [Patient.gender]",
    ]


def test_validate_reads_a_pipe_once_gzip_or_not(corpus: Path, tmp_path: Path) -> None:
    """A pipe (``mm-bronze validate <(zcat export.gz)``) is read once: looking for the gzip
    magic number takes nothing from it."""
    ndjson = (corpus / "ndjson" / "Patient.000.ndjson").read_bytes()
    for name, data in (("plain", ndjson), ("packed", gzip.compress(ndjson))):
        pipe = tmp_path / name
        os.mkfifo(pipe)
        writer = subprocess.Popen(["sh", "-c", 'cat > "$0"', str(pipe)], stdin=subprocess.PIPE)
        assert writer.stdin is not None
        writer.stdin.write(data)
        writer.stdin.close()
        result = run_cli("validate", "--format", "fhir-ndjson", str(pipe))
        writer.wait(timeout=30)
        assert result.stdout.startswith(f"OK      {pipe} (fhir/ndjson): 13 resources on 13 lines")


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


SUMMARY = re.compile(
    r"^(\d+) files: (\d+) valid, (\d+) invalid, (\d+) skipped; [\d.]+ MB in [\d.]+ s "
    r"\([\d.]+ MB/s, (\d+) process(?:es)?\)$"
)


def test_validate_skips_what_it_cannot_identify_and_ends_with_a_summary(corpus: Path) -> None:
    result = run_cli("validate", str(corpus))
    assert result.returncode == 1  # the corpus holds invalid files on purpose
    lines = result.stdout.splitlines()
    skipped = sorted(line for line in lines if line.startswith("SKIPPED"))
    assert [line.split()[1].rstrip(":") for line in skipped] == [
        str(corpus / name) for name in ("MANIFEST.tsv", "README.md", "SOURCES.tsv")
    ]
    found = SUMMARY.match(lines[-1])
    assert found, lines[-1]
    files, valid, invalid, skip, _ = map(int, found.groups())
    manifest = (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]
    assert (files, skip) == (len(manifest) + 3, 3)
    assert valid + invalid == len(manifest)
    assert result.stderr == ""  # no progress bar when stderr is not a terminal

    bundles = run_cli("validate", str(corpus / "fhir-r4-bundles"))
    assert bundles.returncode == 0
    assert bundles.stdout.splitlines()[-1].startswith("12 files: 12 valid, 0 invalid, 0 skipped;")


def test_validate_refuses_empty_inputs(tmp_path: Path) -> None:
    empty = run_cli("validate", str(tmp_path))
    assert (empty.returncode, empty.stderr) == (
        2,
        f"mm-bronze: no files to validate in {tmp_path}\n",
    )
    (tmp_path / "notes.md").write_text("# nothing to validate\n")
    unknown = run_cli("validate", str(tmp_path))
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == [
        "mm-bronze: no file was recognised as FHIR JSON/XML/NDJSON or HL7 v2: "
        "choose one with --format"
    ]
    assert unknown.stdout.splitlines()[-1].startswith("1 files: 0 valid, 0 invalid, 1 skipped;")


def test_validate_json_and_worker_processes_agree(corpus: Path) -> None:
    one = json.loads(run_cli("validate", "--json", "--jobs", "1", str(corpus)).stdout)
    two = json.loads(run_cli("validate", "--json", "--jobs", "2", str(corpus)).stdout)
    assert (one["summary"]["workers"], two["summary"]["workers"]) == (1, 2)
    assert one["files"] == two["files"]
    by_path = {entry["path"]: entry for entry in one["files"]}
    patient = by_path[str(corpus / "fhir-r4-resources" / "json" / "patient-example.json")]
    assert (patient["status"], patient["format"], patient["content_type"]) == (
        "valid", "fhir", "json",
    )  # fmt: skip
    assert patient["metadata"]["resource_type"] == "Patient"
    bad = by_path[str(corpus / "fhir-invalid" / "ai4.json")]
    assert bad["status"] == "invalid"
    assert bad["issues"][0]["expression"] == "Patient.birthDate"
    assert by_path[str(corpus / "README.md")]["status"] == "skipped"
    summary = one["summary"]
    assert summary["files"] == len(one["files"])
    assert summary["valid"] + summary["invalid"] + summary["skipped"] == summary["files"]
    assert summary["bytes"] > 0 and summary["mb_per_s"] > 0


def test_validate_uses_every_core_for_large_inputs(corpus: Path, tmp_path: Path) -> None:
    for copy in range(5):  # ~18 MB of Synthea bundles
        shutil.copytree(corpus / "fhir-r4-bundles", tmp_path / f"copy{copy}")
    result = json.loads(run_cli("validate", "--json", str(tmp_path)).stdout)
    assert result["summary"]["workers"] == min(os.cpu_count() or 1, 60)
    assert result["summary"]["valid"] == 60
    small = json.loads(run_cli("validate", "--json", str(corpus / "hl7v2")).stdout)
    assert small["summary"]["workers"] == 1


def test_validate_shows_progress_on_a_terminal_only(corpus: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mm_bronze", "validate", str(corpus / "ndjson")],
            stdout=subprocess.PIPE, stderr=terminal, timeout=120,
        )  # fmt: skip
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0
    assert re.search(rb"\r\[#*\.*\] \d+/9 files, [\d.]+ MB/s", shown), shown
    assert shown.endswith(b"\r\x1b[K")  # the bar is cleared before the summary
    assert b"\r[" not in result.stdout

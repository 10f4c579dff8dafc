"""``mm-bronze storage compression-report`` on corpus files landed through a real serve."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from mm_bronze.compression_report.measure import measure_all
from mm_bronze.compression_report.progress import Progress
from mm_bronze.compression_report.recommend import recommend
from mm_bronze.settings import CHOICES
from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze, run_cli

ROUTES = {
    "fhir-json": "/ingest/fhir/json/R4/resource",
    "fhir-xml": "/ingest/fhir/xml/R4/resource",
    "hl7v2": "/ingest/hl7/text/2.5.1/oru",
    "ndjson": "/ingest/fhir/ndjson/R4/bulk",
}
SETTINGS = CHOICES[("storage", "compression")]


@dataclass
class Landed:
    """Where the corpus was stored, and how many objects of each kind."""

    args: list[str]
    env: dict[str, str]
    counts: dict[str, int]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("storage", "compression-report", *self.args, *args, env=self.env)


@pytest.fixture(scope="module")
def landed(
    tmp_path_factory: pytest.TempPathFactory, module_dsn: str, corpus: Path
) -> Iterator[Landed]:
    """The corpus's valid files, stored gzip-compressed by a real serve."""
    data = tmp_path_factory.mktemp("report")
    env = {"POSTGRES_DSN": module_dsn, "MM_BRONZE_STORAGE_COMPRESSION": "gzip"}
    counts: dict[str, int] = {}
    with (
        MmBronze(data, "--http", "--consumers", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        accepted = []
        for row in (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]:
            path, _size, _sha, kind, expected, _note = row.split("\t")
            if expected != "valid":
                continue
            route = (
                ROUTES[kind].replace("resource", "bundle") if "bundles" in path else ROUTES[kind]
            )
            answer = client.post(route, content=(corpus / path).read_bytes())
            assert answer.status_code == 202, (path, answer.text)
            accepted.append((answer.json()["uuid"], kind))
        for uuid, kind in accepted:
            if wait_status(client, uuid, {"stored", "duplicate"})["status"] == "stored":
                counts[kind] = counts.get(kind, 0) + 1
    yield Landed(["--data-dir", str(data)], {"POSTGRES_DSN": module_dsn}, counts)


def report(landed: Landed, *args: str) -> dict[str, Any]:
    done = landed.run("--json", *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar off a terminal
    decoded: dict[str, Any] = msgspec.json.decode(done.stdout)
    return decoded


def test_table_and_recommendation(landed: Landed) -> None:
    done = landed.run()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"sample: {sum(landed.counts.values())} objects")
    header = lines[2].split("  ")
    assert [cell.strip() for cell in header if cell.strip()] == [
        "codec",
        "ratio",
        "compress MB/s",
        "decompress MB/s",
        "storage.compression",
    ]
    codecs = [line[:20].strip() for line in lines[3:12]]
    assert codecs == [
        "none",
        "gzip -1",
        "gzip -6",
        "gzip -9",
        "zstd -1",
        "zstd -3",
        "zstd -9",
        "zstd -19",
        "zstd -3 + dictionary",
    ]
    recommendation = next(line for line in lines if line.startswith("recommendation:"))
    setting = recommendation.split('"')[1]
    assert setting in SETTINGS
    assert f"MM_BRONZE_STORAGE_COMPRESSION={setting}" in recommendation


def test_json_ratios_on_fhir_json(landed: Landed) -> None:
    found = report(landed, "--format", "fhir-json")
    assert found["sample"]["objects"] == landed.counts["fhir-json"]
    assert found["sample"]["format"] == "fhir-json"
    ratios = {(r["codec"], r["level"]): r for r in found["results"]}
    # The stored objects were gzip-compressed: measured on the original JSON, not on gzip.
    assert ratios[("gzip", 6)]["ratio"] > 2
    assert ratios[("zstd", 3)]["ratio"] > 2
    assert ratios[("zstd", 19)]["ratio"] >= ratios[("zstd", 1)]["ratio"]
    assert ratios[("none", None)]["ratio"] == 1.0
    assert {r["setting"] for r in found["results"] if r["setting"]} == set(SETTINGS)
    for result in found["results"][1:]:
        assert result["compress_mb_s"] > 0 and result["decompress_mb_s"] > 0
    assert ("zstd+dictionary", 3) in ratios
    assert "not trained on" in found["dictionary_note"]
    assert found["recommendation"]["setting"] in SETTINGS


def test_small_sample_has_no_dictionary(landed: Landed) -> None:
    found = report(landed, "--sample", "3", "--random", "--format", "hl7")
    assert found["sample"]["objects"] == 3
    assert found["sample"]["order"] == "random"
    assert "zstd+dictionary" not in {r["codec"] for r in found["results"]}
    assert "too few" in found["dictionary_note"]


def test_no_objects_of_that_format_lists_the_stored_ones(landed: Landed) -> None:
    done = landed.run("--format", "dicom")
    assert done.returncode == 1
    stored = {"fhir-json": "fhir-json", "fhir-ndjson": "ndjson", "fhir-xml": "fhir-xml"}
    listed = [f"{name} ({landed.counts[kind]})" for name, kind in stored.items()]
    listed.append(f"hl7-text ({landed.counts['hl7v2']})")
    assert done.stderr.splitlines() == [
        "mm-bronze: error: no stored objects of format dicom to measure; stored formats: "
        + ", ".join(listed)
    ]


def test_no_objects_at_all(tmp_path: Path, dsn: str) -> None:
    env = {"POSTGRES_DSN": dsn}
    assert run_cli("migrate", env=env).returncode == 0
    done = run_cli(
        "storage", "compression-report", "--data-dir", str(tmp_path), "--format", "hl7", env=env
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "mm-bronze: error: no stored objects of format hl7 to measure: store some data first"
    ]


def test_incompressible_payloads_recommend_none() -> None:
    results, _ = measure_all([os.urandom(20_000) for _ in range(20)])
    assert recommend(results).setting == "none"


def test_progress_bar_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown, hidden = Terminal(), io.StringIO()
    for stream in (shown, hidden):
        progress = Progress(4, stream)
        for _ in range(4):
            progress.advance(label="zstd -3")
        progress.close()
    assert "100% zstd -3" in shown.getvalue()
    assert hidden.getvalue() == ""

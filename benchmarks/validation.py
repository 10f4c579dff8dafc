"""Validation cost per format, against plain ``msgspec.json.decode`` measured in the same run.

Run: ``.venv/bin/python benchmarks/validation.py [--corpus DIR] [--seconds S]``.
Each row feeds the corpus files to a fresh validator in 64 KiB chunks (as the HTTP door
does) and reports MB/s of validation alone; the baseline decodes the same bytes with
msgspec (per file for JSON, per line for NDJSON) without any FHIR checks.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from mm_bronze import formats

CHUNK = 64 * 1024
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def validate_all(bodies: list[bytes], fmt: str, content_type: str, version: str | None) -> None:
    for body in bodies:
        validator = formats.validator_for(fmt, content_type, version=version)
        for start in range(0, len(body), CHUNK):
            validator.feed(body[start : start + CHUNK])
        validator.finish()


def decode_json(bodies: list[bytes]) -> None:
    for body in bodies:
        msgspec.json.decode(body)


def decode_ndjson(bodies: list[bytes]) -> None:
    for body in bodies:
        for line in body.splitlines():
            if line:
                msgspec.json.decode(line)


def rate(run: Callable[[], None], size: int, seconds: float) -> float:
    """Best MB/s over repeated runs lasting about ``seconds`` in total."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    runs = 0
    while runs < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return size / best / 1e6


def big_bundle(bundles: list[bytes]) -> bytes:
    """One Bundle above the 4 MiB msgspec limit, so the streaming (ijson) path is measured."""
    entries = []
    for body in bundles:
        entries.extend(msgspec.json.decode(body)["entry"])
    seen = 0
    out = []
    while seen < 5 * 1024 * 1024:
        for entry in entries:
            copy = dict(entry)
            copy["fullUrl"] = f"urn:uuid:00000000-0000-0000-0000-{len(out):012d}"
            out.append(copy)
            seen += len(msgspec.json.encode(copy))
    return msgspec.json.encode({"resourceType": "Bundle", "type": "batch", "entry": out})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    corpus: Path = args.corpus

    def read(pattern: str) -> list[bytes]:
        return [p.read_bytes() for p in sorted(corpus.glob(pattern))]

    bundles = read("fhir-r4-bundles/*.json")
    cases: list[tuple[str, list[bytes], Callable[[], None], Callable[[], None] | None]] = []
    ndjson = read("ndjson/*.ndjson")
    xml = read("fhir-r4-resources/xml/*.xml")
    hl7 = read("hl7v2/*")
    big = [big_bundle(bundles)]
    cases = [
        (
            "FHIR JSON, Synthea bundles",
            bundles,
            lambda: validate_all(bundles, "fhir", "json", "R4"),
            lambda: decode_json(bundles),
        ),
        (
            "FHIR JSON, one Bundle > 4 MiB (ijson)",
            big,
            lambda: validate_all(big, "fhir", "json", "R4"),
            lambda: decode_json(big),
        ),
        (
            "FHIR NDJSON, bulk export files",
            ndjson,
            lambda: validate_all(ndjson, "fhir", "ndjson", "R4"),
            lambda: decode_ndjson(ndjson),
        ),
        ("FHIR XML, spec examples", xml, lambda: validate_all(xml, "fhir", "xml", "R4"), None),
        ("HL7 v2, corpus messages", hl7, lambda: validate_all(hl7, "hl7", "text", None), None),
    ]
    print(f"{'payloads':40} {'MB':>6} {'validate MB/s':>14} {'msgspec MB/s':>13} {'ratio':>6}")
    for name, bodies, validate, baseline in cases:
        size = sum(len(b) for b in bodies)
        if name.startswith("HL7"):
            bodies_ok = []
            for body in bodies:  # the corpus holds a few invalid messages on purpose
                try:
                    validate_all([body], "hl7", "text", None)
                    bodies_ok.append(body)
                except Exception:
                    continue
            size = sum(len(b) for b in bodies_ok)
            validate = lambda bodies_ok=bodies_ok: validate_all(bodies_ok, "hl7", "text", None)  # noqa: E731
        validated = rate(validate, size, args.seconds)
        base = rate(baseline, size, args.seconds) if baseline else None
        base_text = f"{base:13.1f}" if base else f"{'-':>13}"
        ratio = f"{base / validated:5.1f}x" if base else f"{'-':>6}"
        print(f"{name:40} {size / 1e6:6.2f} {validated:14.1f} {base_text} {ratio}")


if __name__ == "__main__":
    main()

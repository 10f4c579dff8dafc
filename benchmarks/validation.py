"""Validation speed per format, against a plain parse of the same bytes in the same run.

Run: ``.venv/bin/python -m benchmarks.validation [--corpus DIR] [--seconds S] [--only TEXT]``.
Each row feeds the corpus files to a fresh validator in 64 KiB chunks (as the HTTP door
does) and reports MB/s of validation alone; the baseline parses the same bytes without any
checks: ``msgspec.json.decode`` per file (JSON) or per line (NDJSON), plain ijson events for
the streamed bundle, expat for XML, ``bytes.split`` into segments and fields for HL7 v2. Every
figure is recorded with ``benchmarks.summary.record`` (ratio = validation / baseline). Times
are the CPU time of this process (validation is single-threaded and CPU-bound), so other load
on a shared machine does not tilt the ratio. The JSON rows also record, as a bound with no
goal, their fast path's floor against the same baseline (``typed_decode``): what the fast
path's design costs at least, before its other checks.
"""

from __future__ import annotations

import argparse
import functools
import time
import xml.parsers.expat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ijson
import msgspec

from benchmarks.summary import record
from mm_bronze import formats
from mm_bronze.formats.fhir.fast import decider
from mm_bronze.formats.fhir.fast import formats as fast_formats

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


def parse_ijson(bodies: list[bytes]) -> None:
    for body in bodies:
        coro = ijson.basic_parse_coro(_Sink(), use_float=True)
        for start in range(0, len(body), CHUNK):
            coro.send(body[start : start + CHUNK])
        coro.close()


class _Sink:
    def send(self, event: object) -> None:
        pass


def parse_xml(bodies: list[bytes]) -> None:
    for body in bodies:
        xml.parsers.expat.ParserCreate(namespace_separator=" ").Parse(body, True)


def split_hl7(bodies: list[bytes]) -> None:
    for body in bodies:
        for segment in body.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r"):
            segment.split(b"|")


def typed_decode(bodies: list[bytes], version: str, *, per_line: bool) -> None:
    """The JSON fast path's floor: each body (or line) decoded into the generated Structs
    (NDJSON lines into the lean ones, as the fast path decodes them first), whose primitive
    formats are checked in one batch per body; nothing else (no duplicate-key check, no
    Bundle rules, no line handling), nothing kept."""
    kinds = decider.lean_types(version) if per_line else decider.types(version)
    decode = kinds.decoder.decode
    with fast_formats.lock, decider.collection_paused():
        for body in bodies:
            if per_line:
                for line in body.splitlines():
                    if line:
                        decode(line)
            else:
                decode(body)
            fast_formats.valid()


def rates(runs: Sequence[Callable[[], None]], size: int, seconds: float) -> list[float]:
    """Best MB/s of each of ``runs``, measured in alternation for about ``seconds`` in total,
    each sample repeated to last about 0.2 s: on a busy machine a short sample is more likely
    to catch a quiet moment, which would favour the faster side."""

    def repeats(run: Callable[[], None]) -> int:
        start = time.process_time()
        run()
        return max(1, round(0.2 / max(time.process_time() - start, 1e-6)))

    counts = [repeats(run) for run in runs]
    best = [float("inf")] * len(runs)
    deadline = time.process_time() + seconds
    rounds = 0
    while rounds < 3 or time.process_time() < deadline:
        for side, (run, count) in enumerate(zip(runs, counts, strict=True)):
            start = time.process_time()
            for _ in range(count):
                run()
            best[side] = min(best[side], (time.process_time() - start) / count)
        rounds += 1
    return [size / each / 1e6 for each in best]


def big_bundle(bundles: list[bytes]) -> bytes:
    """One Bundle above the 4 MiB msgspec limit, so the streaming (ijson) path is measured."""
    entries = []
    for body in bundles:
        entries.extend(msgspec.json.decode(body)["entry"])
    seen = 0
    out: list[dict[str, Any]] = []
    while seen < 5 * 1024 * 1024:
        for entry in entries:
            copy = dict(entry)
            copy["fullUrl"] = f"urn:uuid:00000000-0000-0000-0000-{len(out):012d}"
            out.append(copy)
            seen += len(msgspec.json.encode(copy))
    return msgspec.json.encode({"resourceType": "Bundle", "type": "batch", "entry": out})


# The floor of the JSON fast path, measured beside its rows as a bound (no goal): its figure,
# and why.
JSON_FLOOR = (
    "the fast path's floor",
    "decoding into its Structs with formats checked, nothing else",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seconds", type=float, default=4.0, help="time per row")
    parser.add_argument(
        "--only", default="", help="run only the rows whose name holds TEXT (case-insensitive)"
    )
    args = parser.parse_args()
    corpus: Path = args.corpus

    def read(pattern: str) -> list[bytes]:
        found = [p.read_bytes() for p in sorted(corpus.glob(pattern))]
        if not found:
            parser.error(f"no corpus files match {corpus / pattern} (see --corpus)")
        return found

    bundles = read("fhir-r4-bundles/*.json")
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
            "msgspec.json.decode",
            0.5,
            (lambda: typed_decode(bundles, "R4", per_line=False), JSON_FLOOR),
        ),
        (
            "FHIR JSON, one Bundle > 4 MiB (ijson)",
            big,
            lambda: validate_all(big, "fhir", "json", "R4"),
            lambda: parse_ijson(big),
            "ijson events",
            0.5,
            None,
        ),
        (
            "FHIR NDJSON, bulk export files",
            ndjson,
            lambda: validate_all(ndjson, "fhir", "ndjson", "R4"),
            lambda: decode_ndjson(ndjson),
            "msgspec.json.decode per line",
            0.5,
            (lambda: typed_decode(ndjson, "R4", per_line=True), JSON_FLOOR),
        ),
        (
            "FHIR XML, spec examples",
            xml,
            lambda: validate_all(xml, "fhir", "xml", "R4"),
            lambda: parse_xml(xml),
            "expat parse",
            0.3,
            None,
        ),
        (
            "HL7 v2, corpus messages",
            hl7,
            lambda: validate_all(hl7, "hl7", "text", None),
            lambda: split_hl7(hl7),
            "bytes.split segments/fields",
            0.3,
            None,
        ),
    ]
    print(f"{'payloads':40} {'MB':>6} {'validate MB/s':>14} {'baseline MB/s':>14} {'ratio':>6}")
    for name, bodies, validate, baseline, base_name, goal, floor in cases:
        if args.only.lower() not in name.lower():
            continue
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
            validate = functools.partial(validate_all, bodies_ok, "hl7", "text", None)
            baseline = functools.partial(split_hl7, bodies_ok)
        validate()  # first use builds the fast-path types of the version
        validated, base, *floored = rates(
            [validate, baseline, *([floor[0]] if floor else [])], size, args.seconds
        )
        print(
            f"{name:40} {size / 1e6:6.2f} {validated:14.1f} {base:14.1f} {validated / base:5.2f}x"
        )
        record(
            "validation",
            f"{name} (vs {base_name})",
            validated,
            base,
            "MB/s",
            goal=goal,
        )
        if floor:
            label, why = floor[1]
            print(f"{'  ' + label:40} {'':6} {floored[0]:14.1f} {base:14.1f} "
                  f"{floored[0] / base:5.2f}x")  # fmt: skip
            record("validation", f"{name}: {label} (vs {base_name})", floored[0], base,
                   "MB/s", note=f"no goal: a bound, {why}")  # fmt: skip


if __name__ == "__main__":
    main()

"""The report as a table, or as one JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

import msgspec

from mm_bronze.compression_report.measure import Result
from mm_bronze.compression_report.recommend import Recommendation
from mm_bronze.compression_report.sample import MAX_SAMPLE_BYTES, Sample
from mm_bronze.settings import env_name

MB = 1_000_000
COLUMNS = ("codec", "ratio", "compress MB/s", "decompress MB/s", "storage.compression")


def render_table(
    sample: Sample,
    results: Sequence[Result],
    note: str,
    choice: Recommendation,
    out: TextIO,
) -> None:
    out.write(_sample_line(sample) + "\n\n")
    rows = [COLUMNS] + [
        (
            r.label,
            f"{r.ratio:.2f}",
            _mb_s(r.compress_mb_s),
            _mb_s(r.decompress_mb_s),
            r.setting or "",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:4], widths[1:4], strict=True)
        ]
        out.write("  ".join([*cells, row[4]]).rstrip() + "\n")
    out.write("\n")
    out.write(
        "ratio: original bytes / stored bytes, each object compressed on its own as storage "
        "does; storage.compression uses gzip -6 and zstd -3\n"
    )
    if note:
        out.write(note + "\n")
    out.write(
        f'\nrecommendation: storage.compression = "{choice.setting}" '
        f"({env_name('storage', 'compression')}={choice.setting}): {choice.reason}\n"
    )
    if choice.dictionary:
        out.write(f"note: {choice.dictionary}\n")


def render_json(
    sample: Sample, results: Sequence[Result], note: str, choice: Recommendation, out: TextIO
) -> None:
    document: dict[str, Any] = {
        "sample": {
            "objects": len(sample.payloads),
            "bytes": sample.size,
            "order": sample.order,
            "format": sample.format,
            "elsewhere": sample.elsewhere,
            "missing": sample.missing,
            "truncated": sample.truncated,
        },
        "results": [
            {
                "codec": r.codec,
                "level": r.level,
                "ratio": round(r.ratio, 4),
                "compress_mb_s": _round(r.compress_mb_s),
                "decompress_mb_s": _round(r.decompress_mb_s),
                "setting": r.setting,
            }
            for r in results
        ],
        "dictionary_note": note,
        "recommendation": {
            "setting": choice.setting,
            "reason": choice.reason,
            "dictionary": choice.dictionary,
        },
    }
    out.write(msgspec.json.format(msgspec.json.encode(document)).decode() + "\n")


def _sample_line(sample: Sample) -> str:
    what = f"format {sample.format}" if sample.format else "every format"
    line = (
        f"sample: {len(sample.payloads)} objects, {sample.size / MB:.1f} MB "
        f"({sample.order}, {what})"
    )
    left = []
    if sample.truncated:
        left.append(f"stopped at {MAX_SAMPLE_BYTES // (1024 * 1024)} MiB")
    if sample.elsewhere:
        left.append(f"{sample.elsewhere} stored under another storage URL left out")
    if sample.missing:
        left.append(f"{sample.missing} not found in storage")
    return line + ("; " + "; ".join(left) if left else "")


def _mb_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)

"""``mm-bronze storage compression-report``: sample, measure, print, recommend."""

from __future__ import annotations

import argparse
import sys

from mm_bronze.errors import BronzeError
from mm_bronze.settings import Settings


def compression_report(args: argparse.Namespace, settings: Settings) -> int:
    from mm_bronze.compression_report.measure import measure_all
    from mm_bronze.compression_report.recommend import recommend
    from mm_bronze.compression_report.render import render_json, render_table
    from mm_bronze.compression_report.sample import read_sample
    from mm_bronze.runtime import run

    order = "random" if args.random else "newest"
    sample = run(read_sample(settings, count=args.sample, fmt=args.format, order=order))
    if not sample.payloads:
        raise BronzeError(_nothing_to_measure(args.format, sample.stored_formats))
    results, note = measure_all(sample.payloads)
    choice = recommend(results)
    if args.json:
        render_json(sample, results, note, choice, sys.stdout)
    else:
        render_table(sample, results, note, choice, sys.stdout)
    return 0


def _nothing_to_measure(fmt: str | None, stored: list[tuple[str, int]]) -> str:
    if not fmt or not stored:
        what = f" of format {fmt}" if fmt else ""
        return f"no stored objects{what} to measure: store some data first"
    listed = ", ".join(f"{name} ({count})" for name, count in stored)
    return f"no stored objects of format {fmt} to measure; stored formats: {listed}"

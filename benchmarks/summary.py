"""One table for every benchmark: each records its figures here, `make bench` prints them last.

A benchmark calls :func:`record` once per figure (the measured value, the baseline measured in
the same run, and the goal for their ratio); the rows go to a JSON-lines file
(``MM_BRONZE_BENCH_RESULTS``, default ``.bench/results.jsonl``). ``python -m
benchmarks.summary`` prints them as one table (figure, baseline, ratio, goal, met), and
``--markdown`` prints the same table for the README. ``--reset`` empties the file; `make
bench` does that first.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import msgspec

DEFAULT_RESULTS = Path(__file__).resolve().parents[1] / ".bench" / "results.jsonl"


class Row(msgspec.Struct, omit_defaults=True):
    benchmark: str
    figure: str
    value: float
    baseline: float
    unit: str
    goal: float | None = None
    higher_is_better: bool = True
    note: str = ""
    at: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal


def results_path() -> Path:
    return Path(os.environ.get("MM_BRONZE_BENCH_RESULTS", DEFAULT_RESULTS))


def record(
    benchmark: str,
    figure: str,
    value: float,
    baseline: float,
    unit: str,
    *,
    goal: float | None = None,
    higher_is_better: bool = True,
    note: str = "",
) -> Row:
    """Append one figure with its same-run baseline; ``goal`` bounds ``value / baseline``
    (from below, or from above when ``higher_is_better`` is false, e.g. for latencies)."""
    row = Row(
        benchmark,
        figure,
        value,
        baseline,
        unit,
        goal,
        higher_is_better,
        note,
        datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        out.write(msgspec.json.encode(row) + b"\n")
    return row


def load(path: Path | None = None) -> list[Row]:
    path = path or results_path()
    if not path.exists():
        return []
    decoder = msgspec.json.Decoder(Row)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def _goal(row: Row) -> str:
    if row.goal is None:
        return "-"
    return f"{'≥' if row.higher_is_better else '≤'} {row.goal:g}"


def _met(row: Row) -> str:
    return {True: "met", False: "NOT met", None: "-"}[row.met]


def table(rows: list[Row], *, markdown: bool = False) -> str:
    header = ["benchmark", "figure", "value", "baseline", "ratio", "goal", "met"]
    lines = [
        [
            row.benchmark,
            row.figure,
            f"{_number(row.value)} {row.unit}",
            f"{_number(row.baseline)} {row.unit}",
            f"{row.ratio:.2f}",
            _goal(row),
            _met(row),
        ]
        for row in rows
    ]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line) for line in [header, *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reset", action="store_true", help="empty the results file")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    path = results_path()
    if args.reset:
        path.unlink(missing_ok=True)
        return 0
    rows = load(path)
    if not rows:
        print(f"no benchmark results in {path}", file=sys.stderr)
        return 1
    print(f"mm-bronze benchmarks, {rows[0].at[:10]} (ratios against baselines of the same run)")
    print(table(rows, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

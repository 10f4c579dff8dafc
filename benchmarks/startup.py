"""How fast ``mm-bronze`` commands start, against ``python -c pass`` measured in the same run.

Run: ``.venv/bin/python -m benchmarks.startup [--runs N]``. Each figure is the median wall
time of N runs of the installed ``mm-bronze`` script. Commands import only what they use,
so ``--help``, ``validate``, ``status``, ``clients`` and ``users`` should start in well under
0.3 s (goal: at most 15 times an empty interpreter's start, ~0.02 s here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.summary import record

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "mm-bronze"
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
GOAL = 15.0  # ratio to `python -c pass`, i.e. about 0.3 s


def wall(command: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """Median seconds of ``command`` and of ``python -c pass``, run in alternation.

    A first, untimed run writes the bytecode caches, as a user's first run would.
    """
    baseline = [sys.executable, "-c", "pass"]
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(command, **quiet)  # type: ignore[call-overload]
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(runs):
        for which, argv in enumerate((command, baseline)):
            start = time.perf_counter()
            subprocess.run(argv, **quiet)  # type: ignore[call-overload]
            times[which].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    # Bytecode caches on, as on a user's machine (some shells switch them off).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MM_BRONZE_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    message = args.corpus / "hl7v2" / "PHLIP_FLU_2.5.1_VALID_MESSAGE.txt"
    with tempfile.TemporaryDirectory(prefix="mmb-startup-") as tmp:
        data = Path(tmp) / "data"
        (data / "sftp").mkdir(parents=True)
        missing = str(Path(tmp) / "no-data")  # status and clients stop before the database
        commands = {
            "--help": ["--help"],
            "validate --help": ["validate", "--help"],
            "validate one HL7 v2 file": ["validate", str(message)],
            "status (up to the database)": ["status", "3f1c2a7e-0000-4000-8000-000000000000",
                                            "--data-dir", missing],
            "clients list (up to the database)": ["clients", "list", "--data-dir", missing],
            "users list": ["users", "list", "--data-dir", str(data)],
        }  # fmt: skip
        for name, command in commands.items():
            seconds, baseline = wall([str(SCRIPT), *command], args.runs, env)
            print(
                f"mm-bronze {name}: {seconds * 1000:.0f} ms, python -c pass "
                f"{baseline * 1000:.0f} ms ({seconds / baseline:.1f}x)"
            )
            record(
                "startup",
                f"mm-bronze {name}",
                seconds * 1000,
                baseline * 1000,
                "ms",
                goal=GOAL,
                higher_is_better=False,
                note="median wall time; baseline: python -c pass",
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

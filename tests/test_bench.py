"""The benchmarks still run: bench/rules.py on a few items prints both of its tables.

No figure is judged here (timing never goes into tests); a bench that no longer runs
against the code it measures is what this catches."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_matching_bench_prints_every_row_of_both_tables() -> None:
    command = [sys.executable, str(BENCH / "rules.py"), "--items", "30", "--repeat", "1"]
    run = subprocess.run(
        [*command, "--rules", "10", "100"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()]
    split = [r for r in rows if len(r) == 8 and r[2] in ("dense", "many", "news")]
    # rules x text x stream, each with its scan, match, matches, beyond and read figures
    assert {(r[0], r[1], r[2]) for r in split} == {
        (rules, text, stream)
        for rules in ("10", "100")
        for text in ("English", "Cyrillic")
        for stream in ("dense", "many", "news")
    }
    for row in split:
        figures = [float(value) for value in row[3:]]
        assert all(math.isfinite(f) for f in figures[:3]), row
        if figures[2] > 0:  # matches per item: then per match is a figure, not nan
            assert all(math.isfinite(f) for f in figures[3:]), row

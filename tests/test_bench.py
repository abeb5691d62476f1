"""The benchmarks still run: bench/rules.py on a few items prints both of its tables, and
bench/compare.py drives watcher through every round of a small fleet and prints its tables.

No figure is judged here (timing never goes into tests); a bench that no longer runs
against the code it measures is what this catches."""

from __future__ import annotations

import json
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
    split = [r for r in rows if len(r) == 11 and r[2] in ("dense", "many", "news")]
    # rules x text x stream, each with its scan, match, matches, beyond and read figures,
    # then beyond split: the share of items without a hit, what each cost, per match of the rest
    assert {(r[0], r[1], r[2]) for r in split} == {
        (rules, text, stream)
        for rules in ("10", "100")
        for text in ("English", "Cyrillic")
        for stream in ("dense", "many", "news")
    }
    for row in split:
        figures = [float(value.removesuffix("%")) for value in row[3:]]
        assert all(math.isfinite(f) for f in figures[:3]), row
        if figures[2] > 0:  # matches per item: then per match is a figure, not nan
            assert all(math.isfinite(f) for f in figures[3:6]), row
            assert math.isfinite(figures[7]), row  # per match of the items that hit
        share = figures[5]
        assert 0 <= share <= 100 and math.isfinite(figures[6]) == (share > 0), row


def test_the_fleet_bench_drives_watcher_through_every_round(tmp_path: Path) -> None:
    """watcher's side of bench/compare.py on a small dense fleet: test-run and a real
    `watcher run` with and without parse workers, then the four rounds in long-lived
    processes. reader's side is left out (``--no-reader``): reader is no test dependency."""
    saved = tmp_path / "figures.json"
    command = [sys.executable, str(BENCH / "compare.py"), "--fleet", "dense", "--feeds", "3"]
    command += ["--items", "4", "--rules", "10", "--workers", "2", "--no-reader"]
    run = subprocess.run(
        [*command, "--markdown", "--save", str(saved)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    (table,) = json.loads(saved.read_text())["tables"]
    (results,) = table["runs"]
    watchers = {key: r for key, r in results.items() if not key.endswith("/reader")}
    rounds = ("test-run", "run", "start", "cold", "warm", "unchanged", "changed")
    assert {key.split("/")[0] for key in watchers} == set(rounds)
    assert all(not r.get("failed") and not r.get("errors") for r in watchers.values()), watchers
    matches = {key: r["matches"] for key, r in watchers.items() if key.startswith("test-run/")}
    assert len(matches) == 2 and len(set(matches.values())) == 1, matches  # 0 and default
    assert next(iter(matches.values())) > 0  # a dense fleet: every item names tracked words
    # The tables: every row, watcher's two cells filled; --render prints them again.
    markdown = run.stdout[run.stdout.index("#### ") :]
    lines = markdown.splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 6 + 3, markdown  # the header, six timings, three peaks
    assert all(row[2].strip() and row[3].strip() for row in rows[1:]), markdown
    again = subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), "--render", str(saved)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert again.stdout.strip() == markdown.strip()

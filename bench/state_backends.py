"""watcher's state on SQLite beside PostgreSQL: the fleet's rounds, in one run.

The fleet and the rounds of bench/compare.py (cold: every feed new; warm: all 304;
unchanged: same bodies, no 304; changed: 10% of the feeds have 3 new items), polled
by compare.py's watcher worker (a process of its own, 20 fetch threads as in
`watcher run`), once with a SQLite file and once with a PostgreSQL database. Both
keep their default durability: SQLite in WAL mode with full syncs, PostgreSQL with
fsync and synchronous commit on (tests/pgserver.py's server with ``durable=True``, on
loopback TCP, its cluster on the same disk as the SQLite file).

watcher's CPU is its process tree's; PostgreSQL's is its server processes', counted
apart (SQLite's work is inside watcher's). Beside the times, what each round asked of
the database (from SQLAlchemy's events, per poll): statements, commits, pool checkouts
(each a ping on PostgreSQL) and new connections; for PostgreSQL also its WAL flushes
(pg_stat_wal), fewer than the commits when one flush carries several.

--runs N does it all N times, each with a fresh fleet and fresh states, the order of
the two backends alternating, and prints each figure's range. Needs PostgreSQL's
server binaries (apt-get install postgresql) and psycopg (watcher[postgres]).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # pgserver: the tests' PostgreSQL server

ROUNDS = ("cold", "warm", "unchanged", "changed")
BACKENDS = ("sqlite", "postgresql")
SETTLE = 1.5  # s: PostgreSQL's backends publish their statistics at most once a second
Row = tuple[str, str, dict[str, Any]]  # round, backend, figures


def _server_cpu(postmaster: int) -> float:
    """CPU seconds of the server: every live process under the postmaster, plus what its
    ended children used (a connection the pool closed)."""
    from compare import _tree

    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _tree(postmaster):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended meanwhile
        total += int(fields[11]) + int(fields[12])
        if pid == postmaster:
            total += int(fields[13]) + int(fields[14])  # its reaped children
    return total / tick


def _wal_flushes(server: Any) -> int:
    with server.admin() as conn:
        row = conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
    return int(row[0])


def one_run(server: Any, feeds: int, items: int, workers: int, order: tuple[str, ...]) -> list[Row]:
    """Every round on both backends: [(round, backend, figures)]."""
    from compare import Worker, write_config
    from fleet import Fleet

    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    rows: list[Row] = []
    database = server.create_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            fleet = Fleet(feeds, items)
            with fleet.serving() as base:
                urls = fleet.urls(base)
                states = {"sqlite": Path(tmp) / "watcher.db", "postgresql": server.url(database)}
                tools = {}
                for backend in order:
                    config = Path(tmp) / f"watcher-{backend}.yaml"
                    write_config(config, urls, 0, states[backend])
                    tools[backend] = Worker(["watcher", str(config), str(workers)])
                for name in ROUNDS:
                    fleet.conditional = name != "unchanged"
                    if name == "changed":
                        fleet.change(0.10)
                    for backend, worker in tools.items():
                        if backend == "postgresql":
                            time.sleep(SETTLE)
                            cpu, flushes = _server_cpu(postmaster), _wal_flushes(server)
                        result = worker.round(name)
                        if backend == "postgresql":
                            result["server_cpu"] = _server_cpu(postmaster) - cpu
                            time.sleep(SETTLE)
                            result["database"]["wal flushes"] = _wal_flushes(server) - flushes
                        rows.append((name, backend, result))
                for worker in tools.values():
                    worker.close()
    finally:
        server.drop_database(database)
    return rows


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    if f"{low:{fmt}}" == f"{high:{fmt}}":
        return f"{low:{fmt}}"
    return f"{low:{fmt}}-{high:{fmt}}"


def report(runs: list[list[Row]], feeds: int) -> None:
    """One line per round and backend; the database columns are per poll."""
    heads = ["round", "backend", "wall s", "watcher cpu s", "server cpu s", "statements"]
    heads += ["commits", "checkouts", "connects", "WAL flushes"]
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for name, backend, result in run:
            by.setdefault((name, backend), []).append(result)
            if result.get("errors"):
                print(f"# {name} {backend} errors: {result['errors']}")
    print("# statements to WAL flushes: per poll; ranges: lowest-highest over the runs")
    lines = [heads]
    for name in ROUNDS:
        for backend in BACKENDS:
            results = by[(name, backend)]
            db = [r["database"] for r in results]
            server = [r["server_cpu"] for r in results if "server_cpu" in r]
            cells = [
                name,
                backend,
                _span([r["wall"] for r in results], ".2f"),
                _span([r["cpu"] for r in results], ".2f"),
                _span(server, ".2f") if server else "-",
            ]
            for key in ("statements", "commits", "checkouts", "connects", "wal flushes"):
                values = [d[key] / feeds for d in db if key in d]
                cells.append(_span(values, ".2f") if values else "-")
            lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(heads))]
    for line in lines:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    for name in ROUNDS:
        ratios = [
            p["wall"] / s["wall"]
            for s, p in zip(by[(name, "sqlite")], by[(name, "postgresql")], strict=True)
        ]
        print(
            f"{name:<10} postgresql/sqlite wall time: {_span(ratios, '.2f')}x "
            f"(median {statistics.median(ratios):.2f}x)"
        )


def main() -> None:
    from pgserver import PostgresServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"# fleet: {args.feeds} feeds x {args.items} items; {args.workers} fetch workers; "
        f"0 rules; {args.runs} runs (ranges: lowest-highest)"
    )
    print(
        f"# machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    server = PostgresServer(durable=True)
    server.start()
    try:
        with server.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(f"# PostgreSQL {version[0] if version else '?'}, fsync on, synchronous_commit on")
        runs: list[list[Row]] = []
        for index in range(args.runs):
            order = BACKENDS if index % 2 == 0 else BACKENDS[::-1]
            runs.append(one_run(server, args.feeds, args.items, args.workers, order))
        print(f"# load after: {os.getloadavg()[0]:.2f}")
        report(runs, args.feeds)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""watcher against lemon24/reader on the same loopback fleet, round by round.

Run through bench/run (it makes the bench environment with reader installed). The
fleet is served by this process; each tool runs in a subprocess of its own, so CPU
seconds and peak RSS are its alone, and performs the same rounds when told to:

    cold       every feed new: fetch, parse, store (watcher: a silent baseline)
    warm       every feed answers 304
    unchanged  the server ignores conditional requests; bodies are the same as before
    changed    10% of the feeds have 3 new items (watcher also matches them)

plus `watcher test-run` over the whole fleet, the cold path a user feels (fetch,
parse, match every item, whole process, start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

ROUNDS = ("cold", "warm", "unchanged", "changed")


def _usage() -> dict[str, float]:
    """CPU seconds and peak RSS of this process and every process under it (parse workers):
    CPU summed, peak RSS summed over each process's own peak (an upper bound)."""
    cpu, rss = 0.0, 0.0
    for pid in _tree(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            rss += _peak_rss_mib(pid)
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return {"cpu": cpu, "rss_mib": rss}


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _peak_rss_mib(pid: int) -> float:
    """A process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that across
    execve, so a worker would report the RSS of the driver that forked it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the two workers: read a round name per line on stdin, answer one JSON line ------------


def watcher_worker(config_path: str, workers: int) -> None:
    import logging

    from watcher.cli import _tune_malloc
    from watcher.config import load_config
    from watcher.fetch import make_fetcher
    from watcher.pipeline import configure_parsing, poll_feed
    from watcher.rules import RuleSet
    from watcher.store import Store

    _tune_malloc()  # what `watcher run` does at start
    logging.disable(logging.WARNING)
    config = load_config(config_path)
    ruleset = RuleSet.from_config(config)
    store = Store.open(config.state_target)
    database = _DatabaseWork(store.engine)
    fetcher = make_fetcher(config)
    configure_parsing(config)  # as `watcher run` does
    print(json.dumps({"ready": True, **_usage()}), flush=True)
    for line in sys.stdin:
        database.reset()
        before, started = _usage(), time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            outcomes = list(
                pool.map(
                    lambda f: poll_feed(
                        f, config=config, fetcher=fetcher, store=store, ruleset=ruleset
                    ),
                    config.feeds,
                )
            )
        wall = time.perf_counter() - started
        after = _usage()
        parsed = sum(o.items for o in outcomes if o.status in ("baseline", "new", "renumbered"))
        errors = [o.error for o in outcomes if o.status == "error"][:3]
        result = {"round": line.strip(), "wall": wall, "cpu": after["cpu"] - before["cpu"]}
        result |= {"items": parsed, "rss_mib": after["rss_mib"], "errors": errors}
        print(json.dumps(result | {"database": database.counts()}), flush=True)


class _DatabaseWork:
    """What a round asked of the state database, counted from SQLAlchemy's events: on
    PostgreSQL each is a round trip to the server (a checkout is one too: the pool pings
    the connection), on SQLite a call into the library."""

    NAMES = ("statements", "commits", "rollbacks", "checkouts", "connects")

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.NAMES, 0)

        def counter(name: str) -> Any:
            def count(*_args: Any) -> None:
                with self._lock:
                    self._counts[name] += 1

            return count

        event.listen(engine, "before_cursor_execute", counter("statements"))
        event.listen(engine, "commit", counter("commits"))
        event.listen(engine, "rollback", counter("rollbacks"))
        event.listen(engine.pool, "checkout", counter("checkouts"))
        event.listen(engine.pool, "connect", counter("connects"))

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self.NAMES, 0)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def reader_worker(db: str, urls_path: str, workers: int) -> None:
    import logging

    from reader import make_reader

    logging.disable(logging.WARNING)
    reader = make_reader(db)
    for url in Path(urls_path).read_text().split():
        reader.add_feed(url, exist_ok=True)
    print(json.dumps({"ready": True, **_usage()}), flush=True)
    for line in sys.stdin:
        before, started = _usage(), time.perf_counter()
        results = list(reader.update_feeds_iter(workers=workers, scheduled=False))
        wall = time.perf_counter() - started
        after = _usage()
        parsed = 0
        errors = []
        for result in results:
            value = result.value
            if isinstance(value, Exception):
                errors.append(repr(value)[:200])
            elif value is not None:  # None: the server said not modified
                parsed += value.new + value.modified + getattr(value, "unmodified", 0)
        out = {"round": line.strip(), "wall": wall, "cpu": after["cpu"] - before["cpu"]}
        print(
            json.dumps(out | {"items": parsed, "rss_mib": after["rss_mib"], "errors": errors[:3]}),
            flush=True,
        )


# -- the driver -----------------------------------------------------------------------------


class Worker:
    """A tool in a process of its own (``python compare.py watcher|reader ...``)."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args} died")
        return dict(json.loads(line))

    def round(self, name: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def write_config(path: Path, urls: list[str], rules: int, state: Path | str) -> None:
    """A watcher config for the fleet; ``state``: a SQLite file or a PostgreSQL URL."""
    import random

    from rules import make_config

    rules_text = make_config(rules, random.Random(rules))[0] if rules else ""
    feeds = "".join(f"  - {{name: f{i}, url: '{u}', interval: 1h}}\n" for i, u in enumerate(urls))
    path.write_text(
        f"state: '{state}'\nallow_private_networks: true\n"
        "fetch: {max_connections: 20, max_per_host: 20}\n"  # the fleet is one host
        f"feeds:\n{feeds}{rules_text}\n"
    )


def _sample(pid: int, cpu: dict[int, float], rss: list[float]) -> None:
    """Last-seen CPU seconds per process of the tree, and the tree's summed RSS now."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu[p] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            continue
    rss.append(total)


def test_run(config: Path, items: int) -> dict[str, Any]:
    """`watcher test-run` as a whole process tree (parse workers included), sampled every
    50 ms: CPU is what each process had used when last seen, RSS the largest sum."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "watcher", "--log-level", "error", "test-run"]
    proc = subprocess.Popen(
        [*command, "-c", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cpu: dict[int, float] = {}
    rss: list[float] = []
    with ThreadPoolExecutor(1) as reader:
        output = reader.submit(proc.communicate)
        while proc.poll() is None:
            _sample(proc.pid, cpu, rss)
            time.sleep(0.05)
        stdout, stderr = output.result()
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "cpu": sum(cpu.values()),
        "items": items,
        "matches": len(stdout.splitlines()),
        "rss_mib": max(rss, default=0.0),
        "status": proc.returncode,
        "stderr": stderr[-300:],
    }


def drive(feeds: int, items: int, rule_counts: list[int], workers: int) -> None:
    from fleet import Fleet

    print(f"# fleet: {feeds} feeds x {items} items; {workers} fetch workers; rules {rule_counts}")
    machine = f"{platform.platform()}, {os.cpu_count()} cores"
    print(f"# machine: {machine}, python {platform.python_version()}")
    rows: list[tuple[str, str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for rules in rule_counts:
            fleet = Fleet(feeds, items)
            kib = sum(len(f.body) for f in fleet.feeds) / feeds / 1024
            with fleet.serving() as base:
                urls = fleet.urls(base)
                config = workdir / f"watcher-{rules}.yaml"
                write_config(config, urls, rules, workdir / f"watcher-{rules}.db")
                tr = test_run(config, feeds * items)
                rows.append((f"test-run (cold, {rules} rules)", "watcher", tr))
                (workdir / "urls.txt").write_text("\n".join(urls))
                tools = {"watcher": Worker(["watcher", str(config), str(workers)])}
                if rules == rule_counts[0]:
                    tools["reader"] = Worker(
                        [
                            "reader",
                            str(workdir / "reader.db"),
                            str(workdir / "urls.txt"),
                            str(workers),
                        ]
                    )
                for name in ROUNDS:
                    fleet.conditional = name != "unchanged"
                    if name == "changed":
                        fleet.change(0.10)
                    for tool, worker in tools.items():
                        label = f"{name} ({rules} rules)" if tool == "watcher" else f"{name}"
                        rows.append((label, tool, worker.round(name)))
                for worker in tools.values():
                    worker.close()
            print(f"# {kib:.0f} KiB per feed")
    heads = ("wall s", "cpu s", "items/s", "feeds/s", "peak MiB")
    widths = (8, 8, 9, 8, 9)
    print(
        f"{'round':<28} {'tool':<8} "
        + " ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))
    )
    for label, tool, r in rows:
        items_per_s = r.get("items", 0) / r["wall"] if r["wall"] else 0
        print(
            f"{label:<28} {tool:<8} {r['wall']:>8.2f} {r['cpu']:>8.2f} {items_per_s:>9,.0f} "
            f"{feeds / r['wall']:>8.1f} {r['rss_mib']:>9.0f}"
            + (f"  errors: {r['errors']}" if r.get("errors") else "")
        )
    by = {
        (label.split(" (")[0], tool): r
        for label, tool, r in rows
        if "(" not in label or f"({rule_counts[0]} rules)" in label
    }
    for name in ROUNDS:
        w, rd = by.get((name, "watcher")), by.get((name, "reader"))
        if w and rd:
            print(f"{name:<10} reader/watcher wall time: {rd['wall'] / w['wall']:.2f}x")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "watcher":
        watcher_worker(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "reader":
        reader_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--rules", default="0,1000,10000", help="comma-separated rule counts")
    parser.add_argument("--workers", type=int, default=20)
    args = parser.parse_args()
    drive(args.feeds, args.items, [int(r) for r in args.rules.split(",")], args.workers)


if __name__ == "__main__":
    main()

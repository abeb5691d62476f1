"""watcher against lemon24/reader on the same loopback fleet, round by round.

Run through bench/run (it makes the bench environment with reader installed; `bench/run
compare ARGS` runs only this). The fleet is served by this process; each tool runs in a
subprocess of its own, so CPU seconds and peak RSS are its alone, and performs the same
rounds when told to:

    cold       every feed new: fetch, parse, store (watcher: a silent baseline)
    warm       every feed answers 304
    unchanged  the server ignores conditional requests; bodies are the same as before
    changed    10% of the feeds have 3 new items (watcher also matches them)

watcher runs them twice, with `parse_processes: 0` and with the default (parse worker
processes, one per core). Besides the rounds: `watcher test-run` over the whole fleet, the
cold path a user feels (fetch, parse, match every item, whole process, start-up included),
and the first round of a real `watcher run` process, for its peak memory.

Workloads (--fleet, comma-separated; issue 18):

    corpus     real feeds saved from the web (bench/corpus_fleet.py: the 200 feeds of the
               corpus with the most entries) and 1,000 keyword rules drawn from their
               headlines, about 3 matches per item
    synthetic  bench/fleet.py: 200 feeds x 50 items of 2 KB HTML; the rules' words are
               not in the text, so matching finds nothing
    dense      the synthetic fleet where every item names about 18 of the rules' words

reader is given the feeds only: it has no rules to match (its search is a separate
full-text index, built on request), so it fetches, parses and stores.

--markdown prints each workload as a table (the figures of one run; with --runs N, a
table of ranges over the N runs follows). --memory-feeds 10000 adds the memory run: a
real `watcher run` with `parse_processes: 0` over a synthetic fleet of that many feeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from bytecode import compile_watcher  # noqa: E402

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

    from watcher.config import load_config
    from watcher.fetch import make_fetcher
    from watcher.pipeline import configure_parsing, poll_feed
    from watcher.rules import RuleSet
    from watcher.store import Store
    from watcher.tuning import tune_gc, tune_malloc

    tune_gc()  # what `watcher run` does at start
    tune_malloc()
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
        errors = [f"feed '{o.feed}': {o.error}" for o in outcomes if o.status == "error"]
        result = {"round": line.strip(), "wall": wall, "cpu": after["cpu"] - before["cpu"]}
        matches = sum(len(o.matched) for o in outcomes)
        result |= {"items": parsed, "matches": matches, "rss_mib": after["rss_mib"]}
        result |= {"errors": errors[:10], "failed": len(errors)}
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
                cause = f" ({value.__cause__!r})" if value.__cause__ else ""
                errors.append(f"{value!r}{cause}"[:200])
            elif value is not None:  # None: the server said not modified
                parsed += value.new + value.modified + getattr(value, "unmodified", 0)
        out = {"round": line.strip(), "wall": wall, "cpu": after["cpu"] - before["cpu"]}
        print(
            json.dumps(
                out
                | {"items": parsed, "rss_mib": after["rss_mib"]}
                | {"errors": errors[:10], "failed": len(errors)}
            ),
            flush=True,
        )


# -- the driver -----------------------------------------------------------------------------


class Worker:
    """A tool in a process of its own (``python compare.py watcher|reader ...``)."""

    def __init__(self, args: list[str]) -> None:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = self._read()  # CPU and peak RSS of the start: imports, opening, adding feeds
        self.ready["wall"] = time.perf_counter() - started

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args!r} died")
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


def write_config(
    path: Path,
    urls: list[str],
    rules: int | str,
    state: Path | str,
    *,
    parse_processes: int | None = None,
) -> None:
    """A watcher config for the fleet; ``state``: a SQLite file or a PostgreSQL URL;
    ``rules``: how many of bench/rules.py's rules, or the text of the rules themselves;
    ``parse_processes``: None leaves the default."""
    import random

    from rules import make_config

    if isinstance(rules, str):
        rules_text = rules
    else:
        rules_text = make_config(rules, random.Random(rules))[0] if rules else ""
    feeds = "".join(f"  - {{name: f{i}, url: '{u}', interval: 1h}}\n" for i, u in enumerate(urls))
    processes = "" if parse_processes is None else f"parse_processes: {parse_processes}\n"
    path.write_text(
        f"state: '{state}'\nallow_private_networks: true\n{processes}"
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
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    return {
        "wall": wall,
        "cpu": sum(cpu.values()),
        "items": items,
        "matches": len(stdout.splitlines()),
        "rss_mib": max(rss, default=0.0),
        "status": proc.returncode,
        "errors": errors[:3],
        "failed": len(errors),
    }


def _polled(state: Path) -> tuple[int, int]:
    """Feeds the daemon has polled at least once, and how many of those failed."""
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1) as db:
            polled, failed = db.execute(
                "SELECT count(last_poll_at), count(last_error) FROM feeds"
            ).fetchone()
        db.close()
        return int(polled), int(failed)
    except sqlite3.Error:  # not created yet, or busy
        return 0, 0


def daemon_round(config: Path, state: Path, feeds: int, *, timeout: float) -> dict[str, Any]:
    """A real `watcher run` from its start until every feed has been polled once (the
    first polls of new feeds are its cold round: fetch, parse, store, a silent baseline).

    Wall and CPU include the start-up and the start spread (a new feed's first poll waits
    up to 3 s, so that feeds do not all fire in the same second). Peak RSS: the sum of
    each process's own peak (VmHWM) when the round ends, parse workers included."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "watcher", "--log-level", "error", "run", "-c", str(config)]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, text=True)
        cpu: dict[int, float] = {}
        rss: list[float] = []
        polled = failed = 0
        try:
            while proc.poll() is None and time.perf_counter() - started < timeout:
                _sample(proc.pid, cpu, rss)
                polled, failed = _polled(state)
                if polled >= feeds:
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - started
            _sample(proc.pid, cpu, rss)
            peak = sum(_peak_rss_mib(p) for p in _tree(proc.pid) if p != os.getpid())
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        log.seek(0)
        errors = [line for line in log.read().splitlines() if "Traceback" in line][:3]
    if polled < feeds:
        errors.append(f"only {polled} of {feeds} feeds polled in {timeout:.0f} s")
    return {
        "wall": wall,
        "cpu": sum(cpu.values()),
        "rss_mib": peak,
        "items": 0,
        "errors": errors,
        "failed": failed,
    }


# -- workloads ------------------------------------------------------------------------------


@dataclass
class Workload:
    """A fleet and the rules that go with it, for each rule count."""

    name: str
    title: str
    fleet: Callable[[int], Any]  # rule count -> a fresh fleet (bench/fleet.py's interface)
    rules: Callable[[int], int | str]  # rule count -> write_config's rules
    notes: dict[int, str] = field(default_factory=dict)  # rule count -> how the rules were made


def workloads(args: argparse.Namespace) -> dict[str, Workload]:
    import random

    from corpus_fleet import CorpusFleet, keyword_rules
    from fleet import Fleet
    from rules import make_config

    def synthetic(_rules: int) -> Fleet:
        return Fleet(args.feeds, args.items)

    def tracked(rules: int) -> list[str]:
        """The rules' words that fire exactly one rule when named alone, so that an item
        naming 18 of them makes about 18 matches (wildcards and shared aliases would make
        some words fire two or three)."""
        from watcher.config import parse_config
        from watcher.models import Item
        from watcher.rules import RuleSet

        if not rules:
            return []
        text, used = make_config(rules, random.Random(rules))
        ruleset = RuleSet.from_config(parse_config(text))
        words = sorted(set(used))
        return [w for w in words if len(ruleset.match(Item(feed="-", id="-", title=w))) == 1]

    def dense(rules: int) -> Fleet:
        return Fleet(args.feeds, args.items, tracked=tracked(rules), mentions=args.mentions)

    corpus_rules: dict[int, str] = {}
    corpus = Workload(
        "corpus",
        "Real feeds",
        lambda _rules: CorpusFleet(args.corpus_feeds),
        lambda rules: corpus_rules[rules],
    )

    def corpus_rules_for(rules: int) -> int | str:
        if rules not in corpus_rules:
            if not rules:
                corpus_rules[rules] = ""
            else:
                made = keyword_rules(CorpusFleet(args.corpus_feeds), rules, args.density)
                corpus_rules[rules] = made.text
                corpus.notes[rules] = (
                    f"{rules:,} keyword rules drawn from the fleet's headlines (words and "
                    f"two-word phrases, a quarter of the rules with two keywords, a quarter with "
                    f"a phrase and a word; none used by more than {made.cap:.2%} of the items): "
                    f"{made.estimated:.2f} matches per item estimated over {made.items:,} items"
                )
        return corpus_rules[rules]

    corpus.rules = corpus_rules_for
    return {
        "corpus": corpus,
        "synthetic": Workload(
            "synthetic",
            "Synthetic fleet",
            synthetic,
            lambda rules: rules,
            notes={},
        ),
        "dense": Workload(
            "dense",
            f"Dense synthetic fleet (every item names about {args.mentions} tracked words)",
            dense,
            lambda rules: rules,
        ),
    }


# -- the driver -----------------------------------------------------------------------------

Result = dict[tuple[str, str], dict[str, Any]]  # (measure, tool) -> wall, cpu, rss_mib, ...


def measure(
    workload: Workload, rules: int, *, workers: int, with_reader: bool, daemon: bool, tmp: Path
) -> tuple[Result, str, int]:
    """Every measure of one workload at one rule count, in one run; the fleet's line and
    its size."""
    rules_value = workload.rules(rules)
    fleet = workload.fleet(rules)
    describe = getattr(fleet, "describe", None)
    if describe is not None:
        line = describe()
    else:
        kib = sum(len(f.body) for f in fleet.feeds) / len(fleet.feeds) / 1024
        n_items = len(fleet.feeds[0].items) if fleet.feeds else 0
        line = f"{len(fleet.feeds)} feeds x {n_items} items, {kib:.0f} KiB per feed"
    feeds = len(fleet.feeds)
    results: Result = {}
    with fleet.serving() as base:
        urls = fleet.urls(base)
        configs = {}
        for tool, processes in (("watcher:0", 0), (DEFAULT, None)):
            configs[tool] = tmp / f"{workload.name}-{rules}-{tool.replace(':', '')}.yaml"
            state = configs[tool].with_suffix(".db")
            write_config(configs[tool], urls, rules_value, state, parse_processes=processes)
        for tool, config in configs.items():
            results[("test-run", tool)] = test_run(config, 0)
        if daemon:
            for tool, config in configs.items():
                run_config = config.with_name(config.stem + "-run.yaml")
                run_state = run_config.with_suffix(".db")
                text = config.read_text().replace(str(config.with_suffix(".db")), str(run_state))
                run_config.write_text(text)
                results[("run", tool)] = daemon_round(run_config, run_state, feeds, timeout=600)
        (tmp / "urls.txt").write_text("\n".join(urls))
        tools = {
            tool: Worker(["watcher", str(config), str(workers)]) for tool, config in configs.items()
        }
        if with_reader:
            reader_db = tmp / f"reader-{workload.name}-{rules}.db"
            tools["reader"] = Worker(
                ["reader", str(reader_db), str(tmp / "urls.txt"), str(workers)]
            )
        for tool, worker in tools.items():
            results[("start", tool)] = worker.ready | {"items": 0}
        for name in ROUNDS:
            fleet.conditional = name != "unchanged"
            if name == "changed":
                fleet.change(0.10)
            for tool, worker in tools.items():
                results[(name, tool)] = worker.round(name)
        for worker in tools.values():
            worker.close()
        reader_start = results.get(("start", "reader"))
        if reader_start:  # reader as one whole process: start, add the feeds, its cold round
            cold = results[("cold", "reader")]
            results[("process", "reader")] = cold | {
                "wall": reader_start["wall"] + cold["wall"],
                "cpu": reader_start["cpu"] + cold["cpu"],
            }
    for r in results.values():
        r["errors"] = [_name_feeds(e, base, fleet) for e in r.get("errors", [])]
    cold_items = results[("cold", "watcher:0")]["items"]
    for tool in configs:
        results[("test-run", tool)]["items"] = cold_items
    return results, line, feeds


def _name_feeds(error: str, base: str, fleet: Any) -> str:
    """An error with the fleet's addresses replaced by the feeds' names."""

    def name(found: re.Match[str]) -> str:
        feed = fleet.feeds[int(found.group(1))]
        return str(getattr(feed, "name", f"feed {feed.index}"))

    error = re.sub(re.escape(base) + r"/feed/(\d+)", name, error)
    return re.sub(r"(?<=')f(\d+)(?=')", name, error)  # watcher's name for it (write_config)


DEFAULT = "watcher"  # the default parse_processes; its label names how many workers that is
WATCHERS = ("watcher:0", DEFAULT)
MEASURES = {
    "test-run": "`watcher test-run`, cold, whole process (reader: a whole process too)",
    "cold": "cold round: every feed new",
    "warm": "warm round: every feed answers 304",
    "unchanged": "unchanged: no 304, same bodies",
    "changed": "changed: 10% of the feeds have 3 new items",
    "run": "first round of a real `watcher run`, start-up included (reader: a whole process)",
}
# What reader's figure is for each measure: a whole process (start, add the feeds, its cold
# round) beside the whole-process measures of watcher, else the same round.
AGAINST = {"test-run": "process", "run": "process"}
MEMORY = {  # the peak (VmHWM) after the changed round is the peak over all four rounds
    "changed": "peak MiB: the four rounds in one process",
    "run": "peak MiB: first round of a real `watcher run` (reader: its cold round)",
    "test-run": "peak MiB: `watcher test-run` (reader: its cold round)",
}
MEMORY_AGAINST = {"changed": "changed"}  # else reader's peak after its cold round


def _tool(tool: str, default_label: str) -> str:
    return default_label if tool == DEFAULT else tool


def print_rows(results: Result, rules: int, feeds: int, default_label: str) -> None:
    heads = ("wall s", "cpu s", "items/s", "feeds/s", "peak MiB", "matches")
    widths = (8, 8, 9, 8, 9, 9)
    print(
        f"{'round':<30} {'tool':<16} "
        + " ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))
    )
    for (name, tool), r in results.items():
        label = f"{name} ({rules} rules)" if tool != "reader" else name
        items_per_s = r.get("items", 0) / r["wall"] if r["wall"] else 0
        matches = r.get("matches")
        print(
            f"{label:<30} {_tool(tool, default_label):<16} {r['wall']:>8.2f} {r['cpu']:>8.2f} "
            f"{items_per_s:>9,.0f} {feeds / r['wall']:>8.1f} {r['rss_mib']:>9.0f} "
            + (f"{matches:>9,}" if matches is not None else " " * 9)
            + (f"  {r['failed']} failed: {r['errors'][:2]}" if r.get("failed") else "")
        )
    for name in MEASURES:
        rd = results.get((AGAINST.get(name, name), "reader"))
        ratios = [
            f"{_speed(rd, w)} ({_tool(tool, default_label)})"
            for tool in WATCHERS
            if rd and (w := results.get((name, tool)))
        ]
        if ratios:
            print(f"{name:<10} reader/watcher: {', '.join(ratios)}")
    for name in MEMORY:
        rd = results.get((MEMORY_AGAINST.get(name, "cold"), "reader"))
        for tool in WATCHERS:
            w = results.get((name, tool))
            if rd and w:
                print(
                    f"peak memory, {name:<8} {_tool(tool, default_label)}: {w['rss_mib']:.0f} MiB "
                    f"= {w['rss_mib'] / rd['rss_mib']:.2f}x reader's {rd['rss_mib']:.0f} MiB"
                )


def _cell(r: dict[str, Any] | None) -> str:
    return f"{r['wall']:.2f} s ({r['cpu']:.2f} cpu)" if r else ""


def _speed(reader: dict[str, Any] | None, watcher: dict[str, Any] | None) -> str:
    """reader's time over watcher's: wall, then CPU (which a loaded machine moves less)."""
    if not (reader and watcher and watcher["wall"] and watcher["cpu"]):
        return ""
    return f"{reader['wall'] / watcher['wall']:.1f}x (cpu {reader['cpu'] / watcher['cpu']:.1f}x)"


def markdown_table(
    results: Result, default_label: str, reader_version: str, *, memory_of: tuple[str, ...]
) -> list[str]:
    """One run's figures: reader beside watcher, the ratios within that run."""
    lines = [
        f"| | reader {reader_version} | watcher, `parse_processes: 0` | "
        f"watcher, default ({default_label}) | reader / watcher (0) | reader / watcher (default) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in MEASURES.items():
        w0, wd = results.get((name, "watcher:0")), results.get((name, DEFAULT))
        if not (w0 or wd):
            continue
        rd = results.get((AGAINST.get(name, name), "reader"))
        lines.append(
            f"| {label} | {_cell(rd)} | {_cell(w0)} | {_cell(wd)} | {_speed(rd, w0)} "
            f"| {_speed(rd, wd)} |"
        )

    def mib(r: dict[str, Any] | None) -> str:
        return f"{r['rss_mib']:.0f}" if r else ""

    for name in memory_of:
        w0, wd = results.get((name, "watcher:0")), results.get((name, DEFAULT))
        rd = results.get((MEMORY_AGAINST.get(name, "cold"), "reader"))
        if w0 or wd:
            lines.append(
                f"| {MEMORY[name]} | {mib(rd)} | {mib(w0)} | {mib(wd)} | {_share(w0, rd)} "
                f"| {_share(wd, rd)} |"
            )
    return lines


def _share(watcher: dict[str, Any] | None, reader: dict[str, Any] | None) -> str:
    if not (watcher and reader and reader["rss_mib"]):
        return ""
    return f"{watcher['rss_mib'] / reader['rss_mib']:.1f}x reader's"


def _span(values: list[float], digits: int, unit: str = "") -> str:
    if not values:
        return ""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return (low if low == high else f"{low}-{high}") + unit


def range_table(runs: list[Result], default_label: str, *, memory_of: tuple[str, ...]) -> list[str]:
    """Ranges over several runs: wall seconds per tool, and each run's own ratio."""
    lines = [
        f"| over {len(runs)} runs (wall) | reader | watcher, `parse_processes: 0` | "
        f"watcher, default ({default_label}) | reader / watcher (0) | reader / watcher (default) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in MEASURES.items():
        walls: dict[str, list[float]] = {"reader": [], "watcher:0": [], DEFAULT: []}
        ratios: dict[str, list[float]] = {"watcher:0": [], DEFAULT: []}
        for results in runs:
            rd = results.get((AGAINST.get(name, name), "reader"))
            if rd:
                walls["reader"].append(rd["wall"])
            for tool in WATCHERS:
                if w := results.get((name, tool)):
                    walls[tool].append(w["wall"])
                    if rd:
                        ratios[tool].append(rd["wall"] / w["wall"])
        if walls["watcher:0"] or walls[DEFAULT]:
            lines.append(
                f"| {label} | {_span(walls['reader'], 2, ' s')} "
                f"| {_span(walls['watcher:0'], 2, ' s')} | {_span(walls[DEFAULT], 2, ' s')} "
                f"| {_span(ratios['watcher:0'], 1, 'x')} | {_span(ratios[DEFAULT], 1, 'x')} |"
            )
    for name in memory_of:
        peaks: dict[str, list[float]] = {"reader": [], "watcher:0": [], DEFAULT: []}
        shares: dict[str, list[float]] = {"watcher:0": [], DEFAULT: []}
        for results in runs:
            rd = results.get((MEMORY_AGAINST.get(name, "cold"), "reader"))
            if rd:
                peaks["reader"].append(rd["rss_mib"])
            for tool in WATCHERS:
                if w := results.get((name, tool)):
                    peaks[tool].append(w["rss_mib"])
                    if rd:
                        shares[tool].append(w["rss_mib"] / rd["rss_mib"])
        if peaks["watcher:0"] or peaks[DEFAULT]:
            lines.append(
                f"| {MEMORY[name]} | {_span(peaks['reader'], 0)} | {_span(peaks['watcher:0'], 0)} "
                f"| {_span(peaks[DEFAULT], 0)} | {_span(shares['watcher:0'], 1, 'x reader')} "
                f"| {_span(shares[DEFAULT], 1, 'x reader')} |"
            )
    return lines


def memory_run(feeds: int, items: int, rules: int, tmp: Path) -> dict[str, Any]:
    """`watcher run` with `parse_processes: 0` over a synthetic fleet of ``feeds`` feeds:
    its first round, the cold one, is where memory peaks (every feed's items are new)."""
    from fleet import Fleet

    fleet = Fleet(feeds, items)
    with fleet.serving() as base:
        config = tmp / f"memory-{feeds}.yaml"
        state = config.with_suffix(".db")
        write_config(config, fleet.urls(base), rules, state, parse_processes=0)
        return daemon_round(config, state, feeds, timeout=1800)


def drive(args: argparse.Namespace) -> None:
    from importlib.metadata import version

    from watcher.workers import default_parse_processes

    rule_counts = [int(r) for r in args.rules.split(",")]
    chosen = [name.strip() for name in args.fleet.split(",") if name.strip()]
    every = workloads(args)
    unknown = [name for name in chosen if name not in every]
    if unknown:
        raise SystemExit(f"--fleet: no workload named {', '.join(unknown)} (one of {list(every)})")
    default_label = f"{default_parse_processes()} parse workers"
    reader_version = version("reader") if args.reader else "(not run)"
    report: dict[str, Any] = {
        "command": "python bench/compare.py " + " ".join(sys.argv[1:]),
        "machine": (
            f"{platform.platform()}, {os.cpu_count()} cores, {_memory_gib():.0f} GiB, "
            f"python {platform.python_version()}, reader {reader_version}"
        ),
        "date": time.strftime("%Y-%m-%d"),
        "default_label": default_label,
        "reader_version": reader_version,
        "memory_of": ["changed", "run", "test-run"] if args.daemon else ["changed", "test-run"],
        "tables": [],
        "memory": None,
    }
    print(f"# {report['command']}")
    print(f"# machine: {report['machine']}; load average {_load()} at the start")
    print(f"# {args.workers} fetch workers per tool; rules {rule_counts}; runs {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            workload = every[name]
            tables: dict[int, dict[str, Any]] = {
                rules: {"title": workload.title, "rules": rules, "runs": [], "loads": []}
                for rules in rule_counts
            }
            for run in range(args.runs):
                for rules in rule_counts:
                    workdir = Path(tmp) / f"{name}-{run}-{rules}"
                    workdir.mkdir()
                    start_load = _load1()
                    results, line, feeds = measure(
                        workload,
                        rules,
                        workers=args.workers,
                        with_reader=args.reader and rules == rule_counts[0],
                        daemon=args.daemon,
                        tmp=workdir,
                    )
                    if rules != rule_counts[0]:  # reader has no rules: its first figures stand
                        first = _results(tables[rule_counts[0]]["runs"][run])
                        results |= {k: v for k, v in first.items() if k[1] == "reader"}
                    table = tables[rules]
                    table["runs"].append({f"{m}/{t}": r for (m, t), r in results.items()})
                    table["loads"].append([start_load, _load1()])
                    table |= {"line": line, "feeds": feeds, "note": workload.notes.get(rules, "")}
                    print(f"\n## {workload.title}, {rules} rules, run {run + 1} of {args.runs}")
                    print(f"# {line}")
                    if table["note"]:
                        print(f"# {table['note']}")
                    print(f"# load average {start_load} at the start, {_load()} at the end")
                    print_rows(results, rules, feeds, default_label)
            report["tables"] += tables.values()
        if args.memory_feeds:
            result = memory_run(args.memory_feeds, args.memory_items, 1000, Path(tmp))
            report["memory"] = result | {"feeds": args.memory_feeds, "items": args.memory_items}
            print(
                f"\n## memory: `watcher run`, parse_processes 0, {args.memory_feeds:,} feeds x "
                f"{args.memory_items} items, 1,000 rules: first round {result['wall']:.1f} s, "
                f"cpu {result['cpu']:.1f} s, peak {result['rss_mib']:.0f} MiB"
                + (f"; {result['failed']} feeds failed" if result["failed"] else "")
                + (f"; errors: {result['errors']}" if result["errors"] else "")
            )
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=1))
        print(f"\n# saved to {args.save}; `python bench/compare.py --render {args.save}` prints it")
    if args.markdown:
        print("\n" + "\n".join(render(report)))


def _results(saved: dict[str, dict[str, Any]]) -> Result:
    return {(key.split("/")[0], key.split("/", 1)[1]): r for key, r in saved.items()}


def render(report: dict[str, Any]) -> list[str]:
    """The markdown tables of a report (what --save wrote, or a run just done)."""
    out = []
    memory_of = tuple(report["memory_of"])
    for table in report["tables"]:
        out += _markdown(table, report, memory_of)
    memory = report.get("memory")
    if memory:
        out += [
            f"#### Memory: {memory['feeds']:,} feeds",
            "",
            f"`{report['command']}`; {report['date']}; {report['machine']}.",
            "",
            "| fleet | `watcher run`, `parse_processes: 0`: first round | cpu | peak RSS |",
            "| --- | ---: | ---: | ---: |",
            f"| synthetic, {memory['feeds']:,} feeds x {memory['items']} items, 1,000 rules "
            f"| {memory['wall']:.1f} s | {memory['cpu']:.1f} s | {memory['rss_mib']:.0f} MiB |",
            "",
        ]
    return out


def _markdown(
    table: dict[str, Any], report: dict[str, Any], memory_of: tuple[str, ...]
) -> list[str]:
    runs = [_results(saved) for saved in table["runs"]]
    first = runs[0]
    default_label = report["default_label"]
    test_run_ = first.get(("test-run", DEFAULT)) or first.get(("test-run", "watcher:0")) or {}
    items = test_run_.get("items", 0)
    matches = test_run_.get("matches", 0)
    per_item = f" ({matches / items:.2f} per item)" if items else ""
    reader_items = first.get(("cold", "reader"), {}).get("items", 0)
    changed = first.get(("changed", "watcher:0"), {})
    note = f"{table['note']}. " if table["note"] else ""
    out = [
        f"#### {table['title']}: {table['rules']:,} rules",
        "",
        f"`{report['command']}`; {report['date']}; {report['machine']}; load average "
        + " and ".join(f"{a:.1f} -> {b:.1f}" for a, b in table["loads"])
        + " (1 minute, start -> end of each run).",
        "",
        f"{table['line']}. {note}test-run matched {matches:,} times in {items:,} items"
        f"{per_item}; the changed round's new items matched {changed.get('matches', 0):,} "
        f"times. Items read in the cold round: watcher "
        f"{first.get(('cold', 'watcher:0'), {}).get('items', 0):,}, reader {reader_items:,}.",
    ]
    for tool, label in (("watcher:0", "watcher"), ("reader", "reader")):
        cold = first.get(("cold", tool), {})
        if cold.get("failed"):
            shown = len(cold["errors"])
            out += [
                "",
                f"{label} could not read {cold['failed']} of the {table['feeds']} feeds"
                + (f" ({shown} shown)" if cold["failed"] > shown else "")
                + ": "
                + "; ".join(e.replace(" (None)", "") for e in cold["errors"])
                + ".",
            ]
    out += [
        "",
        *markdown_table(first, default_label, report["reader_version"], memory_of=memory_of),
        "",
    ]
    if len(runs) > 1:
        out += [*range_table(runs, default_label, memory_of=memory_of), ""]
    return out


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "watcher":
        watcher_worker(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "reader":
        reader_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--fleet",
        default="corpus,synthetic,dense",
        help="comma-separated workloads: corpus, synthetic, dense",
    )
    parser.add_argument("--feeds", type=int, default=200, help="synthetic and dense fleets")
    parser.add_argument("--items", type=int, default=50, help="synthetic and dense fleets")
    parser.add_argument(
        "--corpus-feeds", type=int, default=200, help="the corpus's feeds with the most entries"
    )
    parser.add_argument("--density", type=float, default=3.0, help="corpus: matches per item")
    parser.add_argument("--mentions", type=int, default=18, help="dense: tracked words per item")
    parser.add_argument("--rules", default="1000", help="comma-separated rule counts")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1, help="repeat everything, fresh each time")
    parser.add_argument(
        "--no-daemon",
        dest="daemon",
        action="store_false",
        help="skip the real `watcher run` rounds",
    )
    parser.add_argument(
        "--no-reader",
        dest="reader",
        action="store_false",
        help="watcher's side alone (tests/test_bench.py: reader is no test dependency)",
    )
    parser.add_argument(
        "--memory-feeds",
        type=int,
        default=0,
        help="also: `watcher run` with parse_processes 0 over this many synthetic feeds",
    )
    parser.add_argument("--memory-items", type=int, default=10)
    parser.add_argument("--markdown", action="store_true", help="also print markdown tables")
    parser.add_argument("--save", help="write every figure to this JSON file")
    parser.add_argument("--render", help="print the markdown tables of a --save file; run nothing")
    args = parser.parse_args()
    if args.render:
        print("\n".join(render(json.loads(Path(args.render).read_text()))))
        return
    compile_watcher()  # as installed: see bench/bytecode.py
    drive(args)


if __name__ == "__main__":
    main()

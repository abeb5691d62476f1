"""A bounded soak: the daemon against 1,000 feeds that change at random and 1,000 rules,
with steady delivery, for a few minutes; memory and poll lag sampled throughout.

It fails if memory keeps growing after warm-up, if polls fall behind their schedule, or
if an alert is lost or late. WATCHER_SOAK_SECONDS sets the length: 40 s by default (and
in CI), time for each feed to be polled in both halves of the run; set 3600 locally for
a longer look. The figures are printed (pytest -s shows them).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import statistics
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from support import Daemon, Receiver, _Loopback, _Quiet, rss, wait_until

pytestmark = pytest.mark.e2e

SOAK_SECONDS = float(os.environ.get("WATCHER_SOAK_SECONDS", "40"))
FEEDS = 1000
RULES = 1000
INTERVAL = 20  # seconds between polls of one feed: 50 polls a second in all
KEEP = 10  # items a feed document carries


class ChangingFleet(_Loopback):
    """1,000 small feeds on one server; ETags, so unchanged feeds answer 304."""

    def __init__(self) -> None:
        self.items: dict[int, list[dict[str, str]]] = {i: [] for i in range(FEEDS)}
        self.requests: dict[int, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        fleet = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                index = int(self.path.rsplit("/", 1)[-1])
                with fleet.lock:
                    fleet.requests[index].append(time.monotonic())
                    items = list(fleet.items[index][:KEEP])
                etag = f'"{len(fleet.items[index])}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = rss(items, title=f"feed {index}")
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler)

    def publish(self, index: int, n: int, title: str) -> None:
        item = {"title": title, "guid": f"item-{n}", "link": f"http://example.org/{n}"}
        item["description"] = f"{title}. " + "Officials said more would follow. " * 8
        with self.lock:
            self.items[index].insert(0, item)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _baselined(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=30)
        try:
            return int(conn.execute("SELECT count(*) FROM feeds WHERE baselined").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def test_soak_memory_and_poll_lag_stay_flat(receiver: Receiver, tmp_path: Path) -> None:
    fleet = ChangingFleet()
    rng = random.Random(7)
    feeds = "".join(
        f"  - {{name: f{i}, url: 'http://127.0.0.1:{fleet.port}/f/{i}', interval: {INTERVAL}s}}\n"
        for i in range(FEEDS)
    )
    rules = "".join(f"  - {{name: r{i}, keywords: [kw{i}x]}}\n" for i in range(RULES))
    db = tmp_path / "watcher.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {db}\nallow_private_networks: true\n"
        "fetch: {max_connections: 16, max_per_host: 16}\n"
        "delivery: {retry: 1s}\n"
        f"feeds:\n{feeds}rules:\n{rules}notifiers:\n  hook: '{receiver.url}'\n"
    )
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        assert wait_until(lambda: _baselined(db) >= FEEDS, 60), daemon.log_text()[-2000:]

        expected: dict[str, float] = {}  # alert title -> when its item was published
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        published = 0
        next_sample = start
        while (now := time.monotonic()) < start + SOAK_SECONDS:
            published += 1
            index = rng.randrange(FEEDS)
            if rng.random() < 0.3:
                rule = rng.randrange(RULES)
                title = f"Story {published} about kw{rule}x"
                expected[f"[r{rule}] {title}"] = now
            else:
                title = f"Story {published} about nothing in particular"
            fleet.publish(index, published, title)
            if now >= next_sample:
                samples.append((now - start, _rss_mib(pid)))
                next_sample += 2
            time.sleep(0.1)
        end = time.monotonic()

        assert wait_until(lambda: set(expected) <= set(receiver.titles()), 2 * INTERVAL + 30), (
            f"{len(set(expected) - set(receiver.titles()))} of {len(expected)} alerts missing\n"
            + daemon.log_text()[-3000:]
        )
        arrived = time.monotonic()
        assert daemon.signal(signal.SIGTERM) == 0
    finally:
        daemon.stop()
        fleet.close()

    titles = receiver.titles()
    assert len(titles) == len(set(titles)) == len(expected), "duplicates or strays"

    # Memory: after warm-up (the first third), the last third may not outgrow the middle.
    settled = [(t, m) for t, m in samples if t >= SOAK_SECONDS / 3]
    middle = [m for t, m in settled if t < 2 * SOAK_SECONDS / 3]
    last = [m for t, m in settled if t >= 2 * SOAK_SECONDS / 3]
    # Poll lag: the gap between two polls of a feed, beyond its interval (jitter is 10%).
    gaps: dict[str, list[float]] = {"first": [], "second": []}
    half = start + SOAK_SECONDS / 2
    for times in fleet.requests.values():
        for a, b in itertools.pairwise(times):
            if start <= a < end:
                gaps["first" if a < half else "second"].append(b - a - INTERVAL)
    p95 = {k: statistics.quantiles(v, n=20)[-1] for k, v in gaps.items()}
    print(
        f"\nsoak: {SOAK_SECONDS:.0f} s, {FEEDS} feeds, {RULES} rules, {published} items published,"
        f" {len(expected)} alerts (all arrived {arrived - end:.1f} s after the last publish)\n"
        f"  RSS MiB: start {samples[0][1]:.1f}, middle max {max(middle):.1f},"
        f" last max {max(last):.1f}\n"
        f"  poll lag p95 beyond the interval: first half {p95['first']:.2f} s,"
        f" second half {p95['second']:.2f} s ({sum(map(len, gaps.values()))} gaps)"
    )
    assert max(last) - max(middle) < 16, f"memory keeps growing: {samples}"
    assert p95["second"] < INTERVAL * 0.1 + 5, "polls fall behind their schedule"
    assert p95["second"] < p95["first"] + 5, "poll lag grows"

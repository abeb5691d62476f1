"""The daemon as a real process: silent baseline, one alert per new match, no repeat after
SIGKILL and restart, clean exit on SIGTERM and SIGINT.

The tests that take ``state_db`` (or ``setup``) run on SQLite and on a real PostgreSQL
(conftest), unless marked ``sqlite_only``; the others run on SQLite alone. Each test
that runs on one backend says why.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pgserver import PostgresServer
from support import (
    MATCH_RULES,
    Daemon,
    FeedServer,
    Receiver,
    Route,
    Story,
    sqlite_only,
    state_sql,
    wait_until,
    without_dev_log,
)

from watcher.models import Alert, PollDecision
from watcher.store import AlertRecord, Store
from watcher.store.engine import node_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def setup(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path, state_db: str | Path
) -> Iterator[tuple[Daemon, Story, Route, str | Path]]:
    story = Story()
    story.add(1, "Kharkiv: already there before watcher started")
    route = Route(story.body())
    feed_server.routes["/news"] = route
    feed_server.routes["/broken"] = Route(b"<html>not a feed</html>", content_type="text/html")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
state: {state_db}
allow_private_networks: true
feeds:
  - name: news
    url: {feed_server.url("/news")}
    interval: 1s
  - name: broken
    url: {feed_server.url("/broken")}
    interval: 1s
{MATCH_RULES}notifiers:
  hook: "{receiver.url}"
"""
    )
    daemon = Daemon(config, tmp_path / "daemon.log")
    yield daemon, story, route, state_db
    daemon.stop()


def alerts_in(state: str | Path) -> list[AlertRecord]:
    """The outbox as `watcher alerts` reads it, on either backend."""
    store = Store.open(state, readonly=True)
    try:
        return store.list_alerts()
    finally:
        store.close()


def test_alert_once_survive_sigkill_and_restart(
    setup: tuple[Daemon, Story, Route, str | Path], feed_server: FeedServer, receiver: Receiver
) -> None:
    daemon, story, route, db = setup
    daemon.start()
    # The baseline and at least one more poll: nothing may be sent for items already there.
    assert wait_until(lambda: feed_server.hits("/news") >= 3), daemon.log_text()
    assert receiver.messages == []

    story.add(2, "Shelling in Kharkov overnight")
    route.body = story.body()
    assert len(receiver.wait_for(1)) == 1, daemon.log_text()
    polled = feed_server.hits("/news")
    assert wait_until(lambda: feed_server.hits("/news") >= polled + 3)
    assert [m["title"] for m in receiver.messages] == ["[kharkiv] Shelling in Kharkov overnight"]

    assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    polled = feed_server.hits("/news")
    assert wait_until(lambda: feed_server.hits("/news") >= polled + 3), daemon.log_text()
    assert len(receiver.messages) == 1  # no repeat after the restart

    story.add(3, "Kharkiv metro reopens")
    route.body = story.body()
    assert len(receiver.wait_for(2)) == 2, daemon.log_text()
    polled = feed_server.hits("/news")
    assert wait_until(lambda: feed_server.hits("/news") >= polled + 3)
    assert [m["title"] for m in receiver.messages] == [
        "[kharkiv] Shelling in Kharkov overnight",
        "[kharkiv] Kharkiv metro reopens",
    ]
    # The broken feed was retried with growing waits, reported by name, and stopped nothing.
    assert feed_server.hits("/broken") >= 2
    assert "poll failed feed=broken failures=2" in daemon.log_text()

    assert daemon.signal(signal.SIGTERM) == 0
    if isinstance(db, Path):  # the SQLite file came through the SIGKILL whole
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()


def test_pending_alerts_are_delivered_after_the_receiver_recovers(
    setup: tuple[Daemon, Story, Route, str | Path], feed_server: FeedServer, receiver: Receiver
) -> None:
    daemon, story, route, db = setup
    receiver.status = 503
    daemon.start()
    assert wait_until(lambda: feed_server.hits("/news") >= 2)
    story.add(2, "Kharkiv news while the receiver is down")
    route.body = story.body()
    assert wait_until(lambda: "alert delivery failed" in daemon.log_text()), daemon.log_text()
    assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL  # queued, attempted, not sent

    assert state_sql(db, "SELECT status, attempts FROM alerts") == [("pending", 1)]
    state_sql(db, "UPDATE alerts SET next_attempt_at = '2000-01-01 00:00:00'")  # due now

    receiver.status = 200
    daemon.start()
    assert [m["title"] for m in receiver.wait_for(1)] == [
        "[kharkiv] Kharkiv news while the receiver is down"
    ], daemon.log_text()
    assert daemon.signal(signal.SIGINT) == 0  # SIGINT stops it cleanly too


def test_sigkill_while_a_delivery_is_in_flight_resends_at_most_once(
    setup: tuple[Daemon, Story, Route, str | Path], feed_server: FeedServer, receiver: Receiver
) -> None:
    daemon, story, route, db = setup
    daemon.start()
    assert wait_until(lambda: feed_server.hits("/news") >= 2), daemon.log_text()
    receiver.delay = 5.0  # the service accepts the message, then is slow to say so
    story.add(2, "Kharkiv: delivered just before a crash")
    route.body = story.body()
    assert len(receiver.wait_for(1)) == 1, daemon.log_text()
    assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL  # killed before it recorded "sent"

    # The attempt was claimed before the send: still pending, with a retry time of its own
    # (so a send whose outcome can never be recorded is not repeated in a loop).
    (claimed,) = alerts_in(db)
    assert (claimed.status, claimed.attempts) == ("pending", 1)
    assert claimed.next_attempt_at > datetime.now(UTC)
    state_sql(db, "UPDATE alerts SET next_attempt_at = '2000-01-01 00:00:00'")  # due now

    receiver.delay = 0.0
    daemon.start()
    # The alert was still pending: it goes out again. This is the one duplicate we allow.
    assert len(receiver.wait_for(2)) == 2, daemon.log_text()
    polled = feed_server.hits("/news")
    assert wait_until(lambda: feed_server.hits("/news") >= polled + 3)
    assert receiver.titles() == ["[kharkiv] Kharkiv: delivered just before a crash"] * 2
    assert daemon.signal(signal.SIGTERM) == 0
    assert state_sql(db, "SELECT status FROM alerts") == [("sent",)]


# SQLite only: a reload is config and scheduling; its store calls (sync_feeds, reschedule)
# run on both backends in tests/test_store.py, and this test takes seconds of real polls.
def test_sighup_reloads_feeds_and_keeps_running_on_a_bad_config(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path
) -> None:
    first, second = Story(), Story()
    first.add(1, "Kharkiv in the first feed")
    second.add(10, "Kharkiv already in the second feed")
    feed_server.routes["/first"] = Route(first.body())
    feed_server.routes["/second"] = route = Route(second.body())
    config = tmp_path / "config.yaml"

    def write(feeds: str) -> None:
        config.write_text(
            f"state: {tmp_path / 'w.db'}\nallow_private_networks: true\nfeeds:\n{feeds}"
            "rules:\n  - {name: kharkiv, keywords: [Kharkiv]}\n"
            f'notifiers:\n  hook: "{receiver.url}"\n'
        )

    write(f"  - {{name: first, url: '{feed_server.url('/first')}', interval: 1s}}\n")
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        assert wait_until(lambda: feed_server.hits("/first") >= 2), daemon.log_text()
        write(f"  - {{name: second, url: '{feed_server.url('/second')}', interval: 1s}}\n")
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: feed_server.hits("/second") >= 2), daemon.log_text()
        assert "config reloaded feeds=1 added=second removed=first" in daemon.log_text()
        polled = feed_server.hits("/first")
        time.sleep(2)
        assert feed_server.hits("/first") == polled  # removed: no longer polled

        config.write_text(config.read_text().replace("interval: 1s", "interval: soon"))
        daemon.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload refused" in daemon.log_text()), daemon.log_text()
        assert "feeds.0.interval: invalid duration 'soon'" in daemon.log_text()

        second.add(11, "Kharkiv news after the reload")
        route.body = second.body()
        assert receiver.wait_for(1) and receiver.titles() == [
            "[kharkiv] Kharkiv news after the reload"
        ]
        assert daemon.signal(signal.SIGTERM) == 0
        assert receiver.titles() == [
            "[kharkiv] Kharkiv news after the reload"
        ]  # baselines stayed silent
    finally:
        daemon.stop()


def test_sigterm_stops_within_the_bound_while_a_poll_hangs(
    tmp_path: Path, state_db: str | Path
) -> None:
    with socket.socket() as hung:  # accepts connections, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"state: {state_db}\nallow_private_networks: true\n"
            "fetch: {timeout: 60s, deadline: 120s}\n"
            f"feeds:\n  - {{name: hung, url: 'http://127.0.0.1:{hung.getsockname()[1]}/', interval: 1s}}\n"
        )
        daemon = Daemon(config, tmp_path / "daemon.log")
        daemon.start()
        try:
            # The poll is in flight once its connection is accepted (then never answered):
            # a condition, not a fixed sleep that a slow start can outlast.
            hung.settimeout(60)
            waiting, _ = hung.accept()
            started = time.monotonic()
            assert daemon.signal(signal.SIGTERM) == 0
            waiting.close()
            assert time.monotonic() - started < 12  # the 10 s bound, not the 60 s timeout
            assert state_sql(state_db, "SELECT failures FROM feeds") in ([], [(0,)])
        finally:
            daemon.stop()


# `watcher run` with a stderr where a signal arrives while a line is written (SIGHUP in
# "watcher started", then SIGTERM in "config reloaded"): Python runs the handler right
# there, inside the buffered stream's write.
_SIGNALS_INSIDE_WRITES = """
import io, os, signal, sys
from watcher.cli import main

class Stderr(io.RawIOBase):
    signals = {b"watcher started": signal.SIGHUP, b"config reloaded": signal.SIGTERM}
    def writable(self):
        return True
    # Bound now: at exit, when the last lines are flushed, the module's globals are gone.
    def write(self, data, write=os.write, kill=os.kill, pid=os.getpid()):
        data = bytes(data)
        write(2, data)
        for text in [text for text in self.signals if text in data]:
            kill(pid, self.signals.pop(text))
        return len(data)

sys.stderr = io.TextIOWrapper(io.BufferedWriter(Stderr()), line_buffering=True)
main(["run", "-c", sys.argv[1]])
"""


def test_signals_that_land_inside_a_log_write_are_acted_on(tmp_path: Path) -> None:
    """The handlers used to log. Run inside a write to stderr (a signal can land in one
    at any time), that write failed ("reentrant call inside BufferedWriter") and the
    signal was lost: no reload, or a daemon running on until systemd killed it (seen
    once in CI)."""
    config = tmp_path / "config.yaml"
    config.write_text(f"state: {tmp_path / 'w.db'}\nfeeds: []\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIGNALS_INSIDE_WRITES, str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    for said in (
        "signal received signal=SIGHUP; reloading",
        "config reloaded",
        "signal received signal=SIGTERM; stopping",
        "watcher stopped",
    ):
        assert said in err, err
    assert "Logging error" not in err and "reentrant" not in err, err


def test_a_clock_jump_reschedules_polls_instead_of_stalling(
    tmp_path: Path, state_db: str | Path
) -> None:
    from watcher.config import load_config
    from watcher.daemon import Daemon as Watcher

    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {state_db}\nallow_private_networks: true\n"
        "feeds:\n  - {name: a, url: 'http://127.0.0.1:9/', interval: 10m}\n"
    )
    watcher = Watcher(load_config(config), config_path=config)
    wall = [time.time()]
    watcher._wall = lambda: wall[0]
    watcher._clock_mark = (wall[0], time.monotonic())
    watcher._schedule()
    watcher.scheduler.start(paused=True)
    store = watcher.store
    try:
        # What a backwards jump looks like to a schedule of absolute times: the next poll
        # is a day away.
        store.reschedule({"a": datetime.now(UTC) + timedelta(days=1)})

        def due() -> datetime:
            when = store.feed_state("a").next_poll_at
            assert when is not None
            return when

        def soon_after_wall_now() -> bool:
            wall_now = datetime.fromtimestamp(wall[0], UTC)
            return wall_now - timedelta(seconds=1) <= due() <= wall_now + timedelta(seconds=5)

        wall[0] -= 86400
        assert watcher.check_clock() < -86000
        assert soon_after_wall_now()  # polls again now, not in a day
        before = due()
        wall[0] += 30  # ordinary time passing is not a jump
        assert abs(watcher.check_clock(tolerance=60)) < 60
        assert due() == before
        wall[0] += 3 * 86400  # forward, by days: one fresh, spread run, not a storm
        assert watcher.check_clock() > 86000
        assert soon_after_wall_now()
    finally:
        watcher.scheduler.shutdown(wait=False)
        watcher.store.close()
        if watcher.lock is not None:
            watcher.lock.release()


def test_daily_maintenance_forgets_daemons_gone_for_a_day(
    tmp_path: Path, state_db: str | Path, caplog: pytest.LogCaptureFixture
) -> None:
    from watcher.config import load_config
    from watcher.daemon import Daemon as Watcher
    from watcher.store import DaemonRecord

    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {state_db}\nallow_private_networks: true\n"
        "feeds:\n  - {name: a, url: 'http://127.0.0.1:9/', interval: 10m}\n"
    )
    watcher = Watcher(load_config(config), config_path=config)
    store = watcher.store
    try:
        now = datetime.now(UTC)
        for node, beat in (("old:1", now - timedelta(days=3)), ("today:2", now)):
            host, pid = node.split(":")
            store.daemon_started(DaemonRecord(node, host, int(pid), "1", beat, beat))
        with caplog.at_level(logging.INFO, logger="watcher.daemon"):
            watcher._maintain()
        assert "daemon_rows_dropped=1" in caplog.text, caplog.text
        assert [r.node for r in store.daemon_records()] == ["today:2"]
    finally:
        watcher.store.close()
        if watcher.lock is not None:
            watcher.lock.release()


def test_the_status_line_counts_only_the_failing_feeds_it_polls(
    tmp_path: Path, state_db: str | Path
) -> None:
    """A feed that failed and was then removed (or muted) stays in the state; the status
    line (systemd's STATUS, the heartbeat log) counted it as failing for ever."""
    from watcher.config import load_config
    from watcher.daemon import Daemon as Watcher

    config = tmp_path / "config.yaml"
    feeds = "".join(
        f"  - {{name: {name}, url: 'http://127.0.0.1:9/{name}', interval: 10m{extra}}}\n"
        for name, extra in (("kept", ""), ("muted", ", enabled: false"))
    )
    config.write_text(f"state: {state_db}\nallow_private_networks: true\nfeeds:\n{feeds}")
    watcher = Watcher(load_config(config), config_path=config)
    store = watcher.store
    try:
        now = datetime.now(UTC)
        store.sync_feeds([(n, f"http://127.0.0.1:9/{n}") for n in ("kept", "muted", "gone")], now)

        def fail(name: str) -> None:
            from sqlalchemy import update

            from watcher.store.schema import feeds

            with store.engine.begin() as conn:
                conn.execute(update(feeds).where(feeds.c.name == name).values(failures=2))

        fail("muted")
        fail("gone")
        assert store.failing_feeds() == ["gone", "muted"]
        assert watcher.status_line().startswith("feeds=1 failing=0 ")
        fail("kept")
        assert watcher.status_line().startswith("feeds=1 failing=1 ")
    finally:
        watcher.store.close()
        if watcher.lock is not None:
            watcher.lock.release()


# SQLite only: readers beside a writing daemon are SQLite's question (WAL, "database is
# locked"); PostgreSQL's readers never wait for its writers, and status on PostgreSQL is
# in test_status_says_whether_the_daemon_runs_and_flags_overdue_feeds.
def test_status_works_while_the_daemon_writes_and_logs_are_json(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feeds = ""
    for n in range(20):
        story = Story()
        story.add(n, f"Story {n}")
        feed_server.routes[f"/f{n}"] = Route(story.body() + b" " * (n % 3))
        feeds += f"  - {{name: f{n}, url: '{feed_server.url(f'/f{n}')}', interval: 1s}}\n"
    feed_server.routes["/gone"] = Route(status=410)
    feeds += f"  - {{name: gone, url: '{feed_server.url('/gone')}', interval: 1s}}\n"
    config = tmp_path / "config.yaml"
    config.write_text(f"state: {tmp_path / 'w.db'}\nallow_private_networks: true\nfeeds:\n{feeds}")
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "watcher",
                "--log-format",
                "json",
                "--log-level",
                "debug",
                "run",
                "-c",
                str(config),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: feed_server.hits("/f19") >= 2)

        def status() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "watcher", "status", "-c", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
            )

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: status(), range(12)))
        for result in results:
            assert result.returncode == 0, result.stderr
            assert "locked" not in result.stdout + result.stderr
        out = results[-1].stdout
        assert out.startswith(f"daemon: running on {socket.gethostname()} (pid {proc.pid}, ")
        assert out.splitlines()[1] == (
            f"state: SQLite {tmp_path / 'w.db'} (one daemon per file: the daemon above holds "
            "its lock)"
        )
        assert out.splitlines()[2].startswith("21 feeds (1 failing); alerts: 0 pending, 0 failed")
        assert "gone  " in out and "disabled (410 Gone)" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    polls = [e for e in entries if e["message"].startswith("poll feed=")]
    assert polls and all({"ts", "level", "logger", "feed", "status"} <= e.keys() for e in polls)
    counted = [e for e in polls if "items" in e]
    assert counted and all(isinstance(e["items"], int) for e in counted)  # numbers as numbers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@sqlite_only  # what the metrics count does not depend on the backend
def test_metrics_and_healthz(
    setup: tuple[Daemon, Story, Route, str | Path], feed_server: FeedServer, receiver: Receiver
) -> None:
    daemon, story, route, _ = setup
    port = _free_port()
    daemon.extra = ["--metrics-port", str(port)]
    daemon.start()
    base = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: feed_server.hits("/news") >= 2), daemon.log_text()
    story.add(2, "Kharkiv in the metrics")
    route.body = story.body()
    assert len(receiver.wait_for(1)) == 1

    def scrape() -> str:
        return httpx.get(f"{base}/metrics", timeout=5).text

    assert wait_until(lambda: 'watcher_alerts_sent_total{notifier="hook"} 1.0' in scrape())
    text = scrape()
    assert 'watcher_polls_total{feed="news",status="baseline"} 1.0' in text
    assert 'watcher_matches_total{rule="kharkiv"} 1.0' in text
    assert 'watcher_items_seen_total{feed="news"}' in text
    assert 'watcher_fetch_errors_total{feed="broken",kind="parse"}' in text
    assert "watcher_poll_duration_seconds_bucket" in text
    assert "watcher_delivery_latency_seconds_count 1.0" in text
    health = httpx.get(f"{base}/healthz", timeout=5)
    assert (health.status_code, health.text) == (200, "ok\n")
    assert daemon.signal(signal.SIGTERM) == 0


def test_healthz_fails_when_polling_stalls(tmp_path: Path, state_db: str | Path) -> None:
    from watcher.config import load_config
    from watcher.daemon import Daemon as Watcher

    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {state_db}\nfeeds:\n  - {{name: a, url: 'http://127.0.0.1:9/', interval: 1s}}\n"
    )
    watcher = Watcher(load_config(config), metrics_port=0)
    assert watcher.stalled() == "the scheduler is not running"
    watcher.scheduler.start(paused=True)
    if watcher.cluster is not None:  # a node of a cluster: its worker must run too
        assert watcher.stalled() == "the cluster worker is not running"
        watcher.cluster.start()
    assert watcher.metrics is not None
    server = watcher.metrics.serve(0, health=watcher.stalled)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        assert httpx.get(url, timeout=5).status_code == 200
        watcher._busy["a"] = time.monotonic() - 1000  # a poll stuck for 1000 s
        answer = httpx.get(url, timeout=5)
        assert answer.status_code == 503
        assert answer.text.startswith("stalled: polls running for over 180 s: a")
    finally:
        server.shutdown()
        watcher.scheduler.shutdown(wait=False)
        if watcher.cluster is not None:
            watcher.cluster.stop()
        watcher.store.close()


# SQLite only: the fetch deadline; PostgreSQL changes nothing here.
def test_a_hung_feed_hits_its_deadline_and_is_polled_again(tmp_path: Path) -> None:
    held: list[socket.socket] = []
    with socket.socket() as hung:  # accepts connections and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        hung.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    held.append(hung.accept()[0])
                except TimeoutError:
                    continue

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"state: {tmp_path / 'w.db'}\nallow_private_networks: true\n"
            "fetch: {timeout: 10s, deadline: 2s}\n"
            f"feeds:\n  - {{name: hung, url: 'http://127.0.0.1:{hung.getsockname()[1]}/', interval: 1s}}\n"
        )
        daemon = Daemon(config, tmp_path / "daemon.log")
        daemon.start()
        try:
            # Each poll gives up at its 2 s deadline and a later one connects again.
            assert wait_until(lambda: len(held) >= 3, timeout=30), daemon.log_text()
            assert "the fetch exceeded its overall deadline of 2 s" in daemon.log_text()
            assert daemon.signal(signal.SIGTERM) == 0
        finally:
            daemon.stop()
            stop.set()
            acceptor.join()
            for conn in held:
                conn.close()


# SQLite only: HTTP validators; the store keeps them as text on both backends
# (tests/test_pipeline.py), so PostgreSQL changes nothing in these seconds of real polls.
def test_a_change_in_the_same_second_as_a_poll_is_seen_by_the_next_poll(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path
) -> None:
    """A feed served like a static file: Last-Modified is the second of the last change,
    Date is the server's clock, and If-Modified-Since >= Last-Modified gets a 304. The
    test owns that clock, so two changes and a poll within one second are a fact, not a
    race with real time."""
    from email.utils import parsedate_to_datetime
    from http.server import BaseHTTPRequestHandler

    from support import rfc822

    story = Story()
    story.add(1, "Kharkiv: already there before watcher started")

    class StaticFile:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.clock = datetime(2026, 11, 24, 20, 0, 0, tzinfo=UTC)  # frozen until moved
            self.body = story.body()
            self.modified = self.clock - timedelta(minutes=1)
            self.served: list[int] = []  # the status of every answer

        def change(self, n: int, title: str) -> None:
            story.add(n, title)
            with self.lock:
                self.body, self.modified = story.body(), self.clock

        def handler(self, h: BaseHTTPRequestHandler) -> None:
            since = h.headers.get("If-Modified-Since")
            with self.lock:
                body, modified, now = self.body, self.modified, self.clock
                status = 304 if since and parsedate_to_datetime(since) >= modified else 200
                self.served.append(status)
            h.send_response_only(status)  # send_response would add the real clock's Date
            h.send_header("Date", rfc822(now))
            h.send_header("Last-Modified", rfc822(modified))
            h.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            h.send_header("Content-Length", str(len(body) if status == 200 else 0))
            h.end_headers()
            if status == 200:
                h.wfile.write(body)

    static = StaticFile()
    feed_server.routes["/static"] = Route(handler=static.handler)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
state: {tmp_path / "w.db"}
allow_private_networks: true
feeds:
  - name: static
    url: {feed_server.url("/static")}
    interval: 1s
{MATCH_RULES}notifiers:
  hook: "{receiver.url}"
"""
    )
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        # A Last-Modified a minute before Date is strong: sent back, and answered 304.
        assert wait_until(lambda: 304 in static.served), daemon.log_text()

        with static.lock:
            static.clock += timedelta(minutes=10)  # one second, frozen from here on
        static.change(2, "Kharkiv: first change in this second")
        assert len(receiver.wait_for(1)) == 1, daemon.log_text()
        # That poll saw Last-Modified == Date: weak, so not sent back as If-Modified-Since,
        # which this server would answer with 304 for the change below.
        static.change(3, "Kharkiv: second change in the same second")
        assert len(receiver.wait_for(2)) == 2, daemon.log_text()
        polled = feed_server.hits("/static")
        assert wait_until(lambda: feed_server.hits("/static") >= polled + 3)
        assert receiver.titles() == [
            "[kharkiv] Kharkiv: first change in this second",
            "[kharkiv] Kharkiv: second change in the same second",
        ]
        with feed_server.lock:
            sent = [headers.get("If-Modified-Since") for _, headers in feed_server.requests]
        assert rfc822(static.clock) not in sent
        assert daemon.signal(signal.SIGTERM) == 0
    finally:
        daemon.stop()


# SQLite only: what the start logs says of notifiers and baselines is the same on both
# backends, and the feed statuses it reads are tested on both in tests/test_store.py.
def test_start_says_where_alerts_go_which_cannot_arrive_and_that_first_polls_are_silent(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path
) -> None:
    secret = "canary-s3cret-in-a-url"
    feed_server.routes["/news"] = Route(Story().body())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
state: {tmp_path / "w.db"}
allow_private_networks: true
parse_processes: 0
feeds:
  - name: news
    url: {feed_server.url("/news")}
    interval: 1s
notifiers:
  ops: "json://user:{secret}@127.0.0.1:{receiver.port}/hook"
  desk:
    url: "syslog://"
    format: markdown
"""
    )
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.prefix = without_dev_log()  # the example config's syslog:// in a container
    daemon.start()
    try:
        assert daemon.started(), daemon.log_text()
        text = daemon.log_text()
        assert f"notifier name=ops url=json://user:****@127.0.0.1:{receiver.port}/hook" in text
        assert re.search(r"notifier name=desk url=syslog://\S+ format=markdown\n", text), text
        assert (
            "WARNING watcher.daemon: notifier desk: no local syslog: /dev/log does not exist; "
            "its alerts cannot be delivered here"
        ) in text
        assert "notifier ops:" not in text
        assert re.search(
            r"first polls by=\S+Z feeds=1 new=1: the first poll of a new feed is a silent "
            r"baseline; what is already in it is recorded as seen and nothing is sent for it",
            text,
        ), text
        # Restarted once the feed has its baseline: no feed is new any more.
        assert wait_until(lambda: feed_server.hits("/news") >= 2), daemon.log_text()
        assert daemon.signal(signal.SIGTERM) == 0
        daemon.start()
        assert daemon.started(), daemon.log_text()
        assert " feeds=1 new=0: " in daemon.log_text()
        assert daemon.signal(signal.SIGTERM) == 0
        assert secret not in daemon.log_text()
    finally:
        daemon.stop()


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


# SQLite only: muting is config; PostgreSQL changes nothing in these seconds of real polls.
def test_enabled_false_mutes_a_feed_a_rule_and_a_notifier_and_sighup_applies_it(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path
) -> None:
    second = Receiver()  # the muted notifier's endpoint: must hear nothing while muted
    try:
        news, quiet = Story(), Story()
        news.add(1, "Weather")
        quiet.add(1, "Weather")
        feed_server.routes["/news"] = news_route = Route(news.body())
        feed_server.routes["/quiet"] = quiet_route = Route(quiet.body())
        config = tmp_path / "config.yaml"
        text = f"""\
state: {tmp_path / "w.db"}
allow_private_networks: true
feeds:
  - {{name: news, url: "{feed_server.url("/news")}", interval: 1s}}
  - {{name: quiet, url: "{feed_server.url("/quiet")}", interval: 1s, enabled: false}}
rules:
  - {{name: kharkiv, keywords: [Kharkiv]}}
  - {{name: odesa, keywords: [Odesa], enabled: false}}
notifiers:
  hook: "{receiver.url}"
  pager: {{url: "{second.url}", enabled: false}}
"""
        config.write_text(text)
        check = _cli(config, "check")
        assert check.returncode == 0
        assert check.stdout.endswith(
            "2 feeds (1 muted), 2 rules (1 muted), 0 entities, 2 notifiers (1 muted)\n"
        )
        daemon = Daemon(config, tmp_path / "daemon.log")
        daemon.start()
        try:
            assert daemon.started(), daemon.log_text()
            assert wait_until(lambda: feed_server.hits("/news") >= 2)
            news.add(2, "Kharkiv and Odesa")
            news_route.body = news.body()
            assert [m["title"] for m in receiver.wait_for(1)] == ["[kharkiv] Kharkiv and Odesa"]
            polled = feed_server.hits("/news")
            assert wait_until(lambda: feed_server.hits("/news") >= polled + 2)
            assert feed_server.hits("/quiet") == 0 and second.messages == []
            assert len(receiver.messages) == 1  # the muted rule added nothing
            feeds = _cli(config, "feeds").stdout
            assert "quiet" in feeds and "muted (enabled: false)" in feeds
            assert "(0 failing, 1 muted)" in _cli(config, "status").stdout

            # Unmute everything and reload: the feed gets its silent baseline, then alerts;
            # the rule and the notifier work again.
            config.write_text(text.replace(", enabled: false", ""))
            daemon.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
            assert wait_until(lambda: feed_server.hits("/quiet") >= 2), daemon.log_text()
            quiet.add(2, "Odesa port reopens")
            quiet_route.body = quiet.body()
            assert [m["title"] for m in second.wait_for(1)] == ["[odesa] Odesa port reopens"]
            assert "[odesa] Odesa port reopens" in [m["title"] for m in receiver.wait_for(2)]
            assert daemon.signal(signal.SIGTERM) == 0
        finally:
            daemon.stop()
    finally:
        second.close()


def test_status_says_whether_the_daemon_runs_and_flags_overdue_feeds(
    feed_server: FeedServer, tmp_path: Path, state_db: str | Path
) -> None:
    story = Story()
    story.add(1, "Weather")
    feed_server.routes["/news"] = Route(story.body())
    db = state_db
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {db}\nallow_private_networks: true\n"
        f"feeds:\n  - {{name: news, url: '{feed_server.url('/news')}', interval: 1s}}\n"
    )
    assert "never run" in _cli(config, "status").stdout
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        assert daemon.started(), daemon.log_text()
        assert wait_until(lambda: feed_server.hits("/news") >= 2)
        out = _cli(config, "status").stdout
        pid = daemon.proc.pid  # type: ignore[union-attr]
        assert out.startswith(f"daemon: running on {socket.gethostname()} (pid {pid}, watcher ")
        assert "overdue" not in out

        # The daemon wedges (SIGSTOP): its record goes stale. Aged in the database rather
        # than waited for: 3 minutes without a heartbeat, and a poll over 10 minutes late.
        daemon.freeze(db)
        long_ago = (datetime.now(UTC) - timedelta(minutes=10, seconds=30)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )  # half a minute from either side of a whole one: "10m" however slow the machine
        state_sql(db, "UPDATE feeds SET next_poll_at = :at", at=long_ago)
        out = _cli(config, "status").stdout
        assert "(overdue 10m)" in out  # the heartbeat is fresh: it runs, and this feed is late
        stale = (datetime.now(UTC) - timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M:%S")
        state_sql(db, "UPDATE daemons SET heartbeat_at = :at", at=stale)
        out = _cli(config, "status").stdout
        assert out.startswith("daemon: not running (no heartbeat since ")
        assert f"pid {pid})" in out.splitlines()[0]
        daemon.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        assert daemon.signal(signal.SIGTERM) == 0
        assert _cli(config, "status").stdout.startswith("daemon: not running (stopped ")
    finally:
        daemon.stop()


def test_a_second_daemon_on_one_sqlite_state_exits_saying_who_holds_it(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path
) -> None:
    """SQLite alone: the lock is what a SQLite state has and a PostgreSQL one does not
    (there, several daemons share the state: see the PostgreSQL SIGKILL test)."""
    story = Story()
    story.add(1, "Weather")
    feed_server.routes["/news"] = route = Route(story.body())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {tmp_path / 'w.db'}\nallow_private_networks: true\n"
        f"feeds:\n  - {{name: news, url: '{feed_server.url('/news')}', interval: 1s}}\n"
        f'{MATCH_RULES}notifiers:\n  hook: "{receiver.url}"\n'
    )
    first = Daemon(config, tmp_path / "first.log")
    second = Daemon(config, tmp_path / "second.log")
    first.start()
    try:
        assert first.started(), first.log_text()
        assert wait_until(lambda: feed_server.hits("/news") >= 2)
        second.start()
        assert second.proc is not None
        assert second.proc.wait(timeout=60) == 1
        said = second.log_text()
        pid = first.proc.pid  # type: ignore[union-attr]
        assert f"is in use by another watcher (pid {pid} on {socket.gethostname()}, since " in said
        assert "stop that one first" in said and "use a PostgreSQL state" in said
        assert "Traceback" not in said

        # Nothing twice: only the first daemon polls and delivers.
        story.add(2, "Kharkiv: one alert, from one daemon")
        route.body = story.body()
        assert len(receiver.wait_for(1)) == 1
        polled = feed_server.hits("/news")
        assert wait_until(lambda: feed_server.hits("/news") >= polled + 3)
        assert receiver.titles() == ["[kharkiv] Kharkiv: one alert, from one daemon"]

        # A SIGKILLed daemon leaves no stale lock: the next one starts at once.
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
        second.start()
        assert second.started(), second.log_text()
        story.add(3, "Kharkiv: after the takeover")
        route.body = story.body()
        assert len(receiver.wait_for(2)) == 2, second.log_text()
        assert second.signal(signal.SIGTERM) == 0
    finally:
        first.stop()
        second.stop()
    assert receiver.titles() == [
        "[kharkiv] Kharkiv: one alert, from one daemon",
        "[kharkiv] Kharkiv: after the takeover",
    ]


def test_a_restarted_daemon_polls_only_what_is_due_and_an_overdue_feed_at_once(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """SQLite alone: the schedule is the same rows and queries on PostgreSQL (the store
    and pipeline suites run there), and this test ages them with SQLite's date functions.
    The 10 s without a fetch is the promise itself (issue 16), not a wait for something."""
    fleet = 50
    for n in range(fleet):
        story = Story()
        story.add(n, f"Story {n}")
        feed_server.routes[f"/f{n}"] = Route(story.body())
    feed_server.routes["/late"] = Route(Story().body())
    listed = "".join(
        f"  - {{name: f{n}, url: '{feed_server.url(f'/f{n}')}', interval: 1h}}\n"
        for n in range(fleet)
    )
    db = tmp_path / "w.db"
    config = tmp_path / "config.yaml"
    config.write_text(f"state: {db}\nallow_private_networks: true\nfeeds:\n{listed}")
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        assert wait_until(lambda: all(feed_server.hits(f"/f{n}") == 1 for n in range(fleet)))
        assert daemon.signal(signal.SIGTERM) == 0
        # A minute later (aged in the database rather than waited for) the daemon restarts,
        # and one feed more is in the config. What was polled a minute ago is not due.
        conn = sqlite3.connect(db)
        conn.execute(
            "UPDATE feeds SET last_poll_at = datetime(last_poll_at, '-60 seconds'), "
            "next_poll_at = datetime(next_poll_at, '-60 seconds')"
        )
        conn.commit()
        conn.close()
        config.write_text(
            config.read_text()
            + f"  - {{name: late, url: '{feed_server.url('/late')}', interval: 10m}}\n"
        )
        before = len(feed_server.requests)
        daemon.start()
        assert daemon.started(), daemon.log_text()
        assert wait_until(lambda: feed_server.hits("/late") == 1)  # new: due at once
        time.sleep(10)
        assert len(feed_server.requests) - before == 1  # no burst: nothing else was due
        assert daemon.signal(signal.SIGTERM) == 0

        # Overdue by more than its interval (down for two hours): polled at once.
        conn = sqlite3.connect(db)
        conn.execute("UPDATE feeds SET next_poll_at = datetime('now', '-1 hour') WHERE name = 'f7'")
        conn.commit()
        conn.close()
        daemon.start()
        assert daemon.started(), daemon.log_text()
        assert wait_until(lambda: feed_server.hits("/f7") == 2, 10), daemon.log_text()
        assert all(feed_server.hits(f"/f{n}") == 1 for n in range(fleet) if n != 7)
        assert daemon.signal(signal.SIGTERM) == 0
    finally:
        daemon.stop()


# -- PostgreSQL: a dead daemon's claims are free at once -------------------------------------


def test_a_daemon_killed_mid_delivery_on_postgresql_leaves_its_alert_to_the_other_at_once(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path, postgres_url: str
) -> None:
    """Two daemons share a PostgreSQL state. The first is SIGKILLed while its send is in
    flight: the second sees its node lock free and sends the alert at once, not when the
    claim's lease or the alert's retry time runs out (both set far away here)."""
    story = Story()
    story.add(1, "Kharkiv: already there before watcher started")
    feed_server.routes["/news"] = route = Route(story.body())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
state: {postgres_url}
allow_private_networks: true
delivery: {{retry: 30m}}
feeds:
  - {{name: news, url: "{feed_server.url("/news")}", interval: 1s}}
{MATCH_RULES}notifiers:
  hook: {{url: "{receiver.url}?rto=300", timeout: 10m}}
"""
    )
    first = Daemon(config, tmp_path / "first.log")
    second = Daemon(config, tmp_path / "second.log")
    try:
        first.start()
        assert wait_until(lambda: feed_server.hits("/news") >= 2), first.log_text()
        receiver.delay = 120.0  # the service takes the message and is slow to say so
        story.add(2, "Kharkiv: sent by a daemon that dies before it hears back")
        route.body = story.body()
        assert len(receiver.wait_for(1)) == 1, first.log_text()
        assert first.proc is not None
        node = f"{socket.gethostname()}:{first.proc.pid}"
        ((holder, lease_until, retry_at),) = state_sql(
            postgres_url, "SELECT claimed_by, lease_until, next_attempt_at FROM alerts"
        )
        assert holder == node

        # While the first daemon lives, the second leaves its claim alone, through its
        # start and through the looks at who lives that follow (one every few seconds).
        second.start()
        assert second.started(), second.log_text()
        polled = feed_server.hits("/news")
        assert wait_until(lambda: feed_server.hits("/news") >= polled + 8, 30), second.log_text()
        assert state_sql(postgres_url, "SELECT claimed_by FROM alerts") == [(node,)]
        assert len(receiver.messages) == 1

        receiver.delay = 0.0
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
        assert len(receiver.wait_for(2, timeout=60)) == 2, second.log_text()
        arrived = datetime.now(UTC).replace(tzinfo=None)  # the state's times are naive UTC
        assert arrived < lease_until and arrived < retry_at
        assert re.search(
            rf"claims of a stopped daemon released count=\d+ nodes={re.escape(node)}\n",
            second.log_text(),
        ), second.log_text()
        # Sent twice in all: the one duplicate of the crash window, and never again.
        polled = feed_server.hits("/news")
        assert wait_until(lambda: feed_server.hits("/news") >= polled + 3)
        assert (
            receiver.titles()
            == ["[kharkiv] Kharkiv: sent by a daemon that dies before it hears back"] * 2
        )
        assert state_sql(postgres_url, "SELECT status, claimed_by FROM alerts") == [("sent", None)]
        assert second.signal(signal.SIGTERM) == 0
    finally:
        first.stop()
        second.stop()


def _lock_session(postgres: PostgresServer, node: str) -> int:
    """The server process whose session holds ``node``'s lock."""
    key = node_key(node) & (2**64 - 1)
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s::oid AND objid = %s::oid AND objsubid = 1",
            (key >> 32, key & (2**32 - 1)),
        ).fetchone()
    assert row is not None, f"nobody holds the lock of {node}"
    return int(row[0])


def test_a_live_nodes_claims_are_kept_and_a_dead_ones_are_free_at_once(
    postgres: PostgresServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two stores on one PostgreSQL database, as two daemons would have them: "a" holds
    its node lock, "gone" claimed and holds none (its process died)."""
    live, other = Store.open(postgres_url), Store.open(postgres_url)
    try:
        live.hold_node("a")
        other.hold_node("b")
        now = other.now()
        assert now.tzinfo is UTC
        later = now + timedelta(hours=1)
        live.sync_feeds([("f", "http://x/f"), ("g", "http://x/g")], now)
        live.commit_poll(
            PollDecision(
                "h",
                "http://x/h",
                now,
                baselined=True,
                alerts=[
                    Alert("h", item, "ops", ("r",), f"[r] {item}", "body", "http://x")
                    for item in ("1", "2")
                ],
            )
        )
        first, second = sorted(a.id for a in live.pending_alerts())
        for node, feed, alert in (("a", "f", first), ("gone", "g", second)):
            assert live.claim_poll(feed, node=node, now=now, until=later)
            assert live.claim([alert], retry_at=later, node=node, now=now, until=later)

        # Only the dead node's claims are freed; its alert is due at once.
        assert other.release_dead_claims(keep="b", now=other.now()) == (["gone"], 2)
        assert state_sql(postgres_url, "SELECT name, claimed_by FROM feeds ORDER BY name") == [
            ("f", "a"),
            ("g", None),
            ("h", None),
        ]
        assert [a.id for a in other.pending_alerts(other.now())] == [second]
        assert not other.claim_poll("f", node="b", now=other.now(), until=later)
        assert not other.claim([first], retry_at=later, node="b", now=other.now(), until=later)
        assert other.release_dead_claims(keep="b", now=other.now()) == ([], 0)

        # The connection that holds "a"'s lock drops: "a" connects again, takes its lock
        # again and says so; its claims stay.
        caplog.set_level("WARNING", logger="watcher")
        with postgres.admin() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (_lock_session(postgres, "a"),))
        assert live.release_dead_claims(keep="a", now=live.now()) == ([], 0)
        assert "node lock dropped; connected again and took the lock again (node a)" in (
            caplog.text
        )
        assert other.release_dead_claims(keep="b", now=other.now()) == ([], 0)

        # "a" stops: its claims are free at once.
        live.close()
        assert other.release_dead_claims(keep="b", now=other.now()) == (["a"], 2)
        assert {a.id for a in other.pending_alerts(other.now())} == {first, second}
    finally:
        live.close()
        other.close()


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_a_sigkilled_daemon_leaves_no_parse_worker_behind(  # about processes: SQLite alone
    feed_server: FeedServer, tmp_path: Path
) -> None:
    story = Story()
    for n in range(60):  # over the size a worker parses, so the pool starts
        story.add(n, f"Story {n}", "A long paragraph about the city. " * 20)
    feed_server.routes["/news"] = Route(story.body())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {tmp_path / 'w.db'}\nallow_private_networks: true\nparse_processes: 2\n"
        f"feeds:\n  - {{name: news, url: '{feed_server.url('/news')}', interval: 1s}}\n"
    )
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        assert wait_until(lambda: "status=baseline" in daemon.log_text()), daemon.log_text()
        assert wait_until(lambda: len(_descendants(pid)) >= 2)  # the forkserver and workers
        left = _descendants(pid)
        assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
        assert wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in left), 15), left
    finally:
        daemon.stop()

"""Cluster mode (watcher/cluster.py) on a real PostgreSQL: the queue's schema, the traps
of procrastinate the design keeps away from, and politeness shared by the nodes.

The end-to-end proofs (three nodes SIGKILLed at random, a database outage) are in
tests/test_cluster_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from support import Daemon, FeedServer, Receiver, Route, Story, state_sql, wait_until

from watcher.cluster import (
    Cluster,
    HostSlots,
    conninfo,
    migrate_queue,
    prune_jobs,
    queue_schema_version,
    queue_stats,
)
from watcher.config import load_config
from watcher.daemon import Daemon as Watcher
from watcher.exceptions import StoreError
from watcher.store import Store

DATA = Path(__file__).parent / "data" / "cluster"
T = TypeVar("T")


def _config(tmp_path: Path, state: str, feeds: dict[str, str], extra: str = "") -> Path:
    lines = "".join(
        f"  - {{name: {name}, url: '{url}', interval: 2s}}\n" for name, url in feeds.items()
    )
    path = tmp_path / "config.yaml"
    path.write_text(
        f"state: {state}\nallow_private_networks: true\n{extra}feeds:\n{lines}"
        "rules:\n  - {name: any, keywords: [Kharkiv]}\n"
    )
    return path


@pytest.fixture
def node(tmp_path: Path, postgres_url: str, feed_server: FeedServer) -> Iterator[Watcher]:
    """A node of a cluster, in this process, not running: its jobs are called by hand."""
    story = Story()
    story.add(1, "Kharkiv: the first item")
    feed_server.routes["/a"] = Route(story.body())
    watcher = Watcher(load_config(_config(tmp_path, postgres_url, {"a": feed_server.url("/a")})))
    yield watcher
    if watcher.cluster is not None:
        watcher.cluster.slots.close()
    watcher.store.close()


def _in_app(cluster: Cluster, work: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        async with cluster.app.open_async():
            return await work()

    return asyncio.run(run())


def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


# -- the queue's schema ---------------------------------------------------------------


def test_nodes_starting_together_create_the_queue_schema_once(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    results: list[str | None] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        start.wait()
        results.append(migrate_queue(store.engine))

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    version = queue_schema_version()
    assert sorted(results, key=str) == [None, None, None, f"queue schema created ({version})"]
    assert state_sql(postgres_url, "SELECT migration FROM watcher_queue_schema") == [(version,)]
    assert _sql(postgres_url, "SELECT to_regclass('procrastinate_jobs')::text") == [
        ("procrastinate_jobs",)
    ]


def test_a_queue_from_an_older_procrastinate_is_migrated_and_works(
    postgres_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    """A queue written by procrastinate 3.0.2 (its schema.sql, kept in tests/data) is
    brought to this version by procrastinate's own migration scripts, in order."""
    store = Store.open(postgres_url)
    with psycopg.connect(conninfo(postgres_url), autocommit=True) as conn:
        conn.execute((DATA / "procrastinate-3.0.2-schema.sql").read_bytes())
        conn.execute(
            "CREATE TABLE watcher_queue_schema (migration TEXT NOT NULL);"
            "INSERT INTO watcher_queue_schema VALUES ('03.00.00_50_post_cancel_notification')"
        )
    done = migrate_queue(store.engine)
    store.close()
    assert done is not None
    assert done.startswith("queue schema migrated from 03.00.00_50_post_cancel_notification to ")
    assert migrate_queue(Store.open(postgres_url).engine) is None  # once is enough
    # The migrated queue runs a node: a feed is polled through it.
    feed_server.routes["/a"] = Route(Story().body())
    config = _config(tmp_path, postgres_url, {"a": feed_server.url("/a")})
    daemon = Daemon(config, tmp_path / "node.log")
    daemon.start()
    try:
        assert daemon.started()
        assert wait_until(lambda: feed_server.hits("/a") >= 1), daemon.log_text()
    finally:
        daemon.stop()
    # A heartbeat column added by 03.01.00: the migrated workers table has it.
    columns = _sql(
        postgres_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'procrastinate_workers' ORDER BY column_name",
    )
    assert ("last_heartbeat",) in columns


def test_a_queue_schema_newer_than_this_procrastinate_is_refused(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    migrate_queue(store.engine)
    _sql(postgres_url, "UPDATE watcher_queue_schema SET migration = '99.00.00_01_future'")
    with pytest.raises(StoreError, match="newer than this watcher's procrastinate"):
        migrate_queue(store.engine)
    store.close()


def test_a_queue_created_by_procrastinates_own_command_is_adopted(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    migrate_queue(store.engine)
    _sql(postgres_url, "DROP TABLE watcher_queue_schema")
    assert migrate_queue(store.engine) == f"queue schema adopted ({queue_schema_version()})"
    assert migrate_queue(store.engine) is None
    store.close()


# -- procrastinate's traps --------------------------------------------------------------


def test_jobs_of_a_dead_worker_and_of_a_pruned_one_are_failed_and_dispatch_goes_on(
    node: Watcher, postgres_url: str
) -> None:
    """#1408: a stalled job (here a dispatch) must not stop recovery or the next dispatch;
    #1518: a job whose worker row was pruned (worker_id NULL) is stalled too. A job of a
    live worker is left alone."""
    cluster = node.cluster
    assert cluster is not None
    node.store.sync_feeds([("a", "http://127.0.0.1/a")], node.store.now())
    [(dead,)] = _sql(
        postgres_url,
        "INSERT INTO procrastinate_workers (last_heartbeat) "
        "VALUES (now() - interval '10 minutes') RETURNING id",
    )
    [(live,)] = _sql(postgres_url, "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")

    def job(task: str, args: str, worker: str, lock: str | None = None) -> int:
        queue = "watcher-poll" if task == "watcher.poll" else "watcher-dispatch"
        lock_sql = "NULL" if lock is None else f"'{lock}'"
        [(job_id,)] = _sql(
            postgres_url,
            "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args, "
            f"status, worker_id) VALUES ('{queue}', '{task}', {lock_sql}, '{args}', 'doing', "
            f"{worker}) RETURNING id",
        )
        return int(job_id)

    stalled_dispatch = job("watcher.dispatch", '{"timestamp": 1}', str(dead))
    orphan_poll = job("watcher.poll", '{"feed": "a"}', "NULL", "watcher:poll:a")
    running = job("watcher.poll", '{"feed": "b"}', str(live), "watcher:poll:b")

    failed = _in_app(cluster, cluster.recover)
    assert sorted(failed) == sorted([stalled_dispatch, orphan_poll])
    statuses = dict(_sql(postgres_url, "SELECT id, status::text FROM procrastinate_jobs"))
    assert statuses[stalled_dispatch] == "failed"
    assert statuses[orphan_poll] == "failed"
    assert statuses[running] == "doing"
    # The next dispatch hands feed a out again, whatever the queue held for it.
    _in_app(cluster, cluster.dispatch)
    waiting = _sql(
        postgres_url,
        "SELECT task_name, args->>'feed' FROM procrastinate_jobs WHERE status = 'todo'",
    )
    assert waiting == [("watcher.poll", "a")]


def test_a_job_scheduled_in_the_future_does_not_keep_a_due_feed_waiting(
    tmp_path: Path, postgres_url: str, feed_server: FeedServer
) -> None:
    """#1599: a waiting job scheduled an hour ahead holds the feed's queueing lock; the
    dispatcher brings it forward, so the due feed is polled now, not in an hour."""
    feed_server.routes["/a"] = Route(Story().body())
    config = _config(tmp_path, postgres_url, {"a": feed_server.url("/a")})
    store = Store.open(postgres_url)
    migrate_queue(store.engine)
    store.close()
    _sql(
        postgres_url,
        "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args, "
        "status, scheduled_at) VALUES ('watcher-poll', 'watcher.poll', 'watcher:poll:a', "
        "'{\"feed\": \"a\"}', 'todo', now() + interval '1 hour')",
    )
    daemon = Daemon(config, tmp_path / "node.log")
    daemon.start()
    try:
        assert daemon.started()
        assert wait_until(lambda: feed_server.hits("/a") >= 1, 15), daemon.log_text()
    finally:
        daemon.stop()
    assert _sql(
        postgres_url, "SELECT count(*) FROM procrastinate_jobs WHERE scheduled_at > now()"
    ) == [(0,)]


def test_a_poll_job_for_a_feed_another_node_polls_does_nothing(
    node: Watcher, feed_server: FeedServer
) -> None:
    """The queue may hand out a feed twice (a retried job, two dispatches): the claim
    decides, so only one of the two polls."""
    store = node.store
    store.sync_feeds([("a", feed_server.url("/a"))], store.now())
    now = store.now()
    from datetime import timedelta

    assert store.claim_poll("a", node="other:1", now=now, until=now + timedelta(minutes=5))
    lags: list[float] = []
    assert node.poll_job("a", lags.append) is False
    assert feed_server.hits("/a") == 0
    store.release_claims_of(["other:1"], now=now)
    assert node.poll_job("a", lags.append) is True
    assert feed_server.hits("/a") == 1
    assert node.poll_job("a", lags.append) is False  # polled: not due again yet
    assert feed_server.hits("/a") == 1
    assert len(lags) == 1


# -- politeness across nodes ------------------------------------------------------------


def test_host_slots_are_shared_by_sessions_and_freed_when_one_dies(postgres_url: str) -> None:
    Store.open(postgres_url).close()
    info = conninfo(postgres_url)
    first = HostSlots(info, per_host=2, name="test")
    second = HostSlots(info, per_host=2, name="test")
    third_has_it = threading.Event()
    try:
        with first.hold("example.org"), second.hold("example.org"):
            waiter = threading.Thread(
                target=lambda: _hold_then(second, "example.org", third_has_it.set)
            )
            waiter.start()
            assert not third_has_it.wait(1.0)  # both slots taken: it waits
            # One session per node holds all its slots: two here, the waiter's included.
            with psycopg.connect(info, autocommit=True) as admin:
                sessions = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'watcher host slots'"
                ).fetchone()
            assert sessions == (2,)
            # The holder's session dies (a node SIGKILLed): its slot is free at once.
            with psycopg.connect(info, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
                    "AND pid IN (SELECT pid FROM pg_stat_activity "
                    "WHERE application_name = 'watcher host slots') LIMIT 1"
                )
            assert third_has_it.wait(10)
            waiter.join(10)
        with first.hold("other.example") as slot:  # another host has slots of its own
            assert slot in (0, 1)
    finally:
        first.close()
        second.close()


def _hold_then(slots: HostSlots, host: str, then: Callable[[], None]) -> None:
    with slots.hold(host):
        then()


def test_two_nodes_share_max_per_host_and_poll_each_feed_once_per_interval(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two nodes, each allowed 2 connections to a host: together they send at most 2 at
    once (not 4), and each feed is polled once per interval, not once per node."""
    server = FeedServer()
    lock = threading.Lock()
    in_flight = [0]
    peak = [0]
    body = Story().body()

    def slow(handler: BaseHTTPRequestHandler) -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            time.sleep(0.3)
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        finally:
            with lock:
                in_flight[0] -= 1

    names = [f"f{i}" for i in range(8)]
    for name in names:
        server.routes[f"/{name}"] = Route(handler=slow)
    config = _config(
        tmp_path,
        postgres_url,
        {name: server.url(f"/{name}") for name in names},
        extra="fetch: {max_per_host: 2, max_connections: 8}\n",
    )
    nodes = [Daemon(config, tmp_path / f"node{i}.log") for i in range(2)]
    try:
        for daemon in nodes:
            daemon.start()
        for daemon in nodes:
            assert daemon.started()
        assert wait_until(lambda: all(server.hits(f"/{n}") >= 1 for n in names), 30)
        began = time.monotonic()
        counts = {n: server.hits(f"/{n}") for n in names}
        time.sleep(10)
        elapsed = time.monotonic() - began
        polled = {n: server.hits(f"/{n}") - counts[n] for n in names}
    finally:
        for daemon in nodes:
            daemon.stop()
        server.close()
    assert peak[0] == 2, f"at most 2 requests at once to the host, and both slots used: {peak}"
    # Each feed is due every 2 s: once per interval (+1 for the edges), never per node.
    assert all(count <= elapsed / 2 + 1 for count in polled.values()), polled
    logs = [daemon.log_text() for daemon in nodes]
    assert all("poll feed=" in text for text in logs), "both nodes polled"


def test_queue_stats_and_the_daily_pruning_of_finished_jobs(
    node: Watcher, postgres_url: str
) -> None:
    def add(status: str, age: str) -> None:
        [(job,)] = _sql(
            postgres_url,
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
            f"VALUES ('watcher-poll', 'watcher.poll', '{{}}', '{status}') RETURNING id",
        )
        _sql(
            postgres_url,
            "INSERT INTO procrastinate_events (job_id, type, at) "
            f"VALUES ({job}, 'deferred', now() - interval '{age}')",
        )

    add("failed", "2 days")
    add("failed", "1 hour")
    add("todo", "3 days")
    stats = queue_stats(node.store, stall_timeout=60)
    assert (stats.waiting, stats.running, stats.stalled, stats.failed) == (1, 0, 0, 2)
    assert prune_jobs(node.store) == 1  # the old failed one; waiting work is never pruned
    assert queue_stats(node.store, stall_timeout=60).failed == 1


def test_every_session_of_a_node_asks_the_server_to_notice_a_lost_node_soon(
    node: Watcher,
) -> None:
    """A node cut off from the network must lose its node lock and host slots in seconds
    (TCP keepalive), not after the system's default of two hours: the store's sessions,
    the host slots' and the queue's."""
    from sqlalchemy import text

    cluster = node.cluster
    assert cluster is not None
    with node.store.engine.connect() as conn:
        assert conn.execute(text("SHOW tcp_keepalives_idle")).scalar() == "10"
    row = cluster.slots._connection().execute("SHOW tcp_keepalives_idle").fetchone()
    assert row is not None and row[0] == "10"

    async def queue_setting() -> object:
        row = await cluster.app.connector.execute_query_one_async("SHOW tcp_keepalives_count")
        return row["tcp_keepalives_count"]

    assert _in_app(cluster, queue_setting) == "3"


# -- delivery across nodes --------------------------------------------------------------


def test_two_nodes_keep_a_notifiers_hourly_budget_and_order_and_report_the_queue(
    tmp_path: Path, postgres_url: str, feed_server: FeedServer, receiver: Receiver
) -> None:
    """max_per_hour is the notifier's, not each node's: of 8 alerts, 3 go out (the first
    three of the outbox, in its order), whichever node delivers; the other 5 wait, held, none dropped.
    A notifier that fails every send delays no other. Each node's metrics show the queue
    and the dispatch lag."""
    down = Receiver()
    down.status = 500
    story = Story()
    story.add(0, "Kharkiv before the start")
    feed_server.routes["/news"] = Route(story.body())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {postgres_url}\nallow_private_networks: true\n"
        f"feeds:\n  - {{name: news, url: '{feed_server.url('/news')}', interval: 1s}}\n"
        "rules:\n  - {name: any, keywords: [Kharkiv]}\n"
        f"notifiers:\n  hook: {{url: '{receiver.url}', max_per_hour: 3}}\n"
        f"  down: {{url: '{down.url}'}}\n"
    )
    ports = [_free_port(), _free_port()]
    nodes = [Daemon(config, tmp_path / f"node{i}.log") for i in range(2)]
    for daemon, port in zip(nodes, ports, strict=True):
        daemon.extra = ["--metrics-port", str(port)]
    try:
        for daemon in nodes:
            daemon.start()
        assert wait_until(lambda: feed_server.hits("/news") >= 2, 30)
        for n in range(1, 9):
            story.add(n, f"Kharkiv update {n}")
        feed_server.routes["/news"].body = story.body()
        assert len(receiver.wait_for(3, timeout=30)) == 3
        time.sleep(5)  # both nodes deliver on: nothing beyond the budget may go out
        titles = receiver.titles()
        outbox = state_sql(
            postgres_url, "SELECT title, status FROM alerts WHERE notifier = 'hook' ORDER BY id"
        )
        failing = state_sql(
            postgres_url, "SELECT status, count(*) FROM alerts WHERE notifier = 'down' GROUP BY 1"
        )

        def scrape(port: int) -> str:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

        texts = [scrape(port) for port in ports]
    finally:
        for daemon in nodes:
            daemon.stop()
        down.close()
    assert down.attempts >= 1  # tried, failing, while hook's alerts went out
    assert failing == [("pending", 8)]  # kept for their retries, none dropped
    # The outbox's order (the feed's: newest first), the first three sent, the rest held.
    assert [status for _, status in outbox] == ["sent"] * 3 + ["pending"] * 5, outbox
    assert titles == [title for title, _ in outbox[:3]], titles
    assert all('watcher_queue_jobs{state="waiting"}' in text for text in texts)
    lags = [_metric(text, "watcher_dispatch_lag_seconds_count") for text in texts]
    assert sum(lags) >= feed_server.hits("/news") - 2, lags  # every poll (but the last)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_without_procrastinate_says_what_to_install(tmp_path: Path, postgres_url: str) -> None:
    shadow = tmp_path / "shadow" / "procrastinate"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError(\"No module named 'procrastinate'\", name='procrastinate')\n"
    )
    done = _run_once(tmp_path, postgres_url, env={"PYTHONPATH": str(shadow.parent)})
    assert "procrastinate, which is missing (procrastinate)" in done.stderr
    assert "pip install 'watcher[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_queue_schema_that_cannot_be_created_stops_the_node_with_the_servers_reason(
    tmp_path: Path, postgres_url: str
) -> None:
    Store.open(postgres_url).close()
    _sql(postgres_url, "CREATE TYPE procrastinate_job_status AS ENUM ('other')")  # in the way
    done = _run_once(tmp_path, postgres_url)
    assert "error: state database postgresql" in done.stderr
    assert 'type "procrastinate_job_status" already exists' in done.stderr
    assert "Traceback" not in done.stderr
    assert _sql(postgres_url, "SELECT to_regclass('procrastinate_jobs')") == [(None,)]


def test_one_dispatch_at_a_time_in_the_cluster_and_a_waiting_job_is_kept(
    node: Watcher, postgres_url: str
) -> None:
    """A slow dispatch and the next tick's (on another node) must not both hand out the
    same due feeds: the dispatch holds a cluster-wide lock; and a feed with a job waiting
    keeps it (one statement, no error, no second job)."""
    from watcher.cluster import DISPATCH_KEY

    cluster = node.cluster
    assert cluster is not None
    node.store.sync_feeds([("a", "http://127.0.0.1/a")], node.store.now())
    with psycopg.connect(conninfo(postgres_url)) as other:  # another node, mid-dispatch
        other.execute("SELECT pg_advisory_xact_lock(%s)", (DISPATCH_KEY,))
        assert cluster.dispatch_now() == 0
        assert _sql(postgres_url, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]
    assert cluster.dispatch_now() == 1
    assert cluster.dispatch_now() == 0  # its job still waits: kept, not doubled
    assert _sql(
        postgres_url, "SELECT task_name, queueing_lock, status::text FROM procrastinate_jobs"
    ) == [("watcher.poll", "watcher:poll:a", "todo")]


def _run_once(
    tmp_path: Path, state: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`watcher run` that is expected to stop at start with exit status 1."""
    config = _config(tmp_path, state, {"a": "http://127.0.0.1:9/a"})
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 1, done.stderr
    return done

"""Operating a cluster (several `watcher run` on one PostgreSQL state), as an operator
meets it: `watcher migrate` creates the job queue's schema, `watcher status` shows each
node, the queue and the feed furthest past its time, and nodes whose configs differ are
flagged by status and logged by the nodes, while a feed only one of them knows waits.

Every test here is about PostgreSQL: a SQLite state has no cluster (its status output is
in test_daemon.py and test_state.py, unchanged).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pgserver import PostgresServer
from support import Daemon, FeedServer, Route, Story, state_sql, wait_until

from watcher._version import __version__
from watcher.cli import cli
from watcher.cluster import migrate_queue, queue_schema_version
from watcher.config import load_config
from watcher.store import DaemonRecord, Store
from watcher.store.upgrade import head


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def queue_table(url: str) -> object:
    return state_sql(url, "SELECT to_regclass('procrastinate_jobs')")[0][0]


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


# -- watcher migrate -----------------------------------------------------------------------


def test_migrate_creates_the_queue_schema_once_and_a_node_then_migrates_nothing(
    postgres_url: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.routes["/news"] = Route(Story().body())
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state: {postgres_url}\nallow_private_networks: true\n"
        f"feeds:\n  - {{name: news, url: '{feed_server.url('/news')}', interval: 1s}}\n"
    )
    name, version = load_config(config).state_name, queue_schema_version()
    assert queue_table(postgres_url) is None

    first = invoke("migrate", "-c", str(config))
    assert (first.exit_code, first.stdout.splitlines()) == (
        0,
        [
            f"state {name} created at revision {head()}",
            f"queue schema created ({version}) on {name}",
        ],
    )
    assert queue_table(postgres_url) == "procrastinate_jobs"

    again = invoke("migrate", "-c", str(config))
    assert (again.exit_code, again.stdout.splitlines()) == (
        0,
        [
            f"state {name} at revision {head()}; nothing to do",
            f"queue schema ({version}) on {name}; nothing to do",
        ],
    )

    # A node started after `watcher migrate` finds both schemas current: it says nothing
    # about either, and runs.
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        assert daemon.started(), daemon.log_text()
        assert wait_until(lambda: feed_server.hits("/news") >= 2), daemon.log_text()
        assert daemon.signal(signal.SIGTERM) == 0
    finally:
        daemon.stop()
    log = daemon.log_text()
    assert "queue schema" not in log and "created at revision" not in log, log
    assert "upgraded from" not in log and "Traceback" not in log, log


# -- watcher status: the cluster view -----------------------------------------------------


@pytest.fixture
def nodes(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores that each hold a node lock, as two live daemons do."""
    first, second = Store.open(postgres_url), Store.open(postgres_url)
    first.hold_node("web1:101")
    second.hold_node("web2:202")
    yield first, second
    first.close()
    second.close()


def test_status_shows_each_node_the_queue_and_the_feed_furthest_past_its_time(
    postgres: PostgresServer, postgres_url: str, nodes: tuple[Store, Store], tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state: {postgres_url}\n"
        "feeds:\n"
        "  - {name: news, url: 'https://news.example.org/feed'}\n"
        "  - {name: quiet, url: 'https://quiet.example.org/feed'}\n"
        "  - {name: muted, url: 'https://muted.example.org/feed', enabled: false}\n"
    )
    digest = load_config(config).digest
    other = "0123456789abcdef"
    store, _ = nodes
    migrate_queue(store.engine)
    now = datetime.now(UTC).replace(microsecond=0)
    minute_ago, long_ago = now - timedelta(seconds=90), now - timedelta(minutes=10, seconds=30)
    for node, started, beat, config_digest in (
        ("web1:101", now - timedelta(hours=3), minute_ago, digest),  # alive, this config
        ("web2:202", now - timedelta(hours=2), long_ago, other),  # alive, silent, another config
        ("web3:303", now - timedelta(hours=4), minute_ago, other),  # gone: its lock is free
        ("web4:404", now - timedelta(hours=5), minute_ago, digest),  # stopped
        ("web5:505", now - timedelta(days=3), now - timedelta(days=2), digest),  # gone long ago
    ):
        host, pid = node.split(":")
        store.daemon_started(
            DaemonRecord(
                node, host, int(pid), __version__, started, beat, config_digest=config_digest
            )
        )
    store.daemon_stopped("web4:404", minute_ago)

    # The schedule: news 5 minutes late, quiet not due; a muted feed and one no longer in
    # the config are later still, and count for nothing.
    store.sync_feeds(
        [(n, f"https://{n}.example.org/feed") for n in ("news", "quiet", "muted", "removed")], now
    )
    for feed, due in (
        ("news", now - timedelta(minutes=5, seconds=30)),
        ("quiet", now + timedelta(hours=1)),
        ("muted", now - timedelta(hours=3)),
        ("removed", now - timedelta(days=2)),
    ):
        state_sql(
            postgres_url,
            "UPDATE feeds SET next_poll_at = :at WHERE name = :name",
            at=due.replace(tzinfo=None),
            name=feed,
        )

    # The queue: one job waiting (and one deferred to later, which does not wait yet), one
    # running on a live worker, one on a worker gone, and one failed.
    worker = state_sql(
        postgres_url, "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id"
    )[0][0]
    for status, worker_id, scheduled in (
        ("todo", None, None),
        ("todo", None, now + timedelta(hours=1)),
        ("doing", worker, None),
        ("doing", None, None),
        ("failed", None, None),
    ):
        state_sql(
            postgres_url,
            "INSERT INTO procrastinate_jobs (queue_name, task_name, status, worker_id, scheduled_at) "
            "VALUES ('watcher-poll', 'watcher.poll', CAST(:status AS procrastinate_job_status), :worker, :at)",
            status=status,
            worker=worker_id,
            at=scheduled,
        )

    # Status runs on a database that refuses every write: what it reads needs none.
    database = postgres_url.rsplit("/", 1)[1]
    with postgres.admin() as conn:
        conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    result = invoke("status", "-c", str(config))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"daemon: running on web1 (pid 101, watcher {__version__}) since "
        f"{when(now - timedelta(hours=3))}, last heartbeat 1m ago",
        f"state: PostgreSQL {postgres_url} (shared: 1 daemon running)",
        f"nodes (this config: {digest}):",
    ]
    table = lines[3:7]  # the latest heartbeat first
    assert [re.split(r"\s{2,}", row.strip()) for row in table] == [
        ["NODE", "VERSION", "STARTED", "LAST HEARTBEAT", "CONFIG", "STATE"],
        ["web1:101", __version__, when(now - timedelta(hours=3)), "1m ago", digest, "alive"],
        [
            "web3:303",
            __version__,
            when(now - timedelta(hours=4)),
            "1m ago",
            other,
            "gone (no stop recorded: killed, crashed or cut off)",
        ],
        [
            "web2:202",
            __version__,
            when(now - timedelta(hours=2)),
            "10m ago",
            other,
            "alive, no heartbeat for 10m, config differs",
        ],
    ]
    starts = [
        row.index(word)
        for row, word in zip(table, ["STATE", "alive", "gone", "alive,"], strict=True)
    ]
    assert len(set(starts)) == 1  # the columns line up
    assert lines[7:9] == [
        "queue: 1 waiting, 2 running (1 stalled), 1 failed",
        "furthest behind: news, 5m past due",
    ]
    assert lines[9].startswith("3 feeds (0 failing, 1 muted)")  # then the feeds, as before
    assert lines[10].split()[:2] == ["NAME", "STATUS"]


def test_status_before_any_node_ran_says_the_queue_is_not_there_and_creates_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    Store.open(postgres_url).close()  # watcher's own tables, as an older watcher left them
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state: {postgres_url}\nfeeds:\n  - {{name: news, url: 'https://x.example.org/'}}\n"
    )
    result = invoke("status", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:5] == [
        "daemon: never ran on this state",
        f"state: PostgreSQL {postgres_url} (shared: 0 daemons running)",
        "nodes: none alive",
        "queue: not created yet (no node has run on this state; `watcher run` or "
        "`watcher migrate` creates it)",
        "furthest behind: none (no feed is past due)",
    ]
    assert queue_table(postgres_url) is None


# -- two nodes, two configs ------------------------------------------------------------------


def node_row(out: str, node: str) -> list[str]:
    """The cells of ``node``'s line in the nodes table of `watcher status`."""
    line = next(line for line in out.splitlines() if line.startswith(f"  {node} "))
    return re.split(r"\s{2,}", line.strip())


@pytest.mark.e2e
def test_nodes_with_different_configs_are_flagged_and_logged_and_a_feed_one_lacks_waits(
    postgres_url: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    """Two `watcher run` on one state; the second's config has one feed more. Status
    shows both nodes alive with their digests and flags the second; each node logs the
    other as an error; the feed only the second knows is never fetched (a poll job for it
    would come back undone from the first), until the first is reloaded with the same
    config: then it is polled."""
    for path in ("/news", "/extra"):
        story = Story()
        story.add(1, f"Weather {path}")
        feed_server.routes[path] = Route(story.body())
    base = (
        f"state: {postgres_url}\nallow_private_networks: true\n"
        f"feeds:\n  - {{name: news, url: '{feed_server.url('/news')}', interval: 1s}}\n"
    )
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text(base)
    two.write_text(
        base + f"  - {{name: extra, url: '{feed_server.url('/extra')}', interval: 1s}}\n"
    )
    digest_one, digest_two = load_config(one).digest, load_config(two).digest
    assert digest_one != digest_two
    first, second = Daemon(one, tmp_path / "one.log"), Daemon(two, tmp_path / "two.log")
    first.start()
    try:
        assert first.started(), first.log_text()
        assert wait_until(lambda: feed_server.hits("/news") >= 1), first.log_text()
        second.start()
        assert second.started(), second.log_text()
        host = socket.gethostname()
        node_one = f"{host}:{first.proc.pid}"  # type: ignore[union-attr]
        node_two = f"{host}:{second.proc.pid}"  # type: ignore[union-attr]

        # Each node says, as an error, that the other runs another config: the second at
        # its start, the first as soon as it sees the second appear.
        said_one = f"ERROR watcher.daemon: config differs between nodes: {node_two} runs {digest_two}, this node ({node_one}) runs {digest_one}; feeds only this node has=-, only that node has=extra"
        said_two = f"ERROR watcher.daemon: config differs between nodes: {node_one} runs {digest_one}, this node ({node_two}) runs {digest_two}; feeds only this node has=extra, only that node has=-"
        assert wait_until(lambda: said_two in second.log_text(), 30), second.log_text()
        assert wait_until(lambda: said_one in first.log_text(), 30), first.log_text()

        out = invoke("status", "-c", str(one)).stdout
        assert f"state: PostgreSQL {postgres_url} (shared: 2 daemons running)" in out, out
        assert f"nodes (this config: {digest_one}):" in out
        assert node_row(out, node_one)[4:] == [digest_one, "alive"]
        assert node_row(out, node_two)[4:] == [digest_two, "alive, config differs"]

        # The dispatcher hands out only the feeds both nodes know: round after round,
        # news is polled and extra is not, and it waits, overdue, for the first node.
        polled = feed_server.hits("/news")
        assert wait_until(lambda: feed_server.hits("/news") >= polled + 3)
        assert feed_server.hits("/extra") == 0
        assert "furthest behind: extra, " in invoke("status", "-c", str(two)).stdout

        # The first node is reloaded with the second's config: they agree, and extra is
        # polled.
        one.write_text(two.read_text())
        first.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        assert wait_until(lambda: feed_server.hits("/extra") >= 1), first.log_text()
        out = invoke("status", "-c", str(two)).stdout
        assert node_row(out, node_one)[4:] == [digest_two, "alive"]
        assert node_row(out, node_two)[4:] == [digest_two, "alive"]
        assert first.signal(signal.SIGTERM) == 0
        assert second.signal(signal.SIGTERM) == 0
    finally:
        first.stop()
        second.stop()
    for daemon in (first, second):
        assert "Traceback" not in daemon.log_text(), daemon.log_text()


def test_status_and_migrate_without_procrastinate_say_what_to_install(
    postgres_url: str, tmp_path: Path
) -> None:
    """psycopg alone (installed by hand, not with the extra): status shows what it can
    read and says why the queue is not shown; migrate creates the state, then says what
    the queue needs. Neither ends in a traceback."""
    shadow = tmp_path / "shadow" / "procrastinate"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError(\"No module named 'procrastinate'\", name='procrastinate')\n"
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state: {postgres_url}\nfeeds:\n  - {{name: news, url: 'https://x.example.org/'}}\n"
    )
    name = load_config(config).state_name

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watcher", command, "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(shadow.parent)},
        )

    missing = (
        "needs procrastinate, which is missing (procrastinate): pip install 'watcher[postgres]'"
    )
    migrated = run("migrate")
    assert migrated.returncode == 1, migrated.stderr
    assert migrated.stdout == f"state {name} created at revision {head()}\n"
    assert migrated.stderr == f"error: the queue schema on {name} {missing}\n"
    status = run("status")
    assert status.returncode == 0, status.stderr
    assert f"queue: not shown here: it {missing}" in status.stdout.splitlines()
    assert status.stderr == ""

"""The state database: a real SQLite file in tmp_path."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from watcher.exceptions import StoreError
from watcher.identity import primary_identity
from watcher.models import Alert, Item, Priority, SeenItem
from watcher.store import PollDecision, Store
from watcher.store.schema import LATEST

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data"


def items(*ids: str) -> list[Item]:
    return [Item(feed="f", id=i, title=f"title {i}") for i in ids]


def alert(item_id: str, notifier: str = "ops", *, priority: Priority = "normal") -> Alert:
    return Alert(
        "f", item_id, notifier, ("r",), f"[r] {item_id}", "body", "http://x", priority=priority
    )


def commit(store: Store, seen: list[Item], queued: Sequence[Alert] = ()) -> int:
    return store.commit_poll(
        PollDecision(
            "f",
            "http://x/f",
            NOW,
            etag='"e"',
            body_hash="h",
            baselined=True,
            seen=[SeenItem(item) for item in seen],
            present=[item.id for item in seen],
            alerts=queued,
        )
    )


def record(url: str, at: datetime, seen: list[Item]) -> PollDecision:
    return PollDecision(
        "f",
        url,
        at,
        baselined=True,
        seen=[SeenItem(item) for item in seen],
        present=[item.id for item in seen],
    )


def fail(store: Store, error: str, at: datetime = NOW) -> None:
    store.commit_poll(
        PollDecision(
            "f",
            "http://x/f",
            at,
            kind="failure",
            error=error,
            next_poll_at=at + timedelta(minutes=5),
        )
    )


def test_schema_is_versioned_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "w.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST
    conn.close()
    Store.open(path).close()  # reopening migrates nothing and keeps the version


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this watcher"):
        Store.open(path)


def test_a_version_1_database_is_migrated_and_keeps_its_alerts(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path)
    conn.executescript((DATA / "state" / "schema-v1.sql").read_text(encoding="utf-8"))
    conn.close()
    store = Store.open(path)
    (pending,) = store.pending_alerts()
    assert (pending.title, pending.priority) == ("[kharkiv] Kharkiv story", "normal")
    commit(store, items("b"), [alert("b", priority="urgent")])
    assert [a.priority for a in store.pending_alerts()] == ["urgent", "normal"]
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST
    conn.close()


def test_new_items_and_feed_state(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    assert not store.feed_state("f").baselined
    assert [i.id for i in store.new_items("f", items("a", "b"))] == ["a", "b"]
    commit(store, items("a", "b"))
    state = store.feed_state("f")
    assert state.baselined and state.etag == '"e"' and state.body_hash == "h"
    assert [i.id for i in store.new_items("f", items("c", "a", "d"))] == ["c", "d"]
    # identity is per feed
    other = [Item(feed="g", id="a")]
    assert store.new_items("g", other) == other


def test_many_ids_are_queried_in_chunks(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    many = items(*(str(i) for i in range(2500)))
    commit(store, many[:1200])
    assert len(store.new_items("f", many)) == 1300


def test_one_alert_per_item_and_notifier_enforced_by_the_database(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    assert commit(store, items("a"), [alert("a"), alert("a", "mail")]) == 2
    assert commit(store, items("a"), [alert("a")]) == 0
    assert store.alert_counts() == {"pending": 2}


def test_outbox_pending_sent_and_retry(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    commit(store, items("a", "b"), [alert("a"), alert("b")])
    first, second = store.pending_alerts(NOW)
    store.claim([first.id, second.id], retry_at=NOW + timedelta(seconds=30))
    store.mark_sent([first.id], NOW)
    store.mark_failed([second.id], NOW, "HTTP 500", retry_at=NOW + timedelta(minutes=1))
    assert store.pending_alerts(NOW) == []
    (retry,) = store.pending_alerts(NOW + timedelta(minutes=2))
    assert retry.id == second.id and retry.attempts == 1
    assert store.alert_counts() == {"pending": 1, "sent": 1}


def test_a_claimed_alert_whose_outcome_was_never_recorded_waits_for_its_retry(
    tmp_path: Path,
) -> None:
    """A crash (or a full disk) between the send and mark_sent: resent once, later."""
    store = Store.open(tmp_path / "w.db")
    commit(store, items("a"), [alert("a")])
    (pending,) = store.pending_alerts(NOW)
    store.claim([pending.id], retry_at=NOW + timedelta(seconds=30))
    assert store.pending_alerts(NOW + timedelta(seconds=29)) == []
    (again,) = store.pending_alerts(NOW + timedelta(seconds=31))
    assert again.id == pending.id and again.attempts == 1


def test_errors_are_counted_and_cleared_by_success(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    fail(store, "HTTP 500")
    fail(store, "HTTP 502", NOW + timedelta(minutes=1))
    (status,) = store.feed_statuses()
    assert (status.failures, status.last_error, status.baselined) == (2, "HTTP 502", False)
    assert status.failing_since == NOW  # the first failure of the run
    assert status.next_poll_at == NOW + timedelta(minutes=6)
    commit(store, items("a"))
    (status,) = store.feed_statuses()
    assert (status.failures, status.last_error, status.items) == (0, None, 1)
    assert (status.failing_since, status.next_poll_at) == (None, None)
    assert status.last_success_at == NOW


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the state directory"):
        Store.open(blocker / "sub" / "w.db")


def test_prune_forgets_only_old_items_beyond_twice_the_feed_size(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    for n in range(6):  # one item per poll: the feed's largest size is 1
        at = NOW - timedelta(days=200 - n)
        store.commit_poll(record("u", at, items(str(n))))
    store.commit_poll(record("u", NOW, items("fresh")))
    assert store.prune_items(NOW, keep_days=90) == 5  # keeps the 2 newest: "fresh" and "5"
    assert [i.id for i in store.new_items("f", items("0", "4", "5", "fresh"))] == ["0", "4"]
    assert store.prune_items(NOW, keep_days=90) == 0


def test_a_quiet_success_clears_failures_with_the_short_update(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    commit(store, items("a"))
    fail(store, "HTTP 503", NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=10)
    assert (
        store.commit_poll(
            PollDecision("f", "http://x/f", later, kind="quiet", etag='"2"', health_notice=None)
        )
        == 0
    )
    state = store.feed_state("f")
    assert (state.failures, state.failing_since, state.next_poll_at, state.etag) == (
        0,
        None,
        None,
        '"2"',
    )
    (status,) = store.feed_statuses()
    assert (status.last_success_at, status.last_error, status.items) == (later, None, 1)
    # A feed the store has never seen still gets its row (the full upsert path).
    store.commit_poll(
        PollDecision("new", "http://x/new", later, kind="quiet", etag='"1"', health_notice=None)
    )
    assert store.feed_state("new").etag == '"1"'


def test_quiet_successes_finishing_together_share_one_commit(tmp_path: Path) -> None:
    """Group commit: 40 polls that end at once cost a few commits (fsyncs), not 40, and
    every one of them is committed before its commit_poll returns."""
    store = Store.open(tmp_path / "w.db")
    names = [f"f{n}" for n in range(40)]
    for name in names:
        store.commit_poll(PollDecision(name, f"http://x/{name}", NOW, etag='"1"', baselined=True))
    commits: list[float] = []

    @event.listens_for(store.engine, "commit")
    def _slow_commit(_conn: Any) -> None:
        commits.append(time.monotonic())
        if len(commits) == 1:
            time.sleep(0.3)  # the first commit is slow: the other polls queue behind it

    barrier = threading.Barrier(len(names))
    later = NOW + timedelta(minutes=10)

    def poll(name: str) -> int:
        barrier.wait()
        record = PollDecision(
            name, f"http://x/{name}", later, kind="quiet", etag='"2"', health_notice=None
        )
        return store.commit_poll(record)

    with ThreadPoolExecutor(len(names)) as pool:
        assert list(pool.map(poll, names)) == [0] * len(names)
    assert 2 <= len(commits) <= 4
    assert {
        s.name: (s.last_success_at, store.feed_state(s.name).etag) for s in store.feed_statuses()
    } == {name: (later, '"2"') for name in names}


def test_a_version_2_database_gets_its_keys_and_keeps_every_identity(tmp_path: Path) -> None:
    """schema-v2.sql was written by a real daemon of the previous release (see its header)."""
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path)
    conn.executescript((DATA / "state" / "schema-v2.sql").read_text(encoding="utf-8"))
    conn.close()
    Store.open(path).close()
    conn = sqlite3.connect(path)
    rows = dict(
        (title, (item_id, kind, link_key, title_key))
        for title, item_id, kind, link_key, title_key in conn.execute(
            "SELECT title, item_id, kind, link_key, title_key FROM items"
        )
    )
    alerted = {r[0] for r in conn.execute("SELECT item_id FROM alerts")}
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST
    conn.close()
    assert rows["Weather in Kyiv"] == (
        "http://news.example.org/2026/11/weather",  # a link id stays as it was
        "baseline",
        "news.example.org/2026/11/weather",
        "weather in kyiv",
    )
    assert rows["Kharkov power restored"][:2] == ("urn:news:2", "new")
    # Items without guid or link take the id their title (and date) gives now, and so do
    # the alerts that name them: upgrading re-alerts nothing.
    note = rows["Kharkiv note with no guid and no link"][0]
    assert note == primary_identity("", "", "Kharkiv note with no guid and no link", "")
    assert note in alerted
    assert not any(r[0].startswith("sha256:") for r in rows.values())

"""The state database: a real SQLite file in tmp_path, and a real PostgreSQL database.

Every test that takes ``store`` runs on both backends; those about SQLite files (WAL,
the dumps of earlier versions, directories) run on SQLite only.
"""

from __future__ import annotations

import multiprocessing
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pgserver import PASSWORD_ROLE, PostgresServer
from sqlalchemy import DateTime, TypeDecorator, event, text, update
from sqlalchemy.types import TypeEngine
from support import state_engine

from watcher.delivery import next_wake
from watcher.exceptions import LeaseLost, StoreError
from watcher.identity import primary_identity
from watcher.models import Alert, Item, Priority, SeenItem
from watcher.store import PollDecision, Store
from watcher.store.schema import LATEST, feeds, metadata
from watcher.store.upgrade import FIRST, head, scripts

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


def execute(target: str | Path, *statements: str) -> None:
    """Change a state behind the store's back, as another program would."""
    engine = state_engine(target)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _same_time_type(
    _context: Any, _column: Any, _ours: Any, found: TypeEngine[Any], wanted: TypeEngine[Any]
) -> bool | None:
    """TIMESTAMP (what the home-made migrations added) and DATETIME (what the tables
    declare) are one type to SQLite and to SQLAlchemy; any other difference counts."""
    impl = wanted.impl if isinstance(wanted, TypeDecorator) else wanted
    if isinstance(found, DateTime) and isinstance(impl, DateTime):
        return False
    return None


def differences(target: str | Path) -> list[Any]:
    """How the database's tables, columns and indexes differ from schema.metadata."""
    engine = state_engine(target)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": _same_time_type})
        found = compare_metadata(context, metadata)
    engine.dispose()
    return found


def load_dump(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.executescript((DATA / "state" / f"schema-v{version}.sql").read_text(encoding="utf-8"))
    conn.close()


def test_schema_is_versioned_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "w.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head()
    conn.close()
    reopened = Store.open(path)  # reopening migrates nothing and keeps the version
    assert reopened.migration is not None and not reopened.migration.changed
    reopened.close()


def test_a_revision_this_watcher_does_not_know_is_refused(state_db: str | Path) -> None:
    Store.open(state_db).close()
    execute(state_db, "UPDATE alembic_version SET version_num = 'f00d_from_the_future'")
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"newer than this watcher.*; upgrade watcher"):
            Store.open(state_db, readonly=readonly)


def test_a_newer_home_made_schema_is_refused(tmp_path: Path) -> None:
    """From before Alembic: a schema_version above 3 and no Alembic revision."""
    path = tmp_path / "w.db"
    Store.open(path).close()
    execute(path, "DROP TABLE alembic_version", "UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="newer than this watcher"):
        Store.open(path)


def test_a_version_1_database_is_migrated_and_keeps_its_alerts(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    load_dump(path, 1)
    store = Store.open(path)
    assert store.migration is not None
    assert store.migration.before == "schema version 1" and store.migration.after == head()
    (pending,) = store.pending_alerts()
    assert (pending.title, pending.priority) == ("[kharkiv] Kharkiv story", "normal")
    commit(store, items("b"), [alert("b", priority="urgent")])
    assert [a.priority for a in store.pending_alerts()] == ["urgent", "normal"]
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST
    conn.close()


def test_new_items_and_feed_state(store: Store) -> None:
    assert not store.feed_state("f").baselined
    assert [i.id for i in store.new_items("f", items("a", "b"))] == ["a", "b"]
    commit(store, items("a", "b"))
    state = store.feed_state("f")
    assert state.baselined and state.etag == '"e"' and state.body_hash == "h"
    assert [i.id for i in store.new_items("f", items("c", "a", "d"))] == ["c", "d"]
    # identity is per feed
    other = [Item(feed="g", id="a")]
    assert store.new_items("g", other) == other


def test_items_are_recorded_only_with_a_baseline() -> None:
    """A poll's first look-up of known items is skipped for a feed not yet baselined
    (watcher/pipeline.py): that holds only while no decision records items without it."""
    with pytest.raises(ValueError, match="feed 'f': items are recorded only by a poll"):
        PollDecision("f", "http://x/f", NOW, seen=[SeenItem(items("a")[0])])
    PollDecision("f", "http://x/f", NOW, kind="failure", error="HTTP 500")  # no items: fine


def test_many_ids_are_queried_in_chunks(store: Store) -> None:
    many = items(*(str(i) for i in range(2500)))
    commit(store, many[:1200])
    assert len(store.new_items("f", many)) == 1300


def test_one_alert_per_item_and_notifier_enforced_by_the_database(store: Store) -> None:
    assert commit(store, items("a"), [alert("a"), alert("a", "mail")]) == 2
    assert commit(store, items("a"), [alert("a")]) == 0
    assert store.alert_counts() == {"pending": 2}


def test_outbox_pending_sent_and_retry(store: Store) -> None:
    commit(store, items("a", "b"), [alert("a"), alert("b")])
    first, second = store.pending_alerts(NOW)
    store.claim([first.id, second.id], retry_at=NOW + timedelta(seconds=30))
    store.mark_sent([first.id], NOW)
    store.mark_failed([second.id], NOW, "HTTP 500", retry_at=NOW + timedelta(minutes=1))
    assert store.pending_alerts(NOW) == []
    (retry,) = store.pending_alerts(NOW + timedelta(minutes=2))
    assert retry.id == second.id and retry.attempts == 1
    assert store.alert_counts() == {"pending": 1, "sent": 1}


def test_a_claimed_alert_whose_outcome_was_never_recorded_waits_for_its_retry(store: Store) -> None:
    """A crash (or a full disk) between the send and mark_sent: resent once, later."""
    commit(store, items("a"), [alert("a")])
    (pending,) = store.pending_alerts(NOW)
    store.claim([pending.id], retry_at=NOW + timedelta(seconds=30))
    assert store.pending_alerts(NOW + timedelta(seconds=29)) == []
    (again,) = store.pending_alerts(NOW + timedelta(seconds=31))
    assert again.id == pending.id and again.attempts == 1


def test_errors_are_counted_and_cleared_by_success(store: Store) -> None:
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


def test_prune_forgets_only_old_items_beyond_twice_the_feed_size(store: Store) -> None:
    for n in range(6):  # one item per poll: the feed's largest size is 1
        at = NOW - timedelta(days=200 - n)
        store.commit_poll(record("u", at, items(str(n))))
    store.commit_poll(record("u", NOW, items("fresh")))
    assert store.prune_items(NOW, keep_days=90) == 5  # keeps the 2 newest: "fresh" and "5"
    assert [i.id for i in store.new_items("f", items("0", "4", "5", "fresh"))] == ["0", "4"]
    assert store.prune_items(NOW, keep_days=90) == 0


def test_a_quiet_success_clears_failures_with_the_short_update(store: Store) -> None:
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


def test_quiet_successes_finishing_together_share_one_commit(store: Store) -> None:
    """Group commit: 40 polls that end at once cost a few commits (fsyncs), not 40, and
    every one of them is committed before its commit_poll returns."""
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
    load_dump(path, 2)
    Store.open(path).close()
    conn = sqlite3.connect(path)
    rows = dict(
        (title, (item_id, kind, link_key, title_key))
        for title, item_id, kind, link_key, title_key in conn.execute(
            "SELECT title, item_id, kind, link_key, title_key FROM items"
        )
    )
    alerted = {r[0] for r in conn.execute("SELECT item_id FROM alerts")}
    # Home-made version 3, then Alembic from its first revision on; schema_version stays
    # at 3, so a watcher from before Alembic still reads it as its own.
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST == 3
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head()
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


def test_the_outbox_keeps_times_utc_flags_and_one_message_per_digest(store: Store) -> None:
    """What PostgreSQL types differently from SQLite: timestamps (naive UTC in both),
    min() over them, booleans, and sent alerts grouped by their message."""
    commit(store, items("a", "b", "c"), [alert("a"), alert("b"), alert("c")])
    a, b, c = store.pending_alerts(NOW)
    assert next_wake(store.pending_times()) == NOW and NOW.tzinfo is UTC
    store.defer([c.id], NOW + timedelta(hours=1), held=True)
    store.claim([a.id, b.id], retry_at=NOW + timedelta(minutes=5))
    store.mark_sent([a.id, b.id], NOW + timedelta(seconds=1))  # one digest of two
    later = next_wake(store.pending_times())
    assert later == NOW + timedelta(hours=1) and later.tzinfo is not None
    (held,) = store.pending_alerts()
    assert (held.id, held.held, held.attempts) == (c.id, True, 0)
    assert store.messages_sent_since("ops", NOW) == [NOW + timedelta(seconds=1)]
    assert store.messages_sent_since("ops", NOW + timedelta(seconds=2)) == []
    sent = store.list_alerts(status="sent")
    assert {r.sent_at for r in sent} == {NOW + timedelta(seconds=1)}


def test_a_story_is_told_once_per_notifier_unless_a_copy_adds_a_rule(store: Store) -> None:
    """The compare-and-set on what a notifier was told (FOR UPDATE on PostgreSQL)."""

    def story_alert(item_id: str, rule: str) -> Alert:
        return Alert("f", item_id, "ops", (rule,), f"[{rule}] {item_id}", "b", story="s1")

    assert commit(store, items("a"), [story_alert("a", "r")]) == 1
    assert commit(store, items("b"), [story_alert("b", "r")]) == 0  # said already
    assert commit(store, items("c"), [story_alert("c", "r2")]) == 1  # adds a rule
    assert commit(store, items("d"), [story_alert("d", "r2")]) == 0


def test_postgresql_sessions_run_in_utc(postgres_url: str) -> None:
    """So that the database's own clock (LOCALTIMESTAMP) is UTC, like what we store."""
    store = Store.open(postgres_url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT current_setting('TimeZone')")).scalar() == "UTC"
    store.close()


# -- migrations and opening --------------------------------------------------------------


def test_a_new_state_has_exactly_the_tables_columns_and_indexes_of_the_schema(
    state_db: str | Path,
) -> None:
    store = Store.open(state_db)
    assert store.migration is not None
    assert (store.migration.before, store.migration.after) == (None, head())
    store.close()
    assert differences(state_db) == []


def test_the_head_this_watcher_migrates_to_is_the_newest_revision_shipped() -> None:
    assert scripts().get_current_head() == head()
    assert scripts().get_base() == FIRST  # home-made version 3 is stamped as this one


@pytest.mark.parametrize("version", [1, 2])
def test_a_state_from_before_alembic_ends_with_exactly_the_schema(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "w.db"
    load_dump(path, version)
    Store.open(path).close()
    assert differences(path) == []


def _catalog(target: str | Path) -> list[tuple[Any, ...]]:
    """Everything a database's schema is made of, spelled the same way however it was
    created, and the rows of its two version tables."""
    engine = state_engine(target)
    queries = (
        [
            # SQLite keeps each table's CREATE statement as written: ALTER TABLE ... ADD
            # COLUMN puts no line break where CREATE TABLE has one.
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ]
        if isinstance(target, Path)
        else [
            "SELECT table_name, column_name, ordinal_position, data_type,"
            " character_maximum_length, numeric_precision, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'",
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        ]
    )
    with engine.connect() as conn:
        rows = [
            tuple(" ".join(v.split()) if isinstance(v, str) else v for v in row)
            for query in queries
            for row in conn.execute(text(query))
        ]
        rows += [("schema_version", *r) for r in conn.execute(text("SELECT * FROM schema_version"))]
        rows += [
            ("alembic_version", *r) for r in conn.execute(text("SELECT * FROM alembic_version"))
        ]
    engine.dispose()
    return sorted(rows, key=repr)


def test_a_new_state_has_exactly_the_schema_the_revisions_build(
    state_db: str | Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A new state is created from the tables' declaration and stamped, not taken through
    the revisions (watcher/store/upgrade.py says why): the two must never drift apart,
    or a later revision would meet a schema it was not written for."""
    from alembic import command

    from watcher.store.upgrade import alembic_config

    Store.open(state_db).close()
    if isinstance(state_db, Path):
        revised: str | Path = tmp_path / "revised.db"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        revised = server.url(server.create_database())
    engine = state_engine(revised)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, head())
    engine.dispose()
    made = _catalog(state_db)
    assert any("mention_stories" in repr(row) for row in made)  # the head's newest tables
    assert made == _catalog(revised)
    assert differences(state_db) == []


def test_openers_starting_together_migrate_a_new_state_once(state_db: str | Path) -> None:
    """Nodes started at once: one creates the schema under the lock, the others wait and
    find it done (PostgreSQL: an advisory lock; SQLite: the write lock, taken first)."""
    barrier = threading.Barrier(4)

    def open_one(_: int) -> str | None:
        barrier.wait()
        store = Store.open(state_db)
        store.close()
        assert store.migration is not None
        return store.migration.before

    with ThreadPoolExecutor(4) as pool:
        befores = list(pool.map(open_one, range(4)))
    assert sorted(befores, key=str) == [None] + [f"revision {head()}"] * 3
    assert differences(state_db) == []


def test_a_reader_needs_the_state_at_this_watchers_revision_and_writes_nothing(
    state_db: str | Path,
) -> None:
    if isinstance(state_db, Path):
        state_db.touch()  # an empty file: SQLite reads it as an empty database
    with pytest.raises(StoreError, match=r"start `watcher run` once, or run `watcher migrate`"):
        Store.open(state_db, readonly=True)
    assert differences(state_db) != []  # nothing was created

    writer = Store.open(state_db)
    commit(writer, items("a"), [alert("a")])
    writer.close()
    reader = Store.open(state_db, readonly=True)
    assert reader.migration is None and reader.revision == head()
    assert [a.title for a in reader.pending_alerts()] == ["[r] a"]
    with pytest.raises(StoreError, match=r"read-?only"):
        commit(reader, items("b"))
    reader.close()
    check = Store.open(state_db, readonly=True)
    assert store_ids(check) == {"a"}
    check.close()


def store_ids(store: Store) -> set[str]:
    return {i.id for i in items("a", "b") if i.id in store.seen_ids("f", ["a", "b"])}


def test_a_reader_of_an_old_state_says_how_to_upgrade_it_and_leaves_it_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    load_dump(path, 2)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(
        StoreError,
        match=r"schema version 2, older than this watcher; start `watcher run` once, or run "
        r"`watcher migrate`",
    ):
        Store.open(path, readonly=True)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_a_reader_does_not_create_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unable to open"):
        Store.open(tmp_path / "none" / "w.db", readonly=True)
    assert not (tmp_path / "none").exists()


# -- PostgreSQL's own troubles, in words an operator can act on ---------------------------


def test_a_missing_postgresql_database_says_to_create_it(postgres: PostgresServer) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(postgres.url("no_such_db"))
    message = str(caught.value)
    assert message.startswith(f"state database {postgres.url('no_such_db')}: ")
    assert 'database "no_such_db" does not exist' in message and "createdb -O" in message


def test_a_postgresql_server_that_does_not_answer_is_named(postgres: PostgresServer) -> None:
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/watcher"
        with pytest.raises(StoreError) as caught:
            Store.open(url)
    message = str(caught.value)
    assert f"postgresql+psycopg://postgres@127.0.0.1:{port}/watcher" in message
    assert "Connection refused" in message and "is PostgreSQL running" in message


def test_a_user_without_the_privileges_or_the_role_is_told_what_to_do(
    postgres: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    with postgres.admin() as conn:
        conn.execute("DROP ROLE IF EXISTS watcher_guest")
        conn.execute("CREATE ROLE watcher_guest LOGIN")  # owns nothing, may create nothing
    try:
        with pytest.raises(StoreError) as caught:
            Store.open(postgres.url(database, user="watcher_guest"))
        assert "permission denied for schema public" in str(caught.value)
        assert "it must own the database" in str(caught.value)
    finally:
        with postgres.admin() as conn:
            conn.execute("DROP ROLE watcher_guest")
    with pytest.raises(StoreError, match=r'role "nobody_here" does not exist.*createuser'):
        Store.open(postgres.url(database, user="nobody_here"))


def test_a_refused_password_is_explained_and_never_shown(
    postgres: PostgresServer, postgres_url: str
) -> None:
    canary = "Canary-7f3a-password"
    with postgres.admin() as conn:
        conn.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
        conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right-{canary}'")
    database = postgres_url.rsplit("/", 1)[1]
    url = postgres.url(database, user=PASSWORD_ROLE, password=f"wrong-{canary}")
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    message = str(caught.value)
    assert "password authentication failed" in message and "check them in `state`" in message
    assert canary not in message and f"{PASSWORD_ROLE}:***@" in message
    assert canary not in "".join(str(e) for e in _chain(caught.value))


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


# -- claims: two processes, one database ---------------------------------------------------


def _claimant(state: str, kind: str, target: str, node: str, start: Any, results: Any) -> None:
    """One process's claim, made the moment the other process makes its own."""
    other = Store.open(state)
    now = datetime.now(UTC)
    start.wait()
    if kind == "feed":
        won = other.claim_poll(target, node=node, now=now, until=now + timedelta(minutes=5))
    else:
        won = other.claim(
            [int(target)],
            retry_at=now + timedelta(seconds=30),
            node=node,
            now=now,
            until=now + timedelta(minutes=5),
        )
    results.put((node, won))
    other.close()


def _race(state: str | Path, kind: str, target: str, count: int = 4) -> list[str]:
    """``count`` processes claim one thing at once: the nodes that won."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(count), context.Queue()
    procs = [
        context.Process(
            target=_claimant, args=(str(state), kind, target, f"node-{n}", start, results)
        )
        for n in range(count)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return sorted(node for node, won in outcomes if won)


def test_processes_racing_for_one_due_feed_and_one_alert_each_have_one_winner(
    store: Store, state_db: str | Path
) -> None:
    store.sync_feeds([("f", "http://x/f")], NOW)  # due since NOW
    commit(store, items("a"), [alert("a")])
    (pending,) = store.pending_alerts()
    store.close()
    assert len(_race(state_db, "feed", "f")) == 1
    assert len(_race(state_db, "alert", str(pending.id))) == 1


def test_a_claim_is_held_until_its_lease_expires_then_anyone_takes_it(store: Store) -> None:
    store.sync_feeds([("f", "http://x/f")], NOW)
    lease = NOW + timedelta(minutes=2)
    assert store.claim_poll("f", node="a", now=NOW, until=lease)
    assert not store.claim_poll("f", node="b", now=NOW + timedelta(minutes=1), until=lease)
    assert store.due_feeds(["f"], NOW + timedelta(minutes=1), node="b", limit=10) == []
    assert store.due_feeds(["f"], NOW + timedelta(minutes=1), node="a", limit=10) == ["f"]
    later = NOW + timedelta(minutes=3)  # the lease ran out: "a" is gone or stuck
    assert store.claim_poll("f", node="b", now=later, until=later + timedelta(minutes=2))
    # Only the holder records the outcome: "a" finishing late writes nothing.
    with pytest.raises(LeaseLost):
        store.commit_poll(PollDecision("f", "http://x/f", later, node="a", next_poll_at=later))
    store.commit_poll(
        PollDecision("f", "http://x/f", later, node="b", next_poll_at=later + timedelta(hours=1))
    )
    state = store.feed_state("f")
    assert state.next_poll_at == later + timedelta(hours=1)
    assert store.due_feeds(["f"], later + timedelta(minutes=30), node="c", limit=10) == []


def test_the_schedule_reads_alike_for_a_few_feeds_and_for_more_than_an_in_list_holds(
    store: Store,
) -> None:
    """A daemon with more than a few feeds reads the due rows of every feed,
    and walks the schedule a page at a time for the next due time: the same answers as
    by name, with rows it did not name (feeds no longer configured) in the way."""
    names = [f"f{i:03}" for i in range(760)]
    store.sync_feeds([(name, f"http://x/{name}") for name in names], NOW)
    store.reschedule({name: NOW + timedelta(minutes=i) for i, name in enumerate(names)})
    with store.engine.begin() as conn:
        conn.execute(update(feeds).where(feeds.c.name == "f005").values(next_poll_at=None))
        conn.execute(update(feeds).where(feeds.c.name == "f007").values(disabled_reason="gone"))
    later = NOW + timedelta(minutes=20)
    assert store.claim_poll("f009", node="other", now=later, until=later + timedelta(hours=1))
    many, few = names[150:] + names[:12], names[:12]  # 12 are named in the query, 622 not

    # Never scheduled first, then the most overdue; disabled and claimed ones left out.
    due = ["f005", "f000", "f001", "f002", "f003", "f004", "f006", "f008", "f010", "f011"]
    assert store.due_feeds(few, later, node="me", limit=20) == due
    assert store.due_feeds(many, later, node="me", limit=20) == due
    assert store.due_feeds(many, later, node="me", limit=3) == due[:3]
    assert store.due_feeds(many, later, node="other", limit=20) == sorted(
        [*due, "f009"], key=lambda n: (n != "f005", n)
    )
    assert store.due_feeds(names[150:], later, node="me", limit=20) == []
    # What the daemon skips (its running polls, feeds paced after an error) is left out
    # the same way, whether the names come as a list or as the set the daemon keeps.
    skip = {"f000", "f002", "f005", "f400"}
    assert store.due_feeds(few, later, node="me", limit=20, skip=skip) == [
        n for n in due if n not in skip
    ]
    for named in (many, frozenset(many)):
        assert store.due_feeds(named, later, node="me", limit=20, skip=skip) == [
            n for n in due if n not in skip
        ]
        assert store.due_feeds(named, later, node="me", limit=2, skip=skip) == ["f001", "f003"]
    assert store.due_feeds(few, later, node="me", limit=20, skip=few) == []

    # The next due time among those named: f000-f149 come first in the schedule and are
    # not named, so the walk reads two pages before it finds f150.
    assert store.next_due(names[150:]) == NOW + timedelta(minutes=150)
    assert store.next_due(names[150:190]) == NOW + timedelta(minutes=150)  # by name
    assert store.next_due(["f007", "f300"]) == NOW + timedelta(minutes=300)  # f007: disabled
    assert store.next_due([*names[200:], "f007"]) == NOW + timedelta(minutes=200)
    assert store.next_due([*names[700:], *(f"gone{i}" for i in range(600))]) == NOW + timedelta(
        minutes=700
    )
    assert store.next_due([f"gone{i}" for i in range(600)]) is None
    assert store.next_due([]) is None
    # Skipped: the first feeds named are passed over, by name and on the walk alike.
    assert store.next_due(frozenset(names[150:]), skip=names[150:250]) == NOW + timedelta(
        minutes=250
    )
    assert store.next_due(names[150:190], skip={"f150", "f151"}) == NOW + timedelta(minutes=152)
    assert store.next_due(names[150:190], skip=names[150:190]) is None
    assert store.next_due(names[150:400], skip={"f150", "f151"}) == NOW + timedelta(minutes=152)
    assert store.next_due(names[150:], skip=names[150:]) is None


def test_the_status_lines_failing_feeds_are_what_feed_statuses_says(store: Store) -> None:
    store.sync_feeds([(name, f"http://x/{name}") for name in "abcd"], NOW)
    assert store.failing_feeds() == []
    with store.engine.begin() as conn:
        conn.execute(update(feeds).where(feeds.c.name == "a").values(failures=3))
        conn.execute(update(feeds).where(feeds.c.name == "b").values(disabled_reason="gone"))
    failing = [s.name for s in store.feed_statuses() if s.failures or s.disabled_reason]
    assert failing == ["a", "b"] == store.failing_feeds()


def test_an_alert_claimed_by_a_lease_is_not_sent_by_another_until_it_expires(
    store: Store,
) -> None:
    commit(store, items("a", "b"), [alert("a"), alert("b")])
    first, second = store.pending_alerts()
    soon = NOW + timedelta(seconds=30)
    lease = NOW + timedelta(minutes=1)
    assert store.claim([first.id], retry_at=soon, node="a", now=NOW, until=lease)
    # A digest is one message: all of it or none of it.
    assert not store.claim([first.id, second.id], retry_at=soon, node="b", now=NOW, until=lease)
    assert [a.attempts for a in store.pending_alerts()] == [1, 0]
    later = NOW + timedelta(minutes=2)
    assert store.claim(
        [first.id, second.id], retry_at=later, node="b", now=later, until=later + timedelta(1)
    )
    assert [a.attempts for a in store.pending_alerts()] == [2, 1]
    store.mark_sent([first.id, second.id], later)
    assert store.pending_alerts() == []


def test_the_lock_holder_frees_a_dead_daemons_claims_and_its_alert_is_due_at_once(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "w.db")
    store.sync_feeds([("f", "http://x/f")], NOW)
    commit(store, items("a"), [alert("a")])
    (pending,) = store.pending_alerts()
    retry = NOW + timedelta(minutes=5)
    assert store.claim_poll("f", node="dead", now=NOW, until=NOW + timedelta(hours=1))
    assert store.claim([pending.id], retry_at=retry, node="dead", now=NOW, until=retry)
    assert store.release_claims(keep="alive", now=NOW) == 2
    assert store.due_feeds(["f"], NOW, node="alive", limit=1) == ["f"]
    (freed,) = store.pending_alerts(NOW)  # due now, not at its retry time
    assert freed.next_attempt_at == NOW and freed.attempts == 1


def test_daemons_not_heard_from_for_a_day_are_forgotten(store: Store) -> None:
    """Every restart is a new host:pid row; maintenance drops those silent for a day (a
    clean stop or a crash alike), never a live one or the caller's own."""
    from watcher.store import DaemonRecord

    now = datetime.now(UTC).replace(microsecond=0)
    for node, beat in (
        ("web:1", now - timedelta(minutes=1)),  # running
        ("web:2", now - timedelta(hours=20)),  # stopped today: still shown
        ("web:3", now - timedelta(days=2)),  # stopped long ago
        ("web:4", now - timedelta(days=9)),  # crashed long ago, never said so
        ("web:5", now - timedelta(days=3)),  # the caller, whose clock jumped
    ):
        host, pid = node.split(":")
        store.daemon_started(
            DaemonRecord(node, host, int(pid), "1", beat - timedelta(hours=1), beat)
        )
    store.daemon_stopped("web:2", now - timedelta(hours=20))
    store.daemon_stopped("web:3", now - timedelta(days=2))

    assert store.forget_daemons(now - timedelta(days=1), keep="web:5") == 2
    assert sorted(r.node for r in store.daemon_records()) == ["web:1", "web:2", "web:5"]
    assert store.forget_daemons(now - timedelta(days=1), keep="web:5") == 0

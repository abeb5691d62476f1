"""State: feeds, seen items, and the alert outbox, in SQLite (WAL) or PostgreSQL through
SQLAlchemy Core.

Owns every query. Holds no business rules: it records what the pipeline decided
and answers what it asks. The SQL is the subset SQLite and PostgreSQL share
(``INSERT ... ON CONFLICT``), and uniqueness is enforced by constraints.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
    union,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement, ColumnElement

from watcher.config import looks_like_url
from watcher.exceptions import LeaseLost, StoreError
from watcher.identity import Keys, Known, Seen, minute
from watcher.models import (
    KEEP,
    PRIORITIES,
    Alert,
    FeedState,
    Item,
    PendingAlert,
    PollDecision,
    PollRecord,
    Priority,
)
from watcher.store import upgrade
from watcher.store.engine import NodeLocks, postgres_engine
from watcher.store.schema import (
    POLL_HISTORY,
    alerts,
    daemons,
    feeds,
    items,
    mention_counts,
    mention_feeds,
    mention_stories,
    polls,
    spike_episodes,
    story_alerts,
    story_keys,
    story_sources,
)
from watcher.stories import BUCKET, Episode, Recent, StoryKey, bucket_of, covered, shape

if TYPE_CHECKING:
    from watcher.config import Config

_CHUNK = 500
# Naming more feeds than this, the schedule's queries read the due rows (or walk the
# schedule) instead of naming them (see Store.due_feeds): an idle daemon with 500 feeds
# used 0.7% of a core on two IN lists of 500 names a second, with 2,000 feeds 0.4%.
_LISTED = 50
_PAGE = 100  # rows of the schedule read at a time (see Store.next_due)
T = TypeVar("T")


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class _Wanted:
    """Feed names less those to skip, as the schedule's queries ask for them: few go
    into an IN list; many are looked up in the set given, never copied (a daemon's
    ticker names all its feeds every second)."""

    __slots__ = ("listed", "names", "skip")

    def __init__(self, names: Collection[str], skip: Collection[str]) -> None:
        self.names = names if isinstance(names, (set, frozenset)) else set(names)
        self.skip = skip if isinstance(skip, (set, frozenset)) else set(skip)
        # None: too many to name in the query (see _LISTED)
        self.listed = (
            [n for n in self.names if n not in self.skip] if len(self.names) <= _LISTED else None
        )

    def __bool__(self) -> bool:
        return bool(self.listed) if self.listed is not None else bool(self.names)

    def holds(self, name: str) -> bool:
        return name in self.names and name not in self.skip


@dataclass(frozen=True)
class FeedStatus:
    """A feed as `watcher feeds` and health checks see it."""

    name: str
    url: str
    baselined: bool
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    failures: int
    failing_since: datetime | None
    next_poll_at: datetime | None
    disabled_reason: str | None
    moved_to: str | None
    items: int
    etag: str | None = None
    last_modified: str | None = None
    last_error_at: datetime | None = None


@dataclass(frozen=True)
class AlertRecord:
    """An alert as `watcher alerts` shows it."""

    id: int
    feed: str
    notifier: str
    rules: tuple[str, ...]
    title: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime
    last_error: str | None
    priority: Priority = "normal"
    link: str = ""
    sources: tuple[str, ...] = ()  # every feed that carried the alert's story
    item_id: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)  # what a digest lists


@dataclass(frozen=True)
class PollEntry:
    """One poll of a feed's recent history (see Store.recent_polls)."""

    at: datetime
    poll: PollRecord


@dataclass(frozen=True)
class MentionCount:
    """How many new stories (and from how many feeds) mentioned a rule or an entity in one
    period (``start`` to ``start`` + the period asked for)."""

    kind: str  # rule or entity
    name: str
    start: datetime
    stories: int
    feeds: int


@dataclass(frozen=True)
class StoredItem:
    """An item kept for backtest, with when it was first seen and its story."""

    item: Item
    silent: bool  # a baseline, a renumbering, too old: never alerted, never counted
    first_seen_at: datetime
    story: str | None


@dataclass(frozen=True)
class DaemonRecord:
    """A daemon as the state remembers it."""

    node: str  # host:pid
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None
    config_digest: str | None = None  # the config it runs (Config.digest)
    feeds: frozenset[str] | None = None  # its active feeds (None: not recorded)

    def running(self, now: datetime, *, silence: float = 120.0) -> bool:
        """Alive: not stopped, and a heartbeat within ``silence`` seconds."""
        return self.stopped_at is None and (now - self.heartbeat_at).total_seconds() < silence


# What any successful poll resets on its feed.
_RECOVERED: dict[str, Any] = {
    "last_error": None,
    "failures": 0,
    "failing_since": None,
    "disabled_reason": None,
    "disabled_url": None,
    "claimed_by": None,  # the poll is over: its claim with it
    "lease_until": None,
}

_TEXT_CAP = 16384  # characters of content kept per item for backtest


def _item_text(item: Item) -> str:
    return json.dumps(
        {
            "summary": item.summary[:_TEXT_CAP],
            "content": item.content[:_TEXT_CAP],
            "author": item.author,
            "tags": list(item.tags),
        },
        ensure_ascii=False,
    )


_HINTS = (
    ("disk is full", "the disk holding it is full; watcher retries when there is room"),
    ("readonly", "the file or its file system is read-only"),
    ("read-only", "the file or its file system is read-only"),
    ("disk i/o error", "the disk failed a read or write"),
    ("locked", "another process holds a write lock on it for too long"),
)


def _store_error(path: Path, exc: BaseException) -> StoreError:
    """The database error, saying which file and what an operator can do about it.

    SQLite often says only "unable to open database file"; the file system says why.
    """
    message = str(exc)
    hint = file_system_trouble(path) or next((h for key, h in _HINTS if key in message.lower()), "")
    return StoreError(f"state database {path}: {message}" + (f" ({hint})" if hint else ""))


def file_system_trouble(path: Path) -> str:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return ""
    if stats.f_flag & os.ST_RDONLY:
        return "the file system holding it is mounted read-only"
    if stats.f_bavail == 0:
        return "the disk holding it is full; watcher retries when there is room"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "watcher's user may not write the file or its directory"
    return ""


def _wal(cursor: sqlite3.Cursor) -> None:
    """WAL mode, once per file. Processes opening a new file together race to switch it,
    and the losers get "locked" at once (no busy wait for this lock): they try again."""
    for _ in range(300):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.1)
    cursor.execute("PRAGMA journal_mode=WAL")


def _feed_status(r: Any, count: int) -> FeedStatus:
    return FeedStatus(
        name=r.name,
        url=r.url,
        baselined=bool(r.baselined),
        last_poll_at=r.last_poll_at,
        last_success_at=r.last_success_at,
        last_error=r.last_error,
        failures=r.failures,
        failing_since=r.failing_since,
        next_poll_at=r.next_poll_at,
        disabled_reason=r.disabled_reason,
        moved_to=r.moved_to if r.moved_from == r.url else None,
        items=count,
        etag=r.etag,
        last_modified=r.last_modified,
        last_error_at=r.last_error_at,
    )


def _feed_state(row: Any) -> FeedState:
    return FeedState(
        etag=row.etag,
        last_modified=row.last_modified,
        body_hash=row.body_hash,
        baselined=bool(row.baselined),
        failures=row.failures,
        failing_since=row.failing_since,
        next_poll_at=row.next_poll_at,
        disabled_reason=row.disabled_reason,
        disabled_url=row.disabled_url,
        moved_from=row.moved_from,
        moved_to=row.moved_to,
        max_items=row.max_items,
        health_notice=row.health_notice,
    )


def _episode(row: Any) -> Episode:
    return Episode(
        kind=row.kind,
        name=row.name,
        seq=row.seq,
        started_at=row.started_at,
        last_high_at=row.last_high_at,
        stories=row.stories,
        usual=row.usual,
        peak=row.peak,
        window=float(row.window),
        ended_at=row.ended_at,
        feeds=tuple(json.loads(row.feeds or "[]")),
        headlines=tuple(json.loads(row.headlines or "[]")),
    )


def _episode_key(episode: Episode) -> list[ColumnElement[bool]]:
    return [
        spike_episodes.c.kind == episode.kind,
        spike_episodes.c.name == episode.name,
        spike_episodes.c.seq == episode.seq,
    ]


def _stored_item(r: Any) -> Item:
    text = json.loads(r.text)
    return Item(
        feed=r.feed,
        id=r.item_id,
        title=r.title,
        link=r.link,
        summary=text.get("summary", ""),
        content=text.get("content", ""),
        published=r.published,
        author=text.get("author", ""),
        tags=tuple(text.get("tags", ())),
    )


def _free(table: Any, node: str, now: datetime) -> ColumnElement[bool]:
    """A row nobody else holds: unclaimed, claimed by ``node``, or its lease expired."""
    return or_(table.c.claimed_by.is_(None), table.c.claimed_by == node, table.c.lease_until < now)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _due(now: datetime) -> ColumnElement[bool]:
    """A feed due by ``now``; one never scheduled (a state from before the schedule was
    stored) is due at once."""
    return or_(feeds.c.next_poll_at.is_(None), feeds.c.next_poll_at <= now)


def _lease_lost(feed: str) -> LeaseLost:
    return LeaseLost(
        f"feed {feed!r}: another process took over this poll's claim (its lease expired); "
        "this poll's outcome is not recorded"
    )


# A feed's history is trimmed to POLL_HISTORY every PRUNE_EVERY of its polls (by this
# process), not at each one: the DELETE cost a quiet poll (a 304) more than the rest of
# its write, and a feed keeps at most POLL_HISTORY + PRUNE_EVERY rows in between (the
# console shows the newest POLL_HISTORY).
PRUNE_EVERY = 10


def _keep_poll(
    conn: Connection, feed: str, at: datetime, poll: PollRecord, *, prune: bool = True
) -> None:
    """Add a poll to its feed's history, and with ``prune`` forget the feed's polls
    beyond the newest POLL_HISTORY: the history stays small however long watcher runs."""
    conn.execute(
        _POLL_INSERT,
        {
            "feed": feed,
            "at": at,
            "outcome": poll.outcome,
            "status": poll.status,
            "duration": poll.duration,
            "items": poll.items,
            "new_items": poll.new_items,
            "error": poll.error,
        },
    )
    if not prune:
        return
    oldest_kept = (
        select(polls.c.id)
        .where(polls.c.feed == feed)
        .order_by(polls.c.id.desc())
        .offset(POLL_HISTORY - 1)
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(delete(polls).where(polls.c.feed == feed, polls.c.id < oldest_kept))


_POLL_INSERT = polls.insert()


@dataclass
class _QuietWrite:
    """One poll's quiet update, waiting to be committed with others (Store._quiet_success)."""

    history: PollRecord | None
    params: dict[str, Any]
    prune: bool = True  # trim the feed's history this time (see PRUNE_EVERY)
    done: bool = False
    updated: bool = False
    error: BaseException | None = None

    def keep(self, conn: Connection) -> None:
        """The poll's history row, in the transaction of its update (if that updated)."""
        if self.updated and self.history is not None:
            _keep_poll(
                conn, self.params["b_name"], self.params["b_now"], self.history, prune=self.prune
            )


class Store:
    """One state database. Safe to share between threads."""

    def __init__(self, engine: Engine, *, readonly: bool = False, name: str | None = None) -> None:
        """Bring the database to this watcher's schema, or with ``readonly`` only check
        that it is there: a reader never writes, not even the schema's version."""
        self.engine = engine
        self.name = name or engine.url.render_as_string(hide_password=True)
        self.readonly = readonly
        self.migration: upgrade.Migration | None = None  # what opening did to the schema
        # Which daemons live (PostgreSQL): on SQLite, the state's file lock says it.
        self._nodes = NodeLocks(engine, self.name) if engine.dialect.name == "postgresql" else None
        self._quiet_queue: list[_QuietWrite] = []
        self._kept_since_prune: dict[str, int] = {}  # polls kept per feed since its last trim
        # Sends whose outcome could not be written yet: (alert ids, when sent).
        self._unrecorded: list[tuple[list[int], datetime]] = []
        self._unrecorded_lock = threading.Lock()
        self._quiet_queue_lock = threading.Lock()
        self._quiet_writer = threading.Lock()
        try:
            if readonly:
                with engine.connect() as conn:
                    self.revision = upgrade.check(conn)
            else:
                with engine.begin() as conn:
                    self.migration = upgrade.upgrade(conn)
                self.revision = self.migration.after
        except (SQLAlchemyError, RuntimeError) as exc:
            engine.dispose()
            raise StoreError(f"cannot open state database {self.name}: {exc}") from exc
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def open(cls, target: str | Path, *, readonly: bool = False) -> Store:
        """Open a state: a SQLite file (created if needed, in WAL mode), or the PostgreSQL
        database a ``postgresql://`` URL names. ``readonly``: a reader, which neither
        creates, migrates nor writes anything (SQLite: the file must exist)."""
        if isinstance(target, str) and looks_like_url(target):
            engine, name = postgres_engine(target, readonly=readonly)
            return cls(engine, readonly=readonly, name=name)
        p = Path(target).expanduser()
        if not readonly:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the state directory {p.parent}: {exc}") from exc
        connect: dict[str, Any] = {"timeout": 30, "check_same_thread": False}
        if readonly:  # SQLite itself refuses every write on this connection
            uri = f"file:{quote(str(p))}?mode=ro"
            engine = create_engine(
                f"sqlite+pysqlite:///{p}",
                creator=lambda: sqlite3.connect(uri, uri=True, **connect),
            )
        else:
            engine = create_engine(f"sqlite+pysqlite:///{p}", connect_args=connect)

        @event.listens_for(engine, "handle_error")
        def _explain(context: ExceptionContext) -> None:
            # The file's troubles (full, read-only, I/O, corrupt), not our own SQL mistakes.
            error = context.original_exception
            if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError) and not (
                isinstance(error, sqlite3.IntegrityError | sqlite3.ProgrammingError)
            ):
                raise _store_error(p, error) from error

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            if not readonly:
                _wal(cursor)
                cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return cls(engine, readonly=readonly, name=str(p))

    def close(self) -> None:
        if self._nodes is not None:
            self._nodes.close()
        self.engine.dispose()

    def now(self) -> datetime:
        """The time leases are compared against: on PostgreSQL the database's clock, the
        same for every process that shares the state whatever their own clocks say; on
        SQLite (one daemon) this machine's."""
        if self._nodes is None:
            return datetime.now(UTC)
        with self.engine.connect() as conn:
            value: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        return value.astimezone(UTC)

    def _insert(self, table: Any) -> Any:
        """An INSERT that can take ON CONFLICT clauses on both SQLite and PostgreSQL."""
        if self.engine.dialect.name == "postgresql":
            # Imported by the engine already; named here so that a daemon on SQLite
            # does without SQLAlchemy's PostgreSQL dialects (about 2 MiB).
            from sqlalchemy.dialects.postgresql import insert

            return insert(table)
        return sqlite_insert(table)

    # -- feeds ------------------------------------------------------------------

    _STATE = select(feeds).where(feeds.c.name == bindparam("b_name"))

    def feed_state(self, name: str) -> FeedState:
        with self.engine.connect() as conn:
            row = conn.execute(self._STATE, {"b_name": name}).first()
        return FeedState() if row is None else _feed_state(row)

    def commit_poll(self, record: PollDecision) -> int:
        """ONE transaction: the feed's state and next poll, every item seen, alerts and
        notices queued; applied as decided (``record.kind``), and only while
        ``record.node`` still holds the feed's claim (:class:`LeaseLost` otherwise, and
        nothing is written).

        Returns how many alerts (notices included) were queued; one already queued
        for the same item and notifier is not queued again.
        """
        if record.kind == "quiet" and self._quiet_success(record):
            return 0
        now = record.now  # (a quiet success for a feed with no row yet takes the full path)
        values: dict[str, Any] = {
            "url": record.url,
            "last_poll_at": now,
            "next_poll_at": record.next_poll_at,
        }
        if record.kind != "failure":
            values.update(
                _RECOVERED,
                etag=record.etag,
                last_modified=record.last_modified,
                last_success_at=now,
            )
            if record.body_hash is not None:
                values["body_hash"] = record.body_hash
            if record.baselined:
                values["baselined"] = True
            if record.present:
                size = len(record.present)
                values["max_items"] = case(
                    (feeds.c.max_items < size, size), else_=feeds.c.max_items
                )
        else:
            values.update(
                last_error=record.error,
                last_error_at=now,
                failures=feeds.c.failures + 1,
                failing_since=func.coalesce(feeds.c.failing_since, now),
                claimed_by=None,
                lease_until=None,
            )
            if record.disabled_url is not None:
                values.update(disabled_reason=record.error, disabled_url=record.disabled_url)
        if record.moved_to is not None:
            values.update(moved_from=record.url, moved_to=record.moved_to)
        if record.health_notice is not KEEP:
            values["health_notice"] = record.health_notice
        with self.engine.begin() as conn:
            insert_values = {k: v for k, v in values.items() if not isinstance(v, ClauseElement)}
            if record.kind == "failure":
                insert_values.update(failures=1, failing_since=now)
            if record.present:
                insert_values["max_items"] = len(record.present)
            stmt = self._insert(feeds).values(name=record.feed, created_at=now, **insert_values)
            held = None if record.node is None else feeds.c.claimed_by == record.node
            # RETURNING, not rowcount: psycopg reports no count for INSERT ... ON CONFLICT.
            written = conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[feeds.c.name], set_=values, where=held
                ).returning(feeds.c.name)
            ).first()
            if written is None:
                raise _lease_lost(record.feed)
            if record.history is not None:
                _keep_poll(
                    conn, record.feed, now, record.history, prune=self._prune_due(record.feed)
                )
            stories = self._mark_seen(conn, record, now)
            return self._queue(conn, [*record.alerts, *record.notices], now, stories)

    # Most polls in a daemon's life are 304s or unchanged bodies: one small UPDATE, built
    # once, instead of a full upsert statement built on every poll.
    _QUIET = (
        update(feeds)
        .where(
            feeds.c.name == bindparam("b_name"),
            or_(bindparam("b_unclaimed"), feeds.c.claimed_by == bindparam("b_node")),
        )
        .values(
            {
                **_RECOVERED,
                "url": bindparam("b_url"),
                "last_poll_at": bindparam("b_now"),
                "last_success_at": bindparam("b_now"),
                "next_poll_at": bindparam("b_next"),
                "etag": bindparam("b_etag"),
                "last_modified": bindparam("b_last_modified"),
                "health_notice": None,
            }
        )
    )

    def _prune_due(self, feed: str) -> bool:
        """Whether this poll trims the feed's history: the first after a start, then every
        PRUNE_EVERY (races between threads only move a trim by a poll)."""
        count = self._kept_since_prune.get(feed, PRUNE_EVERY)
        due = count >= PRUNE_EVERY
        self._kept_since_prune[feed] = 1 if due else count + 1
        return due

    def _quiet_success(self, record: PollDecision) -> bool:
        """Record a success that changed nothing but the feed row, in a group commit;
        False when the feed has no row yet."""
        mine = _QuietWrite(
            record.history,
            {
                "b_name": record.feed,
                "b_url": record.url,
                "b_now": record.now,
                "b_next": record.next_poll_at,
                "b_etag": record.etag,
                "b_last_modified": record.last_modified,
                "b_unclaimed": record.node is None,
                "b_node": record.node,
            },
            prune=record.history is not None and self._prune_due(record.feed),
        )
        with self._quiet_queue_lock:
            self._quiet_queue.append(mine)
        # Group commit: whoever holds the writer lock commits every quiet update queued
        # so far in one transaction (one fsync), so polls finishing together wait for
        # one commit instead of queueing for one each. Nobody returns before its own
        # update is committed, so nothing is less durable than one commit per poll.
        with self._quiet_writer:
            if not mine.done:
                with self._quiet_queue_lock:
                    batch, self._quiet_queue = self._quiet_queue, []
                try:
                    with self.engine.begin() as conn:
                        for write in batch:
                            write.updated = bool(conn.execute(self._QUIET, write.params).rowcount)
                            write.keep(conn)
                except BaseException as exc:
                    for write in batch:
                        write.error = exc
                    raise
                finally:
                    for write in batch:
                        write.done = True
        if mine.error is not None:
            # Another poll's commit of this update failed (a full disk...): try alone, so
            # the error raised here is this thread's own.
            with self.engine.begin() as conn:
                mine.updated = bool(conn.execute(self._QUIET, mine.params).rowcount)
                mine.keep(conn)
        if not mine.updated and record.node is not None:
            raise _lease_lost(record.feed)
        return mine.updated

    # -- the schedule and claims -------------------------------------------------

    def sync_feeds(
        self, configured: Sequence[tuple[str, str]], now: datetime
    ) -> dict[str, FeedState]:
        """Give every configured feed (name, url) a row, due at ``now`` if it is new; a
        feed disabled by a 410 whose URL has changed in the config is enabled again, due
        at once. Returns each configured feed's state once this is done."""
        names = [name for name, _ in configured]
        existing: dict[str, FeedState] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(names):
                for row in conn.execute(select(feeds).where(feeds.c.name.in_(chunk))):
                    existing[row.name] = _feed_state(row)
        fresh = [
            {"name": name, "url": url, "created_at": now, "next_poll_at": now}
            for name, url in configured
            if name not in existing
        ]
        revived = [
            name
            for name, url in configured
            if name in existing
            and existing[name].disabled_reason is not None
            and not existing[name].disabled_for(url)
        ]
        if fresh or revived:
            with self.engine.begin() as conn:
                if fresh:
                    conn.execute(self._insert(feeds).on_conflict_do_nothing(), fresh)
                for chunk in _chunks(revived):
                    conn.execute(
                        update(feeds)
                        .where(feeds.c.name.in_(chunk))
                        .values(disabled_reason=None, disabled_url=None, next_poll_at=now)
                    )
        states = {name: FeedState(next_poll_at=now) for name, _ in configured}
        states.update((name, state) for name, state in existing.items() if name not in revived)
        for name in revived:
            states[name] = replace(
                existing[name], disabled_reason=None, disabled_url=None, next_poll_at=now
            )
        return states

    def due_feeds(
        self,
        names: Collection[str],
        now: datetime,
        *,
        node: str,
        limit: int,
        skip: Collection[str] = (),
    ) -> list[str]:
        """The one query that says what to poll: of these feeds (less ``skip``), those
        due by ``now``, not disabled, and free (unclaimed, claimed by ``node`` itself, or
        whose lease expired), the most overdue first.

        The daemon asks every second. Naming more than a few feeds (``_LISTED``), it reads
        the due rows of every feed instead and keeps those named: the due ones are few once
        the first round is over, while SQLAlchemy renders an IN list's every name at every
        call (with 10,000 feeds in IN lists of 500, an idle daemon used 6% of a core)."""
        wanted = _Wanted(names, skip)
        if limit <= 0 or not wanted:
            return []
        query = select(feeds.c.next_poll_at, feeds.c.name).where(
            _due(now), feeds.c.disabled_reason.is_(None), _free(feeds, node, now)
        )
        if wanted.listed is not None:
            query = query.where(feeds.c.name.in_(wanted.listed))
        with self.engine.connect() as conn:
            found = [(r.next_poll_at or _EPOCH, r.name) for r in conn.execute(query)]
        return [name for _, name in sorted(f for f in found if wanted.holds(f[1]))[:limit]]

    def next_due(self, names: Collection[str], *, skip: Collection[str] = ()) -> datetime | None:
        """When the first of these feeds (less ``skip``, and not disabled) is due next.

        Naming more than a few feeds (see :meth:`due_feeds`), it walks the
        schedule in order, a page at a time, to the first feed named: the first page
        nearly always has it."""
        wanted = _Wanted(names, skip)
        if not wanted:
            return None
        not_disabled = feeds.c.disabled_reason.is_(None)
        with self.engine.connect() as conn:
            if wanted.listed is not None:
                return conn.execute(
                    select(func.min(feeds.c.next_poll_at)).where(
                        feeds.c.name.in_(wanted.listed), not_disabled
                    )
                ).scalar()
            when, name = feeds.c.next_poll_at, feeds.c.name
            page = (
                select(when, name)
                .where(not_disabled, when.is_not(None))
                .order_by(when, name)
                .limit(_PAGE)
            )
            query = page
            while True:
                rows = conn.execute(query).all()
                for row in rows:
                    if wanted.holds(row.name):
                        first: datetime = row.next_poll_at
                        return first
                if len(rows) < _PAGE:
                    return None
                last = rows[-1]
                query = page.where(
                    or_(when > last.next_poll_at, and_(when == last.next_poll_at, name > last.name))
                )

    def claim_poll(self, feed: str, *, node: str, now: datetime, until: datetime) -> bool:
        """Compare-and-set: ``node`` holds the feed's poll until ``until`` if it is still
        due and free. Of several claimants, exactly one wins."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(feeds)
                    .where(feeds.c.name == feed, _due(now), _free(feeds, node, now))
                    .values(claimed_by=node, lease_until=until)
                ).rowcount
            )

    def release_claims(self, *, keep: str, now: datetime) -> int:
        """Free every claim not held by ``keep``: their holders are gone (on SQLite, the
        process that holds the state's lock is the only one alive). An alert that was
        being sent when its holder died is due at once, not at its retry time."""
        return self._release(
            lambda table: and_(table.c.claimed_by.is_not(None), table.c.claimed_by != keep), now
        )

    def hold_node(self, node: str) -> None:
        """Say, for as long as this process lives, that ``node`` lives: on PostgreSQL a
        session advisory lock on the node's key, on a connection of its own (taken again
        if that connection drops), which the server frees the moment the process dies. On
        SQLite nothing: the state's file lock says which daemon lives."""
        if self._nodes is not None:
            self._nodes.hold(node)

    def release_dead_claims(self, *, keep: str, now: datetime) -> tuple[list[str], int]:
        """PostgreSQL: free the claims of every daemon that is gone (its node lock is
        free), so that what it held is free at once, not when its leases run out; first
        make sure ``keep``'s own lock is still held. Returns the dead nodes and how many
        claims were freed. SQLite: nothing (the lock holder frees them at start)."""
        if self._nodes is None:
            return [], 0
        if self._nodes.keep():
            # This daemon's own session had dropped: most likely the server restarted,
            # and then every daemon's lock is free until that daemon takes it again, at
            # its next look. A node judged dead now may be polling or sending: judge
            # at the next look, when the live ones hold their locks again.
            return [], 0
        holders = self.claim_holders(besides=keep, now=now)
        dead = sorted(holders - self._nodes.alive(holders))
        return dead, self.release_claims_of(dead, now=now)

    def claim_holders(self, *, besides: str, now: datetime) -> set[str]:
        """The nodes other than ``besides`` that hold a claim whose lease has not run out
        by ``now`` (an expired one is free to anyone anyway)."""
        query = union(
            select(feeds.c.claimed_by).where(
                feeds.c.claimed_by.is_not(None),
                feeds.c.claimed_by != besides,
                feeds.c.lease_until >= now,
            ),
            select(alerts.c.claimed_by).where(
                alerts.c.status == "pending",
                alerts.c.claimed_by.is_not(None),
                alerts.c.claimed_by != besides,
                alerts.c.lease_until >= now,
            ),
        )
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def release_claims_of(self, nodes: Collection[str], *, now: datetime) -> int:
        """Free every claim of ``nodes``, which are gone. An alert that was being sent when
        its holder died is due at once, not at its retry time."""
        if not nodes:
            return 0
        return self._release(lambda table: table.c.claimed_by.in_(sorted(nodes)), now)

    def _release(self, held: Callable[[Any], ColumnElement[bool]], now: datetime) -> int:
        """Free the claims ``held`` selects: feeds and alerts; a pending alert is due now."""
        with self.engine.begin() as conn:
            polls = conn.execute(
                update(feeds).where(held(feeds)).values(claimed_by=None, lease_until=None)
            ).rowcount
            sends = conn.execute(
                update(alerts)
                .where(held(alerts), alerts.c.status == "pending")
                .values(claimed_by=None, lease_until=None, next_attempt_at=now)
            ).rowcount
            conn.execute(
                update(alerts).where(held(alerts)).values(claimed_by=None, lease_until=None)
            )
        return (polls or 0) + (sends or 0)

    def held_claims(self, node: str) -> dict[str, datetime]:
        """The feeds ``node`` holds a claim on, each with its lease's end, which tells
        this claim from one taken again later (see :meth:`release_idle_claims`)."""
        query = select(feeds.c.name, feeds.c.lease_until).where(feeds.c.claimed_by == node)
        with self.engine.connect() as conn:
            return {row.name: row.lease_until for row in conn.execute(query)}

    def release_idle_claims(self, node: str, claims: Mapping[str, datetime]) -> list[str]:
        """Free these claims of ``node``'s (read by :meth:`held_claims`, on feeds that it
        was not polling after that read): a poll whose outcome could not be written (the
        database went away) left its claim, and on a shared state no other node may take
        the feed until the lease runs out. Each is freed only if it is still the claim
        that was read: one taken again since (a new poll) has another lease end."""
        freed: list[str] = []
        with self.engine.begin() as conn:
            for name, until in sorted(claims.items()):
                freed += conn.execute(
                    update(feeds)
                    .where(
                        feeds.c.name == name,
                        feeds.c.claimed_by == node,
                        feeds.c.lease_until == until,
                    )
                    .values(claimed_by=None, lease_until=None)
                    .returning(feeds.c.name)
                ).scalars()
        return freed

    def reschedule(self, due: Mapping[str, datetime]) -> None:
        """Set when feeds are due (a clock jump, a feed whose config changed)."""
        rows = [{"b_name": name, "b_next": at} for name, at in due.items()]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(
                    update(feeds)
                    .where(feeds.c.name == bindparam("b_name"))
                    .values(next_poll_at=bindparam("b_next")),
                    rows,
                )

    def _mark_seen(self, conn: Connection, record: PollDecision, now: datetime) -> dict[str, str]:
        """Record the poll's new items and their stories; touch the items seen again.

        Returns item id -> story for the items whose story changed from the one planned:
        a poll of another feed that committed the same story key first (the key's primary
        key decides), so this item joins that story instead of starting its own.
        """
        feed = record.feed
        stories = self._claim_story_keys(conn, record, now)
        if record.seen:
            rows = [
                {
                    "feed": feed,
                    "item_id": s.item.id,
                    "title": s.item.title[:1000],
                    "link": s.item.link,
                    "published": s.item.published,
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "text": _item_text(s.item),
                    "silent": s.kind != "new",
                    "kind": s.kind,
                    "link_key": s.link_key,
                    "fragment": s.fragment,
                    "title_key": s.title_key,
                    "same_as": s.same_as,
                    "story": stories.get(s.item.id, s.story),
                }
                for s in record.seen
            ]
            conn.execute(self._insert(items).on_conflict_do_nothing(), rows)
            sources = [
                {"story": row["story"], "feed": feed, "item_id": row["item_id"], "seen_at": now}
                for row in rows
                if row["story"] is not None and row["kind"] == "new"
            ]
            if sources:
                conn.execute(self._insert(story_sources).on_conflict_do_nothing(), sources)
            counted = [
                (kind, name, str(row["story"]), str(row["item_id"]))
                for s, row in zip(record.seen, rows, strict=True)
                if s.mentions and row["kind"] == "new"
                for kind, name in s.mentions
            ]
            if counted:
                self._count_mentions(conn, feed, counted, now)
        for chunk in _chunks(list(record.present)):
            conn.execute(
                update(items)
                .where(items.c.feed == feed, items.c.item_id.in_(chunk))
                .values(last_seen_at=now)
            )
        return stories

    def _count_mentions(
        self,
        conn: Connection,
        feed: str,
        counted: Sequence[tuple[str, str, str, str]],
        now: datetime,
    ) -> None:
        """Count the poll's new stories for each rule and entity they mention, in the
        poll's own transaction: a story once per rule or entity however many feeds carry
        it (mention_stories' primary key says which are counted already, also when polls
        of two feeds race), and each feed once per bucket (mention_feeds'). Three
        statements, whatever the number of items: this runs on every poll with news."""
        bucket = bucket_of(now)
        stories: dict[tuple[str, str, str], dict[str, Any]] = {}
        for kind, name, story, item_id in counted:
            stories.setdefault(
                (kind, name, story),
                {
                    "kind": kind,
                    "name": name,
                    "story": story,
                    "bucket": bucket,
                    "feed": feed,
                    "item_id": item_id,
                },
            )
        new_stories: dict[tuple[str, str], int] = {}
        for kind, name in conn.execute(
            self._insert(mention_stories)
            .on_conflict_do_nothing()
            .returning(mention_stories.c.kind, mention_stories.c.name),
            [stories[key] for key in sorted(stories)],
        ):
            new_stories[(kind, name)] = new_stories.get((kind, name), 0) + 1
        names = sorted({(kind, name) for kind, name, _ in stories})
        new_feeds: set[tuple[str, str]] = set(
            (kind, name)
            for kind, name in conn.execute(
                self._insert(mention_feeds)
                .on_conflict_do_nothing()
                .returning(mention_feeds.c.kind, mention_feeds.c.name),
                [{"kind": k, "name": n, "bucket": bucket, "feed": feed} for k, n in names],
            )
        )
        rows = [
            {
                "kind": kind,
                "name": name,
                "bucket": bucket,
                "stories": new_stories.get((kind, name), 0),
                "feeds": int((kind, name) in new_feeds),
            }
            for kind, name in names
            if (kind, name) in new_stories or (kind, name) in new_feeds
        ]
        if rows:
            insert = self._insert(mention_counts)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[
                        mention_counts.c.kind,
                        mention_counts.c.name,
                        mention_counts.c.bucket,
                    ],
                    set_={
                        "stories": mention_counts.c.stories + insert.excluded.stories,
                        "feeds": mention_counts.c.feeds + insert.excluded.feeds,
                    },
                ),
                rows,
            )

    def _claim_story_keys(
        self, conn: Connection, record: PollDecision, now: datetime
    ) -> dict[str, str]:
        """Point each new item's story keys at its story; a key another feed holds (fresh,
        within the story window) wins, and the item joins that story instead.

        One INSERT for every key (the key is the primary key, so of two polls racing on
        one story only one inserts it), then only the keys that were taken are read.
        """
        cutoff = record.story_cutoff or now
        wanted = {
            key: seen for seen in record.seen if seen.story is not None for key in seen.story_keys
        }
        if not wanted:
            return {}
        rows = [
            {
                "key": key,
                "kind": key.partition(":")[0],
                "shape": shape(key.removeprefix("head:")) if key.startswith("head:") else None,
                "story": seen.story,
                "feed": record.feed,
                "created_at": now,
            }
            for key, seen in wanted.items()
        ]
        inserted = set(
            conn.execute(
                self._insert(story_keys).on_conflict_do_nothing().returning(story_keys.c.key),
                rows,
            ).scalars()
        )
        taken = [key for key in wanted if key not in inserted]
        changed: dict[str, str] = {}
        for chunk in _chunks(taken):
            query = select(story_keys).where(story_keys.c.key.in_(chunk))
            for row in conn.execute(query).all():
                seen = wanted[row.key]
                if seen.joined or row.story == seen.story or seen.item.id in changed:
                    continue  # found there by the poll: the story's own key stays
                if row.created_at < cutoff or row.feed == record.feed:
                    # Stale, or set by this feed (a status page's next incident): taken over.
                    conn.execute(
                        update(story_keys)
                        .where(story_keys.c.key == row.key)
                        .values(story=seen.story, feed=record.feed, created_at=now)
                    )
                else:  # another feed's copy of this story committed first: join it
                    changed[seen.item.id] = row.story
        return changed

    def _queue(
        self,
        conn: Connection,
        to_queue: Sequence[Alert],
        now: datetime,
        stories: dict[str, str] | None = None,
    ) -> int:
        stories = stories or {}
        pending = [(alert, stories.get(alert.item_id, alert.story)) for alert in to_queue]
        told = self._stories_told(conn, [(a, s) for a, s in pending if s is not None], now)
        queued = 0
        for alert, story in pending:
            if story is not None and (story, alert.notifier) not in told:
                continue
            result = conn.execute(
                self._insert(alerts)
                .values(
                    feed=alert.feed,
                    item_id=alert.item_id,
                    notifier=alert.notifier,
                    rules=json.dumps(list(alert.rules)),
                    title=alert.title,
                    body=alert.body,
                    link=alert.link,
                    created_at=now,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    payload=json.dumps(dict(alert.payload), ensure_ascii=False, default=str),
                    priority=PRIORITIES.index(alert.priority),
                    story=story,
                )
                .on_conflict_do_nothing()
                # Counted by what it returns: PostgreSQL's rowcount is -1 once SQLAlchemy
                # adds RETURNING for the new id.
                .returning(alerts.c.id)
            )
            queued += len(result.all())
        return queued

    def _stories_told(
        self, conn: Connection, pending: Sequence[tuple[Alert, str]], now: datetime
    ) -> set[tuple[str, str]]:
        """Compare-and-set on what each notifier was told of each story: the (story,
        notifier) pairs whose alert goes out, because nobody told it yet or it adds a rule
        or a higher priority (the record is widened); an alert already queued, by this poll
        or a concurrent one, that says all of it keeps the pair out."""
        if not pending:
            return set()
        first = {(story, a.notifier): a for a, story in reversed(pending)}
        rows = [
            {
                "story": story,
                "notifier": notifier,
                "rules": json.dumps(sorted(a.rules)),
                "priority": PRIORITIES.index(a.priority),
                "created_at": now,
            }
            for (story, notifier), a in first.items()
        ]
        go = {
            (r.story, r.notifier)
            for r in conn.execute(
                self._insert(story_alerts)
                .on_conflict_do_nothing()
                .returning(story_alerts.c.story, story_alerts.c.notifier),
                rows,
            )
        }
        for alert, story in pending:
            pair = (story, alert.notifier)
            if pair in go:
                continue
            query = select(story_alerts.c.rules, story_alerts.c.priority).where(
                story_alerts.c.story == story, story_alerts.c.notifier == alert.notifier
            )
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            told, level = conn.execute(query).one()
            rules = set(json.loads(told))
            if covered((rules, PRIORITIES[level]), alert.rules, alert.priority):
                continue
            conn.execute(
                update(story_alerts)
                .where(story_alerts.c.story == story, story_alerts.c.notifier == alert.notifier)
                .values(
                    rules=json.dumps(sorted(rules | set(alert.rules))),
                    priority=max(level, PRIORITIES.index(alert.priority)),
                )
            )
            go.add(pair)
        return go

    def feed_statuses(self) -> list[FeedStatus]:
        counts = select(items.c.feed, func.count().label("n")).group_by(items.c.feed).subquery()
        query = (
            select(feeds, func.coalesce(counts.c.n, 0).label("n"))
            .select_from(feeds.outerjoin(counts, counts.c.feed == feeds.c.name))
            .order_by(feeds.c.name)
        )
        with self.engine.connect() as conn:
            return [_feed_status(r, r.n) for r in conn.execute(query)]

    def failing_feeds(self) -> list[str]:
        """The feeds that fail or are disabled, as :meth:`feed_statuses` would say: for the
        daemon's status line, every half minute, without counting every feed's items.
        Every row of the state, configured or not: the caller keeps its own."""
        query = select(feeds.c.name).where(
            or_(feeds.c.failures > 0, feeds.c.disabled_reason.is_not(None))
        )
        with self.engine.connect() as conn:
            return list(conn.scalars(query.order_by(feeds.c.name)))

    def feed_status(self, name: str) -> FeedStatus | None:
        """One feed as :meth:`feed_statuses` gives it; None when the state has no such feed."""
        with self.engine.connect() as conn:
            row = conn.execute(select(feeds).where(feeds.c.name == name)).first()
            if row is None:
                return None
            count = conn.execute(
                select(func.count()).select_from(items).where(items.c.feed == name)
            ).scalar_one()
        return _feed_status(row, count)

    def recent_polls(self, feed: str, *, limit: int = POLL_HISTORY) -> list[PollEntry]:
        """The feed's latest polls, newest first (the state keeps the last POLL_HISTORY)."""
        query = select(polls).where(polls.c.feed == feed).order_by(polls.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                PollEntry(
                    r.at,
                    PollRecord(r.outcome, r.duration, r.status, r.items, r.new_items, r.error),
                )
                for r in conn.execute(query)
            ]

    def last_poll_at(self, names: Sequence[str] | None = None) -> datetime | None:
        """When the latest poll of these feeds (default: any) finished, failed ones too."""
        found: list[datetime] = []
        with self.engine.connect() as conn:
            if names is None:
                value = conn.execute(select(func.max(feeds.c.last_poll_at))).scalar()
                return value if isinstance(value, datetime) else None
            for chunk in _chunks(list(names)):
                query = select(func.max(feeds.c.last_poll_at)).where(feeds.c.name.in_(chunk))
                value = conn.execute(query).scalar()
                if value is not None:
                    found.append(value)
        return max(found, default=None)

    # -- items ------------------------------------------------------------------

    def new_items(self, feed: str, candidates: Iterable[Item]) -> list[Item]:
        """The candidates never seen in this feed (by primary id), in their document order."""
        pending = list(candidates)
        known = self.seen_ids(feed, [item.id for item in pending])
        return [item for item in pending if item.id not in known]

    def seen_ids(self, feed: str, ids: Sequence[str]) -> frozenset[str]:
        """Which of these item ids this feed has seen."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(ids)):
                found.update(
                    conn.execute(
                        select(items.c.item_id).where(
                            items.c.feed == feed, items.c.item_id.in_(chunk)
                        )
                    ).scalars()
                )
        return frozenset(found)

    _KNOWN_COLUMNS = (
        items.c.item_id,
        items.c.same_as,
        items.c.link_key,
        items.c.fragment,
        items.c.title_key,
        items.c.published,
    )

    def known(self, feed: str, keys: Mapping[str, Keys]) -> Known:
        """What identity needs to judge a document (``keys``: item id -> its keys): the ids
        this feed has seen, and the seen items that share a canonical link or a title with
        an item of the document. One query: by id, by link key or by title key."""
        ids: set[str] = set()
        by_link: dict[str, list[Seen]] = {}
        by_title: dict[str, list[Seen]] = {}
        wanted = list(keys.items())
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK // 3):
                chunk = wanted[start : start + _CHUNK // 3]
                doc = {item_id for item_id, _ in chunk}
                links = sorted({k.link for _, k in chunk if k.link})
                titles = sorted({k.title for _, k in chunk if k.title})
                # The feed in each branch: so SQLite searches each index (a multi-index OR)
                # instead of scanning every item of the feed.
                query = select(*self._KNOWN_COLUMNS).where(
                    ((items.c.feed == feed) & items.c.item_id.in_(sorted(doc)))
                    | ((items.c.feed == feed) & items.c.link_key.in_(links))
                    | ((items.c.feed == feed) & items.c.title_key.in_(titles))
                )
                for r in conn.execute(query):
                    if r.item_id in doc:
                        ids.add(r.item_id)
                    seen = Seen(
                        r.item_id,
                        r.same_as or r.item_id,
                        Keys(r.link_key, r.fragment, r.title_key, minute(r.published)),
                    )
                    if r.link_key:
                        rows = by_link.setdefault(r.link_key, [])
                        if all(s.item_id != r.item_id for s in rows):
                            rows.append(seen)
                    if r.title_key:
                        rows = by_title.setdefault(r.title_key, [])
                        if all(s.item_id != r.item_id for s in rows):
                            rows.append(seen)
        return Known(frozenset(ids), by_link, by_title)

    def recent_stories(
        self, feed: str, keys: Iterable[str], *, since: datetime, shapes: Iterable[str] = ()
    ) -> Recent:
        """The story keys ``keys`` lead to, and with ``headlines`` every headline key other
        feeds set since ``since`` (near-identical headlines are found among them); with
        the feeds that carried those stories and what each notifier was told of them."""
        wanted = sorted(set(keys))
        found: dict[str, StoryKey] = {}
        recent: list[StoryKey] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                for r in conn.execute(select(story_keys).where(story_keys.c.key.in_(chunk))):
                    found[r.key] = StoryKey(r.key, r.story, r.feed, r.created_at)
            for chunk in _chunks(sorted(set(shapes))):
                query = select(story_keys).where(
                    story_keys.c.shape.in_(chunk),
                    story_keys.c.created_at >= since,
                    story_keys.c.feed != feed,
                )
                recent += [
                    StoryKey(r.key, r.story, r.feed, r.created_at) for r in conn.execute(query)
                ]
            ids = sorted({row.story for row in [*found.values(), *recent]})
            carried: dict[str, set[str]] = {}
            alerted: dict[tuple[str, str], tuple[frozenset[str], Priority]] = {}
            for chunk in _chunks(ids):
                for story, source in conn.execute(
                    select(story_sources.c.story, story_sources.c.feed).where(
                        story_sources.c.story.in_(chunk)
                    )
                ):
                    carried.setdefault(story, set()).add(source)
                for r in conn.execute(select(story_alerts).where(story_alerts.c.story.in_(chunk))):
                    alerted[(r.story, r.notifier)] = (
                        frozenset(json.loads(r.rules)),
                        PRIORITIES[r.priority],
                    )
        return Recent(found, recent, {story: frozenset(f) for story, f in carried.items()}, alerted)

    def forget_stories(self, window_start: datetime, retention_start: datetime) -> int:
        """Drop what no item can join any more (story keys and what notifiers were told,
        older than the story window), and which feeds carried a story, after retention."""
        removed = 0
        with self.engine.begin() as conn:
            for stmt in (
                delete(story_keys).where(story_keys.c.created_at < window_start),
                delete(story_alerts).where(story_alerts.c.created_at < window_start),
                delete(story_sources).where(story_sources.c.seen_at < retention_start),
            ):
                removed += conn.execute(stmt).rowcount or 0
        return removed

    # -- mention counts and spikes ---------------------------------------------------

    def mention_counts(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        kind: str | None = None,
        name: str | None = None,
        period: timedelta = BUCKET,
    ) -> list[MentionCount]:
        """The counts of every rule and entity (or the one named) from ``since`` (rounded
        down to its period) to ``until``, summed per ``period`` (10 minutes, an hour, a
        day: a whole number of 10-minute buckets, aligned on UTC midnight); ``feeds`` is
        the number of distinct feeds in the period. Periods without a mention are left
        out. Read-only: for `watcher trends` and the web console."""
        step = period.total_seconds()
        first = datetime.fromtimestamp(since.timestamp() // step * step, UTC)

        def where(table: Any) -> list[ColumnElement[bool]]:
            found = [table.c.bucket >= first]
            if until is not None:
                found.append(table.c.bucket <= until)
            if kind is not None:
                found.append(table.c.kind == kind)
            if name is not None:
                found.append(table.c.name == name)
            return found

        def start(bucket: datetime) -> datetime:
            return datetime.fromtimestamp(bucket.timestamp() // step * step, UTC)

        stories: dict[tuple[str, str, datetime], int] = {}
        seen: dict[tuple[str, str, datetime], set[str]] = {}
        with self.engine.connect() as conn:
            query = select(
                mention_counts.c.kind,
                mention_counts.c.name,
                mention_counts.c.bucket,
                mention_counts.c.stories,
            ).where(*where(mention_counts))
            for k, n, bucket, count in conn.execute(query):
                key = (k, n, start(bucket))
                stories[key] = stories.get(key, 0) + count
            query = select(
                mention_feeds.c.kind,
                mention_feeds.c.name,
                mention_feeds.c.bucket,
                mention_feeds.c.feed,
            ).where(*where(mention_feeds))
            for k, n, bucket, feed in conn.execute(query):
                seen.setdefault((k, n, start(bucket)), set()).add(feed)
        keys = sorted(set(stories) | set(seen))
        return [
            MentionCount(k, n, at, stories.get((k, n, at), 0), len(seen.get((k, n, at), ())))
            for k, n, at in keys
        ]

    def spike_inputs(
        self, names: Collection[tuple[str, str]], since: datetime
    ) -> tuple[
        dict[tuple[str, str], dict[datetime, int]],
        dict[tuple[str, str], datetime],
        dict[tuple[str, str], Episode],
    ]:
        """What one look at spikes reads, for these (kind, name): their story counts per
        bucket since ``since``, the first bucket ever counted for each, and each one's
        latest episode."""
        wanted = set(names)
        counts: dict[tuple[str, str], dict[datetime, int]] = {key: {} for key in wanted}
        starts: dict[tuple[str, str], datetime] = {}
        latest: dict[tuple[str, str], Episode] = {}
        if not wanted:
            return counts, starts, latest
        kinds = sorted({k for k, _ in wanted})
        listed = sorted({n for _, n in wanted})
        with self.engine.connect() as conn:
            for k, n, bucket, count in conn.execute(
                select(
                    mention_counts.c.kind,
                    mention_counts.c.name,
                    mention_counts.c.bucket,
                    mention_counts.c.stories,
                ).where(
                    mention_counts.c.kind.in_(kinds),
                    mention_counts.c.name.in_(listed),
                    mention_counts.c.bucket >= since,
                )
            ):
                if (k, n) in wanted and count:
                    counts[(k, n)][bucket] = count
            for k, n, first in conn.execute(
                select(
                    mention_counts.c.kind, mention_counts.c.name, func.min(mention_counts.c.bucket)
                )
                .where(mention_counts.c.kind.in_(kinds), mention_counts.c.name.in_(listed))
                .group_by(mention_counts.c.kind, mention_counts.c.name)
            ):
                if (k, n) in wanted:
                    starts[(k, n)] = first
            newest = (
                select(
                    spike_episodes.c.kind,
                    spike_episodes.c.name,
                    func.max(spike_episodes.c.seq).label("seq"),
                )
                .where(spike_episodes.c.kind.in_(kinds), spike_episodes.c.name.in_(listed))
                .group_by(spike_episodes.c.kind, spike_episodes.c.name)
                .subquery()
            )
            query = select(spike_episodes).join(
                newest,
                and_(
                    spike_episodes.c.kind == newest.c.kind,
                    spike_episodes.c.name == newest.c.name,
                    spike_episodes.c.seq == newest.c.seq,
                ),
            )
            for row in conn.execute(query):
                if (row.kind, row.name) in wanted:
                    latest[(row.kind, row.name)] = _episode(row)
        return counts, starts, latest

    def spike_details(
        self, kind: str, name: str, first: datetime, last: datetime, *, top: int = 5
    ) -> tuple[list[str], list[dict[str, Any]], int]:
        """What a spike alert tells of its window (buckets ``first`` to ``last``): the feeds
        that brought a mention, the ``top`` stories (most feeds first, then the earliest),
        each with its headline, link, first feed and every feed that carried it, and how
        many stories the window holds in all."""
        with self.engine.connect() as conn:
            feeds_found = sorted(
                conn.execute(
                    select(mention_feeds.c.feed)
                    .where(
                        mention_feeds.c.kind == kind,
                        mention_feeds.c.name == name,
                        mention_feeds.c.bucket >= first,
                        mention_feeds.c.bucket <= last,
                    )
                    .distinct()
                ).scalars()
            )
            rows = conn.execute(
                select(
                    mention_stories.c.story,
                    mention_stories.c.bucket,
                    mention_stories.c.feed,
                    items.c.title,
                    items.c.link,
                )
                .select_from(
                    mention_stories.outerjoin(
                        items,
                        and_(
                            items.c.feed == mention_stories.c.feed,
                            items.c.item_id == mention_stories.c.item_id,
                        ),
                    )
                )
                .where(
                    mention_stories.c.kind == kind,
                    mention_stories.c.name == name,
                    mention_stories.c.bucket >= first,
                    mention_stories.c.bucket <= last,
                )
            ).all()
            carried = self._sources(conn, [r.story for r in rows])
        ranked = sorted(
            rows,
            key=lambda r: (-len(carried.get(r.story, (r.feed,))), r.bucket, r.feed, r.story),
        )
        headlines = [
            {
                "title": r.title or r.link or r.story,
                "link": r.link or "",
                "feed": r.feed,
                "feeds": list(carried.get(r.story, (r.feed,))),
            }
            for r in ranked[:top]
        ]
        return feeds_found, headlines, len(rows)

    def open_spike(self, episode: Episode, to_queue: Sequence[Alert], now: datetime) -> int | None:
        """Open a spike episode and queue its alerts, in one transaction, if nobody opened
        this one (kind, name, seq) yet: of several nodes that see one spike at once,
        exactly one inserts the row, and only it queues the alerts. Returns how many alerts
        were queued; None when another process had opened it."""
        row = {
            "kind": episode.kind,
            "name": episode.name,
            "seq": episode.seq,
            "started_at": episode.started_at,
            "ended_at": None,
            "last_high_at": episode.last_high_at,
            "stories": episode.stories,
            "usual": episode.usual,
            "peak": episode.peak,
            "window": int(episode.window),
            "feeds": json.dumps(list(episode.feeds), ensure_ascii=False),
            "headlines": json.dumps(list(episode.headlines), ensure_ascii=False),
        }
        with self.engine.begin() as conn:
            opened = conn.execute(
                self._insert(spike_episodes)
                .values(**row)
                .on_conflict_do_nothing()
                .returning(spike_episodes.c.seq)
            ).first()
            if opened is None:
                return None
            return self._queue(conn, to_queue, now)

    def spike_still_high(self, episode: Episode, at: datetime, count: int) -> None:
        """The open episode was found high again at ``at``: it lasts (and its peak)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(spike_episodes)
                .where(
                    *_episode_key(episode),
                    spike_episodes.c.ended_at.is_(None),
                    spike_episodes.c.last_high_at <= at,
                )
                .values(
                    last_high_at=at,
                    peak=case((spike_episodes.c.peak < count, count), else_=spike_episodes.c.peak),
                )
            )

    def close_spike(self, episode: Episode, at: datetime) -> bool:
        """The episode is over (below its bar for a whole window); False if it was already."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(spike_episodes)
                    .where(*_episode_key(episode), spike_episodes.c.ended_at.is_(None))
                    .values(ended_at=at)
                ).rowcount
            )

    def spike_episodes(
        self,
        *,
        active_only: bool = False,
        since: datetime | None = None,
        kind: str | None = None,
        name: str | None = None,
    ) -> list[Episode]:
        """Spike episodes, the latest start first: those still open with ``active_only``,
        those started since ``since`` (or still open). Read-only: for `watcher trends
        --spikes` and the web console."""
        query = select(spike_episodes).order_by(
            spike_episodes.c.started_at.desc(), spike_episodes.c.kind, spike_episodes.c.name
        )
        if active_only:
            query = query.where(spike_episodes.c.ended_at.is_(None))
        if since is not None:
            query = query.where(
                or_(spike_episodes.c.started_at >= since, spike_episodes.c.ended_at.is_(None))
            )
        if kind is not None:
            query = query.where(spike_episodes.c.kind == kind)
        if name is not None:
            query = query.where(spike_episodes.c.name == name)
        with self.engine.connect() as conn:
            return [_episode(row) for row in conn.execute(query)]

    def forget_mentions(self, before: datetime) -> int:
        """Drop the counts of buckets before ``before``, and the episodes over before it."""
        removed = 0
        with self.engine.begin() as conn:
            for stmt in (
                delete(mention_counts).where(mention_counts.c.bucket < before),
                delete(mention_stories).where(mention_stories.c.bucket < before),
                delete(mention_feeds).where(mention_feeds.c.bucket < before),
                delete(spike_episodes).where(spike_episodes.c.ended_at < before),
            ):
                removed += conn.execute(stmt).rowcount or 0
        return removed

    def stored_stories(self, since: datetime) -> list[StoredItem]:
        """:meth:`stored_items`, with each item's first sight and story: what replaying
        the mention counts needs (backtest of ``spike:`` settings)."""
        query = (
            select(items)
            .where(items.c.first_seen_at >= since, items.c.text.is_not(None))
            .order_by(items.c.first_seen_at, items.c.feed, items.c.item_id)
        )
        with self.engine.connect() as conn:
            return [
                StoredItem(_stored_item(r), r.kind != "new", r.first_seen_at, r.story)
                for r in conn.execute(query)
            ]

    def stored_items(self, since: datetime) -> list[tuple[Item, bool]]:
        """Items first seen since ``since`` whose text is still kept, with whether they were
        recorded silently (a baseline, a renumbering, too old): those never alert."""
        query = (
            select(items)
            .where(items.c.first_seen_at >= since, items.c.text.is_not(None))
            .order_by(items.c.first_seen_at, items.c.feed, items.c.item_id)
        )
        with self.engine.connect() as conn:
            return [(_stored_item(r), r.kind != "new") for r in conn.execute(query)]

    def alerted_rules(self, since: datetime) -> dict[tuple[str, str], set[str]]:
        """(feed, item id) -> the rules that were alerted for it, for alerts since ``since``."""
        query = select(alerts.c.feed, alerts.c.item_id, alerts.c.rules, alerts.c.payload).where(
            alerts.c.created_at >= since
        )
        found: dict[tuple[str, str], set[str]] = {}
        with self.engine.connect() as conn:
            for feed, item_id, rules, payload in conn.execute(query):
                found.setdefault((feed, item_id), set()).update(json.loads(rules))
                if item_id.startswith("flood:"):  # a summary: each item it listed
                    listed = json.loads(payload or "{}").get("items", {})
                    for listed_id, listed_rules in listed.items():
                        found.setdefault((feed, listed_id), set()).update(listed_rules)
        return found

    def forget_text(self, before: datetime) -> int:
        """Drop the text kept for backtest of items first seen before ``before``."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(items)
                .where(items.c.first_seen_at < before, items.c.text.is_not(None))
                .values(text=None)
            )
            return result.rowcount or 0

    def prune_items(self, now: datetime, *, keep_days: float = 90) -> int:
        """Forget items unseen for ``keep_days``, but never a feed's 2 x largest-size newest.

        That is how an item that drops out of a feed and comes back is still known.
        """
        cutoff = now - timedelta(days=keep_days)
        removed = 0
        with self.engine.begin() as conn:
            for name, max_items in conn.execute(select(feeds.c.name, feeds.c.max_items)).all():
                newest = (
                    select(items.c.item_id)
                    .where(items.c.feed == name)
                    .order_by(items.c.last_seen_at.desc())
                    .limit(2 * max_items)
                    .scalar_subquery()
                )
                result = conn.execute(
                    delete(items).where(
                        items.c.feed == name,
                        items.c.last_seen_at < cutoff,
                        items.c.item_id.not_in(newest),
                    )
                )
                removed += result.rowcount or 0
        return removed

    # -- daemons ----------------------------------------------------------------

    def daemon_started(self, record: DaemonRecord) -> None:
        """A daemon starts on this state: its row, with a first heartbeat."""
        values = {
            "host": record.host,
            "pid": record.pid,
            "version": record.version,
            "started_at": record.started_at,
            "heartbeat_at": record.heartbeat_at,
            "stopped_at": None,
            "config_digest": record.config_digest,
            "feeds": None if record.feeds is None else json.dumps(sorted(record.feeds)),
        }
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(daemons)
                .values(node=record.node, **values)
                .on_conflict_do_update(index_elements=[daemons.c.node], set_=values)
            )

    def daemon_heartbeat(self, node: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(daemons).where(daemons.c.node == node).values(heartbeat_at=at))

    def daemon_config(self, node: str, digest: str, feeds: Collection[str]) -> None:
        """A daemon reloaded its config: what it runs now (see Config.digest)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(daemons)
                .where(daemons.c.node == node)
                .values(config_digest=digest, feeds=json.dumps(sorted(feeds)))
            )

    def alive(self, nodes: Collection[str]) -> set[str]:
        """PostgreSQL: those of ``nodes`` whose process lives (holds its node lock), this
        process's own included. SQLite: every one of them (one daemon per file)."""
        return set(nodes) if self._nodes is None else self._nodes.alive(nodes)

    def most_overdue(self, names: Sequence[str], now: datetime) -> tuple[str, float] | None:
        """Of these feeds (not disabled), the one furthest past its due time, and by how
        many seconds; None when none is due. (Named: rows of feeds no longer configured
        stay in the table, and are due forever.)"""
        found: list[tuple[datetime, str]] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(list(names)):
                query = (
                    select(feeds.c.next_poll_at, feeds.c.name)
                    .where(
                        feeds.c.name.in_(chunk),
                        feeds.c.disabled_reason.is_(None),
                        feeds.c.next_poll_at <= now,
                    )
                    .order_by(feeds.c.next_poll_at, feeds.c.name)
                    .limit(1)
                )
                found += [(r.next_poll_at, r.name) for r in conn.execute(query)]
        if not found:
            return None
        due, name = min(found)
        return name, (now - due).total_seconds()

    def daemon_stopped(self, node: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(daemons).where(daemons.c.node == node).values(heartbeat_at=at, stopped_at=at)
            )

    def forget_daemons(self, before: datetime, *, keep: str | None = None) -> int:
        """Drop the rows of daemons not heard from since ``before`` (stopped, or gone
        without a word), all but ``keep`` (the caller's own): every restart is a new
        host:pid, and a service restarted daily for years would list them all."""
        query = delete(daemons).where(daemons.c.heartbeat_at < before)
        if keep is not None:
            query = query.where(daemons.c.node != keep)
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount or 0

    def daemon_records(self) -> list[DaemonRecord]:
        """Every daemon that ran on this state, the latest heartbeat first."""
        query = select(daemons).order_by(daemons.c.heartbeat_at.desc())
        with self.engine.connect() as conn:
            return [
                DaemonRecord(
                    r.node,
                    r.host,
                    r.pid,
                    r.version,
                    r.started_at,
                    r.heartbeat_at,
                    r.stopped_at,
                    r.config_digest,
                    None if r.feeds is None else frozenset(json.loads(r.feeds)),
                )
                for r in conn.execute(query)
            ]

    # -- the outbox -------------------------------------------------------------

    def pending_times(self) -> list[tuple[str, datetime]]:
        """(notifier, next attempt) of every pending alert, in the order delivery takes
        them (see :meth:`pending_alerts`): two columns, for when delivery runs next."""
        query = (
            select(alerts.c.notifier, alerts.c.next_attempt_at)
            .where(alerts.c.status == "pending")
            .order_by(alerts.c.priority.desc(), alerts.c.id)
        )
        with self.engine.connect() as conn:
            return [(notifier, when) for notifier, when in conn.execute(query)]

    def due_notifiers(self, now: datetime) -> list[str]:
        """The notifiers whose next alert is due by ``now``: one query, for a cluster's
        dispatcher (which asks every tick)."""
        # Each notifier's first alert in delivery's order: nothing overtakes it, so a
        # notifier is due when that one is (see delivery.due_by_notifier).
        order = func.row_number().over(
            partition_by=alerts.c.notifier, order_by=(alerts.c.priority.desc(), alerts.c.id)
        )
        first = (
            select(alerts.c.notifier, alerts.c.next_attempt_at, order.label("n"))
            .where(alerts.c.status == "pending")
            .subquery()
        )
        query = (
            select(first.c.notifier)
            .where(first.c.n == 1, first.c.next_attempt_at <= now)
            .order_by(first.c.notifier)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def pending_alerts(
        self, now: datetime | None = None, *, limit: int = 500, notifier: str | None = None
    ) -> list[PendingAlert]:
        """Pending alerts, highest priority first, then oldest first; only those due by
        ``now`` when it is given, only ``notifier``'s when it is. (Priority first, so an
        urgent alert is never stuck behind ``limit`` alerts deferred by quiet hours.)
        An alert this process sent but could not record yet is left out (see mark_sent)."""
        sent = self._record_unrecorded() if self._unrecorded else set()
        query = (
            select(alerts)
            .where(alerts.c.status == "pending")
            .order_by(alerts.c.priority.desc(), alerts.c.id)
            .limit(limit)
        )
        if now is not None:
            query = query.where(alerts.c.next_attempt_at <= now)
        if notifier is not None:
            query = query.where(alerts.c.notifier == notifier)
        rows, sources = self._alert_rows(query)
        return [
            PendingAlert(
                id=r.id,
                notifier=r.notifier,
                title=r.title,
                body=r.body,
                attempts=r.attempts,
                created_at=r.created_at,
                payload=json.loads(r.payload or "{}"),
                held=bool(r.held),
                next_attempt_at=r.next_attempt_at,
                priority=PRIORITIES[r.priority],
                sources=sources.get(r.story, ()) if r.story is not None else (),
            )
            for r in rows
            if r.id not in sent
        ]

    def _alert_rows(self, query: Any) -> tuple[Sequence[Any], dict[str, tuple[str, ...]]]:
        """The alerts a query selects, and the feeds that carried each one's story."""
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            return rows, self._sources(conn, [r.story for r in rows if r.story is not None])

    def _sources(self, conn: Connection, stories: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """story -> the feeds that carried it, in the order they did."""
        found: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(set(stories))):
            query = (
                select(story_sources.c.story, story_sources.c.feed)
                .where(story_sources.c.story.in_(chunk))
                .order_by(story_sources.c.seen_at, story_sources.c.feed)
            )
            for story, feed in conn.execute(query):
                if feed not in found.setdefault(story, []):
                    found[story].append(feed)
        return {story: tuple(feeds) for story, feeds in found.items()}

    def _update(self, ids: Sequence[int], **values: Any) -> None:
        with self.engine.begin() as conn:
            for chunk in _chunks(list(ids)):
                conn.execute(update(alerts).where(alerts.c.id.in_(chunk)).values(**values))

    def claim(
        self,
        ids: Sequence[int],
        *,
        retry_at: datetime,
        node: str | None = None,
        now: datetime | None = None,
        until: datetime | None = None,
    ) -> bool:
        """Written before a send: one more attempt, and the retry time it gets if it fails.

        If the outcome can never be recorded (a crash, a full disk), the alert is sent
        again at ``retry_at`` and not in a loop; and if this write fails, nothing is sent.
        With ``node``, a compare-and-set lease: ``node`` holds the alerts until ``until``
        if they are all still pending and free; False (and nothing written) when another
        process holds any of them, so that two processes never both send one alert.
        """
        if node is None:
            self._update(ids, attempts=alerts.c.attempts + 1, next_attempt_at=retry_at)
            return True
        assert now is not None and until is not None
        with self.engine.begin() as conn:
            claimed = 0
            for chunk in _chunks(list(ids)):
                claimed += (
                    conn.execute(
                        update(alerts)
                        .where(
                            alerts.c.id.in_(chunk),
                            alerts.c.status == "pending",
                            _free(alerts, node, now),
                        )
                        .values(
                            attempts=alerts.c.attempts + 1,
                            next_attempt_at=retry_at,
                            claimed_by=node,
                            lease_until=until,
                        )
                    ).rowcount
                    or 0
                )
            if claimed != len(set(ids)):
                conn.rollback()  # all or none: a digest is one message
                return False
        return True

    def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        """Sent as one message (one alert, or a digest of several); the claim ends.

        If that cannot be written (the database went away, the disk is full), this
        process remembers the send and writes it at its next look at the pending
        alerts, which leave these out until then: it never sends again what it knows
        it sent. (A crash loses the memory: then the alert is sent again at its retry.)
        """
        try:
            self._write_sent(ids, now)
        except StoreError:
            with self._unrecorded_lock:
                self._unrecorded.append((list(ids), now))
            raise

    def _write_sent(self, ids: Sequence[int], now: datetime) -> None:
        self._update(
            ids,
            status="sent",
            sent_at=now,
            last_error=None,
            batch=min(ids),
            claimed_by=None,
            lease_until=None,
        )

    def _record_unrecorded(self) -> set[int]:
        """Write the sends :meth:`mark_sent` could not; the alerts still unwritten."""
        with self._unrecorded_lock:
            waiting, self._unrecorded = self._unrecorded, []
        while waiting:
            ids, at = waiting[0]
            try:
                self._write_sent(ids, at)
            except StoreError:
                break
            waiting.pop(0)
        with self._unrecorded_lock:
            self._unrecorded[:0] = waiting
            return {i for ids, _ in self._unrecorded for i in ids}

    def mark_failed(
        self, ids: Sequence[int], now: datetime, error: str, *, retry_at: datetime
    ) -> None:
        """A failed attempt (counted by :meth:`claim`): retried at ``retry_at``."""
        self._update(
            ids, last_error=error, next_attempt_at=retry_at, claimed_by=None, lease_until=None
        )

    def give_up(self, ids: Sequence[int], now: datetime, error: str) -> None:
        """Undeliverable for too long: marked failed, kept, and shown by `watcher alerts`."""
        self._update(ids, status="failed", last_error=error, claimed_by=None, lease_until=None)

    def defer(self, ids: Sequence[int], until: datetime, *, held: bool) -> None:
        """Not now (quiet hours, digest window, rate limit); no attempt is counted."""
        self._update(ids, next_attempt_at=until, held=held)

    def messages_sent_since(self, notifier: str, since: datetime) -> list[datetime]:
        """When each message (a digest counts once) went to ``notifier`` since ``since``."""
        query = (
            select(func.min(alerts.c.sent_at))
            .where(
                alerts.c.notifier == notifier, alerts.c.status == "sent", alerts.c.sent_at >= since
            )
            .group_by(alerts.c.batch)
            .order_by(func.min(alerts.c.sent_at))
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def list_alerts(
        self,
        *,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        rule: str | None = None,
        feed: str | None = None,
        notifier: str | None = None,
        before: int | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[AlertRecord]:
        """The latest alerts, newest first; each filter narrows them (``rule``: alerts
        that name it; ``before``: ids below it, the next page)."""
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(alerts.c.status == status)
        if since is not None:
            query = query.where(alerts.c.created_at >= since)
        if rule is not None:  # rules is a JSON list: the name as JSON writes it, quotes and all
            pattern = json.dumps(rule).replace("\\", "\\\\")
            pattern = pattern.replace("%", "\\%").replace("_", "\\_")
            query = query.where(alerts.c.rules.like(f"%{pattern}%", escape="\\"))
        if feed is not None:
            query = query.where(alerts.c.feed == feed)
        if notifier is not None:
            query = query.where(alerts.c.notifier == notifier)
        if before is not None:
            query = query.where(alerts.c.id < before)
        if ids is not None:
            query = query.where(alerts.c.id.in_(list(ids)))
        rows, sources = self._alert_rows(query)
        return [
            AlertRecord(
                id=r.id,
                feed=r.feed,
                notifier=r.notifier,
                rules=tuple(json.loads(r.rules)),
                title=r.title,
                status=r.status,
                attempts=r.attempts,
                created_at=r.created_at,
                sent_at=r.sent_at,
                next_attempt_at=r.next_attempt_at,
                last_error=r.last_error,
                priority=PRIORITIES[r.priority],
                link=r.link,
                sources=sources.get(r.story, (r.feed,)) if r.story is not None else (r.feed,),
                item_id=r.item_id,
                payload=json.loads(r.payload or "{}"),
            )
            for r in rows
        ]

    def alert_counts_by_notifier(self) -> dict[str, dict[str, int]]:
        """notifier -> status -> how many alerts."""
        query = select(alerts.c.notifier, alerts.c.status, func.count()).group_by(
            alerts.c.notifier, alerts.c.status
        )
        found: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for notifier, status, count in conn.execute(query):
                found.setdefault(notifier, {})[status] = count
        return found

    def matches_per_day(self, since: datetime) -> dict[str, dict[date, int]]:
        """rule -> day (UTC) -> items alerted for it since ``since``: an item counts once
        however many notifiers heard of it; a flood summary counts each item it listed."""
        query = select(
            alerts.c.feed, alerts.c.item_id, alerts.c.rules, alerts.c.payload, alerts.c.created_at
        ).where(alerts.c.created_at >= since)
        seen: dict[tuple[str, str, str], date] = {}
        with self.engine.connect() as conn:
            for feed, item_id, rules, payload, created in conn.execute(query):
                if item_id.startswith("flood:"):
                    listed = json.loads(payload or "{}").get("items", {})
                    pairs = [(i, r) for i, names in listed.items() for r in names]
                else:
                    pairs = [(item_id, r) for r in json.loads(rules)]
                for listed_id, rule in pairs:
                    seen.setdefault((rule, feed, listed_id), created.date())
        counts: dict[str, dict[date, int]] = {}
        for (rule, _, _), day in seen.items():
            per_day = counts.setdefault(rule, {})
            per_day[day] = per_day.get(day, 0) + 1
        return counts

    def stored_item(self, feed: str, item_id: str) -> Item | None:
        """An item with its text, while the text is kept (``retention``); else None."""
        query = select(items).where(items.c.feed == feed, items.c.item_id == item_id)
        with self.engine.connect() as conn:
            r = conn.execute(query).first()
        if r is None or r.text is None:
            return None
        return _stored_item(r)

    def alert_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts.c.status, func.count()).group_by(alerts.c.status))
            return {status: count for status, count in rows}


def open_store(config: Config, *, readonly: bool = False) -> Store:
    """The config's state, as every command and the daemon open it."""
    return Store.open(config.state_target, readonly=readonly)


def state_exists(config: Config) -> bool:
    """Whether watcher ever created its state there: reading commands never create it."""
    if config.state_url is None:
        return config.state_path.exists()
    engine, _ = postgres_engine(config.state_url, readonly=True)
    try:
        with engine.connect() as conn:
            tables = ("alembic_version", "schema_version")
            return any(conn.dialect.has_table(conn, table) for table in tables)
    finally:
        engine.dispose()


__all__ = [
    "KEEP",
    "AlertRecord",
    "DaemonRecord",
    "FeedStatus",
    "MentionCount",
    "PollDecision",
    "PollEntry",
    "Store",
    "StoredItem",
    "open_store",
    "state_exists",
]

"""State: feeds, seen items, and the alert outbox, in SQLite (WAL) through SQLAlchemy Core.

Owns every query. Holds no business rules: it records what the pipeline decided
and answers what it asks. The SQL is the subset SQLite and PostgreSQL share
(``INSERT ... ON CONFLICT``), and uniqueness is enforced by constraints.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from watcher.exceptions import StoreError
from watcher.models import Alert, FeedState, Item, PendingAlert
from watcher.store import schema
from watcher.store.schema import alerts, feeds, items

_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass(frozen=True)
class FeedStatus:
    """A feed as `watcher status` and health checks see it."""

    name: str
    url: str
    baselined: bool
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    failures: int
    items: int


class Store:
    """One state database. Safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        try:
            with engine.begin() as conn:
                schema.migrate(conn)
        except (SQLAlchemyError, RuntimeError) as exc:
            raise StoreError(f"cannot open state database {engine.url}: {exc}") from exc

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating if needed) a SQLite database file in WAL mode."""
        p = Path(path).expanduser()
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state directory {p.parent}: {exc}") from exc
        engine = create_engine(
            f"sqlite+pysqlite:///{p}",
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: Any) -> Any:
        """An INSERT that can take ON CONFLICT clauses on both SQLite and PostgreSQL."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- feeds ------------------------------------------------------------------

    def feed_state(self, name: str) -> FeedState:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    feeds.c.etag, feeds.c.last_modified, feeds.c.body_hash, feeds.c.baselined
                ).where(feeds.c.name == name)
            ).first()
        if row is None:
            return FeedState()
        return FeedState(
            etag=row.etag,
            last_modified=row.last_modified,
            body_hash=row.body_hash,
            baselined=bool(row.baselined),
        )

    def _upsert_feed(self, conn: Any, name: str, url: str, now: datetime, **values: Any) -> None:
        values = {"url": url, "last_poll_at": now, **values}
        stmt = self._insert(feeds).values(name=name, created_at=now, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=[feeds.c.name], set_=values))

    def record_success(
        self,
        name: str,
        url: str,
        now: datetime,
        *,
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None = None,
    ) -> None:
        """A poll that found nothing to parse (304, or a body identical to the last one)."""
        values: dict[str, Any] = {
            "etag": etag,
            "last_modified": last_modified,
            "last_success_at": now,
            "last_error": None,
            "failures": 0,
        }
        if body_hash is not None:
            values["body_hash"] = body_hash
        with self.engine.begin() as conn:
            self._upsert_feed(conn, name, url, now, **values)

    def record_error(self, name: str, url: str, now: datetime, error: str) -> None:
        with self.engine.begin() as conn:
            stmt = self._insert(feeds).values(
                name=name,
                url=url,
                created_at=now,
                last_poll_at=now,
                last_error=error,
                last_error_at=now,
                failures=1,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[feeds.c.name],
                    set_={
                        "last_poll_at": now,
                        "last_error": error,
                        "last_error_at": now,
                        "failures": feeds.c.failures + 1,
                    },
                )
            )

    def feed_statuses(self) -> list[FeedStatus]:
        counts = select(items.c.feed, func.count().label("n")).group_by(items.c.feed).subquery()
        query = (
            select(feeds, func.coalesce(counts.c.n, 0).label("n"))
            .select_from(feeds.outerjoin(counts, counts.c.feed == feeds.c.name))
            .order_by(feeds.c.name)
        )
        with self.engine.connect() as conn:
            return [
                FeedStatus(
                    name=r.name,
                    url=r.url,
                    baselined=bool(r.baselined),
                    last_poll_at=r.last_poll_at,
                    last_success_at=r.last_success_at,
                    last_error=r.last_error,
                    failures=r.failures,
                    items=r.n,
                )
                for r in conn.execute(query)
            ]

    # -- items ------------------------------------------------------------------

    def new_items(self, feed: str, candidates: Iterable[Item]) -> list[Item]:
        """The candidates never seen in this feed, in their document order."""
        pending = list(candidates)
        ids = [item.id for item in pending]
        known: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                known.update(
                    conn.execute(
                        select(items.c.item_id).where(
                            items.c.feed == feed, items.c.item_id.in_(chunk)
                        )
                    ).scalars()
                )
        return [item for item in pending if item.id not in known]

    def commit_poll(
        self,
        feed: str,
        url: str,
        now: datetime,
        *,
        seen: Sequence[Item],
        alerts_to_queue: Sequence[Alert],
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None,
    ) -> int:
        """ONE transaction: the feed's state, every item seen, and the alerts queued.

        Returns how many alerts were queued (an alert already queued is not again).
        """
        with self.engine.begin() as conn:
            self._upsert_feed(
                conn,
                feed,
                url,
                now,
                etag=etag,
                last_modified=last_modified,
                body_hash=body_hash,
                baselined=True,
                last_success_at=now,
                last_error=None,
                failures=0,
            )
            if seen:
                rows = [
                    {
                        "feed": feed,
                        "item_id": item.id,
                        "title": item.title[:1000],
                        "link": item.link,
                        "published": item.published,
                        "first_seen_at": now,
                        "last_seen_at": now,
                    }
                    for item in seen
                ]
                conn.execute(self._insert(items).on_conflict_do_nothing(), rows)
                for chunk in _chunks([item.id for item in seen]):
                    conn.execute(
                        update(items)
                        .where(items.c.feed == feed, items.c.item_id.in_(chunk))
                        .values(last_seen_at=now)
                    )
            queued = 0
            for alert in alerts_to_queue:
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
                    )
                    .on_conflict_do_nothing()
                )
                queued += result.rowcount or 0
        return queued

    # -- the outbox -------------------------------------------------------------

    def pending_alerts(self, now: datetime, *, limit: int = 100) -> list[PendingAlert]:
        """Alerts due for a (re)try, oldest first."""
        query = (
            select(alerts)
            .where(alerts.c.status == "pending", alerts.c.next_attempt_at <= now)
            .order_by(alerts.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                PendingAlert(
                    id=r.id,
                    notifier=r.notifier,
                    title=r.title,
                    body=r.body,
                    attempts=r.attempts,
                    created_at=r.created_at,
                )
                for r in conn.execute(query)
            ]

    def mark_sent(self, alert_id: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(status="sent", sent_at=now, attempts=alerts.c.attempts + 1, last_error=None)
            )

    def mark_failed(self, alert_id: int, now: datetime, error: str, *, retry_at: datetime) -> None:
        """A failed attempt: the alert stays pending and is retried at ``retry_at``."""
        with self.engine.begin() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(
                    attempts=alerts.c.attempts + 1,
                    last_error=error,
                    next_attempt_at=retry_at,
                )
            )

    def alert_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts.c.status, func.count()).group_by(alerts.c.status))
            return {status: count for status, count in rows}


__all__ = ["FeedStatus", "Store"]

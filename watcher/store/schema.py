"""Tables and numbered migrations.

A fresh database is created from the current tables and stamped with the latest
version; an older one is brought forward by running each migration after its
version, in order, in one transaction each. Add a migration; never edit one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    select,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no zones), always returned UTC-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", String(64)),
    Column("baselined", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_poll_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("failures", Integer, nullable=False, default=0),
    Column("failing_since", UTCDateTime),
    Column("next_poll_at", UTCDateTime),  # set while backing off; NULL: the normal schedule
    Column("disabled_reason", Text),  # set when the server said 410 Gone
    Column("disabled_url", Text),  # the URL that was gone; a new URL in the config re-enables
    Column("moved_from", Text),  # a permanent redirect: the config URL it applies to...
    Column("moved_to", Text),  # ...and where the feed lives now
    Column("max_items", Integer, nullable=False, default=0),  # most items one document had
    Column("health_notice", String(16)),  # "failing" once that notice was queued
)

items = Table(
    "items",
    metadata,
    Column("feed", String(200), primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("title", Text, nullable=False, default=""),
    Column("link", Text, nullable=False, default=""),
    Column("published", UTCDateTime),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    # For backtest, kept for `retention` (then cleared; the identity stays longer):
    Column("text", Text),  # JSON: summary, content, author, tags
    Column("silent", Boolean, nullable=False, default=False),  # recorded by a baseline or churn
)
Index("ix_items_first_seen", items.c.first_seen_at)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feed", String(200), nullable=False),
    Column("item_id", Text, nullable=False),
    Column("notifier", String(200), nullable=False),
    Column("rules", Text, nullable=False),  # JSON list of rule names
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("link", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime),
    Column("payload", Text, nullable=False, default="{}"),  # JSON: what a digest lists
    Column("held", Boolean, nullable=False, default=False),  # deferred: goes out in a digest
    Column("batch", Integer),  # the message it went out in (its own id, or a digest's)
    # The index of models.PRIORITIES (0 low ... 3 urgent): delivery sends higher first.
    Column("priority", Integer, nullable=False, default=1, server_default="1"),
    # One message per (item, notifier), however often the item is seen: the database,
    # not Python, guarantees that an item is never alerted twice to one target.
    UniqueConstraint("feed", "item_id", "notifier", name="uq_alert_item_notifier"),
)
Index("ix_alerts_due", alerts.c.status, alerts.c.next_attempt_at)
Index("ix_alerts_sent", alerts.c.notifier, alerts.c.sent_at)

Migration = Callable[[Connection], None]


def _add_alert_priority(conn: Connection) -> None:
    """Version 2: alerts carry their rules' priority; every earlier alert is normal (1)."""
    conn.execute(text("ALTER TABLE alerts ADD COLUMN priority INTEGER NOT NULL DEFAULT 1"))


# MIGRATIONS[n] brings a database from version n + 1 to n + 2. Version 1 is the
# first schema.
MIGRATIONS: list[Migration] = [_add_alert_priority]
LATEST = 1 + len(MIGRATIONS)


def current_version(conn: Connection) -> int | None:
    if not conn.dialect.has_table(conn, "schema_version"):
        return None
    return conn.execute(select(schema_version.c.version)).scalar_one_or_none()


def migrate(conn: Connection) -> int:
    """Create or upgrade the schema inside the caller's transaction; returns the version."""
    version = current_version(conn)
    if version is None:
        metadata.create_all(conn)
        conn.execute(schema_version.insert().values(version=LATEST))
        return LATEST
    if version > LATEST:
        raise RuntimeError(
            f"the database has schema version {version}, newer than this watcher ({LATEST}); "
            "upgrade watcher"
        )
    for step in MIGRATIONS[version - 1 :]:
        step(conn)
    conn.execute(schema_version.update().values(version=LATEST))
    return LATEST

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
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
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
    Column("next_poll_at", UTCDateTime),  # when it is due (version 3: always set by a poll)
    Column("disabled_reason", Text),  # set when the server said 410 Gone
    Column("disabled_url", Text),  # the URL that was gone; a new URL in the config re-enables
    Column("moved_from", Text),  # a permanent redirect: the config URL it applies to...
    Column("moved_to", Text),  # ...and where the feed lives now
    Column("max_items", Integer, nullable=False, default=0),  # most items one document had
    Column("health_notice", String(16)),  # "failing" once that notice was queued
    # Version 3: a poll claims its feed by lease (who holds it, until when); only the
    # holder records the outcome, and an expired lease can be taken over by anyone.
    Column("claimed_by", String(300)),
    Column("lease_until", UTCDateTime),
)
Index("ix_feeds_due", feeds.c.next_poll_at)

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
    Column("silent", Boolean, nullable=False, default=False),  # kind is not "new"
    # Version 3: identity's second opinion (watcher/identity.py) and the item's story.
    Column("kind", String(16), nullable=False, default="new", server_default="new"),
    Column("link_key", Text, nullable=False, default="", server_default=""),
    Column("fragment", Text, nullable=False, default="", server_default=""),
    Column("title_key", Text, nullable=False, default="", server_default=""),
    Column("same_as", Text),  # renumbered: the first id of the item it is
    Column("story", String(64)),
)
Index("ix_items_first_seen", items.c.first_seen_at)
Index("ix_items_link_key", items.c.feed, items.c.link_key)
Index("ix_items_title_key", items.c.feed, items.c.title_key)

# The exact keys (canonical link, headline) by which another feed's copy joins a story.
# The primary key is what makes two polls racing on one story agree on it.
story_keys = Table(
    "story_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("kind", String(8), nullable=False),  # link or head
    Column("story", String(64), nullable=False),
    Column("feed", String(200), nullable=False),  # the feed whose item started it
    Column("created_at", UTCDateTime, nullable=False),
    Column("shape", Text),  # a headline's shape (stories.shape): near-identical ones share it
)
Index("ix_story_keys_recent", story_keys.c.kind, story_keys.c.created_at)
Index("ix_story_keys_shape", story_keys.c.shape)

# Every feed that carried a story, and as which item.
story_sources = Table(
    "story_sources",
    metadata,
    Column("story", String(64), primary_key=True),
    Column("feed", String(200), primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
)

# What each notifier was told about a story: a copy from another feed is sent only if it
# adds a rule or a higher priority. One row per (story, notifier), by the primary key.
story_alerts = Table(
    "story_alerts",
    metadata,
    Column("story", String(64), primary_key=True),
    Column("notifier", String(200), primary_key=True),
    Column("rules", Text, nullable=False),  # JSON list
    Column("priority", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

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
    Column("story", String(64)),  # version 3: the story it reports
    Column("claimed_by", String(300)),  # version 3: the delivery holding it, by lease
    Column("lease_until", UTCDateTime),
    # One message per (item, notifier), however often the item is seen: the database,
    # not Python, guarantees that an item is never alerted twice to one target.
    UniqueConstraint("feed", "item_id", "notifier", name="uq_alert_item_notifier"),
)
Index("ix_alerts_due", alerts.c.status, alerts.c.next_attempt_at)
Index("ix_alerts_sent", alerts.c.notifier, alerts.c.sent_at)

# The daemons that run (or ran) on this state, so `watcher status` can tell whether one
# is alive: a heartbeat every 30 s; silent for 2 minutes is not running.
daemons = Table(
    "daemons",
    metadata,
    Column("node", String(300), primary_key=True),  # host:pid
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(40), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),  # a clean exit
    # The config it runs: a digest, and the names of its active feeds as a JSON list
    # (a cluster's dispatcher hands out only the feeds every live node knows).
    Column("config_digest", String(64)),
    Column("feeds", Text),
)

# Revision 0003: each feed's recent polls, for the web console's feed page (the last
# POLL_HISTORY of each feed are kept: the store prunes older ones as it writes a new one).
polls = Table(
    "polls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feed", String(200), nullable=False),
    Column("at", UTCDateTime, nullable=False),  # when it finished
    Column("outcome", String(16), nullable=False),  # PollRecord.outcome
    Column("status", Integer),  # the HTTP status, when a response came
    Column("duration", Float, nullable=False),  # seconds, fetch to commit
    Column("items", Integer),  # in the document (NULL: not parsed, a 304 or the same body)
    Column("new_items", Integer),
    Column("error", Text),
)
Index("ix_polls_feed", polls.c.feed, polls.c.id)
POLL_HISTORY = 50


# Mention counts (revision 0004, issue 19): per rule or entity and 10-minute bucket, how
# many new stories mentioned it and from how many feeds. Written in the transaction of the
# poll that brought the stories; kept for retention (at least 8 days: the baseline).
mention_counts = Table(
    "mention_counts",
    metadata,
    Column("kind", String(8), primary_key=True),  # rule or entity
    Column("name", String(200), primary_key=True),
    Column("bucket", UTCDateTime, primary_key=True),  # its start, on a 10-minute boundary
    Column("stories", Integer, nullable=False, default=0),
    Column("feeds", Integer, nullable=False, default=0),
)
# Each story counted for a rule or an entity, once (the primary key decides, also when two
# polls race): the bucket that counted it and the item that brought it first.
mention_stories = Table(
    "mention_stories",
    metadata,
    Column("kind", String(8), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("story", String(64), primary_key=True),
    Column("bucket", UTCDateTime, nullable=False),
    Column("feed", String(200), nullable=False),
    Column("item_id", Text, nullable=False),
)
Index(
    "ix_mention_stories_bucket",
    mention_stories.c.kind,
    mention_stories.c.name,
    mention_stories.c.bucket,
)
Index("ix_mention_stories_pruned", mention_stories.c.bucket)
# The feeds that brought a mention in a bucket: mention_counts.feeds counts them.
mention_feeds = Table(
    "mention_feeds",
    metadata,
    Column("kind", String(8), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("bucket", UTCDateTime, primary_key=True),
    Column("feed", String(200), primary_key=True),
)
Index("ix_mention_feeds_pruned", mention_feeds.c.bucket)
Index("ix_mention_counts_pruned", mention_counts.c.bucket)
# Spike episodes: the primary key (kind, name, seq) is what makes one episode raise one
# alert however many nodes see the spike at once (the next seq is inserted ON CONFLICT DO
# NOTHING; only the node whose row went in queues the alert, in the same transaction).
spike_episodes = Table(
    "spike_episodes",
    metadata,
    Column("kind", String(8), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),  # None while it lasts
    Column("last_high_at", UTCDateTime, nullable=False),  # the last look that found it high
    Column("stories", Integer, nullable=False),  # the count that raised it
    Column("usual", Float, nullable=False),  # the usual count of that window
    Column("peak", Integer, nullable=False),  # the highest count while it lasted
    Column("window", Integer, nullable=False),  # seconds
    Column("feeds", Text, nullable=False, default="[]"),  # JSON: the feeds of the window
    Column("headlines", Text, nullable=False, default="[]"),  # JSON: the top stories
)
Index("ix_spike_episodes_started", spike_episodes.c.started_at)

Migration = Callable[[Connection], None]


def _add_alert_priority(conn: Connection) -> None:
    """Version 2: alerts carry their rules' priority; every earlier alert is normal (1)."""
    conn.execute(text("ALTER TABLE alerts ADD COLUMN priority INTEGER NOT NULL DEFAULT 1"))


def _identity_keys(conn: Connection) -> None:
    """Version 3: every item's secondary keys and kind, the story tables, alerts' story,
    the daemons table, and leases on feeds and alerts.

    Items seen before keep their identity: the keys are computed from what was stored,
    and an item without guid or link, once identified by a hash of its title and text,
    takes the id its folded title (and date) now gives, so upgrading re-alerts nothing.
    """
    from watcher.identity import canonical_link, primary_identity, title_key

    for ddl in (
        "ALTER TABLE items ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'new'",
        "ALTER TABLE items ADD COLUMN link_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE items ADD COLUMN fragment TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE items ADD COLUMN title_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE items ADD COLUMN same_as TEXT",
        "ALTER TABLE items ADD COLUMN story VARCHAR(64)",
        "ALTER TABLE alerts ADD COLUMN story VARCHAR(64)",
        "ALTER TABLE alerts ADD COLUMN claimed_by VARCHAR(300)",
        "ALTER TABLE alerts ADD COLUMN lease_until TIMESTAMP",
        "ALTER TABLE feeds ADD COLUMN claimed_by VARCHAR(300)",
        "ALTER TABLE feeds ADD COLUMN lease_until TIMESTAMP",
        "CREATE INDEX ix_feeds_due ON feeds (next_poll_at)",
        # Written out rather than made from the tables above, which later versions change.
        "CREATE INDEX ix_items_link_key ON items (feed, link_key)",
        "CREATE INDEX ix_items_title_key ON items (feed, title_key)",
        "CREATE TABLE story_keys (key TEXT NOT NULL PRIMARY KEY, kind VARCHAR(8) NOT NULL, "
        "story VARCHAR(64) NOT NULL, feed VARCHAR(200) NOT NULL, created_at TIMESTAMP NOT NULL, "
        "shape TEXT)",
        "CREATE INDEX ix_story_keys_recent ON story_keys (kind, created_at)",
        "CREATE INDEX ix_story_keys_shape ON story_keys (shape)",
        "CREATE TABLE story_sources (story VARCHAR(64) NOT NULL, feed VARCHAR(200) NOT NULL, "
        "item_id TEXT NOT NULL, seen_at TIMESTAMP NOT NULL, PRIMARY KEY (story, feed, item_id))",
        "CREATE TABLE story_alerts (story VARCHAR(64) NOT NULL, notifier VARCHAR(200) NOT NULL, "
        "rules TEXT NOT NULL, priority INTEGER NOT NULL, created_at TIMESTAMP NOT NULL, "
        "PRIMARY KEY (story, notifier))",
        "CREATE TABLE daemons (node VARCHAR(300) NOT NULL PRIMARY KEY, host VARCHAR(255) "
        "NOT NULL, pid INTEGER NOT NULL, version VARCHAR(40) NOT NULL, started_at TIMESTAMP "
        "NOT NULL, heartbeat_at TIMESTAMP NOT NULL, stopped_at TIMESTAMP)",
        "UPDATE items SET kind = 'baseline' WHERE silent",
    ):
        conn.execute(text(ddl))
    rows = conn.execute(
        select(items.c.feed, items.c.item_id, items.c.title, items.c.link, items.c.published)
    ).all()
    taken = {(r.feed, r.item_id) for r in rows}
    updates, renamed = [], []
    for feed, item_id, title, link, published in rows:
        link_key, fragment = canonical_link(link)
        words = title_key(title)
        new_id = item_id
        if item_id.startswith("sha256:") and not link and words:
            candidate = primary_identity("", "", title, "", published)
            if (feed, candidate) not in taken:  # two old ids for one title: keep the second
                taken.add((feed, candidate))
                new_id = candidate
                renamed.append({"b_feed": feed, "b_id": item_id, "b_new": new_id})
        updates.append(
            {
                "b_feed": feed,
                "b_id": item_id,
                "b_new": new_id,
                "b_link": link_key,
                "b_fragment": fragment,
                "b_title": words,
            }
        )
    if updates:
        conn.execute(
            items.update()
            .where(items.c.feed == bindparam("b_feed"), items.c.item_id == bindparam("b_id"))
            .values(
                item_id=bindparam("b_new"),
                link_key=bindparam("b_link"),
                fragment=bindparam("b_fragment"),
                title_key=bindparam("b_title"),
            ),
            updates,
        )
    if renamed:
        conn.execute(
            alerts.update()
            .where(alerts.c.feed == bindparam("b_feed"), alerts.c.item_id == bindparam("b_id"))
            .values(item_id=bindparam("b_new")),
            renamed,
        )


# MIGRATIONS[n] brings a database from version n + 1 to n + 2. Version 1 is the
# first schema.
MIGRATIONS: list[Migration] = [_add_alert_priority, _identity_keys]
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

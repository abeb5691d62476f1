"""The schema of home-made version 3, written out: what every watcher state starts from.

A database from before Alembic reaches version 3 by the home-made migrations
(watcher/store/schema.py) and is stamped with this revision instead of running it.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feed", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("notifier", sa.String(length=200), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default="1", nullable=False),
        sa.Column("story", sa.String(length=64), nullable=True),
        sa.Column("claimed_by", sa.String(length=300), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feed", "item_id", "notifier", name="uq_alert_item_notifier"),
    )
    op.create_index("ix_alerts_due", "alerts", ["status", "next_attempt_at"])
    op.create_index("ix_alerts_sent", "alerts", ["notifier", "sent_at"])

    op.create_table(
        "daemons",
        sa.Column("node", sa.String(length=300), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("node"),
    )
    op.create_table(
        "feeds",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("body_hash", sa.String(length=64), nullable=True),
        sa.Column("baselined", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(), nullable=True),
        sa.Column("next_poll_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_url", sa.Text(), nullable=True),
        sa.Column("moved_from", sa.Text(), nullable=True),
        sa.Column("moved_to", sa.Text(), nullable=True),
        sa.Column("max_items", sa.Integer(), nullable=False),
        sa.Column("health_notice", sa.String(length=16), nullable=True),
        sa.Column("claimed_by", sa.String(length=300), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_feeds_due", "feeds", ["next_poll_at"])

    op.create_table(
        "items",
        sa.Column("feed", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("published", sa.DateTime(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("silent", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="new", nullable=False),
        sa.Column("link_key", sa.Text(), server_default="", nullable=False),
        sa.Column("fragment", sa.Text(), server_default="", nullable=False),
        sa.Column("title_key", sa.Text(), server_default="", nullable=False),
        sa.Column("same_as", sa.Text(), nullable=True),
        sa.Column("story", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("feed", "item_id"),
    )
    op.create_index("ix_items_first_seen", "items", ["first_seen_at"])
    op.create_index("ix_items_link_key", "items", ["feed", "link_key"])
    op.create_index("ix_items_title_key", "items", ["feed", "title_key"])

    op.create_table("schema_version", sa.Column("version", sa.Integer(), nullable=False))
    op.create_table(
        "story_alerts",
        sa.Column("story", sa.String(length=64), nullable=False),
        sa.Column("notifier", sa.String(length=200), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("story", "notifier"),
    )
    op.create_table(
        "story_keys",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("story", sa.String(length=64), nullable=False),
        sa.Column("feed", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("shape", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_story_keys_recent", "story_keys", ["kind", "created_at"])
    op.create_index("ix_story_keys_shape", "story_keys", ["shape"])

    op.create_table(
        "story_sources",
        sa.Column("story", sa.String(length=64), nullable=False),
        sa.Column("feed", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("story", "feed", "item_id"),
    )
    # Version 3, so that a watcher from before Alembic refuses nothing it can read and
    # creates nothing over it.
    op.bulk_insert(sa.table("schema_version", sa.column("version", sa.Integer())), [{"version": 3}])


def downgrade() -> None:
    raise NotImplementedError("watcher's state is only ever upgraded")

"""Mention counts and spike episodes (issue 19): per rule or entity and 10-minute bucket,
how many new stories and feeds mentioned it; each story counted once per rule or entity;
and the spike episodes, one row (and one alert) each.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mention_counts",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("stories", sa.Integer(), nullable=False),
        sa.Column("feeds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "bucket"),
    )
    op.create_index("ix_mention_counts_pruned", "mention_counts", ["bucket"])
    op.create_table(
        "mention_stories",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("story", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("feed", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "story"),
    )
    op.create_index("ix_mention_stories_bucket", "mention_stories", ["kind", "name", "bucket"])
    op.create_index("ix_mention_stories_pruned", "mention_stories", ["bucket"])
    op.create_table(
        "mention_feeds",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("feed", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "bucket", "feed"),
    )
    op.create_index("ix_mention_feeds_pruned", "mention_feeds", ["bucket"])
    op.create_table(
        "spike_episodes",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("last_high_at", sa.DateTime(), nullable=False),
        sa.Column("stories", sa.Integer(), nullable=False),
        sa.Column("usual", sa.Float(), nullable=False),
        sa.Column("peak", sa.Integer(), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("feeds", sa.Text(), nullable=False),
        sa.Column("headlines", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "seq"),
    )
    op.create_index("ix_spike_episodes_started", "spike_episodes", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_spike_episodes_started", table_name="spike_episodes")
    op.drop_table("spike_episodes")
    op.drop_index("ix_mention_feeds_pruned", table_name="mention_feeds")
    op.drop_table("mention_feeds")
    op.drop_index("ix_mention_stories_pruned", table_name="mention_stories")
    op.drop_index("ix_mention_stories_bucket", table_name="mention_stories")
    op.drop_table("mention_stories")
    op.drop_index("ix_mention_counts_pruned", table_name="mention_counts")
    op.drop_table("mention_counts")

"""Each feed's recent polls (outcome, HTTP status, duration, items, new items, error), so
the web console can show how a feed has been doing; the store keeps the last 50 a feed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "polls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feed", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=True),
        sa.Column("new_items", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_polls_feed", "polls", ["feed", "id"])


def downgrade() -> None:
    op.drop_index("ix_polls_feed", table_name="polls")
    op.drop_table("polls")

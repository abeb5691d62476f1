"""Cluster mode: each daemon records the config it runs (a digest and its feeds), so the
nodes of a cluster can tell when they disagree and hand out only the feeds all know.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("daemons") as batch:
        batch.add_column(sa.Column("config_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("feeds", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("daemons") as batch:
        batch.drop_column("feeds")
        batch.drop_column("config_digest")

"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Write every table, column and type out (sa.DateTime, not schema.UTCDateTime): a
    # revision must create the same thing however watcher/store/schema.py changes later.
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    raise NotImplementedError("watcher's state is only ever upgraded")

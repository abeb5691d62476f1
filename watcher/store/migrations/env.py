"""Alembic's environment for watcher's state.

watcher runs it through :func:`watcher.store.upgrade.upgrade`, on the connection it
passes in ``config.attributes["connection"]``, inside that connection's transaction and
under its migration lock. A developer writing a revision runs Alembic against a scratch
database instead (see :func:`watcher.store.upgrade.alembic_config`)::

    python -c "from alembic import command; from watcher.store.upgrade import alembic_config;
    command.revision(alembic_config('sqlite:////tmp/scratch.db'), 'what it does',
    autogenerate=True)"

after bringing the scratch database to the current head (open it once with watcher).
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, TypeDecorator, create_engine

from watcher.store.schema import metadata


def _render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Our column types as the plain SQLAlchemy type stored (UTCDateTime as sa.DateTime):
    a revision must not import watcher, whose types may change after it."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it: autogenerate writes batch operations.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    given: Connection | None = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url set")
    if context.is_offline_mode():  # --sql: print the DDL for a database administrator
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


_main()

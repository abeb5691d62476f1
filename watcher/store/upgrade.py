"""Bringing a state database to this watcher's schema, or checking that it is there.

The schema moves by Alembic revisions (``migrations/versions/``). Their first, ``0001``,
is home-made version 3 exactly: a database from before Alembic (a ``schema_version``
row of 1 to 3) first runs the home-made migrations that remain (``schema.MIGRATIONS``),
then is stamped ``0001``. ``schema_version`` stays at 3 in every database, so a watcher
from before Alembic refuses a newer one ("newer than this watcher") instead of
creating tables in it; a revision that such a watcher could not run on sets it higher.

An empty database is not taken through the revisions: its tables are created from their
declaration (``schema.metadata``) and it is stamped with the head, as Alembic's cookbook
builds a database from scratch ("Building an Up to Date Database from Scratch"). The
stamp is written here rather than by Alembic, whose import a daemon would otherwise carry
for its whole life (about 6 MiB) for the one start that created its state. A test holds
the two ways to the same tables, columns, indexes and constraints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, text

from watcher.store import schema

if TYPE_CHECKING:  # Alembic is imported only to migrate: opening a current state skips it
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

SCRIPTS = Path(__file__).with_name("migrations")
FIRST = "0001"  # the schema of home-made version 3
HEAD = "0004"  # the newest revision in migrations/versions (a test holds them equal)
# Alembic's version table, as Alembic itself creates it (alembic.runtime.migration).
VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
# pg_advisory_xact_lock's key for migrations ("watcher" in ASCII): nodes that start
# together migrate one after the other, and the later ones find nothing to do.
MIGRATION_LOCK = int.from_bytes(b"watcher", "big")


def alembic_config(url: str | None = None) -> AlembicConfig:
    """Alembic's settings without an alembic.ini: the scripts shipped in the package."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(SCRIPTS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def scripts() -> ScriptDirectory:
    """The revisions shipped in the package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The revision this watcher brings every database to."""
    return HEAD


def _known(revision: str) -> bool:
    return any(script.revision == revision for script in scripts().walk_revisions())


@dataclass(frozen=True)
class Migration:
    """What opening a database for writing did to its schema."""

    before: str | None  # "revision 0001", "schema version 2"; None: it was empty
    after: str  # the revision it is at now

    @property
    def changed(self) -> bool:
        return self.before != f"revision {self.after}"

    def describe(self, where: str) -> str:
        if self.before is None:
            return f"state {where} created at revision {self.after}"
        if self.changed:
            return f"state {where} upgraded from {self.before} to revision {self.after}"
        return f"state {where} at revision {self.after}; nothing to do"


def _revision(conn: Connection) -> str | None:
    """The database's Alembic revision (None: none yet); reads only."""
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    heads = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if len(heads) > 1:
        raise RuntimeError(f"the database is at several revisions at once: {', '.join(heads)}")
    return heads[0] if heads else None


def _newer(revision: str) -> RuntimeError:
    return RuntimeError(
        f"the database is at revision {revision}, newer than this watcher (which knows up "
        f"to {head()}); upgrade watcher"
    )


def _lock(conn: Connection) -> None:
    """Hold the database's migration lock until the caller's transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    elif conn.dialect.name == "sqlite":
        # Take the write lock now rather than at the first write: another process that
        # opens the file at the same time waits here, then finds nothing to do.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(conn: Connection) -> Migration:
    """Create or upgrade the schema inside the caller's transaction, under the lock."""
    _lock(conn)
    target = head()
    revision = _revision(conn)
    if revision is not None:
        before: str | None = f"revision {revision}"
        if revision == target:
            return Migration(before, target)
        if not _known(revision):
            raise _newer(revision)
    else:
        version = schema.current_version(conn)
        if version is None:
            create(conn)
            return Migration(None, target)
        before = f"schema version {version}"
        # From before Alembic: the home-made steps up to version 3 (raises if the version
        # is newer), then Alembic takes over from the same schema.
        schema.migrate(conn)
        _stamp(conn, FIRST)
    from alembic import command
    from alembic.util.exc import CommandError

    config = alembic_config()
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, target)
    except CommandError as exc:  # a revision missing or out of order: our packaging
        raise RuntimeError(f"cannot migrate: {exc}") from exc
    return Migration(before, target)


def create(conn: Connection) -> None:
    """The head's tables in an empty database, stamped with the head (see the module's
    docstring). A table already there is an error, as it would be in the revisions."""
    schema.metadata.create_all(conn, checkfirst=False)
    conn.execute(schema.schema_version.insert().values(version=schema.LATEST))
    VERSION_TABLE.create(conn, checkfirst=False)
    conn.execute(VERSION_TABLE.insert().values(version_num=HEAD))


def _stamp(conn: Connection, revision: str) -> None:
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(conn).stamp(scripts(), revision)


def check(conn: Connection) -> str:
    """The revision of a database this watcher may read as it is; writes nothing."""
    revision = _revision(conn)
    fix = "start `watcher run` once, or run `watcher migrate`"
    if revision is None:
        version = schema.current_version(conn)
        if version is None:
            raise RuntimeError(f"it holds no watcher state yet; {fix}")
        if version > schema.LATEST:
            raise RuntimeError(
                f"the database has schema version {version}, newer than this watcher; "
                "upgrade watcher"
            )
        raise RuntimeError(f"it is at schema version {version}, older than this watcher; {fix}")
    if revision == HEAD:
        return revision
    if not _known(revision):
        raise _newer(revision)
    raise RuntimeError(f"it is at revision {revision}, older than this watcher's {HEAD}; {fix}")

"""Engines for a PostgreSQL state: the driver, the session settings every query relies
on, and database errors turned into messages that name the database (its password
masked) and say what to do."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError

from watcher.exceptions import StoreError

INSTALL = "pip install 'watcher[postgres]'"

# What an operator can do about the errors PostgreSQL and libpq give, by their words.
_HINTS = (
    (
        r"connection refused|is the server running|no such file or directory",
        "nothing answers there: is PostgreSQL running, and are the host and port in `state` right?",
    ),
    (
        r"password authentication failed|no password supplied|authentication failed",
        "the server refused the user or its password: check them in `state` (the password "
        "comes from ${ENV} or ${cred:NAME})",
    ),
    (
        r'database ".*" does not exist',
        "create the database first: createdb -O USER DATABASE (README, State and storage)",
    ),
    (r'role ".*" does not exist', "create the user first: createuser USER"),
    (r"could not translate host name", "the host name in `state` does not resolve"),
    (r"timeout expired", "the server did not answer in time"),
    (
        r"permission denied",
        "the user lacks a privilege: it must own the database, or hold CREATE on its "
        "schema for `watcher migrate` and read/write on watcher's tables (README)",
    ),
    (r"read-only transaction", "this command only reads; it must not write"),
    (
        r"starting up|shutting down|terminating connection|closed the connection",
        "the server restarted or dropped the connection; watcher reconnects",
    ),
)


def _hint(message: str) -> str:
    return next((hint for words, hint in _HINTS if re.search(words, message, re.I)), "")


def postgres_url(url: str) -> URL:
    """The URL as SQLAlchemy opens it: ``postgresql://`` means psycopg 3, as written with
    ``postgresql+psycopg://``."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"not a valid PostgreSQL URL: {exc}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def postgres_engine(url: str, *, readonly: bool = False) -> tuple[Engine, str]:
    """An engine for a PostgreSQL state, and how messages name it (password masked).

    Sessions run in UTC (the store keeps naive UTC timestamps; the database's clock read
    as ``LOCALTIMESTAMP`` is UTC too) and a reader's are read-only, so that a command
    that only reads can never write.
    """
    parsed = postgres_url(url)
    name = parsed.render_as_string(hide_password=True)
    options: dict[str, Any] = {"postgresql_readonly": True} if readonly else {}
    try:
        engine = create_engine(
            parsed,
            pool_pre_ping=True,  # a server restart costs one reconnect, not one failed poll
            # Room for the daemon's poll threads (fetch.max_connections, 20 by default) at
            # once: with SQLAlchemy's default of 5, a burst of polls opened a connection
            # (a server process) per poll and closed it after (bench/state_backends.py).
            # Connections open only when needed, and at most 30 per process.
            pool_size=20,
            max_overflow=10,
            connect_args={
                "connect_timeout": 10,
                "application_name": "watcher",
                "options": "-c timezone=UTC",
            },
            execution_options=options,
        )
    except ImportError:
        raise StoreError(
            f"state database {name}: PostgreSQL needs the psycopg driver: {INSTALL}"
        ) from None
    import psycopg  # present: create_engine imported it

    @event.listens_for(engine, "handle_error")
    def _explain(context: ExceptionContext) -> None:
        # The server's troubles (down, refused, missing, privileges), not our own SQL
        # mistakes, which stay SQLAlchemy's errors with the statement.
        error = context.original_exception
        if isinstance(
            error,
            psycopg.OperationalError
            | psycopg.errors.InsufficientPrivilege
            | psycopg.errors.ReadOnlySqlTransaction,
        ):
            raise postgres_error(name, error) from error

    return engine, name


def postgres_error(name: str, error: BaseException) -> StoreError:
    message = " ".join(str(error).split())
    hint = _hint(message)
    return StoreError(f"state database {name}: {message}" + (f" ({hint})" if hint else ""))

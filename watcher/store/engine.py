"""Engines for a PostgreSQL state: the driver, the session settings every query relies
on, database errors turned into messages that name the database (its password masked)
and say what to do, and the node locks that tell which daemons live."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from watcher.exceptions import StoreError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

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


# A node that loses its network holds its sessions (its node lock, its host slots) until
# the server notices it is gone: by TCP keepalive after about 25 s of silence, not the
# system's default two hours; and it notices a silent server as soon (libpq's side).
SERVER_KEEPALIVE = (
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
)
CLIENT_KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


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
                "options": f"-c timezone=UTC {SERVER_KEEPALIVE}",
                **CLIENT_KEEPALIVE,
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
        # mistakes, which stay SQLAlchemy's errors with the statement. Not the pool's
        # ping of a connection a restart dropped: SQLAlchemy connects again then, unless
        # this raises (which made the first query after a restart fail).
        if context.is_pre_ping:
            return
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


def node_key(node: str) -> int:
    """The advisory lock key of a daemon's node (host:pid): 64 bits of a hash of it, the
    same in every process, and apart from other applications' keys in the database."""
    digest = hashlib.blake2b(f"watcher node {node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class NodeLocks:
    """Which daemons on a PostgreSQL state live: each holds a session advisory lock on its
    node's key for its whole life, on a connection of its own. The server drops the lock
    with the session, so the moment a daemon dies (SIGKILL, OOM, a crash) its key is free,
    and its claims can be freed at once instead of when their leases run out.

    Safe to share between threads; connects on first use.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine, self._name = engine, name
        self._conn: psycopg.Connection[Any] | None = None
        self._node: str | None = None  # the node this process holds, once hold() is called
        self._held = False
        self._lost = False  # the session that held the lock dropped
        self._contended = False  # another session holds this node's key
        self._retaken = False  # the lock was taken again after its session dropped
        self._mutex = threading.Lock()

    def hold(self, node: str) -> None:
        """Take ``node``'s lock for as long as this process lives."""
        with self._mutex:
            self._node = node
            self._retry(lambda conn: None)

    def keep(self) -> bool:
        """Check that the lock is still held: after its connection dropped (a server
        restart, a network fault), connect again and take it again. True when it was
        taken again just now."""
        with self._mutex:
            self._retaken = False
            if self._node is not None:
                self._retry(lambda conn: conn.execute("SELECT 1"))
            return self._retaken

    def alive(self, nodes: Collection[str]) -> set[str]:
        """Those of ``nodes`` whose lock some session holds: their daemons live. A key this
        session gets is released at once (its daemon is gone). This process's own node
        lives, untested: its own session would get its key again."""

        def test(conn: psycopg.Connection[Any]) -> set[str]:
            rows = conn.execute(
                "SELECT k, pg_try_advisory_lock(k) FROM unnest(%s::bigint[]) AS k", (list(keys),)
            ).fetchall()
            free = [key for key, got in rows if got]
            if free:
                conn.execute("SELECT pg_advisory_unlock(k) FROM unnest(%s::bigint[]) AS k", (free,))
            return {keys[key] for key, got in rows if not got}

        with self._mutex:
            own = {node for node in nodes if node == self._node}
            keys = {node_key(node): node for node in nodes if node not in own}
            if not keys:
                return own
            found: set[str] = self._retry(test)
            return found | own

    def close(self) -> None:
        """Release the lock (by closing its session)."""
        with self._mutex:
            self._node = None
            self._drop()
            self._lost = False

    def _retry(self, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """``work`` on the lock's session; once more on a new one if that one dropped."""
        import psycopg

        for attempt in (1, 2):
            try:
                return work(self._session())
            except psycopg.OperationalError as exc:  # the connection dropped
                self._drop()
                if attempt == 2:
                    raise postgres_error(self._name, exc) from exc
            except psycopg.Error as exc:
                raise postgres_error(self._name, exc) from exc
        raise AssertionError("unreachable")

    def _session(self) -> psycopg.Connection[Any]:
        """The lock's connection, connected again if it dropped, holding this node's lock
        when there is one to hold."""
        if self._conn is None or self._conn.closed:
            try:
                raw = self._engine.raw_connection()
            except SQLAlchemyError as exc:
                raise postgres_error(self._name, exc) from exc
            conn: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
            raw.detach()  # this session is the lock's alone: it never goes back to the pool
            conn.rollback()
            conn.autocommit = True
            self._conn, self._held = conn, False
        if self._node is not None and not self._held:
            self._take(self._conn)
        return self._conn

    def _take(self, conn: psycopg.Connection[Any]) -> None:
        assert self._node is not None
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (node_key(self._node),)).fetchone()
        self._held = bool(row and row[0])
        if not self._held:
            if not self._contended:
                # The session of a process that had this host and pid before, which the
                # server has not dropped yet. Until it does, this daemon's claims are
                # freed, if it dies, only when their leases run out.
                log.warning(
                    "state database %s: node lock of %s is held by another session; trying again",
                    self._name,
                    self._node,
                )
            self._contended = True
            return
        if self._lost:
            log.warning(
                "state database %s: the connection holding this daemon's node lock dropped; "
                "connected again and took the lock again (node %s)",
                self._name,
                self._node,
            )
            self._retaken = True
        self._lost = self._contended = False

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a dead one may fail to; it is gone anyway
                self._conn.close()
        self._lost = self._lost or self._held
        self._conn, self._held = None, False

"""A real PostgreSQL server for the tests: the distribution's binaries, a throwaway
cluster under a temporary directory, listening on a free loopback port.

``initdb`` refuses to run as root, and CI runs as root: then every server command runs
as the ``postgres`` user (``runuser``), which owns the temporary directory. Each test
process (one per pytest-xdist worker) starts its own server: nothing to share, no lock
to take, and nothing left behind when a worker's session ends; ``initdb`` and a start
cost about a second. A server that cannot start raises with its log, so the tests that
need it fail and say why; they are never skipped.

bench/state_backends.py starts the same server with ``durable=True``: PostgreSQL's own
defaults (fsync and synchronous commit on), to be weighed against SQLite's full syncs.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

# The one role that must give a password (scram-sha-256) on loopback; every other role
# is trusted, which is fine for a server that only the tests reach.
PASSWORD_ROLE = "watcher_pw"


def _bindir() -> Path:
    """Where initdb and pg_ctl are: on PATH, else Debian's versioned directory."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
            "apt-get install postgresql (Debian), or put them on PATH"
        )
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One cluster: :meth:`start` it, make databases, :meth:`stop` it (which deletes it).

    ``durable``: keep PostgreSQL's default durability (every commit flushed to disk), for
    benchmarks; the tests' throwaway cluster turns it off.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="watcher-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, and initdb refuses root: a 'postgres' user is needed "
                    "(the Debian postgresql package creates it)"
                ) from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as, *args], capture_output=True, text=True, check=False, timeout=120
        )

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no server log)"

    def start(self) -> None:
        """initdb, then start on a free port; raises with what the server said if it can't."""
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        hba = (
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        self._write(self.data / "pg_hba.conf", hba)
        for attempt in range(3):  # another process may take the free port first
            self.port = _free_port()
            settings = (
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "max_connections = 200\n"
            )
            if not self.durable:  # a throwaway cluster: durability buys nothing here
                settings += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            self._write(self.data / "postgresql.auto.conf", settings)
            started = self._pg_ctl_start()
            if started.returncode == 0:
                return
            log = self.log_text()
            if "could not bind" not in log or attempt == 2:
                raise RuntimeError(
                    f"PostgreSQL did not start (pg_ctl exit {started.returncode}):\n"
                    f"{started.stdout}{started.stderr}\n--- server log {self.log} ---\n{log}"
                )

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        return self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        if self._as:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def pause(self) -> None:
        """Stop the server as an operator would (``pg_ctl stop -m fast``: every session is
        disconnected, the data and the port kept), for an outage that :meth:`resume` ends."""
        done = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_ctl stop failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def resume(self) -> None:
        """Start the paused server again, on the same port with the same data."""
        done = self._pg_ctl_start()
        if done.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL did not start again (pg_ctl exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n--- server log {self.log} ---\n{self.log_text()}"
            )

    def stop(self) -> None:
        """Stop the server at once and delete the cluster."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection in autocommit (CREATE DATABASE refuses transactions)."""
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, owner: str = "postgres") -> str:
        name = f"test_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:  # FORCE: a store a test left open is disconnected
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def url(self, database: str, *, user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

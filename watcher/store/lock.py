"""The SQLite state's lock: one daemon per state file.

An exclusive ``flock`` on a file beside the database, taken by `watcher run` at start and
held for the life of the process. The kernel drops it when the process dies, however it
dies, so a SIGKILLed daemon never leaves a stale lock behind (a PID file would). The
file's text says who holds it, for the message a second daemon prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from watcher.exceptions import StateLocked, StoreError


class StateLock:
    """Held from :meth:`acquire` until the process ends (or :meth:`release`)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StateLocked` saying who holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # close-on-exec
        except OSError as exc:
            raise StoreError(f"cannot create the state lock {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateLocked(
                f"state database {self.database} is in use by another watcher ({holder}). "
                "One daemon runs per SQLite state: stop that one first (systemctl stop "
                "watcher, or kill the pid), or give this one another `state:`; to run "
                "several watchers on one state, use a PostgreSQL state (README, "
                '"State and storage")'
            ) from None
        since = datetime.now(UTC).isoformat(timespec="seconds")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None


def _read_holder(fd: int) -> str:
    """Who holds the lock, in words, from what the holder wrote into the file."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or "pid" not in data:
        return "its pid is not known"
    return f"pid {data['pid']} on {data.get('host', '?')}, since {data.get('since', '?')}"

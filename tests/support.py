"""Test helpers: real loopback servers (a feed server, a webhook receiver) and feed builders."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import Engine, create_engine, text

from watcher.exceptions import ParseError
from watcher.models import FetchResult, Item, ParsedFeed, PollDecision, SeenItem
from watcher.parse import parse
from watcher.store import Store

DATA = Path(__file__).parent / "data"

# The rule most daemon tests watch for: the Kharkiv entity in two spellings.
MATCH_RULES = """\
entities:
  kharkiv:
    aliases: [Kharkiv, Kharkov]
rules:
  - name: kharkiv
    entities: [kharkiv]
"""


@dataclass
class Route:
    """What the feed server answers on one path; tests mutate it between polls."""

    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # when set, If-None-Match with this value gets a 304
    gzip: bool = False
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None  # full control


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a daemon killed mid-request) is not a server error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Loopback:
    """A threaded HTTP server on 127.0.0.1, on a free port, until close()."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FeedServer(_Loopback):
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0  # TCP connections accepted
        self.lock = threading.Lock()
        server = self

        class Handler(_Quiet):
            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server.connections += 1

            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append((self.path, dict(self.headers.items())))
                    route = server.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.handler is not None:
                    route.handler(self)
                    return
                if route.etag and self.headers.get("If-None-Match") == route.etag:
                    self.send_response(304)
                    self.send_header("ETag", route.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = gzip.compress(route.body) if route.gzip else route.body
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(body)))
                if route.gzip:
                    self.send_header("Content-Encoding", "gzip")
                if route.etag:
                    self.send_header("ETag", route.etag)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)


class Receiver(_Loopback):
    """A webhook endpoint for apprise's json:// (and anything else that POSTs)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.status = 200
        self.statuses: list[int] = []  # the statuses of the next attempts, then ``status``
        self.delay = 0.0  # seconds to wait before answering (a hung or slow service)
        self.headers: dict[str, str] = {}  # extra response headers, e.g. Retry-After
        self.attempts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                    receiver.attempts += 1
                    if status < 300:
                        receiver.messages.append(json.loads(raw))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._serve(Handler)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def titles(self) -> list[str]:
        with self.lock:
            return [str(m.get("title", "")) for m in self.messages]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)


def rss(items: list[dict[str, str]], *, title: str = "Test feed") -> bytes:
    """A small RSS 2.0 document; each item is a dict of title, link, guid, description."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>http://example.org/</link>",
        "<description>test</description>",
    ]
    for item in items:
        parts.append("<item>")
        for key in ("title", "link", "guid", "description"):
            if key in item:
                parts.append(f"<{key}>{escape(item[key])}</{key}>")
        if "pubDate" in item:
            parts.append(f"<pubDate>{item['pubDate']}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def rfc822(dt: datetime) -> str:
    return format_datetime(dt.astimezone(UTC), usegmt=True)


@dataclass
class Story:
    """A feed whose items tests add over time."""

    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, n: int, title: str, description: str = "") -> None:
        self.items.insert(
            0,
            {
                "title": title,
                "link": f"http://example.org/story/{n}",
                "guid": f"story-{n}",
                "description": description or title,
            },
        )

    def body(self) -> bytes:
        return rss(self.items)


# -- the state on either backend ------------------------------------------------------------

# A test that runs on SQLite only, of the two backends conftest.state_db gives: one about
# SQLite files as such, or a slow one where PostgreSQL changes nothing it exercises (each
# use says which).
sqlite_only = pytest.mark.parametrize("state_db", ["sqlite"], indirect=True)


def state_engine(target: str | Path) -> Engine:
    """An engine on a state, as another program would open it: a SQLite path or a
    PostgreSQL URL. Dispose of it after."""
    return create_engine(target if isinstance(target, str) else f"sqlite:///{target}")


def state_sql(target: str | Path, statement: str, **params: object) -> list[tuple[Any, ...]]:
    """Run SQL on a state behind watcher's back, as another program would: a SQLite path
    or a PostgreSQL URL. Times are written as naive UTC text ('2000-01-01 00:00:00'),
    which both read as a timestamp. Returns the rows a query gives."""
    engine = state_engine(target)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _quiet(state: str | Path, deadline: float) -> bool:
    """Whether no other session holds a transaction open on the state, once the
    statements already sent have run: a PostgreSQL URL (its other client sessions all
    idle) or a SQLite path (its write lock free)."""
    if isinstance(state, Path):
        conn = sqlite3.connect(state, timeout=0.2)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # "database is locked": a write is under way
            return False
        finally:
            conn.close()
        return True
    while time.monotonic() < deadline:
        busy = {
            row[0]
            for row in state_sql(
                state,
                "SELECT state FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND state <> 'idle'",
            )
        }
        if not busy:
            return True
        if busy != {"active"}:  # idle in transaction: only the stopped client can end it
            return False
        time.sleep(0.01)  # sent before the stop, still running
    return False


# -- the daemon as a real process -----------------------------------------------------------


def private_dev() -> list[str]:
    """A command prefix: run in a private mount namespace with an empty /dev of its own,
    so there is no /dev/log (no local syslog) unless the command makes one."""
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    mount = 'mount -t tmpfs tmpfs /dev && exec "$@"'
    return [*unshare, "--propagation", "private", "sh", "-c", mount, "sh"]


def without_dev_log() -> list[str]:
    """A command prefix that makes sure there is no /dev/log: none, where there is none."""
    return private_dev() if os.path.lexists("/dev/log") else []


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Daemon:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []  # more arguments for `watcher run`
        self.prefix: list[str] = []  # a command that runs it, e.g. private_dev()
        self._starts_before = 0

    def started(self, timeout: float = 30.0) -> bool:
        """Wait until the process started last has logged that it runs (signals handled)."""
        return wait_until(
            lambda: self.log_text().count("watcher started") > self._starts_before, timeout
        )

    def start(self) -> None:
        self._starts_before = self.log_text().count("watcher started") if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "watcher",
                    "--log-level",
                    "debug",
                    "run",
                    "-c",
                    str(self.config),
                    *self.extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def freeze(self, state: str | Path, timeout: float = 20.0) -> None:
        """SIGSTOP the daemon where it holds nothing open on its state, so that a test can
        then write the state behind its back. Stopped at a random moment, it may hold a
        transaction (its locks with it: the test's write would wait forever) or, on
        PostgreSQL, have sent a write the server has yet to run (it would land after the
        test's own). Until it stops between transactions it is let go on and stopped again."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.send_signal(signal.SIGSTOP)
            if _quiet(state, deadline):
                return
            self.proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        raise AssertionError(f"the daemon never stopped between transactions in {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


# -- history written through the store, for spikes (issue 19) --------------------------------


def poll_at(
    store: Store,
    at: datetime,
    feed: str,
    stories: Sequence[tuple[str, str, tuple[tuple[str, str], ...]]],
) -> None:
    """One poll of ``feed`` at ``at`` through the store's own write path: new items, each
    ``(item id, story, mentions)``, titled and linked after their story."""
    store.commit_poll(
        PollDecision(
            feed,
            f"http://example.org/{feed}",
            at,
            baselined=True,
            seen=[
                SeenItem(
                    Item(
                        feed,
                        item_id,
                        # What it mentions, in its title: backtest matches it again.
                        title=" ".join(n.capitalize() for _, n in mentions)
                        + f": headline of {story} <b>&</b>",
                        link=f"http://example.org/{story}",
                    ),
                    story=story,
                    mentions=mentions,
                )
                for item_id, story, mentions in stories
            ],
            present=[item_id for item_id, _, _ in stories],
        )
    )


def trickle(store: Store, end: datetime, *, hours: int = 8 * 24, name: str = "kharkiv") -> None:
    """One story an hour mentioning ``name``, from ``hours`` hours before ``end`` to an hour
    before it: a steady week."""
    for h in range(hours, 0, -1):
        at = end - timedelta(hours=h)
        poll_at(store, at, "archive", [(f"t{h}", f"trickle-{name}-{h}", (("entity", name),))])


def parse_outcome(result: FetchResult, *, fast: bool) -> ParsedFeed | str:
    """What parse() makes of a download: the feed, or its error's words (both parse paths
    must agree on either)."""
    try:
        return parse("f", result, fast=fast)
    except ParseError as exc:
        return str(exc)

"""The web console: what watcher saw, what it sent, and why (``watcher web``, or
``web:`` in the config for ``watcher run``). Read-only on the state.

This module stays light (the config imports ``security`` from this package to validate
``web:``): Starlette, uvicorn and Jinja2 are imported only when a console is served.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watcher.config import Config, public_without_auth
from watcher.exceptions import WebError
from watcher.web.security import DEFAULT_LISTEN, allowed_hosts, is_loopback, parse_listen

if TYPE_CHECKING:
    from watcher.store import Store

log = logging.getLogger(__name__)

INSTALL = "pip install 'watcher[web]'"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Plan:
    """Where a console listens and whom it answers."""

    host: str
    port: int
    hosts: frozenset[str]

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"


def plan(config: Config, listen: str | None = None) -> Plan:
    """The address to listen on (``--listen`` over ``web.listen``), refused with the reason
    when it is beyond loopback and ``web.auth`` is not set."""
    web = config.web
    value = listen or (web.listen if web is not None else DEFAULT_LISTEN)
    try:
        host, port = parse_listen(value)
    except ValueError as exc:
        raise WebError(f"web.listen: {exc}") from None
    if not is_loopback(host) and (web is None or web.auth is None):
        raise WebError(f"web.auth: {public_without_auth(value)}")
    return Plan(host, port, allowed_hosts(host, port, web.names if web is not None else ()))


def _imports() -> Any:
    try:
        import uvicorn

        from watcher.web import app
    except ImportError as exc:
        raise WebError(f"the web console needs {exc.name}: {INSTALL}") from None
    return uvicorn, app


def _server(store: Store, config: Callable[[], Config], where: Plan) -> Any:
    uvicorn, app = _imports()
    console = app.Console(store, config)
    auth = config().web.auth if config().web is not None else None  # type: ignore[union-attr]
    asgi = app.make_app(console, hosts=where.hosts, auth=auth)
    settings = uvicorn.Config(
        asgi,
        host=where.host,
        port=where.port,
        log_level="warning",
        log_config=None,  # watcher's logging as configured (uvicorn's loggers propagate)
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
    )
    return uvicorn.Server(settings)


def serve(store: Store, config: Config, where: Plan) -> None:
    """`watcher web`: serve until SIGINT or SIGTERM (uvicorn handles both)."""
    server = _server(store, lambda: config, where)
    log.info("web console on %s (state %s, read-only)", where.url, config.state_name)
    # uvicorn stops on SIGINT and SIGTERM, then raises the signal again for whoever handled
    # it before: here, nobody but this, so that a stop is a clean exit (status 0).
    stopping = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
    try:
        with contextlib.suppress(SystemExit):  # uvicorn's way to say it could not listen
            server.run()
    finally:
        for sig, previous in stopping.items():
            signal.signal(sig, previous)
    if not server.started:
        raise WebError(f"the web console could not listen on {where.host}:{where.port}")


class Background:
    """A console served from a thread of ``watcher run`` (``web:`` in the config)."""

    def __init__(self, store: Store, config: Callable[[], Config], where: Plan) -> None:
        self.where = where
        self._server = _server(store, config, where)
        self._store = store
        self._thread = threading.Thread(target=self._server.run, name="watcher-web", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        for _ in range(int(timeout * 20)):
            if self._server.started or not self._thread.is_alive():
                break
            self._thread.join(0.05)
        if not self._server.started:
            raise WebError(
                f"the web console could not listen on {self.where.host}:{self.where.port}"
            )
        log.info("web console on %s", self.where.url)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._store.close()

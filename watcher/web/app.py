"""The console's ASGI app (Starlette): routes, the guard in front of them (Host allow-list,
auth, security headers, CSRF on the one form) and the Jinja2 pages.

Imported only by `watcher web` and a daemon whose config has ``web:``: Starlette, uvicorn
and the templates cost nothing to anyone else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from watcher.config import Config, WebAuth
from watcher.exceptions import StoreError
from watcher.web import pages
from watcher.web.security import FormTokens, verify_password

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would send Origin: null
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Console:
    """What the pages read: the state (opened read-only) and the current config."""

    def __init__(self, store: Any, config: Callable[[], Config]) -> None:
        self.store = store
        self._config = config
        self._view: pages.View | None = None
        self._lock = threading.Lock()
        self.tokens = FormTokens()

    @property
    def view(self) -> pages.View:
        """The view of the current config (a daemon's reload gives a new one)."""
        config = self._config()
        with self._lock:
            if self._view is None or self._view.config is not config:
                self._view = pages.View(config)
            return self._view


class Guard:
    """In front of every request: the Host header must be one the console answers to (a
    page elsewhere cannot reach a loopback console through DNS rebinding); with
    ``web.auth``, credentials (a bearer token, or basic auth: a user's password, or the
    token as the password); and every response gets the security headers."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], auth: WebAuth | None) -> None:
        self.app, self.hosts, self.auth = app, hosts, auth
        self._good: set[bytes] = set()  # digests of credentials that passed (scrypt is slow)
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"server"
                ] + HEADERS
            await send(message)

        host = headers.get("host", "").lower()
        if host not in self.hosts:
            response: Response = PlainTextResponse(
                f"421 this console does not answer to the host {host or '(none)'!r}; add it "
                "to web.names if it is yours\n",
                status_code=421,
            )
            await response(scope, receive, secured)
            return
        if (
            self.auth is not None
            and scope["path"] != "/healthz"
            and not await run_in_threadpool(self._authorized, headers.get("authorization", ""))
        ):
            response = PlainTextResponse(
                "401 credentials required\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="watcher", charset="UTF-8"'},
            )
            await response(scope, receive, secured)
            return
        await self.app(scope, receive, secured)

    def _authorized(self, header: str) -> bool:
        assert self.auth is not None
        scheme, _, value = header.partition(" ")
        key = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        with self._lock:
            if key in self._good:
                return True
        ok = False
        token = self.auth.token
        if scheme.lower() == "bearer":
            ok = token is not None and hmac.compare_digest(value.strip().encode(), token.encode())
        elif scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except ValueError:
                return False
            stored = self.auth.users.get(user)
            if stored is not None:
                ok = verify_password(password, stored)
            elif token is not None:
                ok = hmac.compare_digest(password.encode(), token.encode())
        if ok:
            with self._lock:
                if len(self._good) > 1000:
                    self._good.clear()
                self._good.add(key)
        return ok


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}" if unit != "h" else f"{seconds / size:.1f} h"
    return f"{seconds:.0f} s"


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    delta = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{_span(delta)} ago" if delta >= 0 else f"in {_span(delta)}"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from watcher.alerts import safe_link

    env.filters.update(when=_when, ago=_ago, span=_span, safe_link=safe_link)
    return env


def make_app(
    console: Console, *, hosts: frozenset[str], auth: WebAuth | None, base: str = ""
) -> ASGIApp:
    env = environment()

    def page(name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
        body = env.get_template(name).render(
            request=request, path=request.url.path, now=datetime.now(UTC), **values
        )
        return HTMLResponse(body, status_code=status)

    def failed(request: Request, exc: StoreError) -> HTMLResponse:
        return page("error.html", request, 503, title="State unavailable", message=str(exc))

    def overview(request: Request) -> Response:
        view = console.view
        try:
            data = pages.overview(view, console.store, datetime.now(UTC))
        except StoreError as exc:
            return failed(request, exc)
        return page("overview.html", request, o=data, view=view)

    def alerts(request: Request) -> Response:
        view = console.view
        filters = pages.Filters.of(request.query_params)
        try:
            found = pages.alert_list(view, console.store, filters)
        except StoreError as exc:
            return failed(request, exc)
        older = found[-1].record.id if len(found) == pages.PAGE_SIZE else None
        return page("alerts.html", request, alerts=found, f=filters, view=view, older=older)

    def alert(request: Request) -> Response:
        view = console.view
        try:
            found = pages.alert_page(view, console.store, request.path_params["id"])
        except StoreError as exc:
            return failed(request, exc)
        if found is None:
            return page("error.html", request, 404, title="No such alert", message="")
        return page("alert.html", request, a=found, view=view)

    def feeds(request: Request) -> Response:
        view = console.view
        try:
            rows = pages.feed_rows(view, console.store, datetime.now(UTC))
        except StoreError as exc:
            return failed(request, exc)
        return page("feeds.html", request, feeds=rows)

    def feed(request: Request) -> Response:
        view = console.view
        name = request.path_params["name"]
        try:
            found = pages.feed_page(view, console.store, name, datetime.now(UTC))
        except StoreError as exc:
            return failed(request, exc)
        if found is None:
            return page("error.html", request, 404, title="No such feed", message=name)
        return page("feed.html", request, p=found)

    def _same_origin(request: Request) -> bool:
        """A cross-site form post is refused before its token is even looked at."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is not None:
            # By host alone: behind a TLS proxy the page is https and this side plain http.
            # The Host header itself is on the allow-list (Guard).
            scheme, _, where = origin.lower().partition("://")
            own = request.headers.get("host", "").lower()
            return scheme in ("http", "https") and where == own
        return True

    async def tester(request: Request) -> Response:
        view = console.view
        values: dict[str, Any] = {
            "text": "",
            "title": "",
            "feed": "",
            "chosen": [],
            "results": None,
            "error": "",
        }
        if request.method == "POST":
            if not _same_origin(request):
                return page(
                    "error.html", request, 403, title="Refused", message="cross-site request"
                )
            form = await request.form(max_files=0, max_fields=200, max_part_size=1024 * 1024)
            if not console.tokens.valid(str(form.get("token", ""))):
                return page(
                    "error.html",
                    request,
                    403,
                    title="Refused",
                    message="the form expired or did not come from this console; load it again",
                )
            values.update(
                text=str(form.get("text", ""))[:200_000],
                title=str(form.get("title", ""))[:2000],
                feed=str(form.get("feed", "")),
                chosen=[str(r) for r in form.getlist("rule")],
            )
            if values["feed"] and values["feed"] not in view.feed_names:
                values["feed"] = ""
            if not values["text"].strip() and not values["title"].strip():
                values["error"] = "paste a text or a title to test"
            else:
                values["results"] = await run_in_threadpool(
                    pages.test_text,
                    view,
                    text=values["text"],
                    title=values["title"],
                    rules=values["chosen"],
                    feed=values["feed"],
                )
        return page("tester.html", request, view=view, token=console.tokens.issue(), **values)

    def healthz(request: Request) -> Response:
        try:
            problem = pages.stalled(console.view, console.store, datetime.now(UTC))
        except StoreError as exc:
            problem = f"the state cannot be read: {console.view.redact(str(exc))}"
        body = f"stalled: {problem}\n" if problem else "ok\n"
        return PlainTextResponse(body, status_code=503 if problem else 200)

    def not_found(request: Request, exc: Exception) -> Response:
        return page("error.html", request, 404, title="Not found", message="")

    app = Starlette(
        routes=[
            Route("/", overview),
            Route("/alerts", alerts),
            Route("/alerts/{id:int}", alert),
            Route("/feeds", feeds),
            Route("/feeds/{name:path}", feed),
            Route("/tester", tester, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={404: not_found},
    )
    return Guard(app, hosts=hosts, auth=auth)

"""HTTP fetching with httpx: conditional GET, limits, and a redirect policy of our own.

Owns talking to feed servers. Every fetch is bounded three ways: connect and read
timeouts, an overall deadline checked while the body streams in, and a byte cap
measured after decompression. Redirects are followed here, hop by hop, so each
hop's scheme is checked. Never parses and never touches the database.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from watcher._version import __version__
from watcher.exceptions import FetchError
from watcher.models import FeedState, FetchResult, NotModified

USER_AGENT = f"watcher/{__version__}"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.8, "
    "application/json;q=0.8, */*;q=0.5"
)
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_KEPT_HEADERS = ("content-type", "content-location", "content-language", "etag", "last-modified")


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of one fetch; defaults suit a public feed."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5


DEFAULT_POLICY = FetchPolicy()


def make_client(
    *, policy: FetchPolicy = DEFAULT_POLICY, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One client shared by all polls (httpx clients are thread-safe and pool connections)."""
    timeout = httpx.Timeout(
        connect=policy.connect_timeout,
        read=policy.read_timeout,
        write=policy.read_timeout,
        pool=policy.deadline,
    )
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
        timeout=timeout,
        follow_redirects=False,
        transport=transport,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
    )


def _check_scheme(feed: str, url: httpx.URL) -> None:
    if url.scheme not in ("http", "https"):
        raise FetchError(feed, f"refusing {url.scheme}:// URL {url} (only http and https)")


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ReadTimeout):
        return "server stopped sending (read timeout)"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"
    if isinstance(exc, httpx.DecodingError):
        return f"body cannot be decompressed: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"broken HTTP response: {exc}"
    return f"{type(exc).__name__}: {exc}"


def fetch(
    client: httpx.Client,
    feed: str,
    url: str,
    state: FeedState | None = None,
    *,
    policy: FetchPolicy = DEFAULT_POLICY,
    clock: Callable[[], float] = time.monotonic,
) -> FetchResult | NotModified:
    """Download one feed; raises :class:`FetchError` naming the feed and the cause."""
    headers: dict[str, str] = {}
    if state is not None:
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
    deadline = clock() + policy.deadline
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(feed, f"invalid URL {url!r}: {exc}") from None
    visited: list[str] = []
    for _hop in range(policy.max_redirects + 1):
        _check_scheme(feed, current)
        visited.append(str(current))
        try:
            with client.stream("GET", current, headers=headers) as response:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    current = current.join(response.headers["location"])
                    if str(current) in visited:
                        raise FetchError(
                            feed, f"redirect loop: {' -> '.join(visited)} -> {current}"
                        )
                    continue
                if response.status_code == 304:
                    return NotModified(
                        url=str(current),
                        etag=response.headers.get("etag") or (state.etag if state else None),
                        last_modified=response.headers.get("last-modified")
                        or (state.last_modified if state else None),
                    )
                if response.status_code >= 400 or response.status_code < 200:
                    phrase = response.reason_phrase or ""
                    raise FetchError(
                        feed, f"HTTP {response.status_code} {phrase}".rstrip() + f" from {current}"
                    )
                body = _read_capped(feed, response, policy.max_bytes, deadline, clock)
                kept = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
                return FetchResult(
                    url=str(current),
                    status=response.status_code,
                    body=body,
                    headers=kept,
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                    body_hash=hashlib.sha256(body).hexdigest(),
                )
        except httpx.HTTPError as exc:
            raise FetchError(feed, _describe(exc)) from None
    raise FetchError(feed, f"more than {policy.max_redirects} redirects: {' -> '.join(visited)}")


def _read_capped(
    feed: str,
    response: httpx.Response,
    max_bytes: int,
    deadline: float,
    clock: Callable[[], float],
) -> bytes:
    """The decoded body, stopped at the byte cap or the deadline, whichever comes first."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(feed, f"body larger than {max_bytes} bytes (after decompression)")
        if clock() > deadline:
            raise FetchError(feed, "download exceeded the overall deadline")
        chunks.append(chunk)
    return b"".join(chunks)

"""HTTP fetching with httpx: conditional GET, hard limits, redirects and an address policy.

Owns talking to feed servers. Every fetch is bounded four ways: connect and read
timeouts; an overall deadline that caps every socket operation, so a server that
drips its headers or body one byte at a time is cut off; a byte cap measured
after decompression; and at most five redirects, each hop re-checked. Where the
connection goes is checked on the address actually connected (after DNS), so
rebinding and disguised forms of 127.0.0.1 are caught. Never parses and never
touches the database.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from watcher._version import __version__
from watcher.exceptions import (
    AddressRefused,
    BodyTooLarge,
    FeedGone,
    FetchAborted,
    FetchConnectError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    RateLimited,
    RedirectError,
    SchemeRefused,
)
from watcher.models import FeedState, FetchResult, NotModified
from watcher.redact import redact_text, redact_url

if TYPE_CHECKING:
    from watcher.config import Config

USER_AGENT = f"watcher/{__version__}"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.8, "
    "application/json;q=0.8, */*;q=0.5"
)
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_PERMANENT = frozenset((301, 308))
_KEPT_HEADERS = ("content-type", "content-location", "content-language", "etag", "last-modified")
_MAX_RETRY_AFTER = 24 * 3600.0


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of one fetch; defaults suit a public feed."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    allow_private: bool = False


DEFAULT_POLICY = FetchPolicy()

# -- the address policy and the hard deadline, at the socket ----------------------

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_context = threading.local()  # this thread's fetch: its deadline (httpx sync I/O is in-thread)
_ABORT = threading.Event()  # set on shutdown: every fetch in flight stops within a second
_SLICE = 1.0  # socket reads wait at most this long before checking for an abort


def abort_all() -> None:
    """Make every fetch in flight fail now (the daemon is stopping)."""
    _ABORT.set()


def allow_fetches() -> None:
    _ABORT.clear()


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a public-only fetch must not connect to ``ip``, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_problem(ip.ipv4_mapped)
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "a private or reserved address"
    return None


def _remaining(timeout: float | None) -> float | None:
    """``timeout`` shortened to what is left of this thread's deadline."""
    if _ABORT.is_set():
        raise httpcore.ReadError("watcher is shutting down")
    deadline: float | None = getattr(_context, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _Refused(httpcore.ConnectError):
    """The address policy refused every address: watcher's own decision, no error beneath."""


class _GuardedStream(httpcore.NetworkStream):
    """A socket stream whose every operation also respects the overall deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # Wait in slices, so a shutdown is noticed within a second however slow the server.
        started = time.monotonic()
        while True:
            left = None if timeout is None else timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                raise httpcore.ReadTimeout("timed out")
            budget = _remaining(left)
            wait = _SLICE if budget is None else min(budget, _SLICE)
            try:
                return self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                if budget is not None and budget <= _SLICE:
                    raise
                continue

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _GuardedStream(
            self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves names itself, checks each address, and connects to the address it checked."""

    def __init__(self, *, allow_private: bool, trusted_hosts: Iterable[str] = ()) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private
        self._trusted = frozenset(h.lower() for h in trusted_hosts)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        checked = not self._allow_private and host.lower() not in self._trusted
        refusals: list[str] = []
        last_error: Exception | None = None
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0]).split("%", 1)[0]
            if checked:
                problem = address_problem(ipaddress.ip_address(address))
                if problem:
                    refusals.append(f"{address} is {problem}")
                    continue
            try:
                stream = self._inner.connect_tcp(
                    address, port, _remaining(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return _GuardedStream(stream)
        if last_error is not None:
            raise last_error
        raise _Refused(
            f"refusing to connect to {host}: {'; '.join(refusals)} "
            "(set allow_private_networks: true to watch intranet feeds)"
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _proxy_hosts() -> list[str]:
    """The proxies from the environment: the policy trusts them (the admin chose them)."""
    hosts = []
    for url in urllib.request.getproxies().values():
        try:
            hosts.append(httpx.URL(url).host)
        except (httpx.InvalidURL, TypeError):
            continue
    return hosts


def make_client(
    *,
    policy: FetchPolicy = DEFAULT_POLICY,
    transport: httpx.BaseTransport | None = None,
    trusted_hosts: Iterable[str] = (),
) -> httpx.Client:
    """A client whose connections obey ``policy``'s address rule and deadlines.

    Proxies come from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY);
    a proxy is trusted to reach what it reaches, the policy applies to direct
    connections. ``trusted_hosts`` are host names exempt from the address policy.
    """
    timeout = httpx.Timeout(
        connect=policy.connect_timeout,
        read=policy.read_timeout,
        write=policy.read_timeout,
        pool=policy.deadline,
    )
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    client = httpx.Client(
        # httpx offers gzip, deflate and br (brotli is a dependency) on its own.
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
        timeout=timeout,
        follow_redirects=False,
        transport=transport,
        limits=limits,
        trust_env=True,
    )
    if transport is None:
        # httpx has no public hook for httpcore's network backend; its transports (the
        # direct one and one per environment proxy) each keep an httpcore pool that does.
        # tests/test_fetch.py's address-policy tests fail loudly if this ever stops working.
        trusted = [*_proxy_hosts(), *trusted_hosts]
        backend = _GuardedBackend(allow_private=policy.allow_private, trusted_hosts=trusted)
        for t in [client._transport, *client._mounts.values()]:
            pool = getattr(t, "_pool", None)
            if pool is not None:
                pool._network_backend = backend
    return client


# -- one fetch ---------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_scheme(feed: str, url: httpx.URL) -> None:
    if url.scheme not in ("http", "https"):
        raise SchemeRefused(
            feed, f"refusing {url.scheme}:// URL {redact_url(str(url))} (only http and https)"
        )


def _failure(
    feed: str, exc: httpx.HTTPError, *, past_deadline: bool, deadline: float
) -> FetchError:
    """The typed error for what httpx raised; the caller chains ``exc`` as its cause."""
    if past_deadline:
        return FetchTimeout(feed, f"the fetch exceeded its overall deadline of {deadline:g} s")
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchTimeout(feed, "connection timed out")
    if isinstance(exc, httpx.ReadTimeout):
        return FetchTimeout(feed, "server stopped sending (read timeout)")
    if isinstance(exc, httpx.TimeoutException):
        return FetchTimeout(feed, f"timed out ({type(exc).__name__})")
    said = redact_text(str(exc))  # httpx may name the URL, credentials and all
    if isinstance(exc, httpx.ConnectError):
        if isinstance(exc.__cause__, _Refused):
            return AddressRefused(feed, f"cannot connect: {said}")
        return FetchConnectError(feed, f"cannot connect: {said}")
    if isinstance(exc, httpx.DecodingError):
        return FetchError(feed, f"body cannot be decompressed: {said}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchError(feed, f"broken HTTP response: {said}")
    return FetchError(feed, f"{type(exc).__name__}: {said}")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped at 24 h."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), _MAX_RETRY_AFTER)


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date as an aware datetime, or None when absent or unreadable."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _strong_last_modified(headers: Mapping[str, str], received: datetime) -> str | None:
    """The response's Last-Modified if it is a strong validator, else None (never stored).

    Last-Modified has one-second resolution: one in the response's own second (its Date,
    else ``received``) or later may also date a change made later in that second, which
    a server comparing If-Modified-Since would answer with 304, hiding it until the feed
    changes again. Such a date is weak (RFC 9110, 8.8.2.2); the ETag or the body hash
    catches that change instead.
    """
    value = headers.get("last-modified")
    modified = _http_date(value)
    if value is None or modified is None:
        # Unreadable: a server cannot compare it as a date either, and one that matches
        # If-Modified-Since by exact string would answer every later change with 304;
        # treated as absent, the next poll downloads and the body hash decides.
        return None
    sent = _http_date(headers.get("date")) or received
    return value if modified <= sent - timedelta(seconds=1) else None


@contextmanager
def _deadline(seconds: float, clock: Callable[[], float]) -> Iterator[float]:
    """Arm this thread's socket deadline; yields the deadline on ``clock``'s scale."""
    deadline = clock() + seconds
    previous = getattr(_context, "deadline", None)
    _context.deadline = time.monotonic() + seconds
    try:
        yield deadline
    finally:
        _context.deadline = previous


def fetch(
    client: httpx.Client,
    feed: str,
    url: str,
    state: FeedState | None = None,
    *,
    policy: FetchPolicy = DEFAULT_POLICY,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = _utcnow,
) -> FetchResult | NotModified:
    """Download one feed; raises a :class:`FetchError` subclass naming the feed.

    ``headers`` and ``auth`` go only to the feed's own origin, never across a redirect
    to another host. ``now`` is the wall clock a response without a Date is judged by.

    An error with an httpx error beneath keeps it as ``__cause__``. The cause's text
    is in the message already, or is the socket's own ("timed out"), so a traceback
    shows no URL credentials or header the message does not. An address refused by
    the policy has no cause: the refusal is watcher's own, not an error below.
    """
    try:
        start = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(feed, f"invalid URL {redact_url(url)!r}: {exc}") from exc
    with _deadline(policy.deadline, clock) as deadline:
        try:
            return _fetch(client, feed, start, state, policy, headers, auth, deadline, clock, now)
        except httpx.HTTPError as exc:
            if _ABORT.is_set():
                raise FetchAborted(feed, "watcher is shutting down") from exc
            error = _failure(feed, exc, past_deadline=clock() >= deadline, deadline=policy.deadline)
            raise error from (None if isinstance(error, AddressRefused) else exc)


def _fetch(
    client: httpx.Client,
    feed: str,
    current: httpx.URL,
    state: FeedState | None,
    policy: FetchPolicy,
    extra_headers: Mapping[str, str] | None,
    auth: tuple[str, str] | None,
    deadline: float,
    clock: Callable[[], float],
    now: Callable[[], datetime],
) -> FetchResult | NotModified:
    origin = (current.scheme, current.host, current.port)
    conditional: dict[str, str] = {}
    if state is not None:
        if state.etag:
            conditional["If-None-Match"] = state.etag
        if state.last_modified:
            conditional["If-Modified-Since"] = state.last_modified
    visited: list[str] = []
    permanent = True
    for _hop in range(policy.max_redirects + 1):
        _check_scheme(feed, current)
        visited.append(str(current))
        same_origin = (current.scheme, current.host, current.port) == origin
        headers = dict(conditional)
        if same_origin and extra_headers:
            headers.update(extra_headers)
        request = client.build_request("GET", current, headers=headers)
        if same_origin and auth is not None:
            request.headers["Authorization"] = httpx.BasicAuth(*auth)._auth_header
        response = client.send(request, stream=True)
        received = now()
        try:
            status = response.status_code
            if status in _REDIRECTS and "location" in response.headers:
                _drain(response)
                permanent = permanent and status in _PERMANENT
                current = current.join(response.headers["location"])
                if str(current) in visited:
                    loop = " -> ".join(map(redact_url, [*visited, str(current)]))
                    raise RedirectError(feed, f"redirect loop: {loop}")
                continue
            moved = str(current) if permanent and len(visited) > 1 else None
            if status == 304:
                _drain(response)
                # A 304's own Last-Modified replaces ours (RFC 9111, 4.3.4), so a weak one
                # drops it rather than falling back; without one, ours (stored only when
                # strong) still describes the body we hold.
                if response.headers.get("last-modified"):
                    last_modified = _strong_last_modified(response.headers, received)
                else:
                    last_modified = state.last_modified if state else None
                return NotModified(
                    url=str(current),
                    etag=response.headers.get("etag") or (state.etag if state else None),
                    last_modified=last_modified,
                    moved_to=moved,
                )
            shown = redact_url(str(current))  # for messages: no credentials in logs or state
            if status == 410:
                raise FeedGone(feed, f"HTTP 410 Gone from {shown}: the feed was removed")
            if status >= 400 or status < 200:
                phrase = f"HTTP {status} {response.reason_phrase or ''}".rstrip()
                if status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    raise RateLimited(
                        feed, f"{phrase} from {shown}", status=status, retry_after=retry_after
                    )
                raise HTTPStatusError(feed, f"{phrase} from {shown}", status=status)
            body = _read_capped(feed, response, policy.max_bytes, deadline, clock)
            kept = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
            return FetchResult(
                url=str(current),
                status=status,
                body=body,
                headers=kept,
                etag=response.headers.get("etag"),
                last_modified=_strong_last_modified(response.headers, received),
                body_hash=hashlib.sha256(body).hexdigest(),
                moved_to=moved,
            )
        finally:
            response.close()
    raise RedirectError(feed, f"more than {policy.max_redirects} redirects: {' -> '.join(visited)}")


def _drain(response: httpx.Response, limit: int = 64 * 1024) -> None:
    """Read a small body to its end, so the connection goes back to the pool.

    A response closed before its end closes its connection: every 304 would then cost
    a new TCP connection (and a TLS handshake) on the next poll of the same host.
    A body over ``limit`` is not worth reading; its connection is dropped.
    """
    total = 0
    for chunk in response.iter_raw():
        total += len(chunk)
        if total > limit:
            return


def _read_capped(
    feed: str,
    response: httpx.Response,
    max_bytes: int,
    deadline: float,
    clock: Callable[[], float],
) -> bytes:
    """The decoded body, stopped at the byte cap or the deadline, whichever comes first."""
    declared = response.headers.get("content-length", "")
    if (
        declared.isdigit()
        and int(declared) > max_bytes
        and "content-encoding" not in response.headers
    ):
        raise BodyTooLarge(feed, f"body larger than {max_bytes} bytes (Content-Length {declared})")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(feed, f"body larger than {max_bytes} bytes (after decompression)")
        if clock() > deadline:
            # As the socket says it when the deadline passes mid-read: fetch() then
            # reports either the same way (the message names the deadline's seconds).
            raise httpx.ReadTimeout("the overall deadline passed")
        chunks.append(chunk)
    return b"".join(chunks)


# -- many fetches: limits shared by every poll ---------------------------------------


class Fetcher:
    """Fetches for the whole process: one client per address policy, global and per-host limits.

    Public and private-allowed feeds never share a client, so a pooled connection
    opened for an intranet feed can never serve a public-only one.
    """

    def __init__(
        self,
        policy: FetchPolicy = DEFAULT_POLICY,
        *,
        max_connections: int = 20,
        max_per_host: int = 2,
    ) -> None:
        self.policy = policy
        self._clients = {
            allow: make_client(policy=replace(policy, allow_private=allow))
            for allow in (False, True)
        }
        self._global = threading.BoundedSemaphore(max_connections)
        self._max_per_host = max_per_host
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _host_slot(self, url: str) -> threading.BoundedSemaphore:
        try:
            host = httpx.URL(url).host.lower()
        except httpx.InvalidURL:
            host = ""
        with self._lock:
            slot = self._hosts.get(host)
            if slot is None:
                slot = self._hosts[host] = threading.BoundedSemaphore(self._max_per_host)
            return slot

    def fetch(
        self,
        feed: str,
        url: str,
        state: FeedState | None = None,
        *,
        allow_private: bool = False,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> FetchResult | NotModified:
        policy = replace(
            self.policy,
            allow_private=allow_private,
            max_bytes=max_bytes or self.policy.max_bytes,
        )
        with self._global, self._host_slot(url):
            return fetch(
                self._clients[allow_private],
                feed,
                url,
                state,
                policy=policy,
                headers=headers,
                auth=auth,
            )

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def make_fetcher(config: Config) -> Fetcher:
    """The fetcher for a config's ``fetch:`` settings."""
    settings = config.fetch
    policy = FetchPolicy(
        connect_timeout=min(settings.timeout, settings.deadline),
        read_timeout=settings.timeout,
        deadline=settings.deadline,
        max_bytes=settings.max_bytes,
    )
    return Fetcher(
        policy, max_connections=settings.max_connections, max_per_host=settings.max_per_host
    )

"""Fetching against real loopback servers, including ones that misbehave."""

from __future__ import annotations

import base64
import gzip
import pickle
import socket
import subprocess
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import brotli
import httpx
import pytest
from support import FeedServer, Route, rss

from watcher import __version__
from watcher.exceptions import (
    AddressRefused,
    BodyTooLarge,
    FeedError,
    FeedGone,
    FetchAborted,
    FetchConnectError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    ParseError,
    RateLimited,
    RedirectError,
    SchemeRefused,
)
from watcher.fetch import (
    Fetcher,
    FetchPolicy,
    abort_all,
    allow_fetches,
    fetch,
    make_client,
    parse_retry_after,
)
from watcher.models import FeedState, FetchResult, NotModified

BODY = rss([{"title": "Hello", "guid": "1"}])


LOOPBACK = FetchPolicy(allow_private=True)  # the test servers live on 127.0.0.1


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(policy=LOOPBACK) as c:
        yield c


def _typed(
    exc: BaseException, cls: type[FetchError], kind: str, *, cause: type[BaseException] | None
) -> None:
    """``exc`` is exactly ``cls``, labelled ``kind``, with a ``cause`` beneath (None: none)."""
    assert type(exc) is cls, repr(exc)
    assert isinstance(exc, FetchError) and exc.kind == kind
    if cause is None:
        assert exc.__cause__ is None, repr(exc.__cause__)
    else:
        assert isinstance(exc.__cause__, cause), repr(exc.__cause__)


def test_plain_fetch_sends_our_user_agent(feed_server: FeedServer, client: httpx.Client) -> None:
    feed_server.routes["/f"] = Route(BODY)
    result = fetch(client, "f", feed_server.url("/f"))
    assert isinstance(result, FetchResult)
    assert result.body == BODY
    assert result.headers["content-type"].startswith("application/rss+xml")
    assert len(result.body_hash) == 64
    ((_, headers),) = feed_server.requests
    assert headers["User-Agent"] == f"watcher/{__version__}"


def test_etag_round_trip_gives_not_modified(feed_server: FeedServer, client: httpx.Client) -> None:
    feed_server.routes["/f"] = Route(BODY, etag='"v1"')
    first = fetch(client, "f", feed_server.url("/f"))
    assert isinstance(first, FetchResult) and first.etag == '"v1"'
    state = FeedState(etag=first.etag, last_modified="Tue, 24 Nov 2026 10:00:00 GMT")
    second = fetch(client, "f", feed_server.url("/f"), state)
    assert isinstance(second, NotModified)
    assert second.etag == '"v1"'
    sent = feed_server.requests[-1][1]
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == "Tue, 24 Nov 2026 10:00:00 GMT"


def test_not_modified_and_redirects_keep_the_connection(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    """A 304 (or a redirect) read to its end returns its connection to the pool; closed
    early, every poll of a host would open a new connection (and, over TLS, a handshake)."""
    feed_server.routes["/f"] = Route(BODY, etag='"v1"')
    feed_server.routes["/old"] = Route(b"moved", status=301, headers={"Location": "/f"})
    for _ in range(5):
        assert isinstance(
            fetch(client, "f", feed_server.url("/f"), FeedState(etag='"v1"')), NotModified
        )
        assert isinstance(fetch(client, "f", feed_server.url("/old")), FetchResult)
    assert len(feed_server.requests) == 15
    assert feed_server.connections == 1


def test_http_error_names_the_feed_and_status(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    with pytest.raises(FetchError) as info:
        fetch(client, "kyiv-news", feed_server.url("/missing"))
    assert str(info.value).startswith("feed 'kyiv-news': HTTP 404")
    _typed(info.value, HTTPStatusError, "http", cause=None)  # no error beneath a status
    assert isinstance(info.value, HTTPStatusError) and info.value.status == 404


def test_a_server_error_is_an_http_status_error(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/f"] = Route(status=500)
    with pytest.raises(HTTPStatusError, match="HTTP 500 Internal Server Error from") as info:
        fetch(client, "f", feed_server.url("/f"))
    _typed(info.value, HTTPStatusError, "http", cause=None)
    assert info.value.status == 500 and info.value.retry_after is None


def test_error_messages_name_the_url_without_its_credentials(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    """Error messages go to the log, the state, `watcher feeds` and the console: a
    password in the URL or a secret query parameter is masked, the rest is kept."""
    feed_server.routes["/down?token=s3cr3t-t0ken&page=2"] = Route(status=500)
    feed_server.routes["/gone?apikey=s3cr3t-t0ken"] = Route(status=410)
    feed_server.routes["/a?sig=s3cr3t-t0ken"] = Route(
        status=302, headers={"Location": "/b?sig=s3cr3t-t0ken"}
    )
    feed_server.routes["/b?sig=s3cr3t-t0ken"] = Route(
        status=302, headers={"Location": "/a?sig=s3cr3t-t0ken"}
    )
    for path, kind in (
        ("/down?token=s3cr3t-t0ken&page=2", HTTPStatusError),
        ("/gone?apikey=s3cr3t-t0ken", FeedGone),
        ("/a?sig=s3cr3t-t0ken", RedirectError),
    ):
        url = feed_server.url(path).replace("://", "://reader:hunter2-pass@")
        with pytest.raises(kind) as info:
            fetch(client, "f", url)
        message = str(info.value)
        assert "hunter2-pass" not in message and "s3cr3t-t0ken" not in message, message
        assert f"127.0.0.1:{feed_server.port}" in message, message
    with pytest.raises(HTTPStatusError) as info:
        fetch(client, "f", feed_server.url("/down?token=s3cr3t-t0ken&page=2"))
    assert str(info.value).endswith("/down?token=***&page=2"), str(info.value)


def test_gzip_body_is_decompressed(feed_server: FeedServer, client: httpx.Client) -> None:
    feed_server.routes["/f"] = Route(BODY, gzip=True)
    result = fetch(client, "f", feed_server.url("/f"))
    assert isinstance(result, FetchResult) and result.body == BODY


def test_byte_cap_counts_decompressed_bytes(feed_server: FeedServer, client: httpx.Client) -> None:
    bomb = b"<rss>" + b"\0" * (50 * 1024 * 1024)
    feed_server.routes["/bomb"] = Route(bomb, gzip=True)
    assert len(gzip.compress(bomb)) < 100 * 1024
    with pytest.raises(FetchError, match="larger than 1048576 bytes") as info:
        fetch(
            client, "f", feed_server.url("/bomb"), policy=replace(LOOPBACK, max_bytes=1024 * 1024)
        )
    _typed(info.value, BodyTooLarge, "size", cause=None)


def test_redirects_are_followed_and_the_final_url_reported(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/old"] = Route(status=301, headers={"Location": "/new"})
    feed_server.routes["/new"] = Route(BODY)
    result = fetch(client, "f", feed_server.url("/old"))
    assert isinstance(result, FetchResult)
    assert result.url == feed_server.url("/new")


def test_redirect_loop_and_chain_limits(feed_server: FeedServer, client: httpx.Client) -> None:
    feed_server.routes["/a"] = Route(status=302, headers={"Location": "/b"})
    feed_server.routes["/b"] = Route(status=302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="redirect loop") as info:
        fetch(client, "f", feed_server.url("/a"))
    _typed(info.value, RedirectError, "other", cause=None)
    for i in range(8):
        feed_server.routes[f"/hop{i}"] = Route(status=307, headers={"Location": f"/hop{i + 1}"})
    with pytest.raises(FetchError, match="more than 5 redirects") as info:
        fetch(client, "f", feed_server.url("/hop0"))
    _typed(info.value, RedirectError, "other", cause=None)


def test_redirect_to_another_scheme_is_refused(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/f"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="refusing file:// URL") as info:
        fetch(client, "f", feed_server.url("/f"))
    # Labelled connect, as before the classes: watcher refused to go where it was sent.
    _typed(info.value, SchemeRefused, "connect", cause=None)
    assert isinstance(info.value, RedirectError)


def _dripping(head: bytes, piece: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    """A handler that sends ``head`` then ``piece`` every 0.2 s for 20 s."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        try:
            h.wfile.write(head)
            for _ in range(100):
                h.wfile.write(piece)
                h.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    return handler


_drip = _dripping(
    b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n",
    b" ",
)
_header_drip = _dripping(b"HTTP/1.1 200 OK\r\n", b"X-Slow: a\r\n")


def test_a_dripping_server_is_cut_off_by_the_overall_deadline(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/drip"] = Route(handler=_drip)
    started = time.monotonic()
    with pytest.raises(FetchError, match="overall deadline of 1 s") as info:
        fetch(client, "slow", feed_server.url("/drip"), policy=replace(LOOPBACK, deadline=1.0))
    _typed(info.value, FetchTimeout, "timeout", cause=httpx.ReadTimeout)
    assert time.monotonic() - started < 10  # a sanity bound, far above the 1 s deadline


def test_a_server_that_never_answers_hits_the_read_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        policy = replace(LOOPBACK, read_timeout=0.5)
        with (
            make_client(policy=policy) as client,
            pytest.raises(FetchError, match="read timeout") as info,
        ):
            fetch(client, "hung", f"http://127.0.0.1:{port}/", policy=policy)
    _typed(info.value, FetchTimeout, "timeout", cause=httpx.ReadTimeout)


def test_connection_refused_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        make_client(policy=LOOPBACK) as client,
        pytest.raises(FetchError, match="cannot connect") as info,
    ):
        fetch(client, "down", f"http://127.0.0.1:{port}/")
    _typed(info.value, FetchConnectError, "connect", cause=httpx.ConnectError)
    assert "Connection refused" in str(info.value.__cause__)


# -- the address policy --------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
    ],
)
def test_public_only_client_refuses_loopback_in_every_disguise(
    feed_server: FeedServer, host: str
) -> None:
    feed_server.routes["/f"] = Route(BODY)
    with make_client() as client, pytest.raises(FetchError) as info:
        fetch(client, "sneaky", f"http://{host}:{feed_server.port}/f")
    reason = str(info.value)
    assert "refusing to connect" in reason or "invalid URL" in reason
    assert feed_server.requests == []  # nothing reached the server
    if "invalid URL" in reason:  # httpx rejects the octal form before any policy
        _typed(info.value, FetchError, "other", cause=httpx.InvalidURL)
    else:  # the refusal is watcher's own: no error beneath it
        _typed(info.value, AddressRefused, "connect", cause=None)
        assert isinstance(info.value, FetchConnectError)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("fd00:ec2::254", "private"),
        ("fe80::1", "link-local"),
    ],
)
def test_private_ranges_are_refused_before_any_packet_is_sent(address: str, kind: str) -> None:
    # The check runs before connect(): no traffic ever goes to these addresses.
    host = f"[{address}]" if ":" in address else address
    with make_client() as client, pytest.raises(FetchError, match=kind) as info:
        fetch(client, "internal", f"http://{host}/latest/meta-data/")
    _typed(info.value, AddressRefused, "connect", cause=None)


def test_public_addresses_pass_the_policy() -> None:
    from ipaddress import ip_address

    from watcher.fetch import address_problem

    assert address_problem(ip_address("93.184.216.34")) is None
    assert address_problem(ip_address("2606:4700::1111")) is None
    assert address_problem(ip_address("::ffff:127.0.0.1")) == "a loopback address"


def test_every_redirect_hop_is_rechecked(feed_server: FeedServer) -> None:
    # 127.0.0.1 is trusted (as a proxy would be); "localhost" is not, though it is the same box.
    feed_server.routes["/f"] = Route(
        status=302, headers={"Location": f"http://localhost:{feed_server.port}/g"}
    )
    feed_server.routes["/g"] = Route(BODY)
    with (
        make_client(trusted_hosts=["127.0.0.1"]) as client,
        pytest.raises(FetchError, match="refusing to connect to localhost") as info,
    ):
        fetch(client, "f", feed_server.url("/f"))
    assert feed_server.hits("/g") == 0
    _typed(info.value, AddressRefused, "connect", cause=None)


# -- bodies: compression, caps, lies ----------------------------------------------------


def _encoded(encoding: str, body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def handler(h: BaseHTTPRequestHandler) -> None:
        data = brotli.compress(body) if encoding == "br" else zlib.compress(body)
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Encoding", encoding)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return handler


@pytest.mark.parametrize("encoding", ["br", "deflate"])
def test_brotli_and_deflate_bodies(
    feed_server: FeedServer, client: httpx.Client, encoding: str
) -> None:
    feed_server.routes["/f"] = Route(handler=_encoded(encoding, BODY))
    result = fetch(client, "f", feed_server.url("/f"))
    assert isinstance(result, FetchResult) and result.body == BODY
    assert "br" in feed_server.requests[0][1]["Accept-Encoding"]


def _endless_chunked(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b"x" * 65536
    try:
        for _ in range(16384):  # 1 GiB, if anyone read it all
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass


def test_chunked_body_without_length_stops_at_the_cap(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/big"] = Route(handler=_endless_chunked)
    with pytest.raises(FetchError, match="larger than 2097152 bytes") as info:
        fetch(
            client,
            "f",
            feed_server.url("/big"),
            policy=replace(LOOPBACK, max_bytes=2 * 1024 * 1024),
        )
    _typed(info.value, BodyTooLarge, "size", cause=None)


def _lying_length(declared: int, sent: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(declared))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(sent)
        h.close_connection = True

    return handler


def test_false_content_length_is_a_clear_error(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/short"] = Route(handler=_lying_length(100_000, b"<rss>"))
    with pytest.raises(FetchError, match="broken HTTP response") as info:
        fetch(client, "f", feed_server.url("/short"))
    _typed(info.value, FetchError, "other", cause=httpx.RemoteProtocolError)
    feed_server.routes["/huge"] = Route(handler=_lying_length(50 * 1024 * 1024 * 1024, b"<rss>"))
    with pytest.raises(FetchError, match="Content-Length") as info:
        fetch(client, "f", feed_server.url("/huge"))
    _typed(info.value, BodyTooLarge, "size", cause=None)


def test_a_deadline_that_passes_between_two_chunks_reads_as_one_at_the_socket(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    """The body's loop checks the deadline between chunks, the socket during a read:
    whichever sees it pass, the error is the same (a drip could reach either)."""
    feed_server.routes["/drip"] = Route(handler=_drip)
    ticks = iter([0.0, 0.0])  # the deadline armed at 0, the first chunk in time

    def clock() -> float:
        return next(ticks, 5.0)  # the next chunk, past the 1 s deadline

    with pytest.raises(FetchError, match="overall deadline of 1 s") as info:
        fetch(
            client,
            "slow",
            feed_server.url("/drip"),
            policy=replace(LOOPBACK, deadline=1.0),
            clock=clock,
        )
    _typed(info.value, FetchTimeout, "timeout", cause=httpx.ReadTimeout)


def test_dripping_headers_are_cut_off_by_the_deadline(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/slow-headers"] = Route(handler=_header_drip)
    with pytest.raises(FetchError, match="overall deadline of 1 s") as info:
        fetch(
            client, "slow", feed_server.url("/slow-headers"), policy=replace(LOOPBACK, deadline=1.0)
        )
    _typed(info.value, FetchTimeout, "timeout", cause=httpx.ReadTimeout)


# -- statuses ------------------------------------------------------------------------


def test_retry_after_is_read_from_429_and_503(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/busy"] = Route(status=429, headers={"Retry-After": "120"})
    with pytest.raises(FetchError) as info:
        fetch(client, "f", feed_server.url("/busy"))
    assert info.value.retry_after == 120
    _typed(info.value, RateLimited, "rate_limited", cause=None)
    assert isinstance(info.value, HTTPStatusError) and info.value.status == 429
    when = datetime.now(UTC) + timedelta(minutes=10)
    feed_server.routes["/down"] = Route(
        status=503, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    with pytest.raises(FetchError) as info:
        fetch(client, "f", feed_server.url("/down"))
    assert info.value.retry_after is not None and 590 <= info.value.retry_after <= 600
    _typed(info.value, RateLimited, "rate_limited", cause=None)
    feed_server.routes["/unsaid"] = Route(status=503)  # rate limited, without saying how long
    with pytest.raises(RateLimited, match="HTTP 503 Service Unavailable") as unsaid:
        fetch(client, "f", feed_server.url("/unsaid"))
    assert (unsaid.value.status, unsaid.value.retry_after, unsaid.value.kind) == (
        503,
        None,
        "rate_limited",
    )


def test_retry_after_parsing() -> None:
    assert parse_retry_after("5") == 5
    assert parse_retry_after("999999999") == 86400  # capped at a day
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_410_is_feed_gone(feed_server: FeedServer, client: httpx.Client) -> None:
    feed_server.routes["/gone"] = Route(status=410)
    with pytest.raises(FeedGone, match="410 Gone") as info:
        fetch(client, "f", feed_server.url("/gone"))
    _typed(info.value, FeedGone, "gone", cause=None)
    assert isinstance(info.value, HTTPStatusError) and info.value.status == 410


def test_only_all_permanent_redirects_report_a_move(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/a"] = Route(status=301, headers={"Location": "/b"})
    feed_server.routes["/b"] = Route(status=308, headers={"Location": "/c"})
    feed_server.routes["/c"] = Route(BODY)
    feed_server.routes["/t"] = Route(status=302, headers={"Location": "/b"})
    moved = fetch(client, "f", feed_server.url("/a"))
    assert isinstance(moved, FetchResult) and moved.moved_to == feed_server.url("/c")
    temporary = fetch(client, "f", feed_server.url("/t"))
    assert isinstance(temporary, FetchResult) and temporary.moved_to is None


def test_headers_and_basic_auth_go_to_the_feed_origin_only(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/private"] = Route(
        status=302, headers={"Location": f"http://localhost:{feed_server.port}/elsewhere"}
    )
    feed_server.routes["/elsewhere"] = Route(BODY)
    fetch(client, "f", feed_server.url("/private"), headers={"X-Api-Key": "k1"}, auth=("u", "pw"))
    (_, first), (_, second) = feed_server.requests
    assert first["X-Api-Key"] == "k1"
    assert first["Authorization"] == "Basic dTpwdw=="
    assert "X-Api-Key" not in second and "Authorization" not in second


# -- typed failures: what crosses a process, what a traceback shows ----------------------

_EVERY_FEED_ERROR: list[FeedError] = [
    FeedError("f", "something else"),
    FetchError("f", "invalid URL 'http://[::1/': Invalid port: ':1'"),
    FetchTimeout("f", "connection timed out"),
    FetchConnectError("f", "cannot connect: [Errno 111] Connection refused"),
    AddressRefused("f", "cannot connect: refusing to connect to localhost: 127.0.0.1 is ..."),
    HTTPStatusError("f", "HTTP 404 Not Found from http://example.org/", status=404),
    RateLimited("f", "HTTP 429 Too Many Requests from http://x/", status=429, retry_after=120.0),
    FeedGone("f", "HTTP 410 Gone from http://example.org/: the feed was removed"),
    BodyTooLarge("f", "body larger than 1024 bytes (after decompression)"),
    RedirectError("f", "redirect loop: http://x/a -> http://x/b -> http://x/a"),
    SchemeRefused("f", "refusing file:// URL file:///etc/passwd (only http and https)"),
    FetchAborted("f", "watcher is shutting down"),
    ParseError("f", "the document is an HTML page"),
]


def _subclasses(cls: type[FeedError]) -> set[type[FeedError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def test_every_feed_error_survives_pickling() -> None:
    """Parse workers send errors across processes: each class, whatever its constructor."""
    assert {type(e) for e in _EVERY_FEED_ERROR} == _subclasses(FeedError)  # a new class: add it
    copies = {}
    for exc in _EVERY_FEED_ERROR:
        copy = pickle.loads(pickle.dumps(exc))
        assert type(copy) is type(exc)
        assert (str(copy), copy.args, vars(copy)) == (str(exc), exc.args, vars(exc))
        assert (copy.feed, copy.reason, copy.kind) == ("f", exc.reason, exc.kind)
        copies[type(copy)] = copy
    limited, gone = copies[RateLimited], copies[FeedGone]
    assert isinstance(limited, RateLimited) and (limited.status, limited.retry_after) == (429, 120)
    assert isinstance(gone, FeedGone) and gone.status == 410


def test_a_raised_error_pickles_without_its_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with make_client(policy=LOOPBACK) as client, pytest.raises(FetchConnectError) as info:
        fetch(client, "down", f"http://127.0.0.1:{port}/")
    assert info.value.__cause__ is not None
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is FetchConnectError and str(copy) == str(info.value)
    assert copy.__cause__ is None  # like any pickled exception: the text says what it was


def test_the_kept_cause_shows_no_credentials() -> None:
    """The cause's text is the socket's, so a logged traceback holds no URL password,
    header or Basic credentials that the message itself does not."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with make_client(policy=LOOPBACK) as client, pytest.raises(FetchConnectError) as info:
        fetch(
            client,
            "down",
            f"http://someone:url-s3cret@127.0.0.1:{port}/feed?token=query-s3cret",
            headers={"X-Api-Key": "header-s3cret"},
            auth=("someone", "auth-s3cret"),
        )
    shown = "".join(traceback.format_exception(info.value))
    assert "Connection refused" in shown and "httpx.ConnectError" in shown
    assert "s3cret" not in shown
    assert base64.b64encode(b"someone:auth-s3cret").decode() not in shown  # the Basic header


def test_a_fetch_cut_short_by_shutdown_is_aborted() -> None:
    with socket.socket() as hung:  # accepts, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        hung.settimeout(30)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/"
        with make_client(policy=LOOPBACK) as client, ThreadPoolExecutor(1) as pool:
            pending = pool.submit(fetch, client, "f", url, policy=LOOPBACK)
            connection, _ = hung.accept()  # the fetch is connected: now watcher stops
            try:
                abort_all()
                with pytest.raises(FetchAborted, match="watcher is shutting down") as info:
                    pending.result(timeout=30)
            finally:
                allow_fetches()
                connection.close()
    _typed(info.value, FetchAborted, "aborted", cause=httpx.ReadError)


# -- limits shared by all polls ------------------------------------------------------------


class _Concurrency:
    def __init__(self) -> None:
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def handler(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.3)
        with self.lock:
            self.now -= 1
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(BODY)))
        h.end_headers()
        h.wfile.write(BODY)


def test_per_host_limit(feed_server: FeedServer) -> None:
    counter = _Concurrency()
    feed_server.routes["/f"] = Route(handler=counter.handler)
    with (
        Fetcher(LOOPBACK, max_connections=20, max_per_host=2) as fetcher,
        ThreadPoolExecutor(6) as pool,
    ):
        results = list(
            pool.map(
                lambda i: fetcher.fetch(f"f{i}", feed_server.url("/f"), allow_private=True),
                range(6),
            )
        )
    assert all(isinstance(r, FetchResult) for r in results)
    assert counter.peak == 2


def test_global_limit_and_a_hung_host_never_blocks_another(feed_server: FeedServer) -> None:
    counter = _Concurrency()
    feed_server.routes["/f"] = Route(handler=counter.handler)
    hosts = ["127.0.0.1", "localhost"]  # two hosts (one box): 4 slots, the global limit is 3
    with (
        Fetcher(LOOPBACK, max_connections=3, max_per_host=2) as fetcher,
        ThreadPoolExecutor(8) as pool,
    ):
        urls = [f"http://{hosts[i % 2]}:{feed_server.port}/f" for i in range(8)]
        list(pool.map(lambda u: fetcher.fetch("f", u, allow_private=True), urls))
    assert counter.peak == 3

    with socket.socket() as hung:  # accepts, never answers
        hung.bind(("127.0.0.5", 0))
        hung.listen()
        slow = replace(LOOPBACK, read_timeout=3.0)
        with (
            Fetcher(slow, max_connections=4, max_per_host=1) as fetcher,
            ThreadPoolExecutor(2) as pool,
        ):
            stuck = pool.submit(
                fetcher.fetch,
                "hung",
                f"http://127.0.0.5:{hung.getsockname()[1]}/",
                allow_private=True,
            )
            time.sleep(0.2)
            started = time.monotonic()
            fine = fetcher.fetch("ok", feed_server.url("/f"), allow_private=True)
            assert isinstance(fine, FetchResult)
            assert time.monotonic() - started < 2.5  # did not wait for the hung host
            with pytest.raises(FetchError):
                stuck.result()


def test_public_and_private_feeds_never_share_a_connection(feed_server: FeedServer) -> None:
    feed_server.routes["/f"] = Route(BODY)
    with Fetcher() as fetcher:
        assert isinstance(
            fetcher.fetch("intranet", feed_server.url("/f"), allow_private=True), FetchResult
        )
        # The pooled keep-alive connection to 127.0.0.1 must not serve a public-only feed.
        with pytest.raises(AddressRefused, match="refusing to connect"):
            fetcher.fetch("public", feed_server.url("/f"), allow_private=False)


def test_proxy_from_the_environment(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loopback server plays an HTTP proxy: it receives the absolute URL as the path.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{feed_server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    feed_server.routes["http://feeds.invalid/rss"] = Route(BODY)
    with make_client() as client:  # public-only: the proxy itself is trusted
        result = fetch(client, "proxied", "http://feeds.invalid/rss")
    assert isinstance(result, FetchResult) and result.body == BODY


# -- validators: a Last-Modified in the response's own second is weak ---------------------

POLLED = datetime(2026, 11, 24, 20, 23, 26, tzinfo=UTC)  # the second the server answers in


def _http(dt: datetime) -> str:
    return format_datetime(dt, usegmt=True)


def _dated(
    *, last_modified: str | None, date: str | None, status: int = 200
) -> Callable[[BaseHTTPRequestHandler], None]:
    """A handler that sends exactly these Date and Last-Modified headers (None: no header)."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        body = BODY if status == 200 else b""
        h.send_response_only(status)  # send_response would add a Date of its own
        if date is not None:
            h.send_header("Date", date)
        if last_modified is not None:
            h.send_header("Last-Modified", last_modified)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handler


def _sent_next_time(
    feed_server: FeedServer, client: httpx.Client, result: FetchResult | NotModified
) -> str | None:
    """The If-Modified-Since the next poll sends, given what this one would store."""
    state = FeedState(etag=result.etag, last_modified=result.last_modified, baselined=True)
    fetch(client, "f", feed_server.url("/f"), state)
    return feed_server.requests[-1][1].get("If-Modified-Since")


@pytest.mark.parametrize(
    ("modified", "strong"),
    [
        (POLLED, False),  # the same second as Date: a later change could share it
        (POLLED + timedelta(seconds=5), False),  # later than Date: a wrong clock, never strong
        (POLLED - timedelta(seconds=3), True),
        (POLLED - timedelta(seconds=1), True),  # the whole second ended before Date
    ],
)
def test_a_last_modified_in_the_second_of_date_or_later_is_not_stored_nor_sent(
    feed_server: FeedServer, client: httpx.Client, modified: datetime, strong: bool
) -> None:
    feed_server.routes["/f"] = Route(
        handler=_dated(last_modified=_http(modified), date=_http(POLLED))
    )
    result = fetch(client, "f", feed_server.url("/f"))
    assert isinstance(result, FetchResult) and result.body == BODY
    expected = _http(modified) if strong else None
    assert result.last_modified == expected
    assert _sent_next_time(feed_server, client, result) == expected


@pytest.mark.parametrize(
    ("modified", "strong"),
    [
        (POLLED, False),
        (POLLED + timedelta(hours=1), False),
        (POLLED - timedelta(seconds=2), True),
    ],
)
def test_without_a_date_header_last_modified_is_judged_by_the_time_received(
    feed_server: FeedServer, client: httpx.Client, modified: datetime, strong: bool
) -> None:
    feed_server.routes["/f"] = Route(handler=_dated(last_modified=_http(modified), date=None))
    received = POLLED + timedelta(milliseconds=400)
    result = fetch(client, "f", feed_server.url("/f"), now=lambda: received)
    assert isinstance(result, FetchResult)
    assert "date" not in result.headers and "Date" not in result.headers
    assert result.last_modified == (_http(modified) if strong else None)


def test_without_a_date_header_the_default_clock_is_the_real_one(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    now = datetime.now(UTC)
    for modified, strong in ((now - timedelta(hours=1), True), (now + timedelta(hours=1), False)):
        feed_server.routes["/f"] = Route(handler=_dated(last_modified=_http(modified), date=None))
        result = fetch(client, "f", feed_server.url("/f"))
        assert isinstance(result, FetchResult)
        assert result.last_modified == (_http(modified) if strong else None)


@pytest.mark.parametrize(
    "garbage",
    [
        "yesterday",
        "Tue, 24 Nov 99999 10:00:00 GMT",  # year out of range
        "Mon, 99 Nov 2026 10:00:00 GMT",  # no such day
        "Tue, 24 Nov 2026 10:00:60 GMT",
        "Sun, 06 Nov 1994 08:49:37 +9999",  # an offset of days
        "0",
    ],
)
def test_an_unparseable_last_modified_is_treated_as_absent(
    feed_server: FeedServer, client: httpx.Client, garbage: str
) -> None:
    """Absent, not "long before": we cannot tell which second it names, so we cannot tell
    that a later change would carry a later one, and a server matching If-Modified-Since
    by exact string would answer every change with 304. Absent costs a download per poll,
    and the body hash still spares the parse."""
    feed_server.routes["/f"] = Route(handler=_dated(last_modified=garbage, date=_http(POLLED)))
    result = fetch(client, "f", feed_server.url("/f"))
    assert isinstance(result, FetchResult) and result.last_modified is None
    assert _sent_next_time(feed_server, client, result) is None


@pytest.mark.parametrize("date", ["yesterday", "Mon, 99 Nov 2026 10:00:00 GMT", ""])
def test_an_unparseable_date_is_judged_like_no_date(
    feed_server: FeedServer, client: httpx.Client, date: str
) -> None:
    received = POLLED + timedelta(milliseconds=400)
    for modified, strong in ((POLLED, False), (POLLED - timedelta(minutes=5), True)):
        feed_server.routes["/f"] = Route(handler=_dated(last_modified=_http(modified), date=date))
        result = fetch(client, "f", feed_server.url("/f"), now=lambda: received)
        assert isinstance(result, FetchResult)
        assert result.last_modified == (_http(modified) if strong else None)


def test_a_304_never_stores_a_weak_last_modified(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    """A 304's own Last-Modified replaces ours; when it is weak (or unreadable) we keep
    none rather than the old one, and without one the strong one we had is kept."""
    ours = _http(POLLED - timedelta(minutes=10))
    state = FeedState(etag='"v1"', last_modified=ours, baselined=True)
    cases = [
        (_http(POLLED), None),  # the same second as the 304's Date
        (_http(POLLED + timedelta(seconds=30)), None),
        ("garbage", None),
        (None, ours),  # no Last-Modified: ours still describes the body we hold
        (_http(POLLED - timedelta(minutes=1)), _http(POLLED - timedelta(minutes=1))),
    ]
    for header, kept in cases:
        feed_server.routes["/f"] = Route(
            handler=_dated(last_modified=header, date=_http(POLLED), status=304)
        )
        result = fetch(client, "f", feed_server.url("/f"), state)
        assert isinstance(result, NotModified)
        assert feed_server.requests[-1][1]["If-Modified-Since"] == ours
        assert (result.etag, result.last_modified) == ('"v1"', kept), header
        assert _sent_next_time(feed_server, client, result) == kept


# -- memory stays bounded ------------------------------------------------------------------

_MEMORY_PROBE = """
import resource, sys
from watcher.fetch import Fetcher, FetchPolicy
from watcher.exceptions import FetchError
limit = int(sys.argv[2]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
with Fetcher(FetchPolicy(allow_private=True)) as f:
    try:
        f.fetch("big", sys.argv[1], allow_private=True)
    except FetchError as exc:
        print(exc)
"""


@pytest.mark.parametrize("path", ["/big", "/bomb"])
def test_huge_bodies_are_refused_within_bounded_memory(feed_server: FeedServer, path: str) -> None:
    feed_server.routes["/big"] = Route(handler=_endless_chunked)  # 1 GiB, chunked
    feed_server.routes["/bomb"] = Route(b"<rss>" + b"\0" * (200 * 1024 * 1024), gzip=True)
    # Address space: the interpreter and its libraries, plus 10 MiB of body and slack.
    limit_mib = _baseline_vm_mib() + 200
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, feed_server.url(path), str(limit_mib)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "larger than 10485760 bytes" in proc.stdout


def _baseline_vm_mib() -> int:
    code = (
        "import threading, watcher.fetch\n"
        "f = watcher.fetch.Fetcher()\n"
        "print(int(open('/proc/self/statm').read().split()[0]) * 4096 // 2**20)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())

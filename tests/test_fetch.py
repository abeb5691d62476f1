"""Fetching against real loopback servers, including ones that misbehave."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from support import FeedServer, Route, rss

from watcher import __version__
from watcher.exceptions import FetchError
from watcher.fetch import FetchPolicy, fetch, make_client
from watcher.models import FeedState, FetchResult, NotModified

BODY = rss([{"title": "Hello", "guid": "1"}])


LOOPBACK = FetchPolicy(allow_private=True)  # the test servers live on 127.0.0.1


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(policy=LOOPBACK) as c:
        yield c


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


def test_http_error_names_the_feed_and_status(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    with pytest.raises(FetchError) as info:
        fetch(client, "kyiv-news", feed_server.url("/missing"))
    assert str(info.value).startswith("feed 'kyiv-news': HTTP 404")


def test_gzip_body_is_decompressed(feed_server: FeedServer, client: httpx.Client) -> None:
    feed_server.routes["/f"] = Route(BODY, gzip=True)
    result = fetch(client, "f", feed_server.url("/f"))
    assert isinstance(result, FetchResult) and result.body == BODY


def test_byte_cap_counts_decompressed_bytes(feed_server: FeedServer, client: httpx.Client) -> None:
    bomb = b"<rss>" + b"\0" * (50 * 1024 * 1024)
    feed_server.routes["/bomb"] = Route(bomb, gzip=True)
    assert len(gzip.compress(bomb)) < 100 * 1024
    with pytest.raises(FetchError, match="larger than 1048576 bytes"):
        fetch(
            client, "f", feed_server.url("/bomb"), policy=replace(LOOPBACK, max_bytes=1024 * 1024)
        )


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
    with pytest.raises(FetchError, match="redirect loop"):
        fetch(client, "f", feed_server.url("/a"))
    for i in range(8):
        feed_server.routes[f"/hop{i}"] = Route(status=307, headers={"Location": f"/hop{i + 1}"})
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch(client, "f", feed_server.url("/hop0"))


def test_redirect_to_another_scheme_is_refused(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/f"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="refusing file:// URL"):
        fetch(client, "f", feed_server.url("/f"))


def _drip(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    try:
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


def test_a_dripping_server_is_cut_off_by_the_overall_deadline(
    feed_server: FeedServer, client: httpx.Client
) -> None:
    feed_server.routes["/drip"] = Route(handler=_drip)
    started = time.monotonic()
    with pytest.raises(FetchError, match="overall deadline of 1 s"):
        fetch(client, "slow", feed_server.url("/drip"), policy=replace(LOOPBACK, deadline=1.0))
    assert time.monotonic() - started < 10  # a sanity bound, far above the 1 s deadline


def test_a_server_that_never_answers_hits_the_read_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        policy = replace(LOOPBACK, read_timeout=0.5)
        with make_client(policy=policy) as client, pytest.raises(FetchError, match="read timeout"):
            fetch(client, "hung", f"http://127.0.0.1:{port}/", policy=policy)


def test_connection_refused_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with make_client(policy=LOOPBACK) as client, pytest.raises(FetchError, match="cannot connect"):
        fetch(client, "down", f"http://127.0.0.1:{port}/")

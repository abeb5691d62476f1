"""CPU cost of one poll of a 50-item feed, by outcome: changed body, unchanged body, 304.

Run: .venv/bin/python bench/poll_cost.py [--items 50] [--rounds 200]
Prints CPU milliseconds per poll (loopback HTTP fetch, parse, match, SQLite commit;
process time, so waiting on the socket is not counted)
and, separately, the cost of the decision that skips parsing (hashing the body).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from watcher.config import parse_config
from watcher.fetch import make_fetcher
from watcher.pipeline import poll_feed
from watcher.rules import RuleSet
from watcher.store import Store

ITEM = (
    "<item><title>Story {n}: talks in Geneva, Kharkiv and Kyïv</title>"
    "<link>https://news.example.org/{n}</link><guid>urn:story:{n}</guid>"
    "<description>{html}</description></item>"
)
PARAGRAPH = (
    "&lt;p&gt;Officials said &lt;a href='/x'&gt;the city&lt;/a&gt; was calm "
    "&amp;amp; quiet.&lt;/p&gt;"
)


def feed(items: int, first: int) -> bytes:
    """``items`` stories numbered from ``first``: shifting ``first`` by 5 publishes 5 new ones."""
    body = "".join(ITEM.format(n=n, html=PARAGRAPH * 20) for n in range(first, first + items))
    return f'<rss version="2.0"><channel><title>bench</title>{body}</channel></rss>'.encode()


class State:
    body = b""
    etag = '"0"'


def serve(state: State) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if state.etag and self.headers.get("If-None-Match") == state.etag:
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(state.body)))
            if state.etag:
                self.send_header("ETag", state.etag)
            self.end_headers()
            self.wfile.write(state.body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # alerts are queued by the thousand here
    state = State()
    httpd = serve(state)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/feed"
    config = parse_config(
        f"allow_private_networks: true\nfeeds:\n  - {{name: bench, url: '{url}'}}\n"
        "rules:\n  - {name: r, keywords: [Kharkiv]}\n"
    )
    ruleset = RuleSet.from_config(config)
    with tempfile.TemporaryDirectory() as tmp, make_fetcher(config) as fetcher:
        store = Store.open(Path(tmp) / "bench.db")

        def poll() -> str:
            return poll_feed(
                config.feeds[0], config=config, fetcher=fetcher, store=store, ruleset=ruleset
            ).status

        def measure(label: str, prepare: Any, expect: str) -> None:
            total = 0.0
            for i in range(args.rounds):
                prepare(i)
                start = time.process_time()
                status = poll()
                total += time.process_time() - start
                assert status == expect, (label, status)
            print(f"{label:<38} {1000 * total / args.rounds:8.3f} ms CPU/poll")

        state.body, state.etag = feed(args.items, 0), ""
        poll()  # the silent baseline
        size = len(state.body)
        print(f"feed: {args.items} items, {size / 1024:.0f} KiB; {args.rounds} polls each")

        def changed(i: int) -> None:
            state.body = feed(args.items, 5 * (i + 1))  # 5 new stories, each matching

        measure("changed body (fetch, parse, match)", changed, "new")
        measure("unchanged body, no ETag (hash only)", lambda i: None, "unchanged")
        state.etag = '"1"'
        poll()
        measure("304 Not Modified", lambda i: None, "not-modified")
        start = time.process_time()
        for _ in range(args.rounds):
            hashlib.sha256(state.body).hexdigest()
        per = 1000 * (time.process_time() - start) / args.rounds
        print(f"{'  of which the body hash':<38} {per:8.3f} ms CPU")
        store.close()
    httpd.shutdown()
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()

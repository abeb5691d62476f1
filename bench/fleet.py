"""A loopback feed fleet for benchmarks: N feeds of M items, RSS and Atom mixed.

Each item carries about 2 KB of HTML with entities, relative links and non-ASCII
text. The fleet can answer conditional requests with 304 (or ignore them, to measure
the unchanged-body path), change a fraction of its feeds per round, and add items.
With ``tracked`` words it is the dense fleet: every item names ``mentions`` of them, so
that matching, not parsing, is the work (issue 18's "every item names about 18 tracked
words"). bench/corpus_fleet.py serves real feeds through the same server.
Used by bench/run; also runnable alone: python bench/fleet.py --feeds 200 (serves
until interrupted, and prints the base URL).
"""

from __future__ import annotations

import argparse
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

WORDS = [
    "government",
    "officials",
    "said",
    "the",
    "talks",
    "would",
    "continue",
    "next",
    "week",
    "after",
    "a",
    "night",
    "of",
    "shelling",
    "in",
    "the",
    "region",
    "according",
    "to",
    "local",
    "police",
    "and",
    "the",
    "ministry",
    "of",
    "energy",
]
NAMES = ["Kharkiv", "Kyiv", "Odesa", "Zaporizhzhia", "Dnipro", "Lviv", "Харків", "Київ", "Gèneve"]


def _paragraph(rng: random.Random, tracked: list[str] | None = None, mentions: int = 0) -> str:
    words = [rng.choice(WORDS) for _ in range(40)]
    words[rng.randrange(40)] = rng.choice(NAMES)
    if tracked:  # the dense fleet: whole words among the filler, never glued to a name
        for _ in range(mentions):
            words[rng.randrange(40)] = rng.choice(tracked)
    text = " ".join(words)
    return (
        f'<p>{text.capitalize()} &amp; more &#8212; <a href="/story/{rng.randrange(10**6)}">'
        f"read</a> the <em>report</em> &#8217;s details.</p>"
    )


class Feed:
    def __init__(
        self,
        index: int,
        items: int,
        rng: random.Random,
        tracked: list[str] | None = None,
        mentions: int = 0,
    ) -> None:
        self.index = index
        self.atom = index % 2 == 1
        self.content_type = (
            "application/atom+xml" if self.atom else "application/rss+xml"
        ) + "; charset=utf-8"
        self.rng = rng
        self.tracked = tracked
        # spread over the six paragraphs: 18 -> 3 a paragraph
        self.per_paragraph = [mentions // 6 + (k < mentions % 6) for k in range(6)]
        self.counter = 0
        self.items = [self._item() for _ in range(items)]
        self.version = 0
        self.body = self.render()

    def _item(self) -> dict[str, str]:
        self.counter += 1
        html = "".join(  # about 2 KB
            _paragraph(self.rng, self.tracked, self.per_paragraph[k]) for k in range(6)
        )
        return {
            "id": f"urn:fleet:{self.index}:{self.counter}",
            "title": f"Story {self.counter} from {self.rng.choice(NAMES)}",
            "link": f"http://fleet.example/{self.index}/{self.counter}",
            "html": html,
        }

    def add(self, count: int) -> None:
        for _ in range(count):
            self.items.insert(0, self._item())
            self.items.pop()
        self.version += 1
        self.body = self.render()

    def render(self) -> bytes:
        if self.atom:
            entries = "".join(
                f"<entry><id>{i['id']}</id><title>{escape(i['title'])}</title>"
                f'<link href="{i["link"]}"/><updated>2026-11-24T10:00:00Z</updated>'
                f'<content type="html">{escape(i["html"])}</content></entry>'
                for i in self.items
            )
            doc = (
                '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                f"<title>Fleet {self.index}</title><id>urn:fleet:{self.index}</id>"
                f"<updated>2026-11-24T10:00:00Z</updated>{entries}</feed>"
            )
        else:
            entries = "".join(
                f'<item><guid isPermaLink="false">{i["id"]}</guid><title>{escape(i["title"])}'
                f"</title><link>{i['link']}</link><pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate>"
                f"<description>{escape(i['html'])}</description></item>"
                for i in self.items
            )
            doc = (
                '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Fleet {self.index}</title><link>http://fleet.example/</link>"
                f"<description>bench</description>{entries}</channel></rss>"
            )
        return doc.encode()


class Fleet:
    def __init__(
        self,
        feeds: int = 200,
        items: int = 50,
        *,
        seed: int = 1,
        tracked: list[str] | None = None,
        mentions: int = 0,
    ) -> None:
        rng = random.Random(seed)
        self.feeds: list[Any] = [Feed(i, items, rng, tracked, mentions) for i in range(feeds)]
        self.rng = rng
        self.conditional = True  # answer If-None-Match with 304
        self.requests = 0
        self._lock = threading.Lock()

    def change(self, fraction: float, *, new_items: int = 3) -> int:
        """Add items to a fraction of the feeds; returns how many feeds changed."""
        chosen = self.rng.sample(self.feeds, max(1, int(len(self.feeds) * fraction)))
        for feed in chosen:
            feed.add(new_items)
        return len(chosen)

    @contextmanager
    def serving(self) -> Iterator[str]:
        fleet = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with fleet._lock:
                    fleet.requests += 1
                try:
                    feed = fleet.feeds[int(self.path.rsplit("/", 1)[-1])]
                except (ValueError, IndexError):
                    self.send_error(404)
                    return
                etag = f'"{feed.version}"'
                if fleet.conditional and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", feed.content_type)
                self.send_header("Content-Length", str(len(feed.body)))
                if fleet.conditional:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(feed.body)

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.request_queue_size = 256
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            httpd.server_close()

    def urls(self, base: str) -> list[str]:
        return [f"{base}/feed/{feed.index}" for feed in self.feeds]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    args = parser.parse_args()
    fleet = Fleet(args.feeds, args.items)
    size = sum(len(f.body) for f in fleet.feeds) / len(fleet.feeds)
    with fleet.serving() as base:
        print(f"{base}/feed/0 .. /feed/{args.feeds - 1}, {size / 1024:.0f} KiB per feed")
        threading.Event().wait()


if __name__ == "__main__":
    main()

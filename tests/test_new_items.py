"""Never lose a new item, never repeat an old one: the daemon as a real process.

Each test runs `watcher run` against loopback feeds and counts what reaches a real
webhook receiver: bursts while stopped and between polls, renumberings (with one new
item, and in a small feed), edits without guid or link, every kind of link rewrite,
one story in two feeds polled at the same moment, old items, and an upgrade from a
database written by the previous release. tests/test_identity.py holds the pure cases.

Each test runs on SQLite and on a real PostgreSQL (conftest.state_db), except those marked
``sqlite_only``, which say why.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from support import (
    DATA,
    MATCH_RULES,
    Daemon,
    FeedServer,
    Receiver,
    Route,
    rfc822,
    rss,
    sqlite_only,
    state_sql,
    wait_until,
)

pytestmark = pytest.mark.e2e


class Setup:
    """A config of loopback feeds polled every second, the Kharkiv rule, one webhook."""

    def __init__(
        self, tmp_path: Path, feed_server: FeedServer, receiver: Receiver, state: str | Path
    ) -> None:
        self.tmp_path, self.server, self.receiver = tmp_path, feed_server, receiver
        self.config = tmp_path / "config.yaml"
        self.db = state
        self.daemon = Daemon(self.config, tmp_path / "daemon.log")

    def write(
        self, feeds: dict[str, str], extra: str = "", feed_extra: str = "", notifier: str = "hook"
    ) -> None:
        listed = "".join(
            f"  - name: {name}\n    url: {self.server.url(path)}\n    interval: 1s\n{feed_extra}"
            for name, path in feeds.items()
        )
        self.config.write_text(
            f"state: {self.db}\nallow_private_networks: true\n{extra}"
            f'feeds:\n{listed}{MATCH_RULES}notifiers:\n  {notifier}: "{self.receiver.url}"\n'
        )

    def polls(self, feed: str) -> int:
        """Polls of ``feed`` the daemon has finished (parsed or not), from its log."""
        text = self.daemon.log_text() if self.daemon.log.exists() else ""
        return sum(
            1 for line in text.splitlines() if f"feed={feed} " in line and ("status=" in line)
        )

    def settle(self, feed: str, more: int = 3) -> None:
        """Wait for ``more`` further polls of ``feed``: whatever it would alert is queued."""
        seen = self.polls(feed)
        assert wait_until(lambda: self.polls(feed) >= seen + more), self.daemon.log_text()

    def delivered(self) -> str:
        """Everything the receiver got, titles and bodies, as one text."""
        with self.receiver.lock:
            return "\n".join(
                f"{m.get('title', '')}\n{m.get('message', '')}" for m in self.receiver.messages
            )

    def missing(self, stories: list[dict[str, str]]) -> list[str]:
        """The titles of ``stories`` that no message named (alone, or in a summary)."""
        text = self.delivered()
        return [
            s["title"] for s in stories if not re.search(re.escape(s["title"]) + r"(?!\d)", text)
        ]


@pytest.fixture
def setup(
    tmp_path: Path, feed_server: FeedServer, receiver: Receiver, state_db: str | Path
) -> Iterator[Setup]:
    s = Setup(tmp_path, feed_server, receiver, state_db)
    yield s
    s.daemon.stop()


def items(
    prefix: str, count: int, *, title: str = "Kharkiv report", start: int = 0
) -> list[dict[str, str]]:
    return [
        {
            "title": f"{title} {prefix}{n}",
            "link": f"https://news.example.org/{prefix}/{n}",
            "guid": f"urn:{prefix}:{n}",
        }
        for n in range(start, start + count)
    ]


# -- bursts -------------------------------------------------------------------------------


def test_a_burst_while_the_daemon_was_stopped_reaches_the_user(setup: Setup) -> None:
    old = items("old", 20, title="Weather")
    setup.server.routes["/news"] = route = Route(rss(old))
    setup.write({"news": "/news"})
    setup.daemon.start()
    setup.settle("news", 2)
    assert setup.daemon.signal(signal.SIGTERM) == 0

    burst = items("burst", 15)  # more than half of the 20 items, and more than 10
    route.body = rss([*burst, *old[:5]])
    setup.daemon.start()
    assert wait_until(lambda: not setup.missing(burst)), setup.daemon.log_text()
    setup.settle("news")
    assert setup.missing(burst) == []
    assert "Weather" not in setup.delivered()  # nothing old
    # Nothing that could alert was recorded silently: backtest replays every one of them,
    # and knows that the summary alerted each (the same rules add and remove nothing).
    replay = subprocess.run(
        [sys.executable, "-m", "watcher", "backtest", "-c", str(setup.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.stdout.splitlines()[0].startswith("Replayed 15 items seen since ")
    assert replay.stdout.splitlines()[0].endswith(": 15 alerts now, 15 then.")
    assert replay.stdout.splitlines()[1:] == [
        "+ 0 added by the current rules",
        "- 0 removed by the current rules",
    ]


# 15 on SQLite only: PostgreSQL changes nothing that 150 (a flood summary, and one large
# transaction of items) does not exercise as well.
@pytest.mark.parametrize(
    ("count", "state_db"),
    [(15, "sqlite"), (150, "sqlite"), (150, "postgresql")],
    indirect=["state_db"],
)
def test_a_burst_between_two_polls_reaches_the_user(setup: Setup, count: int) -> None:
    old = items("old", 20, title="Weather")
    setup.server.routes["/news"] = route = Route(rss(old))
    setup.write({"news": "/news"})
    setup.daemon.start()
    setup.settle("news", 2)
    burst = items("burst", count)
    route.body = rss([*burst, *old])
    assert wait_until(lambda: not setup.missing(burst), 30), setup.daemon.log_text()
    setup.settle("news")
    assert setup.missing(burst) == []
    assert "Weather" not in setup.delivered()


# -- renumbering ----------------------------------------------------------------------------


# SQLite only: how items are identified is decided in watcher/identity.py and decide.py,
# pure code; the store's side of it (known items by link and title keys) runs on both
# backends in tests/test_pipeline.py, so PostgreSQL changes nothing in these real polls.
@sqlite_only
def test_a_renumbering_with_one_new_item_alerts_the_new_item_only(setup: Setup) -> None:
    old = items("a", 12)  # every item matches, so a lost renumbering would flood
    setup.server.routes["/news"] = route = Route(rss(old))
    setup.write({"news": "/news"}, extra="feed_health: {notify: [hook]}\n")
    setup.daemon.start()
    setup.settle("news", 2)
    renumbered = [{**i, "guid": i["guid"].replace("urn:a", "tag:example.org,2026:a")} for i in old]
    fresh = {
        "title": "Kharkiv: a genuinely new report",
        "link": "https://news.example.org/x/1",
        "guid": "urn:x:1",
    }
    route.body = rss([fresh, *renumbered])
    assert wait_until(lambda: len(setup.receiver.messages) >= 2), setup.daemon.log_text()
    setup.settle("news")
    titles = sorted(setup.receiver.titles())
    assert titles == [
        "[kharkiv] Kharkiv: a genuinely new report",
        "[watcher] feed news renumbered its items",
    ]


@sqlite_only
def test_a_small_feed_that_renumbers_alerts_nothing(setup: Setup) -> None:
    # RSS without guids (id = link) becomes Atom-like tag: ids, same links and titles.
    old = [
        {"title": f"Kharkiv incident {n}", "link": f"https://status.example.org/i/{n}"}
        for n in range(5)
    ]
    setup.server.routes["/status"] = route = Route(rss(old))
    setup.write({"status": "/status"})
    setup.daemon.start()
    setup.settle("status", 2)
    route.body = rss([{**i, "guid": f"tag:status.example.org,2026:{n}"} for n, i in enumerate(old)])
    setup.settle("status", 4)
    assert setup.receiver.messages == []
    assert "status=renumbered" in setup.daemon.log_text()


@sqlite_only
def test_edits_of_an_item_without_guid_or_link_do_not_re_alert(setup: Setup) -> None:
    setup.server.routes["/blog"] = route = Route(
        rss([{"title": "Weather", "description": "sunny"}])
    )
    setup.write({"blog": "/blog"})
    setup.daemon.start()
    setup.settle("blog", 2)
    live = {"title": "Kharkiv live", "description": "09:00 sirens"}
    route.body = rss([live, {"title": "Weather", "description": "sunny"}])
    assert len(setup.receiver.wait_for(1)) == 1
    for update in ("09:10 all clear", "09:20 trams running", "09:30 schools open"):
        live["description"] += f"\n{update}"
        route.body = rss([live, {"title": "Weather", "description": "rain later"}])
        setup.settle("blog")
    assert setup.receiver.titles() == ["[kharkiv] Kharkiv live"]


@sqlite_only  # identity, as above
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"link": "http://news.example.org/a"}, {"link": "https://news.example.org/a"}),
        ({"link": "https://news.example.org/a"}, {"link": "https://news.example.org/a/"}),
        ({"link": "https://news.example.org/a"}, {"link": "https://news.example.org/a#main"}),
        ({"link": "https://news.example.org/a"}, {"link": "https://www.news.example.org/a"}),
        ({"link": "https://news.example.org/a"}, {"link": "https://news.example.org/a?ref=rss"}),
        (
            {"guid": "https://news.example.org/a"},
            {"guid": "https://news.example.org/a?utm_source=rss&utm_medium=feed"},
        ),
    ],
    ids=["https", "slash", "fragment", "www", "ref", "permalink-guid-utm"],
)
def test_a_rewritten_link_does_not_re_alert(
    setup: Setup, before: dict[str, str], after: dict[str, str]
) -> None:
    steady = items("s", 3, title="Weather")
    setup.server.routes["/news"] = route = Route(rss(steady))
    setup.write({"news": "/news"})
    setup.daemon.start()
    setup.settle("news", 2)
    story = {"title": "Kharkiv metro reopens", **before}
    route.body = rss([story, *steady])
    assert len(setup.receiver.wait_for(1)) == 1, setup.daemon.log_text()
    route.body = rss([{"title": "Kharkiv metro reopens", **after}, *steady])
    setup.settle("news", 4)
    assert setup.receiver.titles() == ["[kharkiv] Kharkiv metro reopens"]


@sqlite_only  # identity, as above
@pytest.mark.parametrize(
    "link",
    ["https://status.example.org/", "https://live.example.org/blog#post-{n}"],
    ids=["status-page-one-link", "live-blog-fragments"],
)
def test_entries_that_share_one_page_each_alert(setup: Setup, link: str) -> None:
    """No guids: a status page linking every incident to one page, a live blog whose
    entries differ only by fragment. Every new entry alerts, once."""
    entries = [{"title": "Weather is calm", "link": link.format(n=0)}]
    setup.server.routes["/feed"] = route = Route(rss(entries))
    setup.write({"feed": "/feed"})
    setup.daemon.start()
    setup.settle("feed", 2)
    for n in range(1, 4):
        entries.insert(0, {"title": f"Kharkiv incident {n}", "link": link.format(n=n)})
        route.body = rss(entries)
        assert len(setup.receiver.wait_for(n)) == n, setup.daemon.log_text()
    setup.settle("feed", 3)
    assert setup.receiver.titles() == [f"[kharkiv] Kharkiv incident {n}" for n in range(1, 4)]


# -- stories ---------------------------------------------------------------------------------


def test_one_story_in_two_feeds_polled_at_the_same_moment_alerts_once(setup: Setup) -> None:
    wire = {
        "title": "Kharkiv: power restored after overnight strike",
        "link": "https://wire.example.org/2026/11/30/power?utm_source=site-a",
    }
    copy = {**wire, "link": "http://www.wire.example.org/2026/11/30/power/"}
    bodies = {"/a": rss(items("a", 3, title="Weather")), "/b": rss(items("b", 3, title="Weather"))}
    barrier = threading.Barrier(2, timeout=5)
    racing = threading.Event()

    def handler(path: str) -> Callable[[BaseHTTPRequestHandler], None]:
        def answer(request: BaseHTTPRequestHandler) -> None:
            if racing.is_set():
                try:  # hold each feed's answer until the other feed asks too
                    barrier.wait()
                except threading.BrokenBarrierError:
                    barrier.reset()
            body = bodies[path]
            request.send_response(200)
            request.send_header("Content-Type", "application/rss+xml")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)

        return answer

    for path in bodies:
        setup.server.routes[path] = Route(handler=handler(path))
    setup.write({"site-a": "/a", "site-b": "/b"})
    setup.daemon.start()
    setup.settle("site-a", 2)
    setup.settle("site-b", 2)
    bodies["/a"] = rss([wire, *items("a", 3, title="Weather")])
    bodies["/b"] = rss([copy, *items("b", 3, title="Weather")])
    racing.set()
    assert len(setup.receiver.wait_for(1)) == 1, setup.daemon.log_text()
    setup.settle("site-a", 3)
    setup.settle("site-b", 3)
    racing.clear()
    assert setup.receiver.titles() == ["[kharkiv] Kharkiv: power restored after overnight strike"]
    sources = state_sql(setup.db, "SELECT DISTINCT feed FROM story_sources ORDER BY feed")
    assert sources == [("site-a",), ("site-b",)]


# -- old items -------------------------------------------------------------------------------


# SQLite only: which items are too old is decided in pure code (decide.py).
@sqlite_only
@pytest.mark.parametrize("limit", [None, "30d"])
def test_an_old_item_alerts_only_without_max_item_age(setup: Setup, limit: str | None) -> None:
    now = datetime.now(UTC)
    steady = [
        {**i, "pubDate": rfc822(now - timedelta(hours=1))} for i in items("s", 3, title="Weather")
    ]
    setup.server.routes["/news"] = route = Route(rss(steady))
    setup.write({"news": "/news"}, extra=f"max_item_age: {limit}\n" if limit else "")
    setup.daemon.start()
    setup.settle("news", 2)
    backfilled = {
        "title": "Kharkiv in 2019",
        "link": "https://news.example.org/2019/kharkiv",
        "pubDate": rfc822(datetime(2019, 5, 1, tzinfo=UTC)),
    }
    future = {
        "title": "Kharkiv conference next year",
        "link": "https://news.example.org/2027/kharkiv",
        "pubDate": rfc822(now + timedelta(days=200)),
    }
    undated = {"title": "Kharkiv undated note", "link": "https://news.example.org/undated"}
    route.body = rss([backfilled, future, undated, *steady])
    expected = 3 if limit is None else 2
    assert len(setup.receiver.wait_for(expected)) >= expected, setup.daemon.log_text()
    setup.settle("news")
    titles = sorted(setup.receiver.titles())
    assert ("[kharkiv] Kharkiv in 2019" in titles) is (limit is None)
    assert "[kharkiv] Kharkiv conference next year" in titles  # a future date is not old
    assert "[kharkiv] Kharkiv undated note" in titles  # no date: judged new
    assert len(titles) == expected


# -- upgrade -----------------------------------------------------------------------------------


@sqlite_only  # a SQLite file of the previous release (PostgreSQL starts at revision 0001)
def test_upgrading_a_database_of_the_previous_release_never_floods(setup: Setup) -> None:
    """tests/data/state/schema-v2.sql was written by a real daemon of the previous release
    (see its header); this serves the same document again with one new item."""
    assert isinstance(setup.db, Path)
    conn = sqlite3.connect(setup.db)
    conn.executescript((DATA / "state" / "schema-v2.sql").read_text(encoding="utf-8"))
    conn.execute("UPDATE alerts SET next_attempt_at = '2000-01-01 00:00:00'")  # due now
    conn.commit()
    conn.close()
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    document = [
        {
            "title": "Kharkiv: city council meets",
            "link": "http://news.example.org/2026/11/council",
            "guid": "urn:news:1",
            "pubDate": rfc822(t0),
        },
        {
            "title": "Weather in Kyiv",
            "link": "http://news.example.org/2026/11/weather?utm_source=rss",
            "description": "Rain",
            "pubDate": rfc822(t0 + timedelta(hours=1)),
        },
        {
            "title": "Status: all systems normal",
            "description": "no link, no guid, dated",
            "pubDate": rfc822(t0 + timedelta(hours=2)),
        },
        {"title": "Undated note without link", "description": "text of an undated note"},
        {
            "title": "Kharkov power restored",
            "link": "http://news.example.org/2026/11/power",
            "guid": "urn:news:2",
            "pubDate": rfc822(t0 + timedelta(hours=3)),
        },
        {
            "title": "Kharkiv without a guid",
            "link": "http://news.example.org/2026/11/noguid/",
            "description": "Kharkiv",
            "pubDate": rfc822(t0 + timedelta(hours=4)),
        },
        # The same item as before the upgrade, its text edited: no guid, no link.
        {"title": "Kharkiv note with no guid and no link", "description": "Kharkiv text, edited"},
    ]
    fresh = {
        "title": "Kharkiv after the upgrade",
        "link": "http://news.example.org/2026/11/after",
        "guid": "urn:news:3",
    }
    setup.server.routes["/news.xml"] = Route(rss([fresh, *document], title="News"))
    setup.write({"kyiv-news": "/news.xml"}, notifier="ops")  # the notifier of the old alerts
    setup.daemon.start()
    assert len(setup.receiver.wait_for(4)) >= 4, setup.daemon.log_text()
    setup.settle("kyiv-news", 3)
    assert sorted(setup.receiver.titles()) == [
        "[kharkiv] Kharkiv after the upgrade",
        "[kharkiv] Kharkiv note with no guid and no link",  # pending before the upgrade
        "[kharkiv] Kharkiv without a guid",
        "[kharkiv] Kharkov power restored",
    ]
    conn = sqlite3.connect(setup.db)
    ids = {r[0] for r in conn.execute("SELECT item_id FROM items")}
    conn.close()
    assert not any(i.startswith("sha256:") for i in ids)  # titled items took their new ids

"""One poll and one delivery pass, end to end in-process: loopback feed, SQLite, receiver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import FeedServer, Receiver, Route, Story

from watcher.config import Config, parse_config
from watcher.fetch import Fetcher
from watcher.notify import build_notifiers
from watcher.pipeline import deliver_pending, poll_feed
from watcher.rules import RuleSet
from watcher.store import Store


def make_config(feed_server: FeedServer, receiver: Receiver, *paths: str) -> Config:
    feeds = "".join(f"  - name: {p.strip('/')}\n    url: {feed_server.url(p)}\n" for p in paths)
    return parse_config(
        f"""
allow_private_networks: true
feeds:
{feeds}
entities:
  kharkiv:
    aliases: [Kharkiv, Kharkov]
rules:
  - name: kharkiv
    entities: [kharkiv]
  - name: ceasefire
    keywords: [ceasefire]
notifiers:
  hook: "{receiver.url}"
"""
    )


@pytest.fixture
def client() -> Iterator[Fetcher]:
    with Fetcher() as fetcher:
        yield fetcher


def poll(config: Config, name: str, client: Fetcher, store: Store) -> str:
    outcome = poll_feed(
        config.feed(name),
        config=config,
        fetcher=client,
        store=store,
        ruleset=RuleSet.from_config(config),
    )
    return f"{outcome.status} new={outcome.new} alerts={outcome.alerts} {outcome.error}".strip()


def test_baseline_is_silent_then_a_new_match_is_alerted_once(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, tmp_path: Path
) -> None:
    story = Story()
    story.add(1, "Kharkiv already in the feed")
    feed_server.routes["/news"] = route = Route(story.body())
    config = make_config(feed_server, receiver, "/news")
    store = Store.open(tmp_path / "w.db")
    notifiers = build_notifiers(config.notifiers)

    assert poll(config, "news", client, store) == "baseline new=1 alerts=0"
    assert deliver_pending(store, notifiers).sent == 0

    story.add(2, "Ceasefire near Kharkov")
    story.add(3, "Weather")
    route.body = story.body()
    assert poll(config, "news", client, store) == "new new=2 alerts=1"
    assert deliver_pending(store, notifiers).sent == 1
    (message,) = receiver.messages
    assert message["title"] == "[kharkiv, ceasefire] Ceasefire near Kharkov"
    assert "http://example.org/story/2" in message["message"]

    route.body = story.body() + b"\n"  # same items, different bytes
    assert poll(config, "news", client, store) == "new new=0 alerts=0"
    assert deliver_pending(store, notifiers).sent == 0
    assert len(receiver.messages) == 1


def test_unchanged_body_is_not_parsed_again(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, tmp_path: Path
) -> None:
    story = Story()
    story.add(1, "x")
    feed_server.routes["/news"] = Route(story.body())
    config = make_config(feed_server, receiver, "/news")
    store = Store.open(tmp_path / "w.db")
    assert poll(config, "news", client, store).startswith("baseline")
    assert poll(config, "news", client, store).startswith("unchanged")


def test_etag_gives_not_modified(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, tmp_path: Path
) -> None:
    feed_server.routes["/news"] = Route(Story().body(), etag='"1"')
    config = make_config(feed_server, receiver, "/news")
    store = Store.open(tmp_path / "w.db")
    poll(config, "news", client, store)
    assert poll(config, "news", client, store).startswith("not-modified")


def test_a_broken_feed_is_recorded_and_never_stops_the_others(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, tmp_path: Path
) -> None:
    feed_server.routes["/html"] = Route(
        b"<html><body>Moved</body></html>", content_type="text/html"
    )
    feed_server.routes["/good"] = Route(Story().body())
    config = make_config(feed_server, receiver, "/html", "/missing", "/good")
    store = Store.open(tmp_path / "w.db")
    assert poll(config, "html", client, store).startswith(
        "error new=0 alerts=0 the document is an HTML page"
    )
    assert poll(config, "missing", client, store).startswith("error new=0 alerts=0 HTTP 404")
    assert poll(config, "good", client, store).startswith("baseline")
    statuses = {s.name: s for s in store.feed_statuses()}
    assert (statuses["html"].last_error or "").startswith("the document is an HTML page")
    assert not statuses["html"].baselined  # an error never counts as "the feed is empty"
    assert statuses["good"].last_error is None


def test_a_failing_notifier_delays_but_never_drops(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, tmp_path: Path
) -> None:
    story = Story()
    feed_server.routes["/news"] = route = Route(story.body())
    config = make_config(feed_server, receiver, "/news")
    store = Store.open(tmp_path / "w.db")
    notifiers = build_notifiers(config.notifiers)
    poll(config, "news", client, store)
    story.add(1, "Kharkiv one")
    story.add(2, "Kharkiv two")
    route.body = story.body()
    poll(config, "news", client, store)

    receiver.status = 500
    outcome = deliver_pending(store, notifiers)
    assert (outcome.sent, outcome.failed, outcome.deferred) == (0, 1, 1)
    assert store.alert_counts() == {"pending": 2}

    receiver.status = 200
    later = datetime.now(UTC) + timedelta(hours=2)
    outcome = deliver_pending(store, notifiers, now=lambda: later)
    assert outcome.sent == 2
    assert sorted(m["title"] for m in receiver.messages) == [
        "[kharkiv] Kharkiv one",
        "[kharkiv] Kharkiv two",
    ]
    assert store.alert_counts() == {"sent": 2}

"""One story, many feeds: story keys, joining, coverage, and what must never merge.

Pure parts first (headline keys, joins, coverage), then polls of two loopback feeds
into one real state on each backend (a SQLite file, a real PostgreSQL database:
conftest.state_db), delivered to a real webhook receiver. The daemon-level
race (two feeds polled at the same moment) is in tests/test_new_items.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import FeedServer, Receiver, Route, rss

from watcher.config import Config, parse_config
from watcher.fetch import Fetcher
from watcher.models import Alert, PollDecision, SeenItem
from watcher.models import Item as ItemModel
from watcher.notify import build_notifiers
from watcher.pipeline import deliver_pending, poll_feed
from watcher.rules import RuleSet
from watcher.store import Store
from watcher.stories import (
    Recent,
    StoryKey,
    covered,
    headline_key,
    join,
    keys_for,
    near_identical,
    shape,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


# -- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "key"),
    [
        (
            "Russian strike on Kharkiv kills three - Reuters",
            "russian strike on kharkiv kills three",
        ),
        (
            "Russian strike on Kharkiv kills three | BBC News",
            "russian strike on kharkiv kills three",
        ),
        (
            "Russian strike on Kharkiv kills three — Kyiv Independent",
            "russian strike on kharkiv kills three",
        ),
        (
            "Ukraine - Russia talks resume in Geneva on Monday",
            "ukraine russia talks resume in geneva on monday",
        ),
        ("Kharkiv power restored", ""),  # fewer than 5 words: joins only by link
        ("Russia-Ukraine war: live updates from Kharkiv", ""),  # generic
        ("Morning briefing: what you need to know today", ""),
    ],
)
def test_headline_key(title: str, key: str) -> None:
    assert headline_key(title) == key


def test_story_keys_leave_out_a_link_other_items_share() -> None:
    assert keys_for("x.org/a", "five words in this headline", shared_link=False) == (
        "link:x.org/a",
        "head:five words in this headline",
    )
    assert keys_for("status.example.org", "", shared_link=True) == ()


WORDS = (
    "russian",
    "strike",
    "on",
    "kharkiv",
    "kills",
    "3",
    "three",
    "the",
    "says",
    "said",
    "power",
    "restored",
    "in",
    "of",
    "odesa",
    "port",
    "reopens",
    "after",
    "blackout",
)
EDITS = ("drop", "+the", "+says", "+of", "s", "ed", "ing", "+odesa", "+5")

HEADLINES = yaml.safe_load(
    (Path(__file__).parent / "data" / "stories" / "headlines.yaml").read_text(encoding="utf-8")
)["pairs"]


@pytest.mark.parametrize(
    "pair", HEADLINES, ids=[f"{p['label']}-{i}" for i, p in enumerate(HEADLINES)]
)
def test_real_headline_pairs(pair: dict[str, Any]) -> None:
    """Pairs of real headlines, labelled by reading them (docs/headline-similarity.md).
    Two different stories are never merged; the same story is merged where the measured
    test says so (it is strict: a missed merge costs a duplicate, a wrong one an alert)."""
    a, b = headline_key(pair["a"]), headline_key(pair["b"])
    if "ineligible" in pair:
        assert not (a and b), pair["ineligible"]
        return
    merged = near_identical(a, b)
    assert merged is pair["merged"], (a, b)
    if pair["label"] == "different":
        assert not merged


def test_near_identical_headlines_share_their_shape() -> None:
    """Candidates are found by shape: every pair the test merges must have one shape."""
    merged = [
        (headline_key(p["a"]), headline_key(p["b"]))
        for p in HEADLINES
        if "ineligible" not in p and p["merged"]
    ]
    assert len(merged) > 20
    for a, b in merged:
        assert shape(a) == shape(b), (a, b)
    assert shape("russian strikes on kharkiv kill three") == shape("russian strike kharkiv kills 3")


@given(
    st.lists(st.sampled_from(WORDS), min_size=5, max_size=12),
    st.lists(st.tuples(st.integers(0, 11), st.sampled_from(EDITS)), max_size=3),
)
@settings(max_examples=300, deadline=None)
def test_shape_is_shared_by_whatever_near_identical_accepts(
    words: list[str], edits: list[tuple[int, str]]
) -> None:
    a = " ".join(words)
    changed = list(words)
    for at, edit in edits:
        at %= len(changed)
        if edit == "drop":
            del changed[at]
        elif edit.startswith("+"):
            changed.insert(at, edit[1:])
        else:
            changed[at] = changed[at] + edit
    b = " ".join(changed)
    if near_identical(a, b):
        assert shape(a) == shape(b), (a, b)


def test_near_identical_keeps_different_places_apart() -> None:
    a = headline_key("Russian strike on Kharkiv kills 3, officials say")
    assert near_identical(a, headline_key("Russian strike on Kharkiv kills 3, officials said"))
    assert not near_identical(a, headline_key("Russian strike on Odesa kills 3, officials say"))


def test_join_needs_a_fresh_story_of_another_feed_this_feed_does_not_carry() -> None:
    row = StoryKey("link:x.org/a", "s1", "feed-a", NOW - timedelta(hours=1))
    recent = Recent(keys={row.key: row}, carried={"s1": frozenset({"feed-a"})})
    since = NOW - timedelta(hours=24)
    assert join("feed-b", [row.key], "", recent, since=since) == "s1"
    assert join("feed-a", [row.key], "", recent, since=since) is None  # its own story
    assert join("feed-b", [row.key], "", recent, since=NOW) is None  # outside the window
    carried = Recent(keys={row.key: row}, carried={"s1": frozenset({"feed-a", "feed-b"})})
    assert join("feed-b", [row.key], "", carried, since=since) is None


def test_coverage() -> None:
    told = (frozenset({"kharkiv"}), "normal")
    assert covered(told, ["kharkiv"], "normal")
    assert covered(told, ["kharkiv"], "low")
    assert not covered(told, ["kharkiv"], "urgent")  # a higher priority is news
    assert not covered(told, ["kharkiv", "outage"], "normal")  # so is another rule
    assert not covered(None, ["kharkiv"], "normal")


# -- polls of two feeds ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def two_feeds(
    feed_server: FeedServer, receiver: Receiver, extra: str = "", rule: str = ""
) -> Config:
    return parse_config(
        f"""
allow_private_networks: true
{extra}
feeds:
  - name: site-a
    url: {feed_server.url("/a")}
  - name: site-b
    url: {feed_server.url("/b")}
rules:
  - name: kharkiv
    keywords: [Kharkiv, Kharkov]
{rule}  - name: blackout
    keywords: [blackout]
    priority: urgent
notifiers:
  hook: "{receiver.url}"
"""
    )


class Two:
    """Two feeds with a baseline each; ``publish`` adds an item to one and polls it."""

    def __init__(
        self, config: Config, feed_server: FeedServer, client: Fetcher, store: Store
    ) -> None:
        self.config, self.client, self.store, self.clock = config, client, store, Clock()
        self.items: dict[str, list[dict[str, str]]] = {"a": [], "b": []}
        self.routes = {}
        for name in ("a", "b"):
            filler = {"title": f"Weather {name}", "link": f"https://{name}.example.org/weather"}
            self.items[name].append(filler)
            self.routes[name] = feed_server.routes[f"/{name}"] = Route(rss(self.items[name]))
        for name in ("a", "b"):
            assert self.poll(name) == "baseline"

    def poll(self, name: str) -> str:
        outcome = poll_feed(
            self.config.feed(f"site-{name}"),
            config=self.config,
            fetcher=self.client,
            store=self.store,
            ruleset=RuleSet.from_config(self.config),
            now=self.clock,
        )
        return outcome.status

    def publish(self, name: str, title: str, link: str) -> int:
        self.items[name].insert(0, {"title": title, "link": link})
        self.routes[name].body = rss(self.items[name])
        self.clock.now += timedelta(minutes=5)
        assert self.poll(name) == "new"
        return self.store.alert_counts().get("pending", 0)


@pytest.fixture
def two(feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store) -> Two:
    return Two(two_feeds(feed_server, receiver), feed_server, client, store)


def test_one_canonical_link_in_two_feeds_is_one_alert_with_two_sources(
    two: Two, receiver: Receiver
) -> None:
    assert (
        two.publish("a", "Kharkiv power restored", "https://wire.example.org/power?utm_source=a")
        == 1
    )
    assert (
        two.publish("b", "Kharkov: electricity is back", "http://www.wire.example.org/power/") == 1
    )
    (record,) = two.store.list_alerts()
    assert record.sources == ("site-a", "site-b")


def test_a_near_identical_headline_in_another_feed_joins_the_story(two: Two) -> None:
    two.publish(
        "a", "Russian strike on Kharkiv kills 3, officials say - Wire", "https://a.example.org/1"
    )
    assert (
        two.publish(
            "b",
            "Russian strike on Kharkiv kills 3, officials said | Site B",
            "https://b.example.org/9",
        )
        == 1
    )


def test_a_similar_headline_about_another_place_is_another_story(two: Two) -> None:
    two.publish("a", "Russian strike on Kharkiv kills 3, officials say", "https://a.example.org/1")
    assert (
        two.publish(
            "b", "Russian strike on Kharkov district kills 5 people", "https://b.example.org/9"
        )
        == 2
    )


@pytest.mark.parametrize("title", ["Kharkiv update", "Kharkiv: live updates from the city"])
def test_short_and_generic_headlines_join_only_by_link(two: Two, title: str) -> None:
    two.publish("a", title, "https://a.example.org/live")
    assert two.publish("b", title, "https://b.example.org/live") == 2


def test_an_urgent_copy_of_a_normal_story_is_sent_naming_the_story(
    two: Two, receiver: Receiver
) -> None:
    two.publish("a", "Kharkiv: power restored to most districts", "https://wire.example.org/p")
    assert (
        two.publish(
            "b",
            "Kharkiv: power restored to most districts after blackout",
            "https://wire.example.org/p",
        )
        == 2
    )
    deliver_pending(two.store, build_notifiers(two.config.notifiers), now=two.clock)
    urgent = [m for m in receiver.messages if m["title"].startswith("URGENT")]
    assert len(urgent) == 1 and "Also in: site-a" in urgent[0]["message"]


def test_the_same_feed_twice_is_two_stories(two: Two) -> None:
    # A status page whose incidents all link to one page: each incident alerts.
    two.publish("a", "Kharkiv data centre degraded", "https://status.example.org/")
    assert two.publish("a", "Kharkiv data centre down again", "https://status.example.org/") == 2


def test_a_story_older_than_the_window_is_alerted_again(two: Two) -> None:
    two.publish("a", "Kharkiv power restored", "https://wire.example.org/power")
    two.clock.now += timedelta(hours=25)
    assert two.publish("b", "Kharkiv power restored", "https://wire.example.org/power") == 2


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ("collapse_stories: false", ""),
        ("", "    collapse_stories: false\n"),
    ],
    ids=["top-level", "per-rule"],
)
def test_collapse_stories_false(
    feed_server: FeedServer,
    receiver: Receiver,
    client: Fetcher,
    store: Store,
    extra: str,
    rule: str,
) -> None:
    config = two_feeds(feed_server, receiver, extra, rule)
    two = Two(config, feed_server, client, store)
    two.publish("a", "Kharkiv power restored", "https://wire.example.org/power")
    assert two.publish("b", "Kharkiv power restored", "https://wire.example.org/power") == 2


def test_a_digest_names_every_source(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    config = two_feeds(feed_server, receiver).model_copy()
    config = parse_config(
        f"""
allow_private_networks: true
feeds:
  - {{name: site-a, url: "{feed_server.url("/a")}"}}
  - {{name: site-b, url: "{feed_server.url("/b")}"}}
rules:
  - {{name: kharkiv, keywords: [Kharkiv]}}
  - {{name: metro, keywords: [metro], notify: [desk]}}
notifiers:
  desk: {{url: "{receiver.url}", digest: 1h}}
  hook: "{receiver.url}"
"""
    )
    two = Two(config, feed_server, client, store)
    two.publish("a", "Kharkiv metro reopens", "https://wire.example.org/metro")
    two.publish("b", "Kharkiv metro reopens", "https://wire.example.org/metro")
    two.publish("a", "Metro fares rise next month", "https://a.example.org/fares")
    two.clock.now += timedelta(hours=2)
    deliver_pending(two.store, build_notifiers(config.notifiers), now=two.clock)
    (digest,) = [m for m in receiver.messages if m["title"].startswith("[watcher] 2 alerts")]
    assert "Kharkiv metro reopens (site-a, site-b)" in digest["message"]


def test_two_polls_racing_on_one_story_queue_one_alert(store: Store) -> None:
    """Both polls planned a story of their own, neither seeing the other: the story key's
    primary key and the check inside the transaction let only the first alert through."""
    cutoff = NOW - timedelta(hours=24)
    for n, feed in enumerate(("site-a", "site-b")):
        item = ItemModel(
            feed=feed,
            id=f"urn:{feed}",
            title="Kharkiv power restored",
            link="https://wire.example.org/p",
        )
        story = f"story-{feed}"
        seen = SeenItem(
            item,
            link_key="wire.example.org/p",
            story=story,
            story_keys=("link:wire.example.org/p",),
        )
        alert = Alert(feed, item.id, "hook", ("kharkiv",), "[kharkiv] x", "body", story=story)
        queued = store.commit_poll(
            PollDecision(
                feed,
                f"http://x/{feed}",
                NOW + timedelta(seconds=n),
                baselined=True,
                seen=[seen],
                present=[item.id],
                story_cutoff=cutoff,
                alerts=[alert],
            )
        )
        assert queued == (1 if n == 0 else 0)
    (record,) = store.list_alerts()
    assert record.feed == "site-a" and record.sources == ("site-a", "site-b")

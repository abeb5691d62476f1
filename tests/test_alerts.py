"""Alert planning and rendering (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.alerts import plan, render
from watcher.models import Hit, Item, Match

ITEM = Item(
    feed="kyiv-news",
    id="urn:1",
    title="Ceasefire talks in Kharkiv",
    link="https://news.example.org/1",
    published=datetime(2026, 11, 24, 8, 15, tzinfo=UTC),
)
KHARKIV = Match(
    "kharkiv", ("Kharkiv",), (Hit("Kharkiv", "title", 19, 26),), "Ceasefire talks in Kharkiv"
)
PEACE = Match("peace-talks", ("ceasefire",), (Hit("ceasefire", "title", 0, 9),), "Ceasefire talks…")
OUTAGE = Match("outage", ("outage",), (), "")

ROUTES = {"kharkiv": (), "peace-talks": (), "outage": ("ops",)}


def test_one_message_per_notifier_naming_every_rule() -> None:
    alerts = plan(
        [(ITEM, [KHARKIV, PEACE])], notifiers_of=ROUTES.__getitem__, notifiers=["ops", "mail"]
    )
    assert [(a.notifier, a.rules) for a in alerts] == [
        ("ops", ("kharkiv", "peace-talks")),
        ("mail", ("kharkiv", "peace-talks")),
    ]
    assert alerts[0].title == "[kharkiv, peace-talks] Ceasefire talks in Kharkiv"


def test_rules_routed_to_one_notifier_only_reach_it() -> None:
    alerts = plan(
        [(ITEM, [KHARKIV, OUTAGE])], notifiers_of=ROUTES.__getitem__, notifiers=["ops", "mail"]
    )
    assert [(a.notifier, a.rules) for a in alerts] == [
        ("ops", ("kharkiv", "outage")),
        ("mail", ("kharkiv",)),
    ]


def test_items_without_matches_plan_nothing() -> None:
    assert plan([(ITEM, [])], notifiers_of=ROUTES.__getitem__, notifiers=["ops"]) == []


def test_body_has_title_link_feed_time_terms_and_snippet() -> None:
    title, body = render(ITEM, [KHARKIV, PEACE])
    assert title == "[kharkiv, peace-talks] Ceasefire talks in Kharkiv"
    assert body.splitlines() == [
        "Ceasefire talks in Kharkiv",
        "https://news.example.org/1",
        "Feed: kyiv-news",
        "Published: 2026-11-24 08:15 UTC",
        "Matched: kharkiv: Kharkiv; peace-talks: ceasefire",
        "",
        "Ceasefire talks in Kharkiv",
    ]


def test_untitled_items_fall_back_to_link_and_long_titles_are_cut() -> None:
    title, _ = render(Item(feed="f", id="x", link="http://x/1"), [OUTAGE])
    assert title == "[outage] http://x/1"
    title, _ = render(Item(feed="f", id="x", title="word " * 200), [OUTAGE])
    assert len(title) == 250 and title.endswith("…")

"""Alert planning and rendering (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.alerts import Style, plan, render, render_digest
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


# -- formats, escaping and templates ---------------------------------------------------------

HOSTILE = Item(
    feed="evil",
    id="x1",
    title="{{ ''.__class__ }} <script>alert(1)</script> *bold* [click](http://evil)",
    link="javascript:alert(1)",
)
HIT = Match("r", ("bold",), (), "a *bold* <b>claim</b>", marks=((2, 8),))


def test_feed_text_is_data_never_template_source() -> None:
    title, body = render(HOSTILE, [HIT])
    assert "{{ ''.__class__ }}" in title  # printed literally, not evaluated
    assert "<class" not in title + body


def test_markdown_escapes_feed_text_and_marks_hits() -> None:
    _, body = render(HOSTILE, [HIT], Style("markdown"))
    assert "\\*bold\\*" in body.splitlines()[0]
    assert "\\[click\\]\\(http://evil\\)" in body
    assert "javascript" not in body  # not a link: only http(s) links are rendered
    assert body.endswith("a **\\*bold\\*** \\<b\\>claim\\</b\\>")


def test_html_escapes_feed_text() -> None:
    _, body = render(HOSTILE, [HIT], Style("html"))
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "href" not in body  # the javascript: link is dropped
    assert "a <b>*bold*</b> &lt;b&gt;claim&lt;/b&gt;" in body


def test_html_links_the_title_when_the_link_is_http() -> None:
    _, body = render(ITEM, [KHARKIV], Style("html"))
    assert '<a href="https://news.example.org/1">Ceasefire talks in Kharkiv</a>' in body


def test_custom_templates_and_their_sandbox() -> None:
    style = Style(
        "text", title="{{ item.feed }}: {{ rules|join('+') }}", body="{{ item.title|upper }}"
    )
    assert render(ITEM, [KHARKIV, PEACE], style) == (
        "kyiv-news: kharkiv+peace-talks",
        "CEASEFIRE TALKS IN KHARKIV",
    )
    escape_attempt = Style("text", body="{{ item.__class__.__mro__ }}")
    _, body = render(ITEM, [KHARKIV], escape_attempt)  # refused: the default body is used
    assert body.startswith("Ceasefire talks in Kharkiv\n")


def test_flood_guard_sends_one_summary_per_notifier() -> None:
    many = [
        (Item(feed="f", id=str(n), title=f"Kharkiv {n}", link=f"http://x/{n}"), [KHARKIV])
        for n in range(12)
    ]
    alerts = plan(many, notifiers_of=ROUTES.__getitem__, notifiers=["ops"], flood_threshold=10)
    (summary,) = alerts
    assert summary.title == "[watcher] f: 12 matching items"
    assert summary.item_id.startswith("flood:")
    assert "Kharkiv 11" in summary.body and "http://x/0" in summary.body
    assert (
        len(plan(many[:10], notifiers_of=ROUTES.__getitem__, notifiers=["ops"], flood_threshold=10))
        == 10
    )


URGENT = Match("alarm", ("explosion",), (), "", priority="urgent")
HIGH = Match("graded", ("strike",), (), "", priority="high")


def test_an_alert_has_the_highest_priority_of_its_rules_and_says_so() -> None:
    routes = {**ROUTES, "graded": ("ops",)}
    ops, mail = plan(
        [(ITEM, [KHARKIV, HIGH])], notifiers_of=routes.__getitem__, notifiers=["ops", "mail"]
    )
    assert (ops.priority, ops.payload["priority"]) == ("high", "high")
    assert ops.title == "HIGH [kharkiv, graded] Ceasefire talks in Kharkiv"
    assert mail.priority == "normal"  # the high rule is not routed to it
    assert mail.title.startswith("[kharkiv]")
    styled = Style(title="{{ priority }}: {{ item.title }}")
    (custom,) = plan(
        [(ITEM, [URGENT])],
        notifiers_of=lambda _: (),
        notifiers=["ops"],
        styles={"ops": styled},
    )
    assert custom.title == "urgent: Ceasefire talks in Kharkiv"


def test_the_flood_guard_never_folds_an_urgent_alert() -> None:
    many = [
        (Item(feed="f", id=str(n), title=f"Kharkiv {n}"), [URGENT if n in (3, 7) else KHARKIV])
        for n in range(13)
    ]
    alerts = plan(many, notifiers_of=lambda _: (), notifiers=["ops"], flood_threshold=10)
    assert [a.title for a in alerts] == [
        "[watcher] f: 11 matching items",
        "URGENT [alarm] Kharkiv 3",
        "URGENT [alarm] Kharkiv 7",
    ]
    assert "Kharkiv 3" not in alerts[0].body
    assert [a.priority for a in alerts] == ["normal", "urgent", "urgent"]


def test_a_digest_marks_high_and_urgent_lines() -> None:
    entries = [
        {"title": "A", "link": "", "feed": "f", "rules": ["r"], "priority": "high"},
        {"title": "B", "link": "", "feed": "f", "rules": ["r"]},
    ]
    assert render_digest(entries)[1].splitlines() == ["r (2)", "• HIGH: A (f)", "• B (f)"]


def test_digest_groups_by_rule() -> None:
    entries = [
        {"title": "A", "link": "http://x/a", "feed": "f1", "rules": ["kharkiv"]},
        {"title": "B", "link": "", "feed": "f2", "rules": ["outage"]},
        {"title": "C", "link": "http://x/c", "feed": "f1", "rules": ["kharkiv"]},
    ]
    title, body = render_digest(entries)
    assert title == "[watcher] 3 alerts"
    assert body.splitlines() == [
        "kharkiv (2)",
        "• A (f1)",
        "  http://x/a",
        "• C (f1)",
        "  http://x/c",
        "",
        "outage (1)",
        "• B (f2)",
    ]
    _, html_body = render_digest(entries, Style("html"))
    assert '<a href="http://x/a">A</a>' in html_body

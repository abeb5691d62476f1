"""Alert planning and rendering (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.alerts import (
    DEFAULT_BODY,
    DEFAULT_TITLE,
    FORMATS,
    Style,
    json_lines,
    match_json,
    plan,
    render,
    render_digest,
)
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


# -- the default templates without Jinja2 -----------------------------------------------------

TRICKY = st.sampled_from(
    [
        *("Kharkiv", "", " ", "a  b\n\tc", "<b>bold</b>", "x & y", '"quoted"', "it's"),
        *("*stars* _under_ [link](http://x) `code` # - + ! | > ~ .", "{{ 7*7 }}", "{% raw %}"),
        *("Харків — «цитата»", "\u00a0nbsp", "ends with backslash \\", "&amp; &#39;"),
    ]
)
LINKS = st.sampled_from(
    ["", "https://news.example.org/a?b=1&c=<2>", "http://x.example/ü é", "javascript:alert(1)"]
)


@st.composite
def matches(draw: st.DrawFn) -> Match:
    snippet = draw(TRICKY)
    marks = draw(
        st.lists(
            st.tuples(st.integers(0, len(snippet)), st.integers(0, len(snippet))).map(sorted),
            max_size=3,
        )
    )
    return Match(
        rule=draw(TRICKY.filter(bool)),
        terms=tuple(draw(st.lists(TRICKY, max_size=3))),
        hits=(),
        snippet=snippet,
        score=draw(st.floats(0, 10)),
        entities=tuple(draw(st.lists(st.tuples(TRICKY, st.one_of(st.none(), TRICKY)), max_size=2))),
        marks=tuple((a, b) for a, b in marks),
        priority=draw(st.sampled_from(["low", "normal", "high", "urgent"])),
    )


@settings(max_examples=300, deadline=None)
@given(
    title=TRICKY,
    link=LINKS,
    feed=TRICKY,
    published=st.one_of(st.none(), st.just(datetime(2026, 11, 24, 8, 15, tzinfo=UTC))),
    found=st.lists(matches(), min_size=1, max_size=3),
    also=st.lists(TRICKY, max_size=2),
    fmt=st.sampled_from(FORMATS),
)
def test_the_default_messages_are_exactly_what_their_jinja2_source_renders(
    title: str,
    link: str,
    feed: str,
    published: datetime | None,
    found: list[Match],
    also: list[str],
    fmt: str,
) -> None:
    """Without a template of its own, a message is written by Python (no Jinja2 to
    import); given DEFAULT_TITLE and DEFAULT_BODY as its templates, Jinja2 writes it:
    the two must be the same to the byte, in every format, whatever the feed's text."""
    item = Item(feed=feed, id="urn:x", title=title, link=link, published=published)
    jinja = Style(fmt, DEFAULT_TITLE, DEFAULT_BODY[fmt])
    assert render(item, found, Style(fmt), also) == render(item, found, jinja, also)


_ODD_STRINGS = st.text(
    alphabet=st.sampled_from(list('a Я"\\/\n\t\x00\x1f…’\u2028é😀<&')), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    feed=_ODD_STRINGS,
    ident=_ODD_STRINGS,
    title=_ODD_STRINGS,
    link=_ODD_STRINGS,
    published=st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    matches=st.lists(
        st.builds(
            Match,
            rule=_ODD_STRINGS,
            terms=st.lists(_ODD_STRINGS, max_size=3).map(tuple),
            hits=st.just(()),
            snippet=_ODD_STRINGS,
            score=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers()),
            entities=st.lists(
                st.tuples(_ODD_STRINGS, st.one_of(st.none(), _ODD_STRINGS)), max_size=3
            ).map(tuple),
            priority=st.sampled_from(["low", "normal", "high", "urgent"]),
        ),
        max_size=4,
    ),
)
def test_json_lines_of_an_items_matches_are_those_of_each_match_alone(
    feed: str,
    ident: str,
    title: str,
    link: str,
    published: datetime | None,
    matches: list[Match],
) -> None:
    """test-run --json encodes an item's part of its lines once and splices each match's
    in: byte for byte what json.dumps writes for each match's object, key order included."""
    item = Item(feed=feed, id=ident, title=title, link=link, published=published)
    expected = [json.dumps(match_json(item, m), ensure_ascii=False) for m in matches]
    assert json_lines(item, matches) == expected


def test_json_lines_of_lazy_matches() -> None:
    from watcher.config import EntityConfig, RuleConfig
    from watcher.rules import RuleSet

    rs = RuleSet(
        [
            RuleConfig(name="k", keywords=("kharkiv", "talks")),
            RuleConfig(name="e", entities=("kharkiv",), priority={"high": 3}),
        ],
        {"kharkiv": EntityConfig(aliases=("Kharkiv", "Харків"), transliterate=True)},
    )
    item = Item(feed="f", id="1", title='Talks in "Харків"', content="Kharkiv — talks again.")
    matches = rs.match(item)
    lines = json_lines(item, matches)
    assert [json.loads(line)["rule"] for line in lines] == ["k", "e"]
    assert lines == [json.dumps(match_json(item, m), ensure_ascii=False) for m in matches]

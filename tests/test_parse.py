"""Parsing: golden feeds (tests/data/feeds/X beside X.expected.json), identity, bad documents.

Regenerate the expected files after a deliberate change with WATCHER_REGEN_GOLDEN=1,
then read the diff: every changed id would renumber a user's feed.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from support import parse_outcome

from watcher.exceptions import ParseError
from watcher.identity import clean_link
from watcher.identity import primary_identity as item_identity
from watcher.models import FetchResult, ParsedFeed
from watcher.parse import MAX_FIELD_CHARS, parse
from watcher.rss_fast import Loose, read_document, read_fast

FEEDS = Path(__file__).parent / "data" / "feeds"
GOLDEN = sorted(p for p in FEEDS.iterdir() if not p.name.endswith(".expected.json"))


def result(body: bytes, content_type: str = "application/xml") -> FetchResult:
    return FetchResult(
        url="http://t/", status=200, body=body, headers={"content-type": content_type}
    )


def as_json(parsed: ParsedFeed) -> dict[str, Any]:
    return {
        "title": parsed.title,
        "version": parsed.version,
        "items": [
            {
                "id": i.id,
                "title": i.title,
                "link": i.link,
                "summary": i.summary,
                "content": i.content,
                "published": i.published.isoformat() if i.published else None,
                "author": i.author,
                "tags": list(i.tags),
            }
            for i in parsed.items
        ],
    }


@pytest.mark.parametrize("path", GOLDEN, ids=[p.name for p in GOLDEN])
def test_golden_feed(path: Path) -> None:
    content_type = "application/feed+json" if path.suffix == ".json" else "application/xml"
    got = as_json(parse("golden", result(path.read_bytes(), content_type)))
    expected_path = path.with_name(path.name + ".expected.json")
    if os.environ.get("WATCHER_REGEN_GOLDEN"):
        expected_path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n")
    assert got == json.loads(expected_path.read_text(encoding="utf-8"))


def test_every_golden_feed_has_an_expected_result() -> None:
    for path in GOLDEN:
        assert path.with_name(path.name + ".expected.json").exists(), path.name


def test_identity_fallbacks() -> None:
    assert item_identity(" urn:1 ", "http://x/a", "t", "c") == "urn:1"
    assert item_identity("", "http://x/a?utm_source=x&id=1", "t", "c") == "http://x/a?id=1"
    # Neither guid nor link: the folded title (and date) is the item, so an edit of its
    # text (a live blog) keeps it, and only an untitled item falls back to its text.
    titled = item_identity("", "", "Title", "content")
    assert titled.startswith("title:")
    assert titled == item_identity("", "", "  TITLE ", "other content")
    dated = item_identity("", "", "Title", "content", datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    assert dated.startswith("title:") and dated != titled
    hashed = item_identity("", "", "", "content")
    assert hashed.startswith("sha256:")
    assert hashed == item_identity("", "", "", "content")
    assert hashed != item_identity("", "", "", "other content")


@pytest.mark.parametrize(
    ("link", "cleaned"),
    [
        ("https://x/p?utm_source=a&utm_medium=b", "https://x/p"),
        ("https://x/p?id=1&fbclid=abc&gclid=d", "https://x/p?id=1"),
        ("https://x/p?a=b%20c&q=1", "https://x/p?a=b%20c&q=1"),  # untouched: same bytes
        ("https://x/p#frag", "https://x/p#frag"),
    ],
)
def test_clean_link(link: str, cleaned: str) -> None:
    assert clean_link(link) == cleaned


def test_feedparser_never_sees_a_path(tmp_path: Path) -> None:
    # A body that happens to be a local path must be parsed as (bad) content, not opened.
    secret = tmp_path / "secret.xml"
    secret.write_bytes((FEEDS / "rss20.xml").read_bytes())
    with pytest.raises(ParseError):
        parse("f", result(str(secret).encode()))


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "application/xml", "empty body"),
        (b"  \n", "application/xml", "empty body"),
        (b"<html><body><p>Moved</p></body></html>", "text/html", "an HTML page"),
        (b"just some text", "text/plain", "not a feed"),
        (b'{"hello": "world"}', "application/json", "not a JSON Feed"),
        (
            b'{"version": "https://example.org/version/1", "items": []}',
            "application/json",
            "not a JSON Feed",
        ),
        (b"{broken", "application/json", "invalid JSON"),
    ],
)
def test_documents_that_are_not_feeds_are_errors(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse("status-page", result(body, content_type))
    assert "feed 'status-page'" in str(info.value)


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_json_feed_version_written_with_http_is_a_json_feed(scheme: str) -> None:
    """Real feeds write the version with http:// too (netnewswire/pxlnv.json of the corpus)."""
    doc = {
        "version": f"{scheme}://jsonfeed.org/version/1",
        "title": "t",
        "items": [{"id": "1", "title": "One", "url": "http://example.org/1"}],
    }
    parsed = parse("j", result(json.dumps(doc).encode(), "application/feed+json"))
    assert parsed.version == "json1"
    assert [item.title for item in parsed.items] == ["One"]


def test_entity_declarations_are_refused() -> None:
    body = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY lol "lollollollollol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<rss version="2.0"><channel><title>&lol2;</title></channel></rss>"""
    with pytest.raises(ParseError, match="declares XML entities"):
        parse("bomb", result(body))


def test_a_valid_feed_with_no_items_is_not_an_error() -> None:
    body = b'<rss version="2.0"><channel><title>Empty</title></channel></rss>'
    assert parse("f", result(body)).items == ()


# -- hostile and mislabelled documents ---------------------------------------------------

RSS_TEMPLATE = (
    '<?xml version="1.0" encoding="{enc}"?><rss version="2.0"><channel><title>t</title>'
    "<item><guid>1</guid><title>{title}</title></item></channel></rss>"
)


def titled(body: bytes, content_type: str = "application/rss+xml") -> str:
    return parse("f", result(body, content_type)).items[0].title


def test_header_charset_contradicting_the_xml_declaration() -> None:
    body = RSS_TEMPLATE.format(enc="iso-8859-1", title="Zürich café").encode("latin-1")
    assert titled(body, "application/rss+xml; charset=utf-8") == "Zürich café"


def test_header_charset_names_a_legacy_encoding() -> None:
    body = RSS_TEMPLATE.replace(' encoding="{enc}"', "").format(title="Харків").encode("cp1251")
    assert titled(body, "application/rss+xml; charset=windows-1251") == "Харків"


def test_a_few_invalid_utf8_bytes_cost_only_those_characters() -> None:
    body = (
        RSS_TEMPLATE.format(enc="utf-8", title="Харків XX Kharkiv")
        .encode()
        .replace(b"XX", b"\xff\xfe")
    )
    assert titled(body) == "Харків �� Kharkiv"


def test_nul_and_control_bytes_are_removed() -> None:
    body = RSS_TEMPLATE.format(enc="utf-8", title="NUL\x00 and \x07bell").encode()
    assert titled(body) == "NUL and bell"


def test_blank_lines_before_the_xml_declaration_do_not_make_it_loose() -> None:
    # Without them feedparser's XML parser reads the document, not its loose parser, which
    # would leave "&amp;" in the tag and miss the declared encoding.
    body = (
        '\n\n<?xml version="1.0" encoding="iso-8859-1"?>\n<rss version="2.0"><channel>'
        "<title>t</title><item><guid>1</guid><title>Zürich</title><category>A &amp; B</category>"
        "</item></channel></rss>"
    ).encode("latin-1")
    (item,) = parse("f", result(body, "application/rss+xml")).items
    assert (item.title, item.tags) == ("Zürich", ("A & B",))
    assert read_fast(body.lstrip(), {"content-type": "application/rss+xml"}) is not None


def test_utf16_documents() -> None:
    body = RSS_TEMPLATE.format(enc="utf-16", title="Київ").encode("utf-16")
    assert titled(body) == "Київ"


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',  # billion laughs
        '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',  # external entity
        '<!DOCTYPE rss [<!-- ] --><!ENTITY hidden "x">]>',  # a bracket to confuse a naive scan
    ],
)
def test_entity_declarations_are_refused_in_every_form(doctype: str) -> None:
    body = f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>&b;</title></channel></rss>'
    with pytest.raises(ParseError, match="declares XML entities"):
        parse("evil", result(body.encode()))
    with pytest.raises(ParseError, match="declares XML entities"):
        parse("evil", result(body.replace('1.0"?>', '1.0" encoding="utf-16"?>').encode("utf-16")))


def test_an_external_dtd_without_declarations_is_fine() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel>'
        b"<title>Old</title><item><title>Caf&eacute;</title><link>http://x/1</link></item></channel></rss>"
    )
    assert titled(body) == "Café"


def test_every_text_field_is_capped() -> None:
    huge = "word " * 40000
    body = RSS_TEMPLATE.format(enc="utf-8", title=huge).encode()
    assert len(titled(body)) == MAX_FIELD_CHARS


def test_dates_far_future_zoneless_and_garbage_are_tolerated() -> None:
    body = b"""<rss version="2.0"><channel><title>t</title>
<item><guid>1</guid><pubDate>Fri, 01 Jan 9999 00:00:00 GMT</pubDate></item>
<item><guid>2</guid><pubDate>2026-11-24T10:00:00</pubDate></item>
<item><guid>3</guid><pubDate>yesterday-ish</pubDate></item></channel></rss>"""
    items = parse("f", result(body)).items
    assert [i.id for i in items] == ["1", "2", "3"]
    assert items[0].published is not None and items[0].published.year == 9999
    assert items[2].published is None


# -- the RSS 2.0 and Atom 1.0 fast path against feedparser --------------------------------------------------

FAST_EXAMPLES = int(os.environ.get("HYPOTHESIS_FAST_PATH_EXAMPLES", "400"))

_WORDS = st.sampled_from(
    [
        "Kharkiv",
        "Харків",
        "café",
        "Ã©",  # UTF-8 read as Latin-1: feedparser repairs it
        "&amp;",
        "&lt;b&gt;bold&lt;/b&gt;",
        "&#133;",  # a cp1252 code point in an XML reference
        "&#8217;s",
        "  ",
        "\n",
        "a@b.org",
        "(x)",
        "<![CDATA[<p>Hi &amp; <em>there</em></p>]]>",
        "<![CDATA[plain & simple]]>",
        "http:///x",
        "/rel?a=1&amp;b=2",
        "&amp;amp;",
        "",
    ]
)
_TEXT = st.lists(_WORDS, max_size=5).map(" ".join)
_DATES = st.sampled_from(
    ["Mon, 23 Nov 2026 10:00:00 GMT", "2026-11-23T10:00:00Z", "23 Nov 2026", "garbage", "", " "]
)


@st.composite
def _rss_item(draw: st.DrawFn) -> str:
    parts = []
    kinds = draw(
        st.lists(
            st.sampled_from(
                [
                    "title",
                    "link",
                    "description",
                    "guid",
                    "pubDate",
                    "category",
                    "author",
                    "dc:creator",
                    "content:encoded",
                    "comments",
                    "enclosure",
                    "media:content",
                    "media:title",
                    "source",
                    "typed-description",
                    "empty-category",
                ]
            ),
            max_size=9,
        )
    )
    for kind in kinds:
        if kind == "guid":
            attr = draw(st.sampled_from(["", ' isPermaLink="true"', ' isPermaLink="false"']))
            parts.append(f"<guid{attr}>{draw(_TEXT)}</guid>")
        elif kind == "pubDate":
            parts.append(f"<pubDate>{draw(_DATES)}</pubDate>")
        elif kind == "enclosure":
            parts.append('<enclosure url="http://x/a.mp3" length="1" type="audio/mpeg"/>')
        elif kind == "media:content":
            parts.append('<media:content url="http://x/a.jpg"/>')
        elif kind == "typed-description":
            parts.append(f'<description type="text/plain">{draw(_TEXT)}</description>')
        elif kind == "empty-category":
            parts.append("<category></category>")
        elif kind == "category":
            domain = draw(st.sampled_from(["", ' domain="d"']))
            parts.append(f"<category{domain}>{draw(_TEXT)}</category>")
        else:
            parts.append(f"<{kind}>{draw(_TEXT)}</{kind}>")
    return "<item>" + "".join(parts) + "</item>"


# Channel and feed children that hold an entry or a title in another name or place.
_CHANNEL_EXTRAS = st.sampled_from(
    [
        "<dc:title>{}</dc:title>",
        "<media:title>{}</media:title>",
        "<atom:title>{}</atom:title>",
        "<image><url>http://x/i.png</url><title>{}</title><link>http://x/</link></image>",
        "<image><x/><title>{}</title></image>",
        "<textInput><title>{}</title><name>q</name></textInput>",
        "<x><title>{}</title></x>",
        "<entry><guid>e</guid><title>{}</title></entry>",
        "<Item><guid>i</guid><title>{}</title></Item>",
    ]
)
_FEED_EXTRAS = st.sampled_from(
    [
        "<dc:title>{}</dc:title>",
        "<item><id>i</id><title>{}</title></item>",
        '<entry xmlns=""><id>u</id><title>{}</title></entry>',
        "<Entry><id>E</id><title>{}</title></Entry>",
        "<author><name>n</name><title>{}</title></author>",
    ]
)


def _children(
    draw: st.DrawFn, title: str, entries: str, extras: st.SearchStrategy[str] | None
) -> str:
    """The feed's title and entries, with extra children in any order if any are given."""
    if extras is None:
        return title + entries
    parts = [title, entries] + [
        extra.format(draw(_TEXT)) for extra in draw(st.lists(extras, min_size=1, max_size=2))
    ]
    return "".join(draw(st.permutations(parts)))


@st.composite
def rss_documents(draw: st.DrawFn, *, extras: bool = False) -> tuple[bytes, dict[str, str]]:
    items = "".join(draw(st.lists(_rss_item(), max_size=4)))
    title = draw(st.sampled_from(["", f"<title>{draw(_TEXT)}</title>"]))
    decl = draw(st.sampled_from(["", '<?xml version="1.0" encoding="utf-8"?>\n']))
    namespaces = (
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns:atom="http://www.w3.org/2005/Atom"'
    )
    channel = _children(draw, title, items, _CHANNEL_EXTRAS if extras else None)
    document = f'{decl}<rss version="2.0"{namespaces}><channel>{channel}</channel></rss>'
    content_type = draw(
        st.sampled_from(
            ["application/rss+xml", "text/xml", "application/xml; charset=utf-8", "text/html"]
        )
    )
    headers = {"content-type": content_type}
    if draw(st.integers(0, 9)) == 0:
        headers["content-location"] = "http://example.org/feeds/"
    return document.encode(), headers


# What stands beside an RSS 1.0 channel, each read as it is in a channel (or refused).
_RDF_SIBLINGS = st.sampled_from(
    [
        '<image rdf:about="http://x/i.png"><title>{}</title><url>http://x/i.png</url></image>',
        '<textinput rdf:about="http://x/s"><title>{}</title><name>q</name></textinput>',
        "<dc:date>2026-11-23</dc:date>",
        "<title>{}</title>",
        "<x>{}</x>",
    ]
)


@st.composite
def rdf_documents(draw: st.DrawFn, *, extras: bool = False) -> tuple[bytes, dict[str, str]]:
    """RSS 1.0: items (some with an rdf:about) beside the channel, which lists them."""
    abouts = st.sampled_from(["", ' rdf:about="http://x/1"', ' rdf:about="rel/2"', ' rdf:about=""'])
    items = [
        item.replace("<item>", f"<item{draw(abouts)}>", 1)
        for item in draw(st.lists(_rss_item(), max_size=4))
    ]
    title = draw(st.sampled_from(["", f"<title>{draw(_TEXT)}</title>"]))
    description = draw(st.sampled_from(["", f"<description>{draw(_TEXT)}</description>"]))
    listing = '<items><rdf:Seq><rdf:li rdf:resource="http://x/1"/></rdf:Seq></items>'
    channel = _children(
        draw, title + description + listing, "", _CHANNEL_EXTRAS if extras else None
    )
    siblings = items
    if extras:
        siblings += [s.format(draw(_TEXT)) for s in draw(st.lists(_RDF_SIBLINGS, max_size=2))]
    # A base on the channel stays for the items after it when the root has none (feedparser's).
    base = draw(st.sampled_from(["", ' xml:base="http://b.example/d/"']))
    parts = [f'<channel rdf:about="http://x/"{base}>{channel}</channel>', *siblings]
    body = "".join(draw(st.permutations(parts)) if extras else parts)
    document = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns="http://purl.org/rss/1.0/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:media="http://search.yahoo.com/mrss/"'
        f' xmlns:atom="http://www.w3.org/2005/Atom">{body}</rdf:RDF>'
    )
    return document.encode(), {"content-type": "application/rdf+xml"}


@st.composite
def _atom_entry(draw: st.DrawFn) -> str:
    parts = []
    kinds = st.sampled_from(
        [
            "title",
            "typed-title",
            "id",
            "link",
            "published",
            "updated",
            "summary",
            "content",
            "author",
            "category",
            "xhtml",
            "media:title",
        ]
    )
    for kind in draw(st.lists(kinds, max_size=9)):
        text = draw(_TEXT)
        if kind == "typed-title":
            kind_attr = draw(st.sampled_from(["text", "html", "xhtml", "text/html"]))
            parts.append(f'<title type="{kind_attr}">{text}</title>')
        elif kind == "link":
            rel = draw(st.sampled_from(["", ' rel="alternate"', ' rel="self"', ' rel="enclosure"']))
            kind_attr = draw(st.sampled_from(["", ' type="text/html"', ' type="application/pdf"']))
            href = draw(st.sampled_from(["http://x/a?b=1&amp;c=2", "/rel", "http:///x", ""]))
            parts.append(f'<link{rel}{kind_attr} href="{href}"/>')
        elif kind in ("published", "updated"):
            parts.append(f"<{kind}>{draw(_DATES)}</{kind}>")
        elif kind in ("summary", "content"):
            kind_attr = draw(st.sampled_from(["", ' type="text"', ' type="html"']))
            parts.append(f"<{kind}{kind_attr}>{text}</{kind}>")
        elif kind == "author":
            name = draw(st.sampled_from(["", f"<name>{text}</name>"]))
            email = draw(st.sampled_from(["", "<email>a@b.org</email>"]))
            parts.append(f"<author>{name}{email}</author>")
        elif kind == "category":
            term = draw(st.sampled_from(["", ' term="t"', ' term="u"']))
            scheme = draw(st.sampled_from(["", ' scheme="s"']))
            parts.append(f"<category{term}{scheme}>{draw(st.sampled_from(['', 'x']))}</category>")
        elif kind == "xhtml":
            parts.append(
                '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">x</div></content>'
            )
        else:
            parts.append(f"<{kind}>{text}</{kind}>")
    return "<entry>" + "".join(parts) + "</entry>"


@st.composite
def atom_documents(draw: st.DrawFn, *, extras: bool = False) -> tuple[bytes, dict[str, str]]:
    entries = "".join(draw(st.lists(_atom_entry(), max_size=4)))
    title = draw(st.sampled_from(["", f"<title>{draw(_TEXT)}</title>"]))
    children = _children(draw, title, entries, _FEED_EXTRAS if extras else None)
    document = (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"'
        ' xmlns:media="http://search.yahoo.com/mrss/"'
        f' xmlns:dc="http://purl.org/dc/elements/1.1/">{children}</feed>'
    )
    return document.encode(), {"content-type": "application/atom+xml"}


@settings(max_examples=FAST_EXAMPLES, deadline=None)
@given(st.one_of(rss_documents(), atom_documents(), rdf_documents()))
def test_the_fast_path_reads_exactly_what_feedparser_reads(
    case: tuple[bytes, dict[str, str]],
) -> None:
    _assert_both_paths_agree(case)


@settings(max_examples=FAST_EXAMPLES // 2, deadline=None)
@given(
    st.one_of(rss_documents(extras=True), atom_documents(extras=True), rdf_documents(extras=True))
)
def test_the_fast_path_reads_exactly_what_feedparser_reads_beside_other_children(
    case: tuple[bytes, dict[str, str]],
) -> None:
    """Items, entries and titles in other names and places, images and text inputs (beside
    an RSS 1.0 channel too)."""
    _assert_both_paths_agree(case)


# What makes a document not well-formed, as real feeds do it: an HTML5 entity XML does not
# define, a bare ampersand or "<", a control character, a stray end tag, an unclosed one.
_BREAKERS = st.sampled_from(
    [b"&colon;", b"&", b" < ", b"\x02", b"</em>", b"<br>", b"&nbsp", b"]]>", b"<p>"]
)


@settings(max_examples=FAST_EXAMPLES // 2, deadline=None)
@given(
    st.one_of(rss_documents(), atom_documents(), rdf_documents()),
    _BREAKERS,
    st.floats(min_value=0, max_value=1),
)
def test_a_document_broken_anywhere_reads_exactly_as_feedparser_reads_it(
    case: tuple[bytes, dict[str, str]], breaker: bytes, where: float
) -> None:
    """Such a document goes straight to feedparser's loose parser (watcher.rss_fast.Loose),
    skipping the strict attempt that feedparser.parse makes first: the same items, or the
    same error, wherever it breaks."""
    body, headers = case
    at = round(len(body) * where)
    broken = body[:at] + breaker + body[at:]
    loose = isinstance(read_document(broken, headers), Loose)
    event("feedparser's loose parser at once" if loose else "another path")
    _assert_both_paths_agree((broken, headers))


def _assert_both_paths_agree(case: tuple[bytes, dict[str, str]]) -> None:
    body, headers = case
    result = FetchResult(url="http://x/", status=200, body=body, headers=headers)
    event("fast path" if read_fast(body, headers) is not None else "feedparser")
    assert parse_outcome(result, fast=True) == parse_outcome(result, fast=False)


# -- what real feeds hold beside the plain elements (issue 18) ------------------------------------
# {t}: text, {d}: a date, {a}: an attribute value. Each of these is read by the fast path the
# way feedparser's handler reads it, in any order and next to the plain elements above.

_ATTRIBUTE_VALUES = st.sampled_from(["/a?b=1&amp;c=2", "http://x/y", "", "rel/p", "Caf&#233;"])
_RSS_WIDE = st.sampled_from(
    [
        '<post-id xmlns="com-wordpress:feed-additions:1">7</post-id>',
        "<itunes:summary>{t}</itunes:summary>",
        "<itunes:author>{t}</itunes:author>",
        "<itunes:subtitle>{t}</itunes:subtitle>",
        "<itunes:keywords>{t}, b,,c</itunes:keywords>",
        '<itunes:category text="A"><itunes:category text="{a}"/></itunes:category>',
        "<itunes:duration>1:00</itunes:duration>",
        '<itunes:image href="{a}"/>',
        "<dc:subject>{t}</dc:subject>",
        "<dc:date>{d}</dc:date>",
        "<dc:description>{t}</dc:description>",
        "<media:description>{t}</media:description>",
        "<media:keywords>{t}, x</media:keywords>",
        '<media:keywords lang="en">{t}</media:keywords>',
        "<media:category>{t}</media:category>",
        '<media:category scheme="s">{t}</media:category>',
        '<media:content url="{a}"><media:title>{t}</media:title>'
        "<media:description>{t}</media:description>"
        '<media:thumbnail url="{a}"/><media:credit role="r">{t}</media:credit></media:content>',
        '<media:group><media:title type="plain">{t}</media:title><media:content url="{a}"/>'
        '<media:description type="html">{t}</media:description></media:group>',
        '<atom:link rel="alternate" href="{a}"/>',
        '<atom:link rel="enclosure" type="audio/mpeg" href="{a}"/>',
        '<atom:link href="{a}" type="text/HTML"/>',
        '<link xml:base="http://b.org/d/">{t}</link>',
        '<guid xml:base="http://b.org/d/" isPermaLink="true">g/{t}</guid>',
        '<guid isPermalink="false">{t}</guid>',
        '<x:thing a="{a}">{t}</x:thing>',
        "<x:thing>{t}</x:thing>",
        "<x:wrap><title>{t}</title></x:wrap>",
        "<x:wrap><description>{t}</description></x:wrap>",
        '<x:wrap a="1"><link>{t}</link><guid>{t}</guid></x:wrap>',
        "<x:wrap><x:deeper><category>{t}</category><author>{t}</author></x:deeper></x:wrap>",
        "<description>{t}<b>bold</b> <div>{t}</div></description>",
        "<description><div>{t}</div>{t}</description>",
        "<content:encoded><p>{t}</p></content:encoded>",
        "<image>{a}</image>",
        "<image><url>{a}</url><title>{t}</title><link>http://x/</link></image>",
        '<source url="http://s/">{t}</source>',
        "<author>a@b.org ({t})</author>",
        "<author>{t} &lt;a@b.org&gt;</author>",
        "<managingEditor>{t}</managingEditor>",
        "<dc:creator>x@y.org</dc:creator>",
        "<wfw:commentRss>{a}</wfw:commentRss>",
        "<slash:comments>3</slash:comments>",
        "<comments>{a}</comments>",
        "<georss:point>45 -71</georss:point>",
        '<enclosure url="{a}" type="audio/mpeg"/>',
        '<psc:chapters version="1.2"><psc:chapter start="00:00:01" title="{a}"/></psc:chapters>',
        '<title xml:lang="en">{t}</title>',
        '<title type="html">{t}</title>',
        "<title>{t}</title>",
        "<description>{t}</description>",
        "<link>{t}</link>",
        "<guid>{t}</guid>",
        "<pubDate>{d}</pubDate>",
        '<category domain="{a}">{t}</category>',
        "<author>{t}</author>",
        "<dc:creator>{t}</dc:creator>",
        "<content:encoded>{t}</content:encoded>",
        "<description><p>{t}<copyright>{t}</copyright></p></description>",
        "<dc:rights>{t}</dc:rights>",
        '<content:encoded type="text/xml"><x:a>{t}</x:a><title>{t}</title></content:encoded>',
        '<description type="text">{t}<b a="{a}" x:c="1">{t}</b> &amp; {t}</description>',
        '<guid isPermaLink="TRUE">{t}</guid>',
        "<x:wrap><link>{t}</link></x:wrap>",
    ]
)
_RSS_WIDE_CHANNEL = st.sampled_from(
    [
        "<itunes:summary>{t}</itunes:summary>",
        "<description>{t}</description>",
        "<itunes:author>{t}</itunes:author>",
        '<atom:link rel="self" href="{a}"/>',
        "<image><url>{a}</url><title>{t}</title></image>",
        "<x:thing>{t}</x:thing>",
        "<title>{t}</title>",
        "<dc:title>{t}</dc:title>",
        "<description>{t}<b>{t}</b></description>",
        '<atom:subtitle type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">{t}</div>'
        "</atom:subtitle>",
        "<copyright>{t}</copyright>",
        "<description><p>{t}<copyright>{t}</copyright></p></description>",
    ]
)
_ATOM_WIDE = st.sampled_from(
    [
        '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p class="{a}">{t}</p>'
        "<br/>{t}</div></content>",
        '<content type="xhtml"> <div xmlns="http://www.w3.org/1999/xhtml">a</div>'
        '<div xmlns="http://www.w3.org/1999/xhtml">{t}</div> </content>',
        '<summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">{t}'
        '<a href="{a}" rel="NoFollow">l</a></div></summary>',
        '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">{t}<i>i</i></div></title>',
        '<content type="html" xml:base="http://b.org/">{t}</content>',
        '<content src="{a}" type="text/html"/>',
        '<author><name>{t}</name><email>a@b.org</email><uri>{a}</uri><gd:image rel="r" src="s"/>'
        "</author>",
        "<author><email>{t}</email></author>",
        "<author><name>{t}</name></author><author><name>b</name><email>c@d.org</email></author>",
        '<media:group><media:title>{t}</media:title><media:content url="{a}" type="video/x"/>'
        '<media:thumbnail url="t"/><media:description>{t}</media:description><media:community>'
        '<media:starRating count="1"/><media:statistics views="2"/></media:community></media:group>',
        "<yt:videoId>abc</yt:videoId>",
        '<link xml:base="http://b.org/d/" href="{a}"/>',
        '<link rel="alternate" type="text/html" href="{a}"/>',
        '<link rel="ALTERNATE" href="{a}"/>',
        '<source><id>s</id><title>{t}</title><link href="http://s/"/><updated>{d}</updated>'
        "</source>",
        "<thr:total>3</thr:total>",
        '<category term="{a}" label="{t}"/>',
        "<dc:subject>{t}</dc:subject>",
        '<media:thumbnail url="{a}"/>',
        "<app:edited>{d}</app:edited>",
        "<x:wrap><title>{t}</title></x:wrap>",
        "<summary>{t}</summary>",
        "<title>{t}</title>",
        "<id>{t}</id>",
        '<id xml:base="http://b.org/d/">{t}</id>',
        "<published>{d}</published>",
        "<updated>{d}</updated>",
        '<content type="html">{t}</content>',
        '<content type="image/svg+xml"><x:svg><title>{t}</title></x:svg></content>',
        '<summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">{t}</div>{t}</summary>',
        '<content type="xhtml"><h:p xmlns:h="http://www.w3.org/1999/xhtml" h:lang="en">{t}'
        "</h:p></content>",
        "<link>{t}</link>",
    ]
)
_RSS_WIDE_NAMESPACES = (
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:atom="http://www.w3.org/2005/Atom"'
    ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
    ' xmlns:x="http://example.org/x/"'
    ' xmlns:wfw="http://wellformedweb.org/CommentAPI/"'
    ' xmlns:slash="http://purl.org/rss/1.0/modules/slash/"'
    ' xmlns:georss="http://www.georss.org/georss"'
    ' xmlns:psc="http://podlove.org/simple-chapters"'
)
_ATOM_WIDE_NAMESPACES = (
    ' xmlns="http://www.w3.org/2005/Atom"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:gd="http://schemas.google.com/g/2005"'
    ' xmlns:yt="http://www.youtube.com/xml/schemas/2015"'
    ' xmlns:thr="http://purl.org/syndication/thread/1.0"'
    ' xmlns:app="http://www.w3.org/2007/app"'
    ' xmlns:georss="http://www.georss.org/georss"'
    ' xmlns:x="http://example.org/x/"'
)
_BASES = st.sampled_from(["", ' xml:base="http://b.org/dir/"', ' xml:base="sub/"'])


def _fill(draw: st.DrawFn, templates: st.SearchStrategy[str], most: int) -> str:
    return "".join(
        template.format(t=draw(_TEXT), d=draw(_DATES), a=draw(_ATTRIBUTE_VALUES))
        for template in draw(st.lists(templates, max_size=most))
    )


@st.composite
def wide_rss_documents(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    items = "".join(
        f"<item{draw(_BASES)}>{_fill(draw, _RSS_WIDE, 8)}</item>"
        for _ in range(draw(st.integers(0, 3)))
    )
    channel = _fill(draw, _RSS_WIDE_CHANNEL, 3)
    at = draw(st.integers(0, len(channel)))
    document = (
        f'<rss version="2.0"{_RSS_WIDE_NAMESPACES}><channel{draw(_BASES)}>'
        f"{channel[:at] if channel[at : at + 1] == '<' else channel}{items}"
        f"{channel[at:] if channel[at : at + 1] == '<' else ''}</channel></rss>"
    )
    return document.encode(), {"content-type": "application/rss+xml"}


@st.composite
def wide_atom_documents(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    entries = "".join(
        f"<entry{draw(_BASES)}>{_fill(draw, _ATOM_WIDE, 8)}</entry>"
        for _ in range(draw(st.integers(0, 3)))
    )
    title = draw(st.sampled_from(["", f"<title>{draw(_TEXT)}</title>"]))
    document = f"<feed{_ATOM_WIDE_NAMESPACES}{draw(_BASES)}>{title}{entries}</feed>"
    return document.encode(), {"content-type": "application/atom+xml"}


@settings(max_examples=FAST_EXAMPLES, deadline=None)
@given(st.one_of(wide_rss_documents(), wide_atom_documents()))
def test_the_fast_path_reads_what_real_feeds_hold_exactly_as_feedparser_does(
    case: tuple[bytes, dict[str, str]],
) -> None:
    """WordPress, iTunes, Media RSS, YouTube, Blogger and unknown elements, xml:base,
    markup inside text, second summaries, titles in other places."""
    _assert_both_paths_agree(case)


def test_golden_rss_and_atom_feeds_take_the_fast_path_with_the_same_items() -> None:
    fast = 0
    for path in sorted(FEEDS.iterdir()):
        if path.name.endswith(".expected.json"):
            continue
        kind = "application/feed+json" if path.suffix == ".json" else "application/rss+xml"
        result = FetchResult(
            url="http://x/", status=200, body=path.read_bytes(), headers={"content-type": kind}
        )
        fast += read_fast(result.body, result.headers) is not None
        assert parse("f", result) == parse("f", result, fast=False), path.name
    assert fast >= 5


# -- items, entries and titles in other names and places (issue 14) -----------------------------
# feedparser goes by its own name for an element: <Item>, an <entry> in a channel or an <item>
# in an Atom feed are entries to it, and the fast path reads them the same way; an entry or
# title anywhere else is refused to feedparser.

ATOM_NS = 'xmlns="http://www.w3.org/2005/Atom"'
RSS_NS = (
    ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:atom="http://www.w3.org/2005/Atom"'
)


def rss_with(channel: str) -> bytes:
    """An RSS 2.0 channel holding ``channel`` and one plain item (guid 1, title a)."""
    return (
        f'<rss version="2.0"{RSS_NS}><channel>{channel}'
        "<item><guid>1</guid><title>a</title><link>http://x/1</link></item></channel></rss>"
    ).encode()


def read_as_feedparser_does(body: bytes, *, fast_path: bool) -> ParsedFeed:
    """The document through both paths: the same feed, item for item; and whether the fast
    path read it (True) or refused it to feedparser (False)."""
    reference = parse("f", result(body), fast=False)
    assert parse("f", result(body), fast=True) == reference
    assert (read_fast(body, result(body).headers) is not None) is fast_path
    return reference


def summary_of(parsed: ParsedFeed) -> tuple[str, list[tuple[str, str, str]]]:
    return parsed.title, [(i.id, i.title, i.link) for i in parsed.items]


@pytest.mark.parametrize(
    "item",
    [
        '<item xmlns=""><id>2</id><title>b</title><link>http://x/2</link></item>',
        "<item><id>2</id><title>b</title><link>http://x/2</link></item>",  # the Atom namespace
    ],
    ids=["unnamespaced", "atom-namespace"],
)
def test_an_atom_feed_whose_entries_are_items_keeps_them(item: str) -> None:
    body = f"<feed {ATOM_NS}><title>T</title>{item}</feed>".encode()
    parsed = read_as_feedparser_does(body, fast_path=True)
    assert summary_of(parsed) == ("T", [("2", "b", "http://x/2")])


@pytest.mark.parametrize(
    ("summary_type", "content_type", "summary", "content"),
    [
        ("html", "html", "", "x y"),  # the same markup: converted once, the summary dropped
        ("text", "html", "x <b>y</b>", "x y"),  # the same raw value, read as two types
        ("html", "text", "x y", "x <b>y</b>"),
    ],
)
def test_a_content_repeating_its_summarys_raw_value_is_read_by_its_own_type(
    summary_type: str, content_type: str, summary: str, content: str
) -> None:
    raw = "x &lt;b&gt;y&lt;/b&gt;"
    body = (
        f"<feed {ATOM_NS}><title>T</title><entry><id>1</id><title>a</title>"
        f'<summary type="{summary_type}">{raw}</summary>'
        f'<content type="{content_type}">{raw}</content></entry></feed>'
    ).encode()
    [item] = read_as_feedparser_does(body, fast_path=True).items
    assert (item.summary, item.content) == (summary, content)


def test_an_atom_feed_mixing_entries_and_items_keeps_both() -> None:
    body = (
        f"<feed {ATOM_NS}><title>T</title>"
        '<entry><id>1</id><title>a</title><link href="http://x/1"/></entry>'
        "<item><id>2</id><title>b</title></item></feed>"
    ).encode()
    parsed = read_as_feedparser_does(body, fast_path=True)
    assert summary_of(parsed) == ("T", [("1", "a", "http://x/1"), ("2", "b", "2")])


def test_plain_entries_under_a_prefixed_atom_feed_are_kept() -> None:
    body = (
        b'<atom:feed xmlns:atom="http://www.w3.org/2005/Atom"><atom:title>T</atom:title>'
        b"<entry><id>1</id><title>a</title></entry><entry><id>2</id><title>b</title></entry>"
        b"</atom:feed>"
    )
    parsed = read_as_feedparser_does(body, fast_path=True)
    assert summary_of(parsed) == ("T", [("1", "a", "1"), ("2", "b", "2")])


def test_an_entry_in_an_rss_channel_is_an_item() -> None:
    body = rss_with("<title>T</title><entry><guid>2</guid><title>b</title></entry>")
    parsed = read_as_feedparser_does(body, fast_path=True)
    assert summary_of(parsed) == ("T", [("2", "b", "2"), ("1", "a", "http://x/1")])


def test_a_channel_titled_only_by_dc_title_keeps_its_title() -> None:
    # feedparser reads dc:title with the very steps of <title>: the fast path reads it too.
    parsed = read_as_feedparser_does(
        rss_with("<dc:title>Caf&#233; &amp; Co</dc:title>"), fast_path=True
    )
    assert summary_of(parsed) == ("Café & Co", [("1", "a", "http://x/1")])


@pytest.mark.parametrize(
    ("body", "fast_path"),
    [
        (rss_with("<title>T</title><Item><guid>2</guid></Item>"), True),  # names lowercased
        (rss_with('<title>T</title><item xmlns="http://unknown/"><guid>2</guid></item>'), True),
        (rss_with("<title>T</title><atom:entry><atom:id>2</atom:id></atom:entry>"), True),
        (rss_with("<title>T</title><x><entry><guid>2</guid></entry></x>"), False),  # nested
        (f"<feed {ATOM_NS}><title>T</title><Entry><id>2</id></Entry></feed>".encode(), True),
        (
            f'<feed {ATOM_NS}><title>T</title><entry xmlns="http://u/"><id>2</id></entry></feed>'.encode(),
            True,
        ),
        (f"<feed {ATOM_NS}><title>T</title><x><item><id>2</id></item></x></feed>".encode(), False),
        (rss_with("<title>T</title><item><guid>1</guid><item><guid>2</guid></item></item>"), False),
    ],
    ids=[
        "Item",
        "item-unknown-namespace",
        "atom-entry-in-rss",
        "entry-nested-in-channel",
        "atom-Entry",
        "entry-unknown-namespace",
        "atom-item-nested",
        "item-in-item",
    ],
)
def test_items_and_entries_in_other_names_and_places_keep_their_items(
    body: bytes, fast_path: bool
) -> None:
    parsed = read_as_feedparser_does(body, fast_path=fast_path)
    assert "2" in [item.id for item in parsed.items]


@pytest.mark.parametrize(
    ("channel", "title", "fast_path"),
    [
        ("<Title>X</Title>", "X", True),
        ("<atom:title>X</atom:title>", "X", True),
        ("<media:title>X</media:title>", "X", True),
        ("<dc:title>X</dc:title><title>T</title>", "X", True),  # the first of two
        ("<dc:title></dc:title><title>T</title>", "T", True),  # but an empty one
        ("<media:title>X</media:title><title>T</title>", "T", True),  # not after media:title
        ("<title>X</title><image><url>u</url></image><title>T</title>", "T", True),
        ('<title type="html">&lt;b&gt;X</title>', "X", False),  # a type: no HTML guess
        ('<dc:title type="html">&lt;b&gt;X</dc:title>', "X", False),
        ("<title>X<b>Y</b></title>", "XY", False),  # markup read as XHTML
        ("<title></title><x><title>X</title></x>", "X", False),  # a nested one fills an empty one
        ("<title>T</title><image><x/><title>X</title></image>", "X", False),  # <x> ends the image
        ("<title>T</title><textInput><url>u</url><title>X</title></textInput>", "X", False),
    ],
)
def test_channel_titles_in_other_names_and_places(
    channel: str, title: str, fast_path: bool
) -> None:
    parsed = read_as_feedparser_does(rss_with(channel), fast_path=fast_path)
    assert parsed.title == title


@pytest.mark.parametrize(
    "body",
    [
        f'<feed {ATOM_NS} xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>X</dc:title>'
        "<entry><id>1</id></entry></feed>",
        '<atom:feed xmlns:atom="http://www.w3.org/2005/Atom"><title>X</title>'
        "<atom:entry><atom:id>1</atom:id></atom:entry></atom:feed>",
    ],
    ids=["dc-title", "unnamespaced-title"],
)
def test_atom_feed_titles_in_other_names_are_read_as_feedparser_reads_them(body: str) -> None:
    assert read_as_feedparser_does(body.encode(), fast_path=True).title == "X"


@pytest.mark.parametrize(
    "channel",
    [
        "<title>T</title><image><url>http://x/i.png</url><title>I</title><link>http://x/</link></image>",
        "<image><url>http://x/i.png</url><title>I</title></image><title>T</title>",
        "<title>T</title><textInput><title>I</title><name>q</name><link>http://x/</link></textInput>",
    ],
)
def test_image_and_text_input_titles_stay_theirs_on_the_fast_path(channel: str) -> None:
    assert read_as_feedparser_does(rss_with(channel), fast_path=True).title == "T"


@pytest.mark.parametrize(
    "namespaces",
    [
        # feedparser files dc:creator under the prefix the document gave its own "dc" name
        'xmlns:media="http://purl.org/dc/elements/1.1/" xmlns:dc="http://search.yahoo.com/mrss/"',
        'xmlns:dc="http://purl.org/dc/terms/" xmlns:media="http://purl.org/dc/elements/1.1/"',
    ],
    ids=["swapped", "dc-is-dcterms"],
)
def test_a_known_prefix_bound_to_another_namespace_goes_to_feedparser(namespaces: str) -> None:
    body = (
        f'<rss version="2.0" {namespaces}><channel><title>T</title>'
        "<item><guid>1</guid><media:creator>Bob</media:creator></item></channel></rss>"
    ).encode()
    parsed = read_as_feedparser_does(body, fast_path=False)
    assert [(item.id, item.author) for item in parsed.items] == [("1", "")]


@pytest.mark.parametrize(
    "body",
    [
        rss_with("<x><channel/></x><title>T</title>"),  # its end ends feedparser's feed
        rss_with("<feed/><title>T</title>"),
        f"<feed {ATOM_NS}><x><feed/></x><title>T</title></feed>".encode(),
        f"<feed {ATOM_NS}><channel/><title>T</title></feed>".encode(),
    ],
    ids=["channel-in-channel", "feed-in-channel", "feed-in-feed", "channel-in-feed"],
)
def test_a_feed_or_channel_inside_the_feed_goes_to_feedparser(body: bytes) -> None:
    assert read_as_feedparser_does(body, fast_path=False).title == ""


@pytest.mark.parametrize(
    ("body", "version"),
    [
        (
            '<rss version="2.0" xmlns:r="http://purl.org/rss/1.0/"><channel><title>T</title>'
            "<item><guid>1</guid></item></channel></rss>",
            "rss10",
        ),
        (
            f'<feed xmlns:r="http://purl.org/rss/1.0/" {ATOM_NS}><title>T</title>'
            "<entry><id>1</id></entry></feed>",
            "rss10",
        ),
        (
            f'<feed {ATOM_NS}><x><rss version="2.0"/></x><title>T</title>'
            "<entry><id>1</id></entry></feed>",
            "rss20",
        ),
    ],
    ids=["rss10-namespace-in-rss", "rss10-namespace-in-atom", "rss-in-atom"],
)
def test_what_changes_feedparsers_version_goes_to_feedparser(body: str, version: str) -> None:
    assert read_as_feedparser_does(body.encode(), fast_path=False).version == version

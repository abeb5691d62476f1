"""Parsing: golden feeds (tests/data/feeds/X beside X.expected.json), identity, bad documents.

Regenerate the expected files after a deliberate change with WATCHER_REGEN_GOLDEN=1,
then read the diff: every changed id would renumber a user's feed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from watcher.exceptions import ParseError
from watcher.models import FetchResult, ParsedFeed
from watcher.parse import MAX_FIELD_CHARS, clean_link, item_identity, parse

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
    hashed = item_identity("", "", "title", "content")
    assert hashed.startswith("sha256:")
    assert hashed == item_identity("", "", "title", "content")
    assert hashed != item_identity("", "", "title", "other content")


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
        (b"{broken", "application/json", "invalid JSON"),
    ],
)
def test_documents_that_are_not_feeds_are_errors(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse("status-page", result(body, content_type))
    assert "feed 'status-page'" in str(info.value)


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

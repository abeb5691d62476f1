"""Bytes to items: RSS and Atom through feedparser, JSON Feed through our own reader.

Owns the conversion of feed HTML to plain text, done once here; each item's identity
comes from :mod:`watcher.identity`.
feedparser is only ever handed bytes we downloaded, never a URL or a path, with
its sanitizer and URI resolution off: we never render feed HTML, we read it.
"""

from __future__ import annotations

import calendar
import html.entities
import io
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from watcher.exceptions import ParseError
from watcher.identity import one_per_identity, primary_identity
from watcher.models import FetchResult, Item, ParsedFeed
from watcher.rss_fast import Loose, read_document, read_loose, refusal
from watcher.text import html_to_text, plain_text

MAX_FIELD_CHARS = 65536
_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^\[>]*\[", re.IGNORECASE)
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
# Real feeds write the version with http:// too (NetNewsWire reads them).
_JSON_FEED_VERSION = re.compile(r"^https?://jsonfeed\.org/version/(\S*)$")


def _cap(text: str) -> str:
    return text[:MAX_FIELD_CHARS]


def _detail_text(
    detail: Mapping[str, Any] | None,
    fallback: str = "",
    seen: dict[tuple[bool, str], str] | None = None,
) -> str:
    """``seen``: texts already converted for this entry, by (plain?, raw value); an entry's
    content often repeats its summary's markup, and HTML-to-text is most of parsing."""
    if detail is None:
        plain, value = False, fallback
    else:
        plain, value = detail.get("type") == "text/plain", str(detail.get("value") or "")
    if seen is not None and isinstance(value, str):  # a fallback is Any at run time
        text = seen.get((plain, value))
        if text is None:
            text = seen[plain, value] = _detail_text_of(plain, value)
        return text
    return _detail_text_of(plain, value)


def _detail_text_of(plain: bool, value: str) -> str:
    return _cap(plain_text(value) if plain else html_to_text(value))


def _struct_to_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None


def _declares_entities(body: bytes) -> bool:
    """A DOCTYPE with an internal subset that declares entities (billion laughs, XXE).

    Feeds never need one, and feedparser's fallback parser expands them without limit.
    Checked on the raw bytes and, for UTF-16/32 documents, on their decoded form.
    """
    for text in _ascii_views(body):
        if _DOCTYPE_SUBSET.search(text) and _ENTITY_DECL.search(text):
            return True
    return False


_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")
_CHARSET = re.compile(r"charset=[\"']?([A-Za-z0-9._-]+)")


def _repair_utf8(body: bytes, content_type: str) -> bytes:
    """A UTF-8 document with a few bad bytes, with those bytes replaced.

    Given invalid UTF-8, feedparser re-decodes the *whole* document as windows-1252,
    which turns every Cyrillic or accented letter into mojibake. One bad byte should
    cost one character, not the feed.
    """
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        pass
    names: list[str] = []
    if declared := _XML_DECL_ENCODING.match(body):
        names.append(declared.group(1).decode("ascii"))
    if header := _CHARSET.search(content_type):
        names.append(header.group(1))
    if any(n.lower().replace("_", "-") not in ("utf-8", "utf8") for n in names):
        return body  # a declared legacy encoding: feedparser decodes it
    text = body.decode("utf-8", errors="replace")
    non_ascii = sum(1 for byte in body if byte >= 0x80)
    if text.count("\ufffd") * 4 > non_ascii:
        return body  # mostly not UTF-8 at all: let feedparser detect what it is
    return text.encode("utf-8")


def _strip_before_declaration(body: bytes) -> bytes:
    """A document padded with blank lines before its XML declaration, without them.

    The declaration must come first: feedparser's XML parser refuses such a document and
    its loose parser reads it instead, with the loose parser's own mistakes (an escaped
    ``&amp;`` left in a tag) and without the encoding the declaration names.
    """
    if body[:1].isspace():
        stripped = body.lstrip()
        if stripped.startswith(b"<?xml"):
            return stripped
    return body


# Not the five XML entities: feeds are full of &amp;, and a callback per match is slow.
_NAMED_ENTITY = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);)([A-Za-z][A-Za-z0-9]{1,31});")


def _numeric_entities(body: bytes) -> bytes:
    """HTML named entities (``&eacute;``) as numeric references, which any XML parser reads.

    Old feeds use them freely; feedparser drops them when the document has a DOCTYPE.
    """

    def repl(m: re.Match[bytes]) -> bytes:
        codepoint = html.entities.name2codepoint.get(m.group(1).decode("ascii"))
        return b"&#%d;" % codepoint if codepoint is not None else m.group(0)

    return _NAMED_ENTITY.sub(repl, body) if b"&" in body else body


def _ascii_views(body: bytes) -> Iterator[bytes]:
    yield body
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00<\x00" in body[:16] or b"<\x00" in body[:4]:
        for codec in ("utf-16", "utf-32"):
            try:
                yield body.decode(codec).encode("ascii", "replace")
            except UnicodeDecodeError:
                continue


def _is_json(result: FetchResult) -> bool:
    content_type = result.headers.get("content-type", "").lower()
    return "json" in content_type or result.body.lstrip()[:1] in (b"{", b"[")


def _xml_body(feed: str, result: FetchResult) -> bytes:
    """The bytes both XML paths read: entity declarations refused, the document repaired."""
    if _declares_entities(result.body):
        raise ParseError(feed, "the document declares XML entities in its DOCTYPE; refused")
    content_type = result.headers.get("content-type", "").lower()
    body = _strip_before_declaration(result.body)
    return _numeric_entities(_repair_utf8(body, content_type))


def fast_path_refusal(result: FetchResult) -> str | None:
    """Why parse() leaves a document to feedparser, or None when the fast path reads it
    (bench/fastpath_share.py counts these; JSON Feed has a reader of its own)."""
    if _is_json(result):
        return "JSON Feed: read by watcher's own reader"
    try:
        body = _xml_body("f", result)
    except ParseError as exc:
        return exc.reason
    return refusal(body, result.headers)


def parse(feed: str, result: FetchResult, *, fast: bool = True) -> ParsedFeed:
    """Items of a downloaded document; raises :class:`ParseError` naming the feed.

    Plain RSS 2.0, Atom 1.0 and RSS 1.0 go through :mod:`watcher.rss_fast` (the same items,
    several times faster), and a document that is not well-formed straight to feedparser's
    loose parser; ``fast=False`` sends everything through ``feedparser.parse``, the reference.
    """
    body = result.body
    if not body.strip():
        raise ParseError(feed, "the server sent an empty body")
    if _is_json(result):
        return _parse_json_feed(feed, body)
    body = _xml_body(feed, result)
    read = read_document(body, result.headers) if fast else None
    if isinstance(read, tuple):
        channel, entries, version = read
        return ParsedFeed(
            title=_detail_text(channel.get("title_detail"), channel.get("title", "")),
            items=one_per_identity(_entry_to_item(feed, entry) for entry in entries),
            version=version,
        )
    try:
        parsed = None
        if isinstance(read, Loose):  # not well-formed: straight to feedparser's loose parser
            parsed = read_loose(read, sanitize_html=False, resolve_relative_uris=False)
            if not parsed.get("version"):
                parsed = None  # no feed at all: feedparser's own words say why (below)
        if parsed is None:
            parsed = feedparser.parse(
                io.BytesIO(body),
                response_headers=dict(result.headers),
                sanitize_html=False,
                resolve_relative_uris=False,
            )
    except Exception as exc:  # feedparser's own bugs on hostile bytes (tests/test_fuzz.py)
        raise ParseError(feed, f"the document could not be read ({type(exc).__name__})") from exc
    if not parsed.get("version"):
        reason = parsed.get("bozo_exception")
        detail = f" ({reason})" if reason else ""
        kind = "an HTML page" if b"<html" in body[:4096].lower() else "not a feed"
        raise ParseError(feed, f"the document is {kind}{detail}")
    items = (_entry_to_item(feed, entry) for entry in parsed.entries)
    channel = parsed.get("feed", {})
    return ParsedFeed(
        title=_detail_text(channel.get("title_detail"), channel.get("title", "")),
        items=one_per_identity(items),
        version=str(parsed.get("version", "")),
    )


def _entry_to_item(feed: str, entry: Mapping[str, Any]) -> Item:
    seen: dict[tuple[bool, str], str] = {}
    title = _detail_text(entry.get("title_detail"), entry.get("title", ""), seen)
    summary = _detail_text(entry.get("summary_detail"), entry.get("summary", ""), seen)
    content = "\n".join(
        filter(
            None,
            (_detail_text(c, "", seen) for c in entry.get("content", ()) if isinstance(c, Mapping)),
        )
    )
    if content == summary:
        summary = ""
    link = str(entry.get("link") or "")
    # dict.get: FeedParserDict.get maps the missing key to the other one, with a warning.
    raw: dict[str, Any] = entry  # type: ignore[assignment]
    published = _struct_to_datetime(
        dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed")
    )
    tags = tuple(str(t.get("term")) for t in entry.get("tags", ()) if t.get("term"))
    return Item(
        feed=feed,
        id=primary_identity(str(entry.get("id") or ""), link, title, content or summary, published),
        title=title,
        link=link,
        summary=summary,
        content=_cap(content),
        published=published,
        author=_cap(plain_text(str(entry.get("author") or ""))),
        tags=tags,
    )


def _parse_json_feed(feed: str, body: bytes) -> ParsedFeed:
    """JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(feed, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ParseError(feed, "invalid JSON: nested too deeply") from None
    version = (
        _JSON_FEED_VERSION.match(str(doc.get("version", ""))) if isinstance(doc, dict) else None
    )
    if version is None:
        raise ParseError(feed, "the JSON document is not a JSON Feed (no jsonfeed.org version)")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ParseError(feed, "the JSON Feed has no items list")
    items = [_json_item(feed, raw) for raw in raw_items if isinstance(raw, dict)]
    return ParsedFeed(
        title=_cap(str(doc.get("title") or "")),
        items=one_per_identity(items),
        version="json" + version.group(1).replace(".", ""),
    )


def _json_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_item(feed: str, raw: Mapping[str, Any]) -> Item:
    title = _cap(html_to_text(str(raw.get("title") or "")))
    if raw.get("content_html"):
        content = _cap(html_to_text(str(raw["content_html"])))
    else:
        content = _cap(plain_text(str(raw.get("content_text") or "")))
    summary = _cap(plain_text(str(raw.get("summary") or "")))
    link = str(raw.get("url") or raw.get("external_url") or "")
    authors = raw.get("authors") or ([raw["author"]] if isinstance(raw.get("author"), dict) else [])
    author = ", ".join(str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name"))
    raw_id = raw.get("id")
    tags = raw.get("tags")
    published = _json_date(raw.get("date_published") or raw.get("date_modified"))
    return Item(
        feed=feed,
        id=primary_identity(
            "" if raw_id is None else str(raw_id), link, title, content or summary, published
        ),
        title=title,
        link=link,
        summary=summary,
        content=content,
        published=published,
        author=author,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
    )

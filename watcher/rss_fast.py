"""A fast path for the most common feeds there are: well-formed RSS 2.0 and Atom 1.0.

feedparser reads a document through a pure-Python SAX handler, about 280 us per item;
expat building an ElementTree reads the same document in a fraction of that. This
module reads only what it can read exactly as feedparser would: the same bytes
(feedparser's own encoding step), the same steps on every value (strip, the UTF-8
double-encoding repair, the cp1252 map, its HTML guess for titles, its URI join, its
date parser), for a closed list of elements whose effect on an entry is known, and only
when every element feedparser would take for an entry, a title or the feed itself (it
goes by lowercased local names alone) is one read here. For anything else it returns
None and the caller uses feedparser. Tests hold the two to identical items on every
golden feed and on generated documents, so switching paths can never renumber a feed.
"""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

try:  # feedparser's own steps, so values come out as feedparser makes them
    from feedparser.datetimes import _parse_date
    from feedparser.encodings import convert_to_utf8
    from feedparser.html import _cp1252
    from feedparser.mixin import _FeedParserMixin
    from feedparser.urls import _urljoin

    AVAILABLE = True
except ImportError:  # a feedparser that moved them: everything takes the reference path
    AVAILABLE = False

CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
DC = "{http://purl.org/dc/elements/1.1/}"
MEDIA = "{http://search.yahoo.com/mrss/}"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
ATOM = "{http://www.w3.org/2005/Atom}"

# What an <item> may hold. Text: read. Quiet: feedparser keeps it somewhere we never
# read (links, media lists), so it may be there, but must be plain (no children).
_TEXT = frozenset(
    {"title", "link", "description", "guid", "pubDate", "category", "author"}
    | {f"{CONTENT}encoded", f"{DC}creator"}
)
_QUIET = frozenset(
    {"comments", "enclosure", f"{MEDIA}content", f"{MEDIA}thumbnail"}
    | {"{http://wellformedweb.org/CommentAPI/}commentRss"}
    | {"{http://purl.org/rss/1.0/modules/slash/}comments"}
)
_ONCE = _TEXT - {"category"}
_ATTRIBUTES = {"guid": {"isPermaLink"}, "category": {"domain"}}
_LINK_REFERENCE = re.compile("&([A-Za-z0-9_]+);")
_C1_CONTROLS = re.compile("[\x80-\x9f]")  # all that feedparser's cp1252 map changes

# feedparser files an element by its lowercased local name and a prefix of its own: in
# whatever namespace, case or place, any item or entry is an entry, any title-like element
# may be the feed's title, and any rss, channel or feed element starts or ends the feed.
# So every element named so must be one we read, or we refuse.
_MARKED = frozenset({"item", "entry", "title", "rss", "channel", "feed"})
_TAG = attrgetter("tag")
# feedparser's own prefix for each namespace it knows ("" for RSS and Atom: bare names), the
# declarations that could give one of those names to another namespace, and the namespaces
# whose mere declaration on the root sets the version feedparser reports.
_XMLNS = re.compile(rb"""xmlns(?::([^\s=>/]+))?\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_VERSION_NAMESPACES = frozenset(
    {"http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"}
)
_STANDARD_PREFIXES: dict[str, str] = {}
if AVAILABLE:
    _STANDARD_PREFIXES = {uri.lower(): name for uri, name in _FeedParserMixin.namespaces.items()}
_PREFIX_NAMES = frozenset(prefix.lower() for prefix in _STANDARD_PREFIXES.values() if prefix)


class _Refused(Exception):
    """The document holds something only feedparser reads faithfully."""


Read = tuple[dict[str, Any], list[dict[str, Any]], str]


def read_fast(body: bytes, headers: Mapping[str, str]) -> Read | None:
    """feedparser's ``(feed, entries, version)`` for plain RSS 2.0 or Atom 1.0, or None."""
    if not AVAILABLE:
        return None
    if "content-location" in {k.lower() for k in headers}:
        return None  # a base URI for relative links: feedparser resolves against it
    result: dict[str, Any] = {}
    try:
        data = convert_to_utf8(dict(headers), body, result)
    except Exception:  # feedparser's own trouble: it is the one to report it
        return None
    if not result.get("encoding") or b"<!DOCTYPE" in data[:4096].upper():
        return None
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None  # not well-formed: feedparser's loose parser reads it its own way
    try:
        _check_namespaces(data)
        for element in root.iter():
            if XML_BASE in element.attrib:
                raise _Refused
        tags = Counter(map(_TAG, root.iter()))  # counted in C: one Python step per tag, not element
        marked = sum(n for tag, n in tags.items() if _local(tag) in _MARKED)
        if root.tag == f"{ATOM}feed":
            feed, entries = _atom(root, marked)
            return feed, entries, "atom10"
        rss = _rss(root, marked)
        return (rss[0], rss[1], "rss20") if rss is not None else None
    except _Refused:
        return None


def _local(tag: str) -> str:
    """The element's name as feedparser matches it: lowercased, its namespace aside."""
    return tag[tag.rfind("}") + 1 :].lower()


def _check_namespaces(data: bytes) -> None:
    """Refuses a document whose namespace declarations change how feedparser reads it.

    Binding one of feedparser's own prefix names to another known namespace files every
    element of that prefix under the other one (``xmlns:dc`` bound to DC terms turns each DC
    element into a DC terms element); declaring RSS 1.0 or 0.90 makes an RSS 2.0 or Atom
    document "rss10" or "rss090".
    """
    for match in _XMLNS.finditer(data):
        prefix = (match.group(1) or b"").decode("utf-8", "replace")
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        if b"&" in raw:
            raise _Refused  # a reference in the URI: we would compare it unread
        uri = raw.decode("utf-8", "replace").lower()
        if uri in _VERSION_NAMESPACES:
            raise _Refused
        if prefix not in _PREFIX_NAMES:
            continue
        if "backend.userland.com/rss" in uri:
            uri = "http://backend.userland.com/rss"
        standard = _STANDARD_PREFIXES.get(uri)
        if standard is not None and standard != prefix:
            raise _Refused


# A channel's image and text input keep their own title, as long as feedparser still knows
# it is inside them: any other bare child makes it forget, and the next title is the feed's.
_CONTAINERS = {
    "image": frozenset({"title", "link", "description", "url", "href", "width", "height"}),
    "textInput": frozenset({"title", "link", "description", "name"}),
    "textinput": frozenset({"title", "link", "description", "name"}),
}


def _rss(root: ET.Element, marked: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    if root.tag != "rss" or root.get("version") != "2.0" or len(root) != 1:
        return None
    channel = root[0]
    if channel.tag != "channel":
        return None
    items = [child for child in channel if child.tag == "item"]
    read = 2 + len(items)  # the rss and the channel elements
    read += sum(1 for item in items for child in item if child.tag == "title")
    for child in channel:
        if child.tag in _CONTAINERS:
            read += _container_titles(child, _CONTAINERS[child.tag])
    feed, titles = _feed_title(channel, ("title", f"{DC}title"), _rss_title)
    if read + titles != marked:
        raise _Refused  # an item, entry or title somewhere we do not read it
    return feed, [_entry(item) for item in items]


def _container_titles(container: ET.Element, children: frozenset[str]) -> int:
    """The titles an image or text input keeps for itself."""
    titles = sum(1 for child in container if child.tag == "title")
    if titles and any(child.tag not in children or len(child) for child in container):
        raise _Refused
    return titles


def _rss_title(element: ET.Element) -> tuple[str, str]:
    """A channel title, read like an item's: plain text only (dc:title takes the same steps)."""
    if element.attrib or len(element):
        raise _Refused  # a type attribute or markup inside: feedparser reads them its own way
    return _text_value(element, plain=True)


def _feed_title(
    parent: ET.Element, tags: tuple[str, ...], read: Callable[[ET.Element], tuple[str, str]]
) -> tuple[dict[str, Any], int]:
    """The feed's title and its detail, as feedparser files them, and how many titles that
    read: one at most, of the given tags (feedparser reads every other title-like one too)."""
    titles = [child for child in parent if _local(child.tag) == "title"]
    if len(titles) > 1 or any(title.tag not in tags for title in titles):
        raise _Refused
    if not titles:
        return {}, 0
    value, kind = read(titles[0])
    return {"title": value, "title_detail": {"type": kind, "value": value}}, 1


def _entry(item: ET.Element) -> dict[str, Any]:
    if item.attrib or (item.text or "").strip():
        raise _Refused
    seen: set[str] = set()
    has_link = False
    entry: dict[str, Any] = {}
    tags: list[dict[str, str | None]] = []
    for child in item:
        tag = child.tag
        if tag in _QUIET:
            if len(child):
                raise _Refused
            continue
        if tag not in _TEXT or len(child) or set(child.attrib) - _ATTRIBUTES.get(tag, set()):
            raise _Refused
        if tag in _ONCE:
            if tag in seen:
                raise _Refused
            seen.add(tag)
        if tag == "title":
            value, kind = _text_value(child, plain=True)
            entry["title"] = value
            entry["title_detail"] = {"type": kind, "value": value}
        elif tag == "description":
            value, kind = _text_value(child)
            entry["summary"] = value
            entry["summary_detail"] = {"type": kind, "value": value}
        elif tag == f"{CONTENT}encoded":
            value, kind = _text_value(child)
            entry.setdefault("content", []).append({"type": kind, "value": value})
        elif tag == "link":
            value, _ = _text_value(child, uri=True)
            value = _LINK_REFERENCE.sub(r"&\g<1>", value.replace("&amp;", "&"))
            entry["link"] = value
            has_link = True
        elif tag == "guid":
            permalink = child.get("isPermaLink", "true") == "true"
            value, _ = _text_value(child, uri=permalink)
            entry["id"] = value
            if permalink:
                entry["guid-link"] = value
        elif tag == "pubDate":
            value, _ = _text_value(child)
            entry["published_parsed"] = _parse_date(value)
        elif tag == "category":
            value, _ = _text_value(child)
            _add_category(tags, value, child.get("domain"))
        else:  # author or dc:creator: one name, never an address feedparser would split
            if {"author", f"{DC}creator"} <= seen:
                raise _Refused
            value, _ = _text_value(child)
            if "@" in value:
                raise _Refused
            entry["author"] = value
    # A permalink GUID is the link when the item has no <link> (feedparser's rule).
    guid_link = entry.pop("guid-link", None)
    if guid_link is not None and not has_link:
        entry["link"] = guid_link
    if "content" in entry and "summary" not in entry:
        entry["summary"] = entry["content"][0]["value"]  # feedparser copies it, no detail
    if tags:
        entry["tags"] = tags
    return entry


def _add_category(tags: list[dict[str, str | None]], value: str, domain: str | None) -> None:
    """feedparser's _start_category, _end_category and _add_tag, step for step: a
    domain files a placeholder first, and duplicates are judged at that moment."""
    if domain:
        placeholder: dict[str, str | None] = {"term": None, "scheme": domain, "label": None}
        if placeholder not in tags:
            tags.append(placeholder)
    if not value:
        return
    if tags and not tags[-1]["term"]:
        tags[-1]["term"] = value
        return
    tag: dict[str, str | None] = {"term": value, "scheme": None, "label": None}
    if tag not in tags:
        tags.append(tag)


def _text_value(element: ET.Element, *, plain: bool = False, uri: bool = False) -> tuple[str, str]:
    """One element's text through the steps feedparser's pop() takes, and its type."""
    value = (element.text or "").strip()
    if uri and value:
        value = _urljoin("", value)
    kind = "text/html"
    if plain:
        kind = "text/html" if _FeedParserMixin.looks_like_html(value) else "text/plain"
    if value.isascii():
        return value, kind  # both steps below leave ASCII as it is
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    if _C1_CONTROLS.search(value):  # translate() is slow on non-ASCII text: only if needed
        value = value.translate(_cp1252)
    return value, kind


# -- Atom 1.0 ---------------------------------------------------------------------------------

_ATOM_ONCE = frozenset(
    f"{ATOM}{name}" for name in ("title", "id", "published", "updated", "summary", "content")
) | {f"{ATOM}author"}
_TEXT_TYPES = {None: "text/plain", "text": "text/plain", "html": "text/html"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}


def _atom(root: ET.Element, marked: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    entries = [child for child in root if child.tag == f"{ATOM}entry"]
    read = 1 + len(entries)  # the feed element
    read += sum(1 for entry in entries for child in entry if child.tag == f"{ATOM}title")
    feed, titles = _feed_title(root, (f"{ATOM}title",), _atom_text)
    if read + titles != marked:
        raise _Refused  # an entry inside something else (a source, say), an item, a title
    return feed, [_atom_entry(entry) for entry in entries]


def _atom_entry(element: ET.Element) -> dict[str, Any]:
    if element.attrib or (element.text or "").strip():
        raise _Refused
    seen: set[str] = set()
    entry: dict[str, Any] = {}
    tags: list[dict[str, str | None]] = []
    id_link: str | None = None
    for child in element:
        tag = child.tag
        if tag in _ATOM_ONCE:
            if tag in seen:
                raise _Refused
            seen.add(tag)
        local = tag.removeprefix(ATOM)
        if local == tag:
            raise _Refused  # another vocabulary: feedparser may map it onto our fields
        if local == "link":
            href = child.get("href")
            if not href or len(child) or set(child.attrib) - {"href", "rel", "type", "title"}:
                raise _Refused
            rel = child.get("rel", "alternate")
            kind = child.get("type", "application/atom+xml" if rel == "self" else "text/html")
            if rel == "alternate" and _FeedParserMixin.map_content_type(kind) in _HTML_TYPES:
                entry["link"] = _urljoin("", href.strip())
        elif local == "category":
            if len(child) or set(child.attrib) - {"term", "scheme", "label"}:
                raise _Refused
            value, _ = _text_value(child)
            _add_atom_category(tags, child.get("term"), child.get("scheme"), child.get("label"))
            if value:
                _add_category(tags, value, None)
        elif local == "author":
            entry["author"] = _atom_author(child)
        elif local in ("title", "summary", "content"):
            value, kind = _atom_text(child)
            if local == "title":
                entry["title"] = value
                entry["title_detail"] = {"type": kind, "value": value}
            elif local == "summary":
                entry["summary"] = value
                entry["summary_detail"] = {"type": kind, "value": value}
            else:
                entry["content"] = [{"type": kind, "value": value}]
        elif local in ("id", "published", "updated"):
            if len(child) or child.attrib:
                raise _Refused
            value, _ = _text_value(child, uri=local == "id")
            if local == "id":
                entry["id"] = id_link = value
            else:
                entry[f"{local}_parsed"] = _parse_date(value)
        else:
            raise _Refused
    # The id is the link when there is no alternate link (feedparser's guid rule).
    if id_link is not None and "link" not in entry:
        entry["link"] = id_link
    if "content" in entry and "summary" not in entry:
        entry["summary"] = entry["content"][0]["value"]
    if tags:
        entry["tags"] = tags
    return entry


def _atom_text(element: ET.Element) -> tuple[str, str]:
    """A text construct: text or html only (xhtml and other types go to feedparser)."""
    kind = _TEXT_TYPES.get(element.get("type"))
    if kind is None or len(element) or set(element.attrib) - {"type"}:
        raise _Refused
    value, _ = _text_value(element)
    return value, kind


def _atom_author(element: ET.Element) -> str:
    """feedparser's name, or "name (email)", from the author's own name and email."""
    if element.attrib or (element.text or "").strip():
        raise _Refused
    parts: dict[str, str] = {}
    for child in element:
        local = child.tag.removeprefix(ATOM)
        if local not in ("name", "email", "uri") or local in parts or len(child) or child.attrib:
            raise _Refused
        parts[local] = (child.text or "").strip()  # feedparser only strips these
    name, email = parts.get("name"), parts.get("email")
    if name and email:
        return f"{name} ({email})"
    return name or email or ""


def _add_atom_category(
    tags: list[dict[str, str | None]], term: str | None, scheme: str | None, label: str | None
) -> None:
    """feedparser's _add_tag for an Atom category's attributes."""
    if not term and not scheme and not label:
        return
    tag: dict[str, str | None] = {"term": term, "scheme": scheme, "label": label}
    if tag not in tags:
        tags.append(tag)

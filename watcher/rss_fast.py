"""A fast path for the feeds most of the web serves: well-formed RSS 2.0, Atom 1.0 and RSS 1.0.

feedparser reads a document through a pure-Python SAX handler, about 280 us per item;
expat building an ElementTree reads the same document in a fraction of that. This module
then walks the tree the way feedparser's handler walks the document. Every element is
filed under feedparser's own name for it (the prefix feedparser gives its namespace, else
the document's prefix, and the lowercased local name), and that name is one of three
things:

- a handler of feedparser's that is re-enacted here, step for step, on what watcher reads
  (ids, titles, links, summaries, contents, dates, authors, tags): the same bytes
  (feedparser's own encoding step), the same strip, URI join against the same ``xml:base``,
  HTML guess, UTF-8 repair and cp1252 map, the same date parser, and the same order and
  depth rules (which title wins, when a second summary becomes content);
- a name feedparser has no handler for, whose only effect is a key of its own in the entry
  (WordPress's ``post-id``, YouTube's ``yt:videoId``...): skipped, its children walked;
- a handler not re-enacted here: the whole document is refused (None), with the reason,
  and the caller uses feedparser.

Tests hold the two paths to identical items on every golden feed, on generated documents
and on a corpus of real feeds (tests/test_corpus_parse.py), so switching paths can never
renumber a feed.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any
from xml.sax.saxutils import escape

try:  # feedparser's own steps, so values come out as feedparser makes them
    from feedparser.datetimes import _parse_date
    from feedparser.encodings import convert_to_utf8
    from feedparser.exceptions import CharacterEncodingOverride, CharacterEncodingUnknown
    from feedparser.html import _cp1252
    from feedparser.mixin import _FeedParserMixin
    from feedparser.sanitizer import replace_doctype
    from feedparser.urls import _urljoin, make_safe_absolute_uri
    from feedparser.util import FeedParserDict

    AVAILABLE = True
except ImportError:  # a feedparser that moved them: everything takes the reference path
    AVAILABLE = False

ATOM = "{http://www.w3.org/2005/Atom}"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RSS10 = "http://purl.org/rss/1.0/"
_RSS090 = "http://my.netscape.com/rdf/simple/0.9/"

_LINK_REFERENCE = re.compile("&([A-Za-z0-9_]+);")
_C1_CONTROLS = re.compile("[\x80-\x9f]")  # all that feedparser's cp1252 map changes
_BASE_ATTRIBUTE = re.compile(rb"base\s*=")  # on the lowercased document: fast
# feedparser's _sync_author_detail, which splits an address out of an author's text.
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
_TAG = attrgetter("tag")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_XHTML_TYPE = "application/xhtml+xml"
_MEDIA_SCHEME = "http://search.yahoo.com/mrss/category_schema"
_ITUNES_SCHEME = "http://www.itunes.com/"
_VERSION_NAMESPACES = frozenset({_RSS10, _RSS090})
# What stands beside the channel of an RSS 1.0 document, read as it is in a channel.
_RDF_SIBLINGS = frozenset({"item", "entry", "image", "textinput"})

# feedparser's tables: its prefix for each namespace it knows ("" for RSS and Atom), the
# names it has a start or end handler for, and the names whose value it resolves as a URI.
_MATCH: dict[str, str] = {}
_STARTS: frozenset[str] = frozenset()
_ENDS: frozenset[str] = frozenset()
_RELATIVE: frozenset[str] = frozenset()
_KEYMAP: dict[str, Any] = {}
if AVAILABLE:
    _MATCH = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
    _STARTS = frozenset(n[7:] for n in dir(_FeedParserMixin) if n.startswith("_start_"))
    _ENDS = frozenset(n[5:] for n in dir(_FeedParserMixin) if n.startswith("_end_"))
    _RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
    _KEYMAP = dict(FeedParserDict.keymap)
_HANDLED = _STARTS | _ENDS
_PREFIX_NAMES = frozenset(prefix.lower() for prefix in _MATCH.values() if prefix)

# Keys feedparser's handlers read back from an entry or the feed, or that watcher reads:
# an element with no handler files its text under its own name, so one named so would
# change them.
_SENSITIVE = frozenset(
    {
        *("title", "title_detail", "summary", "summary_detail", "content", "link", "links"),
        *("id", "author", "author_detail", "authors", "publisher", "publisher_detail"),
        *("contributors", "tags", "published_parsed", "updated_parsed", "generator_detail"),
        *("media_content", "media_thumbnail", "media_credit", "media_rating", "media_player"),
        *("media_restriction", "media_license", "where", "image", "textinput", "source"),
        *("cloud", "guidislink"),
    }
)
_TITLES = frozenset({"title", "dc_title", "media_title"})
_SUMMARIES = frozenset({"description", "dc_description", "media_description"})
_SUMMARIES |= {"summary", "itunes_summary"}
_CONTENTS = frozenset({"content_encoded", "fullitem", "content", "body", "xhtml_body"})
# Text constructs whose end feedparser's handler closes as content: one inside another's
# markup is closed there too (the start is markup, the end is not), and every value read
# after it is off.
_QUIET_CONSTRUCTS = frozenset({"subtitle", "tagline", "itunes_subtitle", "rights", "copyright"})
_QUIET_CONSTRUCTS |= {"dc_rights", "info", "feedburner_browserfriendly"}
_DEFAULT_TYPES = dict.fromkeys(_QUIET_CONSTRUCTS | {"summary", "itunes_summary"}, "text/plain")
_DEFAULT_TYPES.update(dict.fromkeys(_SUMMARIES - {"summary", "itunes_summary"}, "text/html"))
# What feedparser may take for an entry, a title, a summary, a content, a text construct or
# the feed itself, wherever it stands: every one must be one read here, or the document is
# refused.
_GUARDED = frozenset({"item", "entry", "rss", "channel", "feed", "abstract"})
_GUARDED |= _TITLES | _SUMMARIES | _CONTENTS | _QUIET_CONSTRUCTS
# A <div> inside text or html that is not XHTML: feedparser drops it without counting its end,
# so every depth after it is one off. Each one must be one read here inside XHTML.
_DIVS = frozenset({"div", "xhtml_div"})
_COUNTED = _GUARDED | _DIVS


class _Refused(Exception):
    """The document holds something only feedparser reads faithfully; the message says what."""


@dataclass(frozen=True)
class Loose:
    """A document that is not well-formed, as feedparser holds it when its strict parser
    gives up: the bytes after its encoding and DOCTYPE steps, what its encoding step
    found, the headers, and expat's error. Its loose parser reads it (:func:`read_loose`)."""

    data: bytes
    found: Mapping[str, Any]
    headers: Mapping[str, str]
    error: Exception


class _NotWellFormed(_Refused):
    def __init__(self, loose: Loose) -> None:
        super().__init__("not well-formed XML: feedparser's loose parser reads it")
        self.loose = loose


Read = tuple[dict[str, Any], list[dict[str, Any]], str]


def read_fast(body: bytes, headers: Mapping[str, str]) -> Read | None:
    """feedparser's ``(feed, entries, version)`` for RSS 2.0, Atom 1.0 or RSS 1.0, or None."""
    read = read_document(body, headers)
    return read if isinstance(read, tuple) else None


def read_document(body: bytes, headers: Mapping[str, str]) -> Read | Loose | None:
    """:func:`read_fast`, and a :class:`Loose` where expat finds the document is not
    well-formed; None leaves the document to ``feedparser.parse``."""
    try:
        return _read(body, headers)
    except _NotWellFormed as exc:
        return exc.loose
    except _Refused:
        return None


def read_loose(loose: Loose, *, sanitize_html: bool, resolve_relative_uris: bool) -> Any:
    """What ``feedparser.parse`` returns for a document its strict parser rejects, without
    running that parser first. It reads the whole document up to the error through its
    Python SAX handler and keeps nothing of it but the error: on a real 521 KiB feed with
    ``&colon;`` in a title, 0.16 of a 0.59 s parse. These are feedparser 6's own steps
    after that attempt (``feedparser.api.parse``); the error is expat's, in ElementTree's
    words instead of SAX's (watcher reads it only where the document is no feed at all,
    and then asks feedparser itself: see watcher.parse)."""
    from feedparser.api import LooseFeedParser

    headers = dict(loose.headers)
    result = FeedParserDict(bozo=False, entries=[], feed=FeedParserDict(), headers=headers)
    result.update(loose.found)
    result["bozo"] = 1
    result["bozo_exception"] = loose.error
    # The base URI: a Content-Location refused the fast path before the XML was read, and
    # a stream has no address, so feedparser's is empty too. No entities: refused before.
    parser = LooseFeedParser("", headers.get("content-language"), "utf-8", {})
    parser.resolve_relative_uris = resolve_relative_uris
    parser.sanitize_html = sanitize_html
    parser.feed(loose.data.decode("utf-8", "replace"))
    result["feed"] = parser.feeddata
    result["entries"] = parser.entries
    result["version"] = parser.version  # no Netscape DOCTYPE: refused before
    result["namespaces"] = parser.namespaces_in_use
    return result


def refusal(body: bytes, headers: Mapping[str, str]) -> str | None:
    """Why the fast path leaves this document to feedparser, or None when it reads it."""
    try:
        _read(body, headers)
    except _Refused as exc:
        return str(exc)
    return None


def _read(body: bytes, headers: Mapping[str, str]) -> Read:
    if not AVAILABLE:
        raise _Refused("feedparser's internals moved")
    if "content-location" in {k.lower() for k in headers}:
        raise _Refused("a Content-Location header: a base URI for relative links")
    result: dict[str, Any] = {}
    try:
        data = to_utf8(dict(headers), body, result)
    except Exception:  # feedparser's own trouble: it is the one to report it
        raise _Refused("feedparser cannot decode it") from None
    if not result.get("encoding"):
        raise _Refused("no encoding feedparser reads strictly")
    doctype_version, data, entities = replace_doctype(data)
    if doctype_version or entities:
        raise _Refused("a Netscape DOCTYPE or declared entities")
    try:
        parser = ET.iterparse(io.BytesIO(data), events=("start-ns",))
        declarations = [ns for _, ns in parser]
        root = parser.root  # type: ignore[attr-defined]
    except ET.ParseError as exc:
        # feedparser's strict parser is expat too, on these very bytes: it fails as well.
        raise _NotWellFormed(Loose(data, result, headers, exc)) from None
    try:
        return _Document(root, declarations, data).read()
    except RecursionError:  # the walk recurses with the nesting; feedparser's handler does not
        raise _Refused("nested too deeply") from None


_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*?>")  # feedparser's, on bytes: see to_utf8
_UTF8_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>"
_UTF8 = frozenset({"utf-8", "utf8"})
_CHUNK = 1 << 16


def _feedparser_utf8(headers: dict[str, str], body: bytes, result: dict[str, Any]) -> bytes:
    data: bytes = convert_to_utf8(headers, body, result)
    return data


def to_utf8(headers: dict[str, str], body: bytes, result: dict[str, Any]) -> bytes:
    """feedparser's ``convert_to_utf8``, byte for byte and with the same ``result``, without
    its copies of a document that is UTF-8 already.

    feedparser decodes the whole body, rewrites its XML declaration in the text and
    encodes it again: three copies at once, four bytes a character once one emoji is
    in it. A 2.4 MB feed peaked at 29 MiB there, above everything else its parse
    held. Without a BOM or a UTF-16/32 start, which encoding feedparser tries first
    depends only on the headers and the document's first line (its XML declaration),
    so feedparser decides on that line alone; when its choice is UTF-8 and the whole
    body is valid UTF-8 (checked piece by piece), the outcome is known: the body with
    its declaration replaced, on bytes (a ``>`` is never part of a multibyte
    character). Anything else goes through feedparser whole."""
    newline = body.find(b"\n", 0, _CHUNK)
    head = body[:4]
    if newline < 0 or not head.isascii() or b"\x00" in head:
        # A BOM or UTF-16/32 (feedparser's sniffing), or no first line: feedparser whole.
        return _feedparser_utf8(headers, body, result)
    decided: dict[str, Any] = {}
    convert_to_utf8(headers, body[: newline + 1], decided)
    if str(decided.get("encoding", "")).lower() not in _UTF8 or isinstance(
        decided.get("bozo_exception"), (CharacterEncodingOverride, CharacterEncodingUnknown)
    ):
        return _feedparser_utf8(headers, body, result)  # not its first choice, or not UTF-8
    check = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    try:
        for start in range(0, len(body), _CHUNK):
            check.decode(view[start : start + _CHUNK])
        check.decode(b"", final=True)
    except UnicodeDecodeError:
        return _feedparser_utf8(headers, body, result)  # feedparser's next guesses
    result.update(decided)
    declaration = _XML_DECLARATION.match(body)
    if declaration is not None:
        return _UTF8_DECLARATION + body[declaration.end() :]
    return _UTF8_DECLARATION + b"\n" + body


class _Document:
    """One parsed document: feedparser's name for each element, the base URI in effect,
    and the count of the elements that only the places read here may hold."""

    def __init__(self, root: ET.Element, declarations: list[tuple[str, str]], data: bytes) -> None:
        self.root = root
        root_tag = _root_tag(data)
        # An RSS 1.0 document: its namespace, declared on the root before Atom's, makes it
        # "rss10" to feedparser from the start (feedparser's track_namespace).
        self.rss10 = (
            root.tag.lower() == f"{{{_RDF}}}rdf"
            and _declared_version(declarations) == "rss10"
            and _RSS10.encode() in root_tag.lower()
        )
        self.unknown_prefixes, self.remapped = _namespaces(declarations, root_tag, rss10=self.rss10)
        # Whether feedparser's name for an item's rdf:about is the one read here.
        self.rdf_prefix = all(uri.lower() == _RDF for name, uri in declarations if name == "rdf")
        counts = Counter(map(_TAG, root.iter()))  # counted in C: a Python step per tag only
        self.keys = {tag: self._key(tag) for tag in counts}
        self.guarded: Counter[str] = Counter()
        for tag, n in counts.items():
            key = self.keys[tag]
            if key in _COUNTED:
                self.guarded[key] += n
            elif key not in _HANDLED and _mapped(key) in _SENSITIVE:
                raise _Refused(f"<{key}>, a name feedparser files where it keeps its own")
        self.read_keys: Counter[str] = Counter()
        self.bases: dict[ET.Element, str] | None = None
        if _BASE_ATTRIBUTE.search(data.lower()):
            self.bases = _bases(root)
        self.atom = False

    def _key(self, tag: str) -> str:
        """feedparser's name for an element: its handler is _start_<name>/_end_<name>."""
        if tag[:1] == "{":
            uri, local = tag[1:].split("}", 1)
        else:
            uri, local = "", tag
        lower = uri.lower()
        if "backend.userland.com/rss" in lower:
            lower = "http://backend.userland.com/rss"
        prefix = _MATCH.get(lower)
        if prefix is None:  # a namespace feedparser does not know: the document's prefix
            prefix = self.unknown_prefixes.get(uri, "")
        prefix = prefix.lower()
        if prefix in self.remapped:
            raise _Refused(f"feedparser's prefix {prefix} bound to another namespace")
        return f"{prefix}_{local.lower()}" if prefix else local.lower()

    def base(self, element: ET.Element) -> str:
        return self.bases.get(element, "") if self.bases else ""

    def read(self) -> Read:
        root = self.root
        key = self.keys[root.tag]
        if key in _COUNTED:  # not RSS 1.0's rdf:RDF
            self.read_keys[key] += 1
        if root.tag == f"{ATOM}feed":
            self.atom = True
            feed, entries = self._feed(root, _atom_text)
            version = "atom10"
        elif key == "rss" and root.get("version", "").startswith("2.") and len(root) == 1:
            channel = root[0]
            if self.keys[channel.tag] != "channel":
                raise _Refused("an <rss> without a channel")
            self.read_keys["channel"] += 1
            feed, entries = self._feed(channel, _rss_title)
            version = "rss20"
        elif key == "rss" and root.get("version", "").startswith("2."):
            raise _Refused("an <rss> holding more than its channel")
        elif self.rss10:
            feed, entries = self._feed(self._rdf_children(root), _rss_title)
            version = "rss10"
        else:
            raise _Refused("neither RSS 2.0, Atom 1.0 nor RSS 1.0")
        if self.read_keys != self.guarded:
            missed = sorted((self.guarded - self.read_keys).keys())
            raise _Refused(f"{', '.join(f'<{k}>' for k in missed)} where it is not read")
        return feed, entries, version

    def _rdf_children(self, root: ET.Element) -> Iterator[ET.Element]:
        """RSS 1.0 keeps its items, image and text input beside the channel, not in it.
        feedparser reads them as it reads them in a channel, once the channel has ended
        (then a title outside an entry is nobody's): one stream, the channel's children
        and then the rest in document order. Before the channel, or after a first one,
        a title they hold stands at the depth of the channel's own and hides it from
        feedparser: those documents are refused, as is anything else beside the channel
        that feedparser has a handler for."""
        channel = False
        for child in root:
            key = self.keys[child.tag]
            if key == "channel" and not channel:
                channel = True
                self.read_keys[key] += 1
                yield from child
            elif key in _RDF_SIBLINGS and channel:
                yield child
            elif key in _COUNTED or key in _HANDLED:
                raise _Refused(f"<{key}> beside the channel of an RSS 1.0 document")

    def _feed(
        self,
        children: Iterable[ET.Element],
        read_title: Callable[[ET.Element], tuple[str, str]],
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The feed's title and entries, in document order, with what the feed level
        leaves to the next entry."""
        feed: dict[str, Any] = {}
        entries: list[dict[str, Any]] = []
        # feedparser's title depth: once a feed title with text is read, the next one at
        # the same depth is not, until an entry, image, text input or source resets it.
        title_read = False
        # feedparser's hasContent: a content element sets it, only the end of an entry
        # clears it, and while it is clear a second summary is taken for a content.
        has_content = False
        summary = False
        for child in children:
            key = self.keys[child.tag]
            if key in ("item", "entry"):  # feedparser's two names for one handler
                entries.append(_Entry(self, has_content).read(child))
                has_content = title_read = False
            elif key in _TITLES:
                self.read_keys[key] += 1
                value, kind = read_title(child)
                if not title_read:
                    feed = {"title": value, "title_detail": {"type": kind, "value": value}}
                    title_read = bool(value) and key != "media_title"
            elif key in _QUIET_CONSTRUCTS:
                self._construct(child, key)
            elif key in _SUMMARIES:
                self._construct(child, key)
                if summary and not has_content:
                    has_content = True
                elif key in ("summary", "itunes_summary"):
                    summary = True
            elif key in _CONTAINERS:
                self._container(child, _CONTAINERS[key])
                title_read = False
            elif key == "source":
                title_read = False
        return feed, entries

    def _construct(self, element: ET.Element, key: str) -> None:
        """A text construct of the feed's own: only its markup could reach the entries, if
        feedparser took an element inside it for one of its own."""
        self.read_keys[key] += 1
        if not len(element):
            return
        kind = _attributes(element).get("type", _DEFAULT_TYPES[key])
        if _FeedParserMixin.map_content_type(kind) != _XHTML_TYPE:
            raise _Refused(f"markup inside the feed's <{key}>")
        for inner in element.iter():
            inner_key = self.keys[inner.tag]
            if inner is not element and (inner_key in _ENDS or inner_key in _GUARDED):
                raise _Refused(f"<{inner_key}> inside the feed's <{key}>")
            if inner_key in _DIVS:
                self.read_keys[inner_key] += 1

    def _container(self, container: ET.Element, children: frozenset[str]) -> None:
        """A channel's image or text input keeps its own title and description, as long as
        feedparser still knows it is inside them: any other bare child makes it forget."""
        keys = [self.keys[child.tag] for child in container]
        guarded = [key for key in keys if key in _GUARDED]
        if not guarded:
            return
        if any(
            key not in children or len(child) for key, child in zip(keys, container, strict=True)
        ):
            raise _Refused("an image or text input whose title is the feed's")
        self.read_keys.update(guarded)


def _declared_version(declarations: list[tuple[str, str]]) -> str:
    """The version feedparser takes from the first declaration of a namespace that names
    one (its track_namespace), whatever the root element says after."""
    for prefix, uri in declarations:
        lower = uri.lower()
        if lower == _RSS090 and not prefix:
            return "rss090"
        if lower == _RSS10:
            return "rss10"
        if lower == ATOM[1:-1].lower():
            return "atom10"
    return ""


def _namespaces(
    declarations: list[tuple[str, str]], root_tag: bytes, *, rss10: bool = False
) -> tuple[dict[str, str], frozenset[str]]:
    """The document's prefix for each namespace feedparser does not know, and feedparser's
    prefix names the document gives to another namespace; refuses the declarations that
    change how feedparser reads the document.

    Binding one of feedparser's own prefix names to another namespace files every element
    of that prefix under the other one (``xmlns:dc`` bound to DC terms turns each DC
    element into a DC terms element): the document's elements may not use it. Declaring RSS
    1.0 or 0.90 makes an RSS 2.0 or Atom document "rss10" or "rss090" (``rss10``: an RSS
    1.0 document, which declares its own); declaring XLink adds the declaration to the
    declaring element's attributes (harmless on the root only).
    """
    bound: dict[str, str] = {}
    unknown: dict[str, str] = {}
    standard_uris: set[str] = set()
    borrowed: set[str] = set()
    remapped: set[str] = set()
    defaults: set[str] = set()
    xlinks = root_tag.count(b"http://www.w3.org/1999/xlink")
    for prefix, uri in declarations:
        if not uri:
            continue
        lower = uri.lower()
        if lower in _VERSION_NAMESPACES and not (rss10 and lower == _RSS10):
            raise _Refused("an RSS 1.0 or 0.90 namespace: feedparser's version changes")
        if uri == "http://www.w3.org/1999/xlink" and prefix:
            xlinks -= 1
            if xlinks < 0:
                raise _Refused("the XLink namespace below the root: feedparser adds it there")
        if "backend.userland.com/rss" in lower:
            lower = "http://backend.userland.com/rss"
        known = _MATCH.get(lower)
        if known:
            standard_uris.add(known.lower())
        if not prefix:
            if known is None:
                defaults.add(uri)
            continue
        name = prefix.lower()
        if bound.setdefault(name, lower) != lower:
            raise _Refused(f"the prefix {prefix} bound to two namespaces")
        if known is None:
            unknown.setdefault(uri, prefix)
            if name in _PREFIX_NAMES:
                borrowed.add(name)  # feedparser reads it as its own namespace of that name
        elif name in _PREFIX_NAMES and name != known.lower():
            remapped.add(name)
    if borrowed & standard_uris:
        raise _Refused("a feedparser prefix name given to two namespaces")
    if defaults & unknown.keys():  # feedparser names them by the prefix from its declaration on
        raise _Refused("a namespace both default and prefixed")
    return unknown, frozenset(remapped)


_ROOT_TAG = re.compile(rb"""<[A-Za-z_][^\s/>]*(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*/?>""")


def _root_tag(data: bytes) -> bytes:
    """The root element's start tag (the first that is not a declaration, comment or PI)."""
    found = _ROOT_TAG.search(data)
    return found.group(0) if found else b""


def _mapped(key: str) -> str:
    """The key feedparser's dictionaries file a name under."""
    mapped = _KEYMAP.get(key, key)
    return str(mapped[0] if isinstance(mapped, list) else mapped)


def _attributes(element: ET.Element) -> dict[str, str]:
    """An element's attributes as feedparser's strict parser hands them to its handlers:
    a known namespace's prefix on the name, then every local name again, names lowercased,
    ``rel`` and ``type`` values lowercased."""
    attrib = element.attrib
    if not attrib:
        return {}
    named: dict[str, str] = {}
    first: dict[str, str] = {}
    for name, value in attrib.items():
        if name[:1] == "{":
            uri, local = name[1:].split("}", 1)
            prefix = _MATCH.get(uri.lower(), "")
            named[(f"{prefix}:{local}" if prefix else local).lower()] = value
        else:
            local = name
            named[local.lower()] = value
        first.setdefault(local, value)
    for local, value in first.items():
        named[local.lower()] = value
    for name in ("rel", "type"):
        if name in named:
            named[name] = named[name].lower() or named[name]
    return named


def _bases(root: ET.Element) -> dict[ET.Element, str]:
    """The base URI feedparser holds at each element: ``xml:base`` (or any ``base``
    attribute) joined to the one before, and on an element's end the parent's back, unless
    the parent had none: then the last one stays (feedparser's own behaviour)."""
    bases: dict[ET.Element, str] = {}
    current = ""
    stack: list[str] = []
    walk: list[tuple[ET.Element, bool]] = [(root, True)]
    while walk:
        element, starting = walk.pop()
        if not starting:
            stack.pop()
            if stack and stack[-1]:
                current = stack[-1]
            continue
        attributes = _attributes(element)
        given = attributes.get("xml:base", attributes.get("base")) or current
        if current:
            current = make_safe_absolute_uri(current, given) or current
        else:
            current = _urljoin(current, given)
        stack.append(current)
        bases[element] = current
        walk.append((element, False))
        walk.extend((child, True) for child in reversed(element))
    return bases


# A channel's image and text input keep their own title, as long as feedparser still knows
# it is inside them: any other bare child makes it forget, and the next title is the feed's.
_CONTAINERS = {
    "image": frozenset({"title", "link", "description", "url", "href", "width", "height"}),
    "textinput": frozenset({"title", "link", "description", "name"}),
}


def _rss_title(element: ET.Element) -> tuple[str, str]:
    """A channel title, read like an item's: plain text only (dc:title takes the same steps)."""
    if element.attrib or len(element):
        raise _Refused("a feed title with a type or markup inside")
    value = _repair((element.text or "").strip())
    kind = "text/html" if _FeedParserMixin.looks_like_html(value) else "text/plain"
    return value, kind


_TEXT_TYPES = {None: "text/plain", "text": "text/plain", "html": "text/html"}


def _atom_text(element: ET.Element) -> tuple[str, str]:
    """An Atom feed title: text or html only."""
    kind = _TEXT_TYPES.get(element.get("type"))
    if kind is None or len(element) or set(element.attrib) - {"type"}:
        raise _Refused("a feed title with another type or markup inside")
    return _repair((element.text or "").strip()), kind


def _repair(value: str) -> str:
    """feedparser's last steps on every value: the UTF-8-read-as-Latin-1 repair, the cp1252
    map."""
    if value.isascii():
        return value  # both steps leave ASCII as it is
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    if _C1_CONTROLS.search(value):  # translate() is slow on non-ASCII text: only if needed
        value = value.translate(_cp1252)
    return value


Handler = Callable[["_Entry", ET.Element, str, int], None]


class _Entry:
    """One entry as feedparser's handler builds it: the keys watcher reads, and the state
    of feedparser's that decides them (title depth, per-key depth, hasContent, authors)."""

    __slots__ = (
        *("authors", "depths", "doc", "entry", "guid_is_link", "has_content", "tags"),
        "title_depth",
    )

    def __init__(self, doc: _Document, has_content: bool) -> None:
        self.doc = doc
        self.entry: dict[str, Any] = {}
        self.depths: dict[str, int] = {}
        self.tags: list[dict[str, str | None]] = []
        self.authors: list[dict[str, str]] = []
        self.title_depth = -1
        self.has_content = has_content
        self.guid_is_link = False

    def read(self, element: ET.Element) -> dict[str, Any]:
        self.doc.read_keys[self.doc.keys[element.tag]] += 1
        attributes = _attributes(element)
        if {"lastmod", "href"} & attributes.keys():
            raise _Refused("an entry with a date or link in its attributes")
        about = self.about(element)
        if about:
            self.entry["id"] = about  # as given: feedparser neither strips nor resolves it
        self.walk(element, 1)
        if self.tags:
            self.entry["tags"] = self.tags
        return self.entry

    def about(self, element: ET.Element) -> str | None:
        """An RSS 1.0 item's ``rdf:about``, its id until an element gives one (feedparser's
        _start_item). feedparser looks for it by the name "rdf:about" among attribute names
        made from the namespace's prefix or the document's: an ``about`` in another
        namespace, or the prefix rdf bound to another, is refused."""
        found = [
            (name, value)
            for name, value in element.attrib.items()
            if name[:1] == "{" and name.rpartition("}")[2].lower() == "about"
        ]
        if not found:
            return None
        if len(found) > 1 or found[0][0].lower() != f"{{{_RDF}}}about" or not self.doc.rdf_prefix:
            raise _Refused("an entry with an about attribute feedparser may read otherwise")
        return found[0][1]

    def walk(self, parent: ET.Element, depth: int) -> None:
        keys = self.doc.keys
        for child in parent:
            key = keys[child.tag]
            if key in _COUNTED:
                self.doc.read_keys[key] += 1
            handler = _HANDLERS.get(key)
            if handler is not None:
                handler(self, child, key, depth)
            elif key in _HANDLED:
                raise _Refused(f"<{key}> in an entry")
            elif len(child):  # no handler: its text is filed under its own name
                self.walk(child, depth + 1)

    # -- feedparser's pop(): one element's text to the entry ------------------------------

    def pop(
        self,
        value: str,
        name: str,
        depth: int,
        element: ET.Element,
        kind: dict[str, str] | None = None,
    ) -> str:
        """feedparser's pop() for an element's joined text: its value, stored where
        feedparser stores it (``kind`` holds a content element's type)."""
        output = value.strip()
        if output and name in _RELATIVE and (name != "id" or self.guid_is_link):
            output = _urljoin(self.doc.base(element), output)
        if (
            kind is not None
            and not self.doc.atom
            and kind["type"] == "text/plain"
            and _FeedParserMixin.looks_like_html(output)
        ):
            kind["type"] = "text/html"
        output = _repair(output)
        if name in ("category", "tags", "itunes_keywords"):
            return output
        if name == "title" and -1 < self.title_depth <= depth:
            return output
        entry = self.entry
        if name == "content":
            assert kind is not None
            entry.setdefault("content", []).append({"type": kind["type"], "value": output})
        elif name == "link":
            output = _LINK_REFERENCE.sub(r"&\g<1>", output.replace("&amp;", "&"))
            entry["link"] = output
        elif name in ("title", "description", "summary", "id", "author"):
            if name == "description":
                name = "summary"
            old = self.depths.get(name)
            if old is None or depth <= old:
                self.depths[name] = depth
                entry[name] = output
            if kind is not None:
                entry[f"{name}_detail"] = {"type": kind["type"], "value": output}
        return output

    def leaf(self, element: ET.Element, key: str) -> str:
        if len(element):
            raise _Refused(f"<{key}> with elements inside")
        return element.text or ""

    def kind(self, attributes: dict[str, str], default: str) -> dict[str, str]:
        """feedparser's push_content(): the type of a text construct; base64 refused."""
        kind = _FeedParserMixin.map_content_type(attributes.get("type", default))
        if attributes.get("mode") == "base64" or not (
            kind.startswith("text/") or kind.endswith(("+xml", "/xml"))
        ):
            raise _Refused(f"content of type {kind}, which feedparser decodes as base64")
        return {"type": kind}

    def construct(self, element: ET.Element, kind: dict[str, str]) -> str:
        """A text construct's joined text, markup inside serialized as feedparser does."""
        if not len(element):
            text = element.text or ""
            return escape(text) if kind["type"] == _XHTML_TYPE else text
        if kind["type"].endswith("xml") and kind["type"] != _XHTML_TYPE:
            # Neither markup nor escaped: feedparser's handlers take the elements inside.
            raise _Refused(f"elements inside content of type {kind['type']}")
        pieces: list[str] = []
        _Markup(self.doc, kind, pieces).inside(element)
        if self.doc.atom and kind["type"] == _XHTML_TYPE:
            _unwrap_div(pieces)
        return "".join(pieces)

    def text_construct(
        self, element: ET.Element, name: str, default: str, depth: int
    ) -> tuple[str, dict[str, str]]:
        kind = self.kind(_attributes(element), default)
        return self.pop(self.construct(element, kind), name, depth, element, kind), kind

    # -- the handlers ---------------------------------------------------------------------

    def title(self, element: ET.Element, key: str, depth: int) -> None:
        before = self.title_depth
        value, _ = self.text_construct(element, "title", "text/plain", depth)
        if value:
            self.title_depth = depth
        if key == "media_title":
            self.title_depth = before

    def description(self, element: ET.Element, key: str, depth: int) -> None:
        if "summary" in self.entry and not self.has_content:
            self.content(element, "content", depth)  # a second summary: feedparser's content
        else:
            self.text_construct(element, "description", "text/html", depth)

    def summary(self, element: ET.Element, key: str, depth: int) -> None:
        if "summary" in self.entry and not self.has_content:
            self.content(element, "content", depth)
        else:
            self.text_construct(element, "summary", "text/plain", depth)

    def content(self, element: ET.Element, key: str, depth: int) -> None:
        self.has_content = True
        default = "text/plain" if key == "content" else "text/html"
        value, kind = self.text_construct(element, "content", default, depth)
        if _FeedParserMixin.map_content_type(kind["type"]) in {"text/plain"} | _HTML_TYPES:
            self.entry.setdefault("summary", value)

    def link(self, element: ET.Element, key: str, depth: int) -> None:
        attributes = _attributes(element)
        rel = attributes.setdefault("rel", "alternate")
        kind = attributes.get("type", "application/atom+xml" if rel == "self" else "text/html")
        href = attributes.get("url", attributes.get("uri", attributes.get("href")))
        if href:
            attributes["href"] = href
        if "href" in attributes:
            if len(element):
                raise _Refused("a link with elements inside")
            if rel == "alternate" and _FeedParserMixin.map_content_type(kind) in _HTML_TYPES:
                self.entry["link"] = _urljoin(self.doc.base(element), attributes["href"])
        else:
            self.pop(self.leaf(element, key), "link", depth, element)

    def guid(self, element: ET.Element, key: str, depth: int) -> None:
        self.guid_is_link = _attributes(element).get("ispermalink", "true") == "true"
        value = self.pop(self.leaf(element, key), "id", depth, element)
        if self.guid_is_link:
            self.entry.setdefault("link", value)

    def published(self, element: ET.Element, key: str, depth: int) -> None:
        value = self.pop(self.leaf(element, key), "published", depth, element)
        self.entry["published_parsed"] = _parse_date(value)

    def updated(self, element: ET.Element, key: str, depth: int) -> None:
        value = self.pop(self.leaf(element, key), "updated", depth, element)
        self.entry["updated_parsed"] = _parse_date(value)

    def category(self, element: ET.Element, key: str, depth: int) -> None:
        attributes = _attributes(element)
        if key == "media_category":
            attributes.setdefault("scheme", _MEDIA_SCHEME)
        scheme = attributes.get("scheme", attributes.get("domain"))
        self.add_tag(attributes.get("term"), scheme, attributes.get("label"))
        self.end_category(self.pop(self.leaf(element, key), "category", depth, element))

    def itunes_category(self, element: ET.Element, key: str, depth: int) -> None:
        self.add_tag(_attributes(element).get("text"), _ITUNES_SCHEME, None)
        text = element.text or ""
        for child in element:  # categories inside categories: each one's tag comes first
            if self.doc.keys[child.tag] != "itunes_category":
                raise _Refused("an iTunes category holding something else")
            self.itunes_category(child, key, depth + 1)
            text += child.tail or ""
        self.end_category(self.pop(text, "category", depth, element))

    def keywords(self, element: ET.Element, key: str, depth: int) -> None:
        if element.attrib:
            if len(element):
                raise _Refused(f"<{key}> with elements inside")
            return  # feedparser files the attributes and never reads the text
        value = self.pop(self.leaf(element, key), key, depth, element)
        scheme = _ITUNES_SCHEME if key == "itunes_keywords" else None
        for term in value.split(","):
            if term.strip():
                self.add_tag(term.strip(), scheme, None)

    def add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        if not term and not scheme and not label:
            return
        tag = {"term": term, "scheme": scheme, "label": label}
        if tag not in self.tags:
            self.tags.append(tag)

    def end_category(self, value: str) -> None:
        """feedparser's _end_category: a tag opened by attributes takes the text as its term."""
        if not value:
            return
        if self.tags and not self.tags[-1]["term"]:
            self.tags[-1]["term"] = value
        else:
            self.add_tag(value, None, None)

    def author(self, element: ET.Element, key: str, depth: int) -> None:
        self.authors.append({})
        text = element.text or ""
        for child in element:
            child_key = self.doc.keys[child.tag]
            handler = _AUTHOR_PARTS.get(child_key)
            if handler is not None:
                handler(self, child, child_key, depth + 1)
            elif child_key in _TITLES:  # the entry's, as anywhere in it
                self.doc.read_keys[child_key] += 1
                self.title(child, child_key, depth + 1)
            elif child_key in _HANDLED or len(child):
                raise _Refused(f"<{child_key}> in an author")
            elif child.attrib:  # no handler and attributes: feedparser pushes nothing
                text += child.text or ""
            text += child.tail or ""
        self.pop(text, "author", depth, element)
        self.sync_author()

    def author_part(self, element: ET.Element, key: str, depth: int) -> None:
        """An author's name, email or uri (only in an author: elsewhere feedparser files them
        nowhere watcher reads): the first two only stripped, the uri resolved."""
        text = self.leaf(element, key)
        if key in ("name", "email", "itunes_name", "itunes_email"):
            value = text.strip()
            part = key.removeprefix("itunes_")
        else:
            value = self.pop(text, "href", depth, element)
            part = "href"
        self.sync_author()  # feedparser's _save_author syncs before it stores
        self.authors[-1][part] = value

    def sync_author(self) -> None:
        """feedparser's _sync_author_detail: the author from the last author's parts, or
        the last author's parts from its text."""
        entry = self.entry
        detail = self.authors[-1] if self.authors else {}
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                entry["author"] = f"{name} ({email})"
            elif name:
                entry["author"] = name
            elif email:
                entry["author"] = email
            return
        author, address = entry.get("author"), None
        if not author:
            return
        found = _EMAIL.search(author)
        if found:
            address = found.group(0)
            author = author.replace(address, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author:
            detail["name"] = author
        if address:
            detail["email"] = address

    def image(self, element: ET.Element, key: str, depth: int) -> None:
        """An image of the entry's own: it lets the next title be the entry's again, and its
        own title is one (feedparser stores it in the entry). Its link is not stored, and
        what else it holds would go to the feed's image."""
        self.title_depth = -1
        for child in element:
            child_key = self.doc.keys[child.tag]
            if child_key == "title":
                self.doc.read_keys[child_key] += 1
                self.title(child, child_key, depth + 1)
            elif (
                child_key not in _IMAGE_PARTS
                or len(child)
                or (child_key == "link" and {"href", "url", "uri"} & _attributes(child).keys())
            ):
                raise _Refused(f"<{child_key}> in an entry's image")

    def source(self, element: ET.Element, key: str, depth: int) -> None:
        """The feed an entry was copied from: what it holds goes to the source, not the
        entry, but it lets the next title be the entry's again, and its own titles count."""
        self.title_depth = -1
        self.inside_source(element, depth + 1)

    def inside_source(self, parent: ET.Element, depth: int) -> None:
        for child in parent:
            key = self.doc.keys[child.tag]
            if key in _TITLES:
                self.doc.read_keys[key] += 1
                kind = self.kind(_attributes(child), "text/plain")
                value = _repair(self.construct(child, kind).strip())
                if value and key != "media_title":
                    self.title_depth = depth
            elif key in _QUIET_CONSTRUCTS and not len(child):
                self.doc.read_keys[key] += 1
            elif key in _COUNTED or key in _SOURCE_REFUSED:
                raise _Refused(f"<{key}> in an entry's source")
            elif key in _HANDLED and key not in _SOURCE_NESTING and len(child):
                raise _Refused(f"<{key}> with elements inside, in an entry's source")
            else:
                self.inside_source(child, depth + 1)

    def chapters(self, element: ET.Element, key: str, depth: int) -> None:
        """Podlove chapters: filed from attributes, and each chapter needs its start."""
        for inner in element.iter():
            if self.doc.keys[inner.tag] == "psc_chapter" and "start" not in _attributes(inner):
                raise _Refused("a Podlove chapter without a start: feedparser fails on it")
        self.walk(element, depth + 1)

    def ignored(self, element: ET.Element, key: str, depth: int) -> None:
        """A handler whose value lands in keys watcher never reads."""
        self.leaf(element, key)

    def container(self, element: ET.Element, key: str, depth: int) -> None:
        """A handler that files attributes only: its children are the entry's."""
        self.walk(element, depth + 1)


_AUTHOR_PARTS: dict[str, Handler] = {
    key: _Entry.author_part
    for key in ("name", "email", "uri", "url", "homepage", "itunes_name", "itunes_email")
}

# What an entry's image may hold: feedparser stays inside the image for these only.
_IMAGE_PARTS = frozenset({"title", "link", "url", "width", "height"})
# Inside a source: what would set hasContent, open a summary, an entry or an image.
_SOURCE_REFUSED = frozenset({"image", "textinput", "source", "tags", "psc_chapters"})
_SOURCE_NESTING = frozenset({"author", "contributor", "media_content", "media_group"})

_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(("title", "dc_title", "media_title"), _Entry.title),
    **dict.fromkeys(("description", "dc_description", "media_description"), _Entry.description),
    **dict.fromkeys(("summary", "itunes_summary"), _Entry.summary),
    **dict.fromkeys(("content_encoded", "fullitem", "content"), _Entry.content),
    "link": _Entry.link,
    **dict.fromkeys(("guid", "id"), _Entry.guid),
    **dict.fromkeys(("pubdate", "published", "issued", "dcterms_issued"), _Entry.published),
    **dict.fromkeys(
        ("updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"), _Entry.updated
    ),
    **dict.fromkeys(("category", "keywords", "dc_subject", "media_category"), _Entry.category),
    "itunes_category": _Entry.itunes_category,
    **dict.fromkeys(("media_keywords", "itunes_keywords"), _Entry.keywords),
    **dict.fromkeys(
        ("author", "managingeditor", "dc_author", "dc_creator", "itunes_author"), _Entry.author
    ),
    "image": _Entry.image,
    "source": _Entry.source,
    **dict.fromkeys(("media_content", "media_group", "psc_chapter"), _Entry.container),
    "psc_chapters": _Entry.chapters,
    **dict.fromkeys(
        (
            *("created", "dcterms_created", "expirationdate", "dcterms_valid", "enclosure"),
            *("subtitle", "tagline", "itunes_subtitle", "rights", "copyright", "dc_rights"),
            *("info", "feedburner_browserfriendly", "generator", "language", "dc_language"),
            *("webmaster", "dc_publisher", "newlocation", "media_thumbnail", "media_rating"),
            *("media_credit", "media_restriction", "media_license", "media_player"),
            *("cc_license", "itunes_image", "itunes_link"),
            *("itunes_block", "itunes_explicit", "georss_point", "georss_line"),
            *("georss_polygon", "georss_box", "width", "height", "dc_contributor"),
            *("name", "email", "url", "homepage", "uri", "itunes_name", "itunes_email"),
        ),
        _Entry.ignored,
    ),
}


class _Markup:
    """Markup inside a text construct, as feedparser's handler writes it back out: tags
    rebuilt from the parsed elements, text escaped once the type is XHTML. Markup inside
    text or html is taken for XHTML from its first element on."""

    def __init__(self, doc: _Document, kind: dict[str, str], pieces: list[str]) -> None:
        self.doc = doc
        self.kind = kind
        self.pieces = pieces

    def text(self, text: str | None) -> None:
        if text:
            self.pieces.append(escape(text) if self.kind["type"] == _XHTML_TYPE else text)

    def inside(self, element: ET.Element) -> None:
        self.text(element.text)
        for child in element:
            self.element(child)
            self.text(child.tail)

    def element(self, element: ET.Element) -> None:
        key = self.doc.keys[element.tag]
        local = element.tag.rsplit("}", 1)[-1].lower()
        if key in _ENDS or key in _GUARDED or local in ("svg", "math"):
            raise _Refused(f"<{key}> inside markup: feedparser's handler takes it")
        if key in _DIVS:
            self.doc.read_keys[key] += 1
        if not self.kind["type"].endswith("xml"):
            if self.doc.atom:  # expat's text pieces would decide where the <div> ends
                raise _Refused("markup inside an Atom text or html construct")
            if key in _DIVS:  # TypePad's wrapper: feedparser drops it, and its depth with it
                raise _Refused("a <div> inside text or html: feedparser loses count of depth")
            self.kind["type"] = _XHTML_TYPE
        attributes = "".join(
            f' {name}="{escape(value, {chr(34): "&quot;"})}"'
            for name, value in _attributes(element).items()
        )
        self.pieces.append(f"<{local}{attributes}>")
        self.inside(element)
        self.pieces.append(f"</{local}>")


def _unwrap_div(pieces: list[str]) -> None:
    """feedparser's pop() for Atom XHTML: the enclosing <div> taken off, if it encloses all."""
    while len(pieces) > 1 and not pieces[-1].strip():
        del pieces[-1]
    while len(pieces) > 1 and not pieces[0].strip():
        del pieces[0]
    if (
        pieces
        and (pieces[0] == "<div>" or pieces[0].startswith("<div "))
        and pieces[-1] == "</div>"
    ):
        depth = 0
        for piece in pieces[:-1]:
            if piece.startswith("</"):
                depth -= 1
                if depth == 0:
                    return
            elif piece.startswith("<") and not piece.endswith("/>"):
                depth += 1
        pieces[:] = pieces[1:-1]

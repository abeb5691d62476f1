"""OPML in and out: feed lists from other readers, and a config's feeds for them.

Reading refuses documents that declare entities (as parse.py does for feeds); adding
feeds to a config goes through ruamel.yaml, so the user's comments and layout stay.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from watcher.config import Config
from watcher.exceptions import WatcherError
from watcher.identity import canonical_link
from watcher.text import fold, transliterate


class OpmlError(WatcherError):
    """An OPML file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class OpmlFeed:
    name: str
    url: str
    tags: tuple[str, ...] = ()


def _slug(text: str) -> str:
    """A feed name from a title in any script: Українська правда -> ukrainska-pravda
    (anyascii, as rules transliterate), not "feed"."""
    ascii_text = transliterate(fold(text))
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:60] or "feed"


def read_opml(path: Path) -> list[OpmlFeed]:
    """The feeds (outlines with an xmlUrl) of an OPML file; folders become tags."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OpmlError(f"{path}: cannot read: {exc.strerror}") from None
    if b"<!ENTITY" in data.upper():
        raise OpmlError(f"{path}: the document declares XML entities; refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OpmlError(f"{path}: not valid XML: {exc}") from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise OpmlError(f"{path}: not an OPML document (no <opml><body>)")
    found: list[OpmlFeed] = []

    def walk(node: ET.Element, folders: tuple[str, ...]) -> None:
        for outline in node.findall("outline"):
            label = outline.get("title") or outline.get("text") or ""
            url = outline.get("xmlUrl")
            if url:
                categories = (
                    c.strip("/").split("/")[-1] for c in outline.get("category", "").split(",")
                )
                tags = tuple(
                    dict.fromkeys([*folders, *(_slug(c) for c in categories if c.strip())])
                )
                found.append(OpmlFeed(label or url, url.strip(), tags))
            else:
                walk(outline, (*folders, _slug(label)) if label else folders)

    walk(body, ())
    return found


@dataclass(frozen=True)
class Skipped:
    """An OPML feed not imported, and why."""

    name: str
    url: str
    reason: str


def new_feeds(
    found: Iterable[OpmlFeed], config: Config | None
) -> tuple[list[dict[str, object]], list[Skipped]]:
    """Feed entries for the config (unique names, URLs it does not have yet), and the
    feeds left out: already in the config (the same address, http or https, with or
    without www.), listed twice, or not http(s)."""
    taken = {f.name for f in config.feeds} if config else set()
    known = {
        canonical_link(f.url)[0]: f"already in the config as {f.name!r}"
        for f in (config.feeds if config else ())
    }
    entries: list[dict[str, object]] = []
    skipped: list[Skipped] = []
    for feed in found:
        if not feed.url.startswith(("http://", "https://")):
            skipped.append(Skipped(feed.name, feed.url, "not an http(s) URL"))
            continue
        key = canonical_link(feed.url)[0]
        if key in known:
            skipped.append(Skipped(feed.name, feed.url, known[key]))
            continue
        base = name = _slug(feed.name)
        n = 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        known[key] = f"listed twice: imported once, as {name!r}"
        entry: dict[str, object] = {"name": name, "url": feed.url}
        if feed.tags:
            entry["tags"] = list(feed.tags)
        entries.append(entry)
    return entries, skipped


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def as_yaml(entries: Sequence[dict[str, object]]) -> str:
    out = io.StringIO()
    _yaml().dump({"feeds": entries}, out)
    return out.getvalue()


def append_feeds(config_text: str, entries: Sequence[dict[str, object]]) -> str:
    """The config text with the entries added to ``feeds:``, comments kept."""
    yaml = _yaml()
    doc = yaml.load(config_text) if config_text.strip() else CommentedMap()
    if doc is None:
        doc = CommentedMap()
    feeds = doc.get("feeds")
    if feeds is None:
        feeds = doc["feeds"] = CommentedSeq()
    for entry in entries:
        item = CommentedMap(entry)
        if "tags" in item:
            tags = CommentedSeq(item["tags"])
            tags.fa.set_flow_style()
            item["tags"] = tags
        feeds.append(item)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def to_opml(config: Config, *, title: str = "watcher feeds") -> str:
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{_text(title)}</title></head>",
        "  <body>",
    ]
    for feed in config.feeds:
        category = f" category={quoteattr(','.join(feed.tags))}" if feed.tags else ""
        lines.append(
            f'    <outline type="rss" text={quoteattr(feed.name)} title={quoteattr(feed.name)} '
            f"xmlUrl={quoteattr(feed.url)}{category}/>"
        )
    lines += ["  </body>", "</opml>"]
    return "\n".join(lines) + "\n"


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

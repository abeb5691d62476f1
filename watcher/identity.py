"""Item identity: the primary id, the secondary keys, and which items of a poll are new.

Owns what "the same item" means. An item's primary identity is its guid, else its link
without tracking parameters, else its folded title (and date). Its secondary keys, kept
for every item seen, give a second opinion when the primary identity is new: the
canonical link (scheme, ``www.``, trailing slash, tracking parameters and boilerplate
fragments folded away) and the title fingerprint (folded title plus the published
minute). A secondary key counts only when it is unambiguous and nothing contradicts
it; when in doubt an item is new, because a duplicate is a nuisance and a missed item
is a failure. Pure: the store reads what was seen, :func:`classify` decides.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from watcher.models import Item
from watcher.text import fold

# Query parameters that say where a click came from, never what the page is. The primary
# identity (a guid-less item's link) drops the first list, as it always has; the canonical
# link, a second opinion that may be ambiguous, drops both.
_PRIMARY_TRACKING_NAMES = (
    r"utm_[a-z_]+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid"
    r"|_hsenc|_hsmi|mkt_tok|oly_enc_id|oly_anon_id|vero_id|wt_mc|at_medium|at_campaign"
)
_PRIMARY_TRACKING = re.compile(f"^({_PRIMARY_TRACKING_NAMES})$", re.IGNORECASE)
TRACKING_PARAMS = re.compile(
    f"^({_PRIMARY_TRACKING_NAMES}"
    r"|ref|ref_src|ref_url|xtor|cmpid|ncid|ocid|smid|sr_share|s_cid|icid|ito|spm|_ga|_gl"
    r"|__twitter_impression|rss)$",
    re.IGNORECASE,
)
# Fragments that point into a page rather than name an entry of it.
_BOILERPLATE_FRAGMENT = re.compile(
    r"^(comments?|respond|reply|disqus_thread|more(-\d+)?|main|content|top|article|story"
    r"|page|post|entry|maincontent|main-content|skip|read-more|continue-reading"
    r"|(xtor|utm_[a-z_]+|ref|at_medium|at_campaign)=.*|)$",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\w+")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def clean_link(link: str) -> str:
    """The link without tracking parameters, so a re-tagged link stays the same item."""
    link = link.strip()
    try:
        parts = urlsplit(link)
    except ValueError:
        return link
    if not parts.query:
        return link
    pairs = parts.query.split("&")
    kept = [p for p in pairs if p and not _PRIMARY_TRACKING.match(p.split("=", 1)[0])]
    if len(kept) == len(pairs):
        return link
    return urlunsplit(parts._replace(query="&".join(kept)))


@functools.lru_cache(maxsize=8192)
def title_key(title: str) -> str:
    """The folded words of a title: case, accents, punctuation and spacing do not count."""
    return " ".join(_WORDS.findall(fold(title)))


def minute(published: datetime | None) -> str:
    """A date to the minute, UTC: RSS and Atom copies of one entry agree on that much."""
    return published.strftime("%Y-%m-%dT%H:%M") if published is not None else ""


def primary_identity(
    guid: str, link: str, title: str, text: str, published: datetime | None = None
) -> str:
    """guid; else the cleaned link; else the folded title (and date): editing the text of
    an item without guid or link must not make it new. Only an item with none of these
    is identified by a hash of its text."""
    if guid.strip():
        return guid.strip()
    if link.strip():
        return clean_link(link)
    words = title_key(title)
    if words:
        digest = hashlib.sha256(f"{words}\n{minute(published)}".encode()).hexdigest()
        return f"title:{digest[:40]}"
    digest = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
    return f"sha256:{digest[:40]}"


def one_per_identity(items: Iterable[Item]) -> tuple[Item, ...]:
    """Two entries with one identity in one document are one item (the first wins),
    except where the identity is a web address (a link, or a permalink guid) and the
    entries' titles or dates differ: a status page or a live blog that gives every entry
    the same page. Those are distinct items. The oldest keeps the address as its id, as
    when it was alone in the feed; each other one takes the address and a hash of its
    title and date, the same on every poll, so a later entry is new and stays known."""
    listed = list(items)
    by_id: dict[str, list[Item]] = {}
    for item in listed:
        by_id.setdefault(item.id, []).append(item)
    groups: dict[str, dict[tuple[str, str], Item]] = {}
    for key, members in by_id.items():
        if len(members) > 1:  # rare: only then are titles folded
            group = groups[key] = {}
            for item in members:
                group.setdefault((title_key(item.title), minute(item.published)), item)
    renamed: dict[int, str] = {}
    for key, group in groups.items():
        if len(group) < 2 or not key.lower().startswith(("http://", "https://")):
            continue
        members = list(group.values())
        dated = [m for m in members if m.published is not None]
        keeper = min(dated, key=lambda m: m.published or datetime.min) if dated else members[-1]
        for (words, when), member in group.items():
            if member is not keeper:
                digest = hashlib.sha256(f"{words}\n{when}".encode()).hexdigest()[:16]
                renamed[id(member)] = f"{key}#entry-{digest}"
    out: dict[str, Item] = {}
    for item in listed:
        if item.id in groups:  # the first entry with these words and date stands for all
            item = groups[item.id][(title_key(item.title), minute(item.published))]
        new_id = renamed.get(id(item))
        if new_id is not None:
            out.setdefault(new_id, replace(item, id=new_id))
        else:
            out.setdefault(item.id, item)
    return tuple(out.values())


@functools.lru_cache(maxsize=8192)
def canonical_link(link: str) -> tuple[str, str]:
    """(key, fragment): the link as the same page however it is written, and the fragment
    that may tell entries of one page apart ('' when none, or only boilerplate).

    The key drops the scheme (http and https are one page), ``www.``, the default port,
    a trailing slash, tracking parameters and the fragment, and sorts the query.
    """
    link = link.strip()
    if not link:
        return "", ""
    try:
        parts = urlsplit(link)
        port = parts.port
    except ValueError:
        return link, ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return link, ""
    host = parts.hostname.lower().removeprefix("www.")
    if port is not None and str(port) not in _DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    path = re.sub("/{2,}", "/", parts.path).rstrip("/")
    query = ""
    if parts.query:
        pairs = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not TRACKING_PARAMS.match(k)
        ]
        query = urlencode(sorted(pairs))
    key = urlunsplit(("", host, path, query, "")).removeprefix("//")
    fragment = parts.fragment
    return key, "" if _BOILERPLATE_FRAGMENT.match(fragment) else fragment


@dataclass(frozen=True)
class Keys:
    """The secondary keys of one item."""

    link: str  # canonical link ('' when the item has none)
    fragment: str  # the fragment that may tell entries apart
    title: str  # folded title words ('' when untitled)
    published: str  # the published minute ('' when undated)

    @property
    def path(self) -> str:
        """The canonical link without its host: a feed that moves domain keeps its paths."""
        return self.link.partition("/")[2] if self.link else ""


def item_keys(item: Item) -> Keys:
    link, fragment = canonical_link(item.link)
    return Keys(link, fragment, title_key(item.title), minute(item.published))


@dataclass(frozen=True)
class Seen:
    """An item recorded earlier, as far as identity needs it."""

    item_id: str
    thing: str  # the first id this item was seen under: renumberings share it
    keys: Keys


@dataclass(frozen=True)
class Known:
    """What the store knows of a feed for one poll's items."""

    ids: frozenset[str] = frozenset()  # primary ids already seen
    by_link: Mapping[str, Sequence[Seen]] = field(default_factory=dict)
    by_title: Mapping[str, Sequence[Seen]] = field(default_factory=dict)


@dataclass(frozen=True)
class Classified:
    """One poll's items, by what they are to this feed."""

    known: tuple[Item, ...] = ()  # seen before under this primary identity
    renumbered: tuple[tuple[Item, Seen], ...] = ()  # a new identity for an item seen before
    new: tuple[Item, ...] = ()  # new by every key: these may alert
    keys: Mapping[str, Keys] = field(default_factory=dict)  # item id -> keys, new ones only
    shared_links: frozenset[str] = frozenset()  # canonical links other items also carry


def _one_thing(rows: Iterable[Seen]) -> Seen | None:
    """The seen item these rows are, if they are all one item (renumberings of it)."""
    found: Seen | None = None
    for row in rows:
        if found is not None and row.thing != found.thing:
            return None
        found = found or row
    return found


def _link_contradicted(keys: Keys, seen: Seen) -> bool:
    """A link match that the rest of the item denies: another entry of the same page
    (fragments differ), or another post (titles differ, and dates do not agree)."""
    other = seen.keys
    if keys.fragment and other.fragment and keys.fragment != other.fragment:
        return True
    if keys.title and other.title and keys.title != other.title:
        return not (keys.published and keys.published == other.published)
    return False


def _title_contradicted(keys: Keys, seen: Seen) -> bool:
    """A title match whose links point at different pages."""
    return bool(keys.path and seen.keys.path and keys.path != seen.keys.path)


def classify(
    items: Sequence[Item], known: Known, keys: Mapping[str, Keys] | None = None
) -> Classified:
    """Which of a document's items are known, renumbered, or new.

    An item new by its primary identity is the same as a seen one when its canonical
    link, or its title fingerprint (folded title and date), names exactly one seen item,
    no other item of the document shares that key, nothing contradicts it, and the seen
    item is not itself still in the document under its old id. A title alone (either side
    undated), or a title and date whose links disagree, counts only inside a renumbering:
    when at least two, and most, of the poll's new-by-id items match seen items. So a
    feed that moves every item to new ids and new links is recognised, and a lone item
    with a recycled title and a new link is new.
    """
    fresh = [item for item in items if item.id not in known.ids]
    old = tuple(item for item in items if item.id in known.ids)
    if not fresh:
        return Classified(known=old)
    if keys is None or any(item.id not in keys for item in items):
        keys = {item.id: item_keys(item) for item in items}
    links = Counter(k.link for k in keys.values() if k.link)
    prints = Counter((k.title, k.published) for k in keys.values() if k.title)
    titles = Counter(k.title for k in keys.values() if k.title)
    present = {item.id for item in items}

    def usable(seen: Seen | None) -> Seen | None:
        return seen if seen is not None and seen.item_id not in present else None

    strong: dict[str, Seen] = {}
    weak: dict[str, Seen] = {}
    for item in fresh:
        k = keys[item.id]
        by_link = by_print = None
        if k.link and links[k.link] == 1:
            by_link = usable(_one_thing(known.by_link.get(k.link, ())))
            if by_link is not None and _link_contradicted(k, by_link):
                by_link = None
        suspect = None  # a title match a link contradicts: only inside a renumbering
        if k.title and k.published and prints[(k.title, k.published)] == 1:
            rows = [s for s in known.by_title.get(k.title, ()) if s.keys.published == k.published]
            by_print = usable(_one_thing(rows))
            if by_print is not None and _title_contradicted(k, by_print):
                suspect, by_print = by_print, None
        if by_link is not None and by_print is not None and by_link.thing != by_print.thing:
            continue  # the two keys name two different items: new
        match = by_link or by_print
        if match is not None:
            strong[item.id] = match
            continue
        if suspect is None and k.title and titles[k.title] == 1:
            # Title alone: one side undated (a feed that gained or lost dates) or both.
            rows = [
                s for s in known.by_title.get(k.title, ()) if not (k.published and s.keys.published)
            ]
            suspect = usable(_one_thing(rows))
        if suspect is not None:
            weak[item.id] = suspect
    matched = len(strong) + len(weak)
    if matched >= 2 and 2 * matched > len(fresh):
        strong.update(weak)
    new = tuple(item for item in fresh if item.id not in strong)
    shared = {k.link for k in keys.values() if k.link and links[k.link] > 1}
    for item in new:  # a new item whose link a seen, different item carries
        link = keys[item.id].link
        if link and known.by_link.get(link):
            shared.add(link)
    return Classified(
        known=old,
        renumbered=tuple((item, strong[item.id]) for item in fresh if item.id in strong),
        new=new,
        keys={item.id: keys[item.id] for item in fresh},
        shared_links=frozenset(shared),
    )

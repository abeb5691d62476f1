"""Real feeds on loopback for bench/compare.py, and keyword rules drawn from their words.

The fleet serves the corpus's feeds (bench/corpus.py, built from pinned public
repositories) through bench/fleet.py's server, each at its own path with the content type
of its format and no charset (the document's own declaration decides, as on the web). To
give the "changed" round new items without inventing text, a tenth of the feeds start
without their first three entries and get them back in that round.

The rules are the other half of a realistic workload: 1,000 keyword rules whose words and
phrases come from the corpus's own headlines, drawn with a fixed seed at frequencies that
give about three matches per item (issue 18). The share is estimated here from the items
as watcher reads them; compare.py prints what `watcher test-run` really matched.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import yaml
from corpus import FULL_DIR, MANIFEST, ensure_full, full
from corpus import Feed as CorpusEntry
from fleet import Fleet

CONTENT_TYPES = {
    "atom1.0": "application/atom+xml",
    "atom0.3": "application/atom+xml",
    "rss1.0": "application/rdf+xml",
    "json1.0": "application/feed+json",
    "json1.1": "application/feed+json",
}  # every other format is an RSS: application/rss+xml
# Where an entry starts, for the formats whose entries can be cut out of the text.
_ENTRY_START = {
    "rss2.0": re.compile(rb"<item[\s>]"),
    "rss1.0": re.compile(rb"<item[\s>]"),
    "atom1.0": re.compile(rb"<entry[\s>]"),
}
# Words nobody tracks; the frequency cap keeps out most of them anyway.
STOPWORDS = frozenset(
    (
        *("a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be"),
        *("been", "before", "but", "by", "can", "could", "did", "do", "does", "for", "from"),
        *("get", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into"),
        *("is", "it", "its", "just", "like", "more", "most", "my", "new", "no", "not", "now"),
        *("of", "on", "one", "or", "our", "out", "over", "so", "some", "than", "that", "the"),
        *("their", "them", "then", "there", "these", "they", "this", "to", "up", "us", "was"),
        *("we", "were", "what", "when", "where", "which", "who", "why", "will", "with", "you"),
        *("your", "de", "la", "le", "les", "des", "et", "en", "du", "un", "une", "der", "die"),
        *("das", "und", "ein", "eine", "ist", "von", "zu", "mit", "el", "los", "y", "que"),
    )
)
_WORD = re.compile(r"\w+")


@dataclass
class CorpusFeed:
    """One real feed served by the fleet; with ``cut``, its first entries held back."""

    index: int
    name: str
    format: str
    full_body: bytes
    body: bytes
    items: int  # entries in the served body, as the manifest counts them
    version: int = 0
    cut: int = 0  # entries held back for the "changed" round

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.format, "application/rss+xml")

    def add(self, count: int) -> None:
        """Give back the entries held back (however many ``count`` says: all of them)."""
        self.body = self.full_body
        self.items += self.cut
        self.cut = 0
        self.version += 1


def _entries() -> dict[str, int]:
    """Entries per feed of the full corpus (feedparser's count, from its manifest)."""
    ensure_full()
    manifest = yaml.safe_load((FULL_DIR / MANIFEST).read_text())["feeds"]
    return {e["file"]: int(e["items"]) for e in manifest}


def largest(count: int | None) -> list[CorpusEntry]:
    """The ``count`` feeds of the full corpus with the most entries (all with None).

    Ties go to the larger file, then the name, so the choice is the same on every machine."""
    items = _entries()
    feeds = sorted(full(), key=lambda f: (-items[f.name], -len(f.data), f.name))
    return feeds if count is None else feeds[:count]


def _cut(data: bytes, fmt: str, expected: int, new_items: int) -> bytes | None:
    """The document without its first ``new_items`` entries, or None where that cannot be
    done by cutting text safely (the entry starts must be exactly the entries, and a
    well-formed document must stay well-formed)."""
    pattern = _ENTRY_START.get(fmt)
    if pattern is None or expected <= new_items:
        return None
    starts = [m.start() for m in pattern.finditer(data)]
    if len(starts) != expected:
        return None  # an "<item" in text, or entries the manifest counts otherwise
    trimmed = data[: starts[0]] + data[starts[new_items] :]
    try:
        ET.fromstring(data)
        ET.fromstring(trimmed)
    except (ET.ParseError, ValueError):  # broken XML, or an encoding expat does not read
        return None
    return trimmed


class CorpusFleet(Fleet):
    """The corpus's feeds served like bench/fleet.py's synthetic ones (same rounds)."""

    def __init__(
        self,
        count: int | None = 200,
        *,
        seed: int = 1,
        changed: float = 0.10,
        new_items: int = 3,
    ) -> None:
        items = _entries()
        self.rng = random.Random(seed)
        self.conditional = True
        self.requests = 0
        self._lock = threading.Lock()
        self.feeds = [
            CorpusFeed(i, e.name, e.format, e.data, e.data, items[e.name])
            for i, e in enumerate(largest(count))
        ]
        self.bytes = sum(len(f.full_body) for f in self.feeds)
        self.total_items = sum(f.items for f in self.feeds)
        candidates = []
        for feed in self.feeds:
            trimmed = _cut(feed.full_body, feed.format, feed.items, new_items)
            if trimmed is not None:
                candidates.append((feed, trimmed))
        chosen = self.rng.sample(candidates, min(len(candidates), round(len(self.feeds) * changed)))
        for feed, trimmed in chosen:
            feed.body, feed.items, feed.cut = trimmed, feed.items - new_items, new_items

    def change(self, fraction: float, *, new_items: int = 3) -> int:
        """Give the trimmed feeds their entries back; ``fraction`` was fixed at the start."""
        trimmed = [feed for feed in self.feeds if feed.cut]
        for feed in trimmed:
            feed.add(new_items)
        return len(trimmed)

    def describe(self) -> str:
        formats = Counter(f.format for f in self.feeds)
        sources = Counter(f.name.split("/")[0] for f in self.feeds)
        held = sum(f.cut for f in self.feeds)
        return (
            f"{len(self.feeds)} real feeds with the most entries in the corpus "
            f"({self.total_items:,} entries, {self.bytes / 1e6:.1f} MB; "
            + ", ".join(f"{k} {v}" for k, v in formats.most_common())
            + f"; {len(sources)} sources); {held} entries of "
            f"{sum(1 for f in self.feeds if f.cut)} feeds held back for the changed round"
        )


# -- rules from the corpus's own words --------------------------------------------------


@dataclass
class Rules:
    text: str  # the rules: section of a config
    estimated: float  # matches per item, estimated from whole words
    cap: float  # the share of items above which a word or phrase is never drawn
    items: int  # items the estimate is over
    seconds: float


def _items(fleet: CorpusFleet) -> list[Any]:
    """Every item of the served bodies, as watcher's parser reads them."""
    from watcher.exceptions import WatcherError
    from watcher.models import FetchResult
    from watcher.parse import parse

    items: list[Any] = []
    for feed in fleet.feeds:
        result = FetchResult(
            url=f"http://corpus/{feed.index}",
            status=200,
            body=feed.body,
            headers={"content-type": feed.content_type},
        )
        try:
            items += parse(feed.name, result).items
        except WatcherError:
            continue
    return items


def keyword_rules(fleet: CorpusFleet, rules: int, density: float, *, seed: int = 1) -> Rules:
    """``rules`` keyword rules drawn from the fleet's headlines, about ``density`` matches
    per item.

    Terms are drawn (fixed seed) from the headlines' words and two-word phrases, weighted by
    how often headlines use them, stop words left out: the kind of thing a user tracks. A
    quarter of the rules have two keywords and a quarter a phrase and a word. Every term
    used by more than a share ``cap`` of the items is left out, and ``cap`` is found by
    bisection so that the estimate (whole folded words, as watcher matches) is ``density``.
    """
    from watcher.text import fold

    started = time.process_time()
    items = _items(fleet)
    n = len(items)
    postings: dict[str, set[int]] = {}
    title_words: Counter[str] = Counter()
    title_pairs: Counter[tuple[str, str]] = Counter()
    token_lists = []
    for i, item in enumerate(items):
        tokens = _WORD.findall(fold(f"{item.title}\n{item.summary}\n{item.content}"))
        token_lists.append(tokens)
        for word in set(tokens):
            postings.setdefault(word, set()).add(i)
        title = _WORD.findall(fold(item.title))
        for word in title:
            if _trackable(word):
                title_words[word] += 1
        for a, b in pairwise(title):
            if _trackable(a) and _trackable(b):
                title_pairs[(a, b)] += 1
    pair_postings: dict[tuple[str, str], set[int]] = {pair: set() for pair in title_pairs}
    for i, tokens in enumerate(token_lists):
        for pair in pairwise(tokens):
            found = pair_postings.get(pair)
            if found is not None:
                found.add(i)
    words = sorted(title_words)
    pairs = sorted(title_pairs)

    def draw(cap: float) -> tuple[list[list[str | tuple[str, str]]], float]:
        rng = random.Random(seed)
        limit = cap * n
        ws = [w for w in words if len(postings[w]) <= limit]
        ps = [p for p in pairs if len(pair_postings[p]) <= limit and pair_postings[p]]
        w_weights = [title_words[w] for w in ws]
        p_weights = [title_pairs[p] for p in ps]
        drawn: list[list[str | tuple[str, str]]] = []
        total = 0
        for r in range(rules):
            kind = r % 4
            terms: list[str | tuple[str, str]] = []
            if kind == 3 and ps:
                terms.append(rng.choices(ps, p_weights)[0])
            while len(terms) < (2 if kind >= 2 else 1):
                word = rng.choices(ws, w_weights)[0]
                if word not in terms:
                    terms.append(word)
            hits: set[int] = set()
            for term in terms:
                hits |= pair_postings[term] if isinstance(term, tuple) else postings[term]
            total += len(hits)
            drawn.append(terms)
        return drawn, total / n

    low, high = 1.0 / n, 0.5
    drawn, estimate = draw(high)
    for _ in range(30):
        cap = (low * high) ** 0.5
        drawn, estimate = draw(cap)
        if abs(estimate - density) < 0.02 * density:
            break
        if estimate > density:
            high = cap
        else:
            low = cap
    lines = []
    for r, terms in enumerate(drawn):
        keys = [" ".join(t) if isinstance(t, tuple) else t for t in terms]
        quoted = ", ".join(json.dumps(k, ensure_ascii=False) for k in keys)
        lines.append(f"  - {{name: r{r}, keywords: [{quoted}]}}")
    return Rules(
        "rules:\n" + "\n".join(lines),
        estimate,
        cap,
        n,
        time.process_time() - started,
    )


def _trackable(word: str) -> bool:
    return len(word) >= 3 and word not in STOPWORDS and not word.isdigit() and "_" not in word

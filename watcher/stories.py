"""Stories: one event carried by several feeds is one story, and one story one alert.

Owns the story keys of an item (its canonical link, and its headline without the site's
suffix), when an item from one feed joins a story another feed started (the same exact
key, or a near-identical headline, within ``story_window``), and when the alert the story
already got covers a new copy. Pure: the store reads the recent stories and applies
what is decided here, with its unique constraints settling two polls that race.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rapidfuzz import fuzz

from watcher.identity import title_key
from watcher.models import PRIORITIES, Priority

MIN_WORDS = 5  # a shorter headline joins a story only by its link
# The last " - Site", " | Site", " — Site" of a title, when the site is a few words.
_SUFFIX = re.compile(r"\s+[-|\u2013\u2014\u00b7]\s+(?:[^\s|\u2013\u2014\u00b7]+\s+){0,3}\S+\s*$")
# Headlines that name a kind of page, not an event: two sites' "Live updates" are not
# one story. Matched against the folded words.
GENERIC = re.compile(
    r"\b(live updates?|live blog|live news|as it happened|briefing|podcast|newsletter"
    r"|what we know|the latest|news in brief|top stories|headlines|morning report"
    r"|evening report|daily digest|week in review|explained|quiz|crossword|horoscope"
    r"|weather forecast|open thread|photos of the day|in pictures)\b"
)
SIMILAR = 92.0  # rapidfuzz token_sort_ratio, out of 100: see docs/headline-similarity.md


def headline_key(title: str) -> str:
    """The folded words of a headline without the site's suffix; '' when it is too short
    or too generic to stand for one event."""
    text = title.strip()
    cut = _SUFFIX.sub("", text)
    words = title_key(cut or text)
    if len(words.split()) < MIN_WORDS or GENERIC.search(words):
        return ""
    return words


def keys_for(link_key: str, headline: str, *, shared_link: bool) -> tuple[str, ...]:
    """The exact keys another feed's copy can join by: the canonical link (unless other
    items of the feed carry it too, as on a status page) and the headline."""
    keys = []
    if link_key and not shared_link:
        keys.append(f"link:{link_key}")
    if headline:
        keys.append(f"head:{headline}")
    return tuple(keys)


def new_story(feed: str, item_id: str) -> str:
    """A story started by this item: a stable id, so a retried poll starts the same one."""
    return hashlib.sha256(f"{feed}\n{item_id}".encode()).hexdigest()[:24]


def near_identical(a: str, b: str) -> bool:
    """Two headline keys that tell one event: nearly the same words, and no word of
    substance that only one of them has (Kharkiv and Odesa stay two stories)."""
    if a == b:
        return True
    if fuzz.token_sort_ratio(a, b) < SIMILAR:
        return False
    left, right = set(a.split()), set(b.split())
    return all(len(word) <= 3 or word.isdigit() for word in left ^ right)


@dataclass(frozen=True)
class StoryKey:
    """A story key as recorded: which story it leads to, started by which feed, when."""

    key: str
    story: str
    feed: str
    created_at: datetime


@dataclass(frozen=True)
class Recent:
    """What the store knows of the stories one poll's items may join."""

    keys: Mapping[str, StoryKey] = field(default_factory=dict)  # exact key -> its row
    headlines: Sequence[StoryKey] = ()  # headline keys of other feeds, within the window
    carried: Mapping[str, frozenset[str]] = field(default_factory=dict)  # story -> feeds
    alerted: Mapping[tuple[str, str], tuple[frozenset[str], Priority]] = field(
        default_factory=dict
    )  # (story, notifier) -> the rules and the priority it was alerted with


def join(
    feed: str, keys: Sequence[str], headline: str, recent: Recent, *, since: datetime
) -> str | None:
    """The story another feed started that this item is a copy of, or None.

    An exact key first, then a near-identical headline. A story this feed already
    carries is not joined: two items the feed itself keeps apart are two stories.
    """

    def open_to(row: StoryKey | None) -> bool:
        return (
            row is not None
            and row.created_at >= since
            and row.feed != feed
            and feed not in recent.carried.get(row.story, frozenset())
        )

    for key in keys:
        row = recent.keys.get(key)
        if open_to(row):
            assert row is not None
            return row.story
    if headline:
        for row in recent.headlines:
            if open_to(row) and near_identical(headline, row.key.removeprefix("head:")):
                return row.story
    return None


def covered(
    alerted: tuple[Iterable[str], Priority] | None, rules: Iterable[str], priority: Priority
) -> bool:
    """Whether the alert a story already got tells everything a new copy would: each of
    its rules, at a priority at least as high."""
    if alerted is None:
        return False
    done, level = alerted
    return set(rules) <= set(done) and PRIORITIES.index(priority) <= PRIORITIES.index(level)

"""Stories: one event carried by several feeds is one story, and one story one alert.

Owns the story keys of an item (its canonical link, and its headline without the site's
suffix), when an item from one feed joins a story another feed started (the same exact
key, or a near-identical headline, within ``story_window``), and when the alert the story
already got covers a new copy. Pure: the store reads the recent stories and applies
what is decided here, with its unique constraints settling two polls that race.

Also owns what counting stories tells: how many new stories mention a rule or an
entity per 10-minute bucket, the usual count of a window, and when a window is a spike.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any, Literal

from watcher.models import PRIORITIES, Priority
from watcher.text import fold

MIN_WORDS = 5  # a shorter headline joins a story only by its link
# The choices below are measured on 312,042 real headlines: docs/headline-similarity.md.
# The last " - Site", " | Site", " · Site" of a (folded) title, when the site is a few
# words; then a host name left before it ("... - DN.se - DN").
_SUFFIX = re.compile(r"\s+[-|\u00b7]\s+(?:\S+\s+){0,3}\S+\s*$")
_HOST_SUFFIX = re.compile(r"\s+[-|\u00b7]\s+[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\s*$")
# A label before the headline: "DN Direkt - ", "Breaking: ", "Watch: " (removed repeatedly).
_LABEL = re.compile(
    r"^(?:breaking news|breaking|exclusive|watch|video|update|updated|analysis|dn direkt"
    r"|direkt|just nu|klart|uppdaterad|срочно|молния|видео|терміново)\s*[:|\-\u00b7]\s*"
)
# Headlines that name a kind of page, not an event: two sites' "Live updates" are not
# one story. Matched as whole words against the headline key.
GENERIC = re.compile(
    r"\b(?:live updates?|live blog|live coverage|live news|live results|live thread"
    r"|watch live|as it happened|briefing|podcast|newsletter|what we know|what to know"
    r"|the latest|top stories|top headlines|news in brief|week in review|in pictures"
    r"|photos of the day|photos of the week|picture of the day|quiz|crossword|wordle"
    r"|horoscope|opinion|recap|senaste nytt|direktrapport|sammanfattning natt"
    r"|sammanfattning kvall|онлайн|трансляция|главное за день|главное к этому часу"
    r"|что известно|хроника событий|новости дня|головне за день|що відомо|новини дня|наживо"
    r"|liveblog|live ticker|liveticker|newsblog|en direct|ce que l ?on sait|en vivo"
    r"|en directo|lo que sabemos|minuto a minuto)\b"
)
SIMILAR = 85.0  # rapidfuzz fuzz.ratio, out of 100: a backstop; the guard does the deciding
# The only words two copies of one headline may differ by (besides inflections).
FUNCTION_WORDS = frozenset(
    (
        *("a", "an", "the", "of", "in", "on", "at", "for", "with", "and", "is", "are"),
        *("was", "were", "be", "been", "has", "have", "had", "will", "would", "that"),
        *("this", "these", "those", "says", "said", "say", "tells", "told", "reports"),
        *("reported", "report"),
        *("och", "i", "pa", "for", "som", "en", "ett", "att", "det", "den", "har", "ar", "om"),
        *("и", "в", "во", "на", "с", "со", "по", "о", "об", "у", "для", "что", "как"),
        *("і", "в", "у", "на", "з", "та", "й", "що", "як"),
    )
)
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NUMBER_WORDS = {
    **{word: str(n) for n, word in enumerate((*_NUMBERS, "ten", "eleven", "twelve"))},
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
}
_ENDINGS = ("", "s", "es", "e", "ed", "d", "ing", "ion", "ions")


def headline_key(title: str) -> str:
    """The folded words of a headline without the site's suffix and a leading label; ''
    when it is too short (fewer than 5 words) or too generic to stand for one event."""
    text = fold(title).strip()
    cut = _SUFFIX.sub("", text) or text
    cut = _HOST_SUFFIX.sub("", cut) or cut
    while (label := _LABEL.match(cut)) is not None and label.end() < len(cut):
        cut = cut[label.end() :]
    words = _clean(cut)
    if len(words.split()) < MIN_WORDS or GENERIC.search(words):
        return ""
    return words


_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0](?=\d{3}\b)")
_INITIALS = re.compile(r"(?<=\b\w)\.(?=\w\.)|(?<=\b\w\.\w)\.")


def _clean(text: str) -> str:
    """Punctuation out: letters, digits and marks of every script stay; apostrophes,
    format characters and thousands separators vanish (1,000 = 1000), and so do the dots
    of initials (U.S. = US, D.C. = DC); anything else separates words."""
    text = _INITIALS.sub("", _THOUSANDS.sub("", text))
    out = []
    for ch in text:
        kind = unicodedata.category(ch)
        if ch == "'" or kind == "Cf":
            continue
        out.append(ch if kind[0] in "LNM" else " ")
    return " ".join("".join(out).split())


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
    """Two headline keys that tell one event: nearly the same characters, and no word of
    substance, no number, and no order that only one of them has. Kharkiv and Odesa,
    3 and 5 dead, Israel strikes Iran and Iran strikes Israel stay two stories."""
    if a == b:
        return True
    if not a or not b:
        return False
    # Imported here: about 4 MiB that a daemon which never compares two headlines (no
    # rule fired on an item another feed's item resembles) does without.
    from rapidfuzz.fuzz import ratio

    if ratio(a, b) < SIMILAR:
        return False
    left = [_NUMBER_WORDS.get(w, w) for w in a.split()]
    right = [_NUMBER_WORDS.get(w, w) for w in b.split()]
    only_left = list((Counter(left) - Counter(right)).elements())
    only_right = list((Counter(right) - Counter(left)).elements())
    renamed: dict[str, str] = {}
    for word in list(only_left):
        other = next((w for w in only_right if _inflections(word, w)), None)
        if other is not None:
            only_left.remove(word)
            only_right.remove(other)
            renamed[other] = word
    for word in only_left + only_right:
        if any(ch.isdigit() for ch in word) or word not in FUNCTION_WORDS:
            return False
    content_left = [w for w in left if w not in FUNCTION_WORDS]
    content_right = [renamed.get(w, w) for w in right if w not in FUNCTION_WORDS]
    return content_left == content_right


def shape(key: str) -> str:
    """What every headline near-identical to this one shares with it: its words of
    substance, in order, each cut to its first four letters. The guard of
    :func:`near_identical` lets two headlines differ only in small words and in endings
    after a stem of four letters or more, so their shapes are equal: candidates are
    found by this exact key, not by comparing a day of headlines one by one."""
    words = (_NUMBER_WORDS.get(w, w) for w in key.split())
    return " ".join(w[:4] for w in words if w not in FUNCTION_WORDS)


def _inflections(x: str, y: str) -> bool:
    """One word with two endings: strike/strikes/striking, killed/kills (a stem of 4+
    letters), never two names (India/Indiana, Niger/Nigeria)."""
    if any(ch.isdigit() for ch in x + y):
        return False
    for ending in _ENDINGS:
        if ending and not x.endswith(ending):
            continue
        stem = x[: len(x) - len(ending)]
        if len(stem) >= 4 and y.startswith(stem) and y[len(stem) :] in _ENDINGS:
            return True
    return False


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
    headlines: Sequence[StoryKey] = ()  # other feeds' headline keys of the same shape
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
        for row in recent.headlines:  # those of the same shape
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


# -- mention counts and spikes ----------------------------------------------------------------
#
# Every new story that matches a rule or mentions an entity is counted once for it, in the
# 10-minute bucket of the poll that first brought it (the store keeps the counts). A spike
# is a window of those counts far above the same window at the same time of day on the
# previous days. Everything below is pure: the store reads the counts, these functions
# decide, and the store's unique keys make the decision to open an episode happen once.

BUCKET = timedelta(minutes=10)  # the granularity of the counts (config.BUCKET, in seconds)
DAY = timedelta(days=1)
BASELINE_DAYS = 7  # the previous days whose same window makes the usual count
MIN_DAYS = 3  # fewer observed days than this: a new rule (see usual_count)
FLOOR = 1.0  # the usual count is never below one story per window


def bucket_of(at: datetime) -> datetime:
    """The start of the 10-minute bucket ``at`` falls in (UTC-aware in, UTC-aware out)."""
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 10, second=0, microsecond=0)


def window_buckets(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The first and the last bucket of the window that ends with ``now``'s bucket: the
    current bucket (still filling) and those before it, ``window`` in all."""
    last = bucket_of(now)
    return last - window + BUCKET, last


def window_count(counts: Mapping[datetime, int], first: datetime, last: datetime) -> int:
    """The stories counted in the buckets from ``first`` to ``last``, both included."""
    return sum(n for bucket, n in counts.items() if first <= bucket <= last)


def usual_count(days: Sequence[int | None], *, recent: float | None = None) -> float:
    """The usual count of a window: the median of the same window at the same time of day
    on each previous day (``days``, None for a day before the rule's counts began).

    The median, so one busy day (an earlier spike) does not raise the bar and one quiet
    day does not lower it; the same time of day, so a topic that is busy every morning is
    compared with mornings. Never below :data:`FLOOR`: a rule that is usually silent must
    still reach ``factor`` stories (and ``min``) to spike. With fewer than
    :data:`MIN_DAYS` days observed (a new rule), the median of those days is not trusted
    alone: ``recent``, the rule's average count per window since its counts began, is a
    bar too, whichever is higher.
    """
    observed = sorted(n for n in days if n is not None)
    if len(observed) >= MIN_DAYS:
        return max(FLOOR, median(observed))
    bars = [FLOOR, *([median(observed)] if observed else []), *([recent] if recent else [])]
    return max(bars)


@dataclass(frozen=True)
class SpikeSetting:
    """A ``spike:`` setting, as the pure functions need it (config.SpikeConfig)."""

    window: timedelta
    factor: float
    min: int


@dataclass(frozen=True)
class Reading:
    """One look at a rule's or an entity's counts at ``now``."""

    count: int  # stories in the current window
    usual: float  # usual_count of that window
    days: int  # how many previous days were observed

    def high(self, setting: SpikeSetting) -> bool:
        return self.count >= setting.min and self.count >= setting.factor * self.usual


def read_counts(
    counts: Mapping[datetime, int],
    history_start: datetime | None,
    now: datetime,
    setting: SpikeSetting,
) -> Reading:
    """The current window's count and its usual count, from the bucket counts (at least
    those of the last 7 days and a window) and the first bucket ever counted for it."""
    first, last = window_buckets(now, setting.window)
    count = window_count(counts, first, last)
    days: list[int | None] = []
    for d in range(1, BASELINE_DAYS + 1):
        start, end = first - d * DAY, last - d * DAY
        observed = history_start is not None and history_start <= start
        days.append(window_count(counts, start, end) if observed else None)
    recent = None
    if history_start is not None and first - history_start >= setting.window:
        before = sum(n for bucket, n in counts.items() if history_start <= bucket < first)
        # Over at most the last 7 days: the counts read go no further back.
        span = min(first - history_start, BASELINE_DAYS * DAY)
        recent = before * (setting.window / span)
    return Reading(count, usual_count(days, recent=recent), sum(d is not None for d in days))


@dataclass(frozen=True)
class Episode:
    """A spike episode as recorded: open while ``ended_at`` is None."""

    kind: str  # rule or entity
    name: str
    seq: int  # 1, 2, ... per rule or entity: the key that makes opening one happen once
    started_at: datetime
    last_high_at: datetime
    stories: int  # the count that raised it
    usual: float
    peak: int
    window: float  # seconds
    ended_at: datetime | None = None
    feeds: tuple[str, ...] = ()
    headlines: tuple[Mapping[str, Any], ...] = ()  # title, link, feed, feeds

    @property
    def open(self) -> bool:
        return self.ended_at is None


SpikeStep = Literal["open", "high", "close"]


def spike_step(
    latest: Episode | None, reading: Reading, setting: SpikeSetting, now: datetime
) -> SpikeStep | None:
    """What one look changes: open an episode (alert once), note that the open one is still
    high, or close it once the count has stayed below the bar for a whole window (so a
    count that hovers around the bar is one episode, not one alert per crossing)."""
    high = reading.high(setting)
    if latest is None or not latest.open:
        return "open" if high else None
    if high:
        return "high"
    if now - latest.last_high_at >= setting.window:
        return "close"
    return None


def replay_spikes(
    counts: Mapping[datetime, int],
    history_start: datetime | None,
    setting: SpikeSetting,
    *,
    start: datetime,
    end: datetime,
    kind: str = "rule",
    name: str = "",
) -> list[Episode]:
    """The episodes a setting would have raised between ``start`` and ``end``, looking
    once per bucket as the daemon looks (each minute: the counts change per bucket)."""
    episodes: list[Episode] = []
    at = bucket_of(start) + BUCKET - timedelta(seconds=1)  # each bucket's last look
    while at <= end:
        reading = read_counts(counts, history_start, at, setting)
        latest = episodes[-1] if episodes else None
        step = spike_step(latest, reading, setting, at)
        if step == "open":
            seq = latest.seq + 1 if latest else 1
            episodes.append(
                Episode(
                    kind,
                    name,
                    seq,
                    at,
                    at,
                    reading.count,
                    reading.usual,
                    reading.count,
                    setting.window.total_seconds(),
                )
            )
        elif step == "high" and latest is not None:
            episodes[-1] = replace(latest, last_high_at=at, peak=max(latest.peak, reading.count))
        elif step == "close" and latest is not None:
            episodes[-1] = replace(latest, ended_at=at)
        at += BUCKET
    return episodes

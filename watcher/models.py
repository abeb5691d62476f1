"""The plain, frozen data that flows through watcher.

Nothing here imports anything of ours: these types are the contract between
fetch, parse, rules, alerts, store and notify. Datetimes are always UTC-aware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Priority = Literal["low", "normal", "high", "urgent"]
# In rising order: an alert's priority is the highest of its rules'.
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Item:
    """One entry of a feed, its text already converted from HTML to plain text."""

    feed: str
    id: str
    title: str = ""
    link: str = ""
    summary: str = ""
    content: str = ""
    published: datetime | None = None
    author: str = ""
    tags: tuple[str, ...] = ()

    def field_text(self, name: str) -> str:
        """The plain text of one matchable field (``title``, ``summary``, ``content``...)."""
        if name == "tags":
            return ", ".join(self.tags)
        value = getattr(self, name)
        return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class ParsedFeed:
    """What parse.py made of one downloaded document."""

    title: str
    items: tuple[Item, ...]
    version: str = ""


@dataclass(frozen=True)
class FeedState:
    """What the store remembers about a feed between polls."""

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    baselined: bool = False
    failures: int = 0
    failing_since: datetime | None = None
    next_poll_at: datetime | None = None
    disabled_reason: str | None = None
    disabled_url: str | None = None
    moved_from: str | None = None
    moved_to: str | None = None
    max_items: int = 0
    health_notice: str | None = None

    def url_for(self, configured: str) -> str:
        """Where to fetch: the permanent redirect target while the config URL is unchanged."""
        if self.moved_to and self.moved_from == configured:
            return self.moved_to
        return configured

    def disabled_for(self, configured: str) -> bool:
        """Disabled (410 Gone) until the config names another URL."""
        return self.disabled_reason is not None and self.disabled_url in (
            configured,
            self.url_for(configured),
        )


@dataclass(frozen=True)
class FetchResult:
    """A successful download: the body after decompression and the headers that matter."""

    url: str
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str = ""
    moved_to: str | None = None  # the final URL, when every redirect on the way was permanent


@dataclass(frozen=True)
class NotModified:
    """The server answered 304: nothing to parse."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None


@dataclass(frozen=True)
class Hit:
    """One occurrence of a term in one field; offsets index the field's plain text."""

    term: str
    field: str
    start: int
    end: int


@dataclass(frozen=True)
class Match:
    """Why one rule fired on one item.

    ``marks`` are the spans of ``snippet`` that are hits; ``entities`` are the
    (id, type) of the entities mentioned; ``score`` weighs title hits 3, others 1;
    ``priority`` is the rule's, or the level its score reached.
    """

    rule: str
    terms: tuple[str, ...]
    hits: tuple[Hit, ...]
    snippet: str = ""
    score: float = 0.0
    entities: tuple[tuple[str, str | None], ...] = ()
    marks: tuple[tuple[int, int], ...] = ()
    priority: Priority = "normal"

    def marked_snippet(self, before: str = "«", after: str = "»") -> str:
        """The snippet with every hit wrapped in ``before`` and ``after``."""
        out, last = [], 0
        for start, end in self.marks:
            if start < last:
                continue
            out += [self.snippet[last:start], before, self.snippet[start:end], after]
            last = end
        return "".join(out) + self.snippet[last:]


@dataclass(frozen=True)
class Alert:
    """One message for one notifier about one item; may name several rules.

    ``payload`` is what a digest needs to list the alert later (title, link, feed...).
    """

    feed: str
    item_id: str
    notifier: str
    rules: tuple[str, ...]
    title: str
    body: str
    link: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    priority: Priority = "normal"
    story: str | None = None  # the story it reports: one per (story, notifier) unless it adds


@dataclass(frozen=True)
class PendingAlert:
    """An alert waiting in the outbox, as the delivery loop sees it."""

    id: int
    notifier: str
    title: str
    body: str
    attempts: int
    created_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    held: bool = False  # deferred by quiet hours or a rate limit: goes out in a digest
    next_attempt_at: datetime | None = None
    priority: Priority = "normal"
    sources: tuple[str, ...] = ()  # every feed that carried its story, first first


class _Keep:
    """Marker: leave a column as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


ItemKind = Literal["new", "baseline", "renumbered", "old"]


@dataclass(frozen=True)
class SeenItem:
    """An item recorded for the first time, with its secondary keys and its story.

    ``kind``: new (it could alert), baseline (a feed's first poll), renumbered (a new id
    for an item seen before, ``same_as``), or old (older than ``max_item_age``). Only new
    items ever alert, and only they are replayed by backtest.
    """

    item: Item
    kind: ItemKind = "new"
    link_key: str = ""
    fragment: str = ""
    title_key: str = ""
    same_as: str | None = None  # the first id of the item this one renumbers
    story: str | None = None
    story_keys: tuple[str, ...] = ()  # exact keys other feeds' copies join it by
    joined: bool = False  # ``story`` was found, not started here
    # What the item mentions, for the mention counts: ("rule", name) for each rule it
    # matched and ("entity", id) for each entity it names. Only new items are counted.
    mentions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PollRecord:
    """One poll as its feed's history keeps it (the web console's feed page).

    ``outcome``: new, baseline, renumbered, not-modified, unchanged or error.
    """

    outcome: str
    duration: float  # seconds, from the fetch to the commit
    status: int | None = None  # the HTTP status, when a response came
    items: int | None = None  # items in the document (None: not parsed)
    new_items: int | None = None
    error: str | None = None


PollKind = Literal["quiet", "success", "failure"]


@dataclass(frozen=True)
class PollDecision:
    """Everything one poll writes about its feed, decided before anything is written.

    ``kind`` says which: quiet (a success that changes nothing but the feed's row: a 304
    or an unchanged body, with no notice to queue), success, or failure. ``node`` is the
    holder of the feed's claim: the write happens only while it still holds it.
    """

    feed: str
    url: str  # the URL in the config
    now: datetime
    kind: PollKind = "success"
    next_poll_at: datetime | None = None  # when it is due again (None: never, after a 410)
    node: str | None = None  # the claim's holder; None: written without a claim (tools)
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None  # None keeps the stored hash
    baselined: bool = False  # the items were parsed and recorded
    seen: Sequence[SeenItem] = ()  # items recorded for the first time
    present: Sequence[str] = ()  # ids of every item in the document (seen again now)
    story_cutoff: datetime | None = None  # story keys older than this are free again
    alerts: Sequence[Alert] = ()
    notices: Sequence[Alert] = ()  # feed health notices, through the same outbox
    moved_to: str | None = None  # a permanent redirect to remember
    disabled_url: str | None = None  # after a 410: the URL that is gone
    health_notice: Any = KEEP  # "failing", None (cleared), or KEEP
    history: PollRecord | None = None  # kept in the feed's recent polls (None: not kept)

    def __post_init__(self) -> None:
        # The pipeline relies on it: a feed not yet baselined has no items to look up.
        if self.seen and not self.baselined:
            raise ValueError(
                f"feed '{self.feed}': items are recorded only by a poll that baselines the feed"
            )

"""What one poll writes: pure decisions the store applies as given.

Owns the rules of a poll's outcome: the silent baseline, which items are new, too old
or renumbered, which story each new item belongs to and whether a notifier already
heard it, the feed health notices, and when the feed is due again (its interval with
jitter, or the backoff after a failure). Every function here takes what was fetched and
read and returns a :class:`PollDecision`; nothing here fetches, reads or writes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from watcher import backoff
from watcher.alerts import StoryPlan, Style, notices, plan
from watcher.config import Config, FeedConfig
from watcher.exceptions import FeedError, FeedGone, FetchError
from watcher.identity import Classified
from watcher.models import (
    KEEP,
    Alert,
    FeedState,
    FetchResult,
    Item,
    ItemKind,
    Match,
    NotModified,
    ParsedFeed,
    PollDecision,
    Priority,
    SeenItem,
)
from watcher.stories import Recent, covered, headline_key, join, keys_for, new_story, shape

log = logging.getLogger("watcher.pipeline")  # the poll's log lines, as they always were

MAX_JITTER = 60.0  # seconds: feeds started together drift apart, by a tenth of an interval


def next_poll(feed: FeedConfig, at: datetime) -> datetime:
    """When a feed that was just polled is due again: its interval, plus up to a tenth
    of it (at most a minute) so that feeds started together spread out."""
    jitter = (
        0.0 if backoff.is_testing() else random.uniform(0, min(0.1 * feed.interval, MAX_JITTER))
    )
    return at + timedelta(seconds=feed.interval + jitter)


def unchanged(
    feed: FeedConfig,
    state: FeedState,
    config: Config,
    result: FetchResult | NotModified,
    at: datetime,
    node: str | None,
) -> PollDecision:
    """A 304, or the body seen last time: the feed's row only (and a recovery notice)."""
    found = recovery(feed, state, config)
    quiet = not found and result.moved_to is None
    return PollDecision(
        feed.name,
        feed.url,
        at,
        kind="quiet" if quiet else "success",
        next_poll_at=next_poll(feed, at),
        node=node,
        etag=result.etag,
        last_modified=result.last_modified,
        moved_to=result.moved_to,
        health_notice=None,
        notices=found,
    )


def failure(
    feed: FeedConfig,
    state: FeedState,
    config: Config,
    exc: FeedError,
    at: datetime,
    node: str | None,
) -> PollDecision:
    """A failed poll: backoff (the interval doubling, Retry-After honoured), a 410
    disables the feed until its URL changes, and one notice when it starts failing."""
    failures = state.failures + 1
    retry_after = exc.retry_after if isinstance(exc, FetchError) else None
    retry_at = at + backoff.delay(
        attempt=failures,
        base=feed.interval,
        cap=backoff.FEED_CAP,
        jitter=backoff.FEED_JITTER,
        retry_after=retry_after,
    )
    gone = isinstance(exc, FeedGone)
    health: Any = KEEP
    found: list[Alert] = []
    since = (state.failing_since or at).isoformat()
    if gone:
        title = f"[watcher] feed {feed.name} disabled"
        body = f"Feed {feed.name}: {exc.reason}. Polling stopped; change its URL to resume."
        found = health_notice(feed, config, "gone", since, title, body)
    elif failures >= config.feed_health.failures and state.health_notice != "failing":
        health = "failing"
        title = f"[watcher] feed {feed.name} is failing"
        body = (
            f"Feed {feed.name} ({feed.url}) failed {failures} times in a row since {since}. "
            f"Last error: {exc.reason}"
        )
        found = health_notice(feed, config, "failing", since, title, body)
    return PollDecision(
        feed.name,
        feed.url,
        at,
        kind="failure",
        next_poll_at=None if gone else retry_at,
        node=node,
        error=exc.reason,
        disabled_url=state.url_for(feed.url) if gone else None,
        notices=found,
        health_notice=health,
    )


@dataclass(frozen=True)
class Wanted:
    """What the story step must read for one new item: its exact story keys, its
    headline (matched items only: fuzzy joins are for what may alert) and whether the
    rules it matched let it join another feed's story."""

    keys: tuple[str, ...]
    headline: str
    allowed: bool


def new_and_old(
    config: Config, feed: FeedConfig, judged: Classified, at: datetime
) -> tuple[list[Item], list[Item]]:
    """The items new by every key, split by ``max_item_age``: an undated item is judged
    new, and a future date is not old."""
    limit = config.item_age_limit(feed)
    cutoff = at - timedelta(seconds=limit) if limit is not None else None

    def older(item: Item) -> bool:
        return cutoff is not None and item.published is not None and item.published < cutoff

    return [i for i in judged.new if not older(i)], [i for i in judged.new if older(i)]


def wanted(
    config: Config, judged: Classified, found: Sequence[tuple[Item, Sequence[Match]]]
) -> dict[str, Wanted]:
    """Each new item's story keys, for the store to read the stories they lead to."""
    rules = {rule.name: rule for rule in config.rules}
    out: dict[str, Wanted] = {}
    for item, matches in found:
        k = judged.keys[item.id]
        headline = headline_key(item.title)
        story_keys = keys_for(k.link, headline, shared_link=k.link in judged.shared_links)
        allowed = all(config.collapses(rules[m.rule]) for m in matches if m.rule in rules)
        out[item.id] = Wanted(story_keys, headline if matches else "", allowed)
    return out


def shapes(want: Mapping[str, Wanted]) -> list[str]:
    """The headline shapes near-identical candidates are looked up by."""
    return [shape(w.headline) for w in want.values() if w.headline and w.allowed]


def story_keys_read(want: Mapping[str, Wanted]) -> list[str]:
    return [key for w in want.values() if w.allowed for key in w.keys]


@dataclass(frozen=True)
class Stories:
    """The story of each new item, and which notifiers were already told of it."""

    seen: dict[str, SeenItem] = field(default_factory=dict)
    plans: dict[str, StoryPlan] = field(default_factory=dict)
    recent: Recent = field(default_factory=Recent)

    def told(self, item_id: str, notifier: str, rules: Sequence[str], priority: Priority) -> bool:
        plan_ = self.plans.get(item_id)
        if plan_ is None:
            return False
        return covered(self.recent.alerted.get((plan_.story, notifier)), rules, priority)


def stories(
    feed: FeedConfig,
    judged: Classified,
    found: Sequence[tuple[Item, Sequence[Match]]],
    want: Mapping[str, Wanted],
    recent: Recent,
    since: datetime,
    entities: Mapping[str, Sequence[str]] | None = None,
) -> Stories:
    """Which story each new item belongs to: a copy of one another feed started (within
    ``story_window``) joins it, unless a rule it matched says ``collapse_stories: false``;
    at most one item of a poll joins a story (two items the feed keeps apart are two)."""
    seen: dict[str, SeenItem] = {}
    plans: dict[str, StoryPlan] = {}
    taken: set[str] = set()
    entities = entities or {}
    for item, matches in found:
        w = want[item.id]
        story = join(feed.name, w.keys, w.headline, recent, since=since) if w.allowed else None
        if story in taken:
            story = None
        joined = story is not None
        story = story or new_story(feed.name, item.id)
        taken.add(story)
        also = tuple(sorted(recent.carried.get(story, frozenset()) - {feed.name}))
        plans[item.id] = StoryPlan(story, also)
        seen[item.id] = replace(
            seen_item(item, judged, "new"),
            story=story,
            story_keys=w.keys if w.allowed else (),
            joined=joined,
            mentions=mentions(matches, entities.get(item.id, ())),
        )
    return Stories(seen, plans, recent)


def mentions(matches: Sequence[Match], entities: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """What a new item counts for: each rule it matched, each entity it mentions."""
    rules = dict.fromkeys(("rule", m.rule) for m in matches)
    return (*rules, *(("entity", e) for e in entities))


def seen_item(
    item: Item, judged: Classified, kind: ItemKind, *, same_as: str | None = None
) -> SeenItem:
    keys = judged.keys[item.id]  # every item recorded for the first time has its keys
    return SeenItem(
        item,
        kind,
        link_key=keys.link,
        fragment=keys.fragment,
        title_key=keys.title,
        same_as=same_as,
    )


@dataclass(frozen=True)
class Parsed:
    """The decision on a parsed document, and what the log and metrics say of it."""

    decision: PollDecision
    status: str  # baseline, new or renumbered
    new: int
    matched: tuple[str, ...]


def parsed(
    feed: FeedConfig,
    state: FeedState,
    config: Config,
    result: FetchResult,
    document: ParsedFeed,
    judged: Classified,
    *,
    new: Sequence[Item],
    old: Sequence[Item],
    found: Sequence[tuple[Item, Sequence[Match]]],
    story: Stories,
    notifiers_of: Callable[[str], Sequence[str]],
    url: str,
    at: datetime,
    node: str | None,
) -> Parsed:
    """A parsed document: the first is a silent baseline; later, items new by every key
    alert (folded into a summary above the flood threshold), renumbered and too old
    ones are recorded silently, and a renumbering sends one notice."""
    found_notices = recovery(feed, state, config)
    planned: list[Alert] = []
    matched: tuple[str, ...] = ()
    if not state.baselined:
        status = "baseline"
        seen = [seen_item(item, judged, "baseline") for item in judged.new]
        seen += [seen_item(item, judged, "baseline") for item, _ in judged.renumbered]
        count = len(seen)
    else:
        status = "new" if new or not judged.renumbered else "renumbered"
        matched = tuple(m.rule for _, matches in found for m in matches)
        planned = plan(
            found,
            notifiers_of=notifiers_of,
            notifiers=tuple(config.active_notifiers),
            styles={
                name: Style(n.format, n.title, n.body)
                for name, n in config.active_notifiers.items()
            },
            flood_threshold=config.delivery.flood_threshold,
            stories=story.plans,
            told=story.told,
        )
        seen = [
            *(story.seen[item.id] for item in new),
            *(seen_item(item, judged, "old") for item in old),
            *(
                seen_item(item, judged, "renumbered", same_as=earlier.thing)
                for item, earlier in judged.renumbered
            ),
        ]
        for item in old:
            log.info(
                "item too old to alert feed=%s item=%r published=%s",
                feed.name,
                item.title,
                item.published,
            )
        if judged.renumbered:
            found_notices += renumbered(feed, config, url, judged, at)
        count = len(new)
    decision = PollDecision(
        feed.name,
        feed.url,
        at,
        kind="success",
        next_poll_at=next_poll(feed, at),
        node=node,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=result.body_hash,
        baselined=True,
        seen=seen,
        present=[item.id for item in document.items],
        story_cutoff=at - timedelta(seconds=config.story_window),
        alerts=planned,
        notices=found_notices,
        moved_to=result.moved_to,
        health_notice=None,
    )
    return Parsed(decision, status, count, matched)


def renumbered(
    feed: FeedConfig, config: Config, url: str, judged: Classified, at: datetime
) -> list[Alert]:
    """One notice a day for a feed that gave items it had already published new ids."""
    count = len(judged.renumbered)
    if count < 2:
        log.info(
            "item renumbered feed=%s items=%d (same link or title as one seen)", feed.name, count
        )
        return []
    title = f"[watcher] feed {feed.name} renumbered its items"
    body = (
        f"{count} items in feed {feed.name} ({url}) came with ids never seen before, but each "
        "has the link or the title and date of an item seen earlier, so the feed most likely "
        "changed how it identifies items. They were recorded as seen and not alerted again. "
        f"Items that are new by every key ({len(judged.new)} in this poll) alerted as usual."
    )
    return health_notice(feed, config, "renumbered", at.date().isoformat(), title, body)


def health_notice(
    feed: FeedConfig, config: Config, kind: str, key: str, title: str, body: str
) -> list[Alert]:
    """Notices to the feed_health notifiers (those not muted); logged either way."""
    log.warning("feed health feed=%s notice=%s: %s", feed.name, kind, body)
    active = [n for n in config.feed_health.notify if n in config.active_notifiers]
    return notices(feed.name, kind, key, title, body, notifiers=active)


def recovery(feed: FeedConfig, state: FeedState, config: Config) -> list[Alert]:
    """A feed that failed works again: said in the log, and noticed if it was noticed."""
    if state.failures:
        since = state.failing_since.isoformat(timespec="seconds") if state.failing_since else "?"
        log.info(
            "feed recovered feed=%s failures=%d failing_since=%s", feed.name, state.failures, since
        )
    if state.health_notice != "failing":
        return []
    since = state.failing_since.isoformat() if state.failing_since else "?"
    title = f"[watcher] feed {feed.name} recovered"
    body = f"Feed {feed.name} ({feed.url}) works again; it had been failing since {since}."
    return health_notice(feed, config, "recovered", since, title, body)

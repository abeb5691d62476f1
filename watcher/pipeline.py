"""One poll of one feed, and one pass of the delivery loop, wired from the pure parts.

Owns the order of the steps and the rule that a feed's failure is captured,
recorded and logged here, never raised to the scheduler.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from watcher import backoff, decide, delivery
from watcher.alerts import Spike, Style, render_digest, spike_alerts
from watcher.config import Config, FeedConfig, SpikeWatch
from watcher.exceptions import FeedError, FetchAborted, HTTPStatusError, StoreError
from watcher.fetch import Fetcher
from watcher.identity import Known, classify, item_keys
from watcher.models import (
    FeedState,
    FetchResult,
    Item,
    Match,
    NotModified,
    PendingAlert,
    PollRecord,
)
from watcher.rules import RuleSet, settle
from watcher.stories import (
    BASELINE_DAYS,
    DAY,
    Episode,
    Recent,
    SpikeSetting,
    bucket_of,
    read_counts,
    replay_spikes,
    spike_step,
    window_buckets,
)
from watcher.workers import PARSERS, default_parse_processes

if TYPE_CHECKING:  # test-run and check need neither SQLAlchemy nor apprise: not imported
    from watcher.notify import Notifier
    from watcher.store import Store

log = logging.getLogger(__name__)


def configure_parsing(config: Config, *, match: bool = False) -> None:
    """Apply the config's ``parse_processes`` to :data:`PARSERS`; with ``match``, the
    workers also match what they parse (test-run, which matches every item)."""
    wanted = config.parse_processes
    processes = default_parse_processes() if wanted == "auto" else wanted
    PARSERS.configure(processes, rules=(config.active_rules, config.entities) if match else None)


Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PollOutcome:
    """What one poll did.

    ``status``: new, baseline, renumbered, not-modified, unchanged, error, backoff or
    disabled. ``next_poll_at`` is set when the feed must not be polled before then.
    """

    feed: str
    status: str
    items: int = 0
    new: int = 0
    alerts: int = 0
    error: str = ""
    next_poll_at: datetime | None = None
    error_kind: str = ""  # timeout, connect, http, rate_limited, size, parse, gone, other
    matched: tuple[str, ...] = ()  # the rule of every match among the new items
    mentioned: frozenset[tuple[str, str]] = frozenset()  # (kind, name) the new items counted for


def match_items(
    items: Sequence[Item], ruleset: RuleSet, *, tags: Sequence[str] = ()
) -> list[tuple[Item, list[Match]]]:
    """Every item with the rules it matches (items that match nothing included)."""
    return [(item, ruleset.match(item, tags=tags)) for item in items]


def match_new(
    items: Sequence[Item], ruleset: RuleSet, *, tags: Sequence[str] = ()
) -> tuple[list[tuple[Item, list[Match]]], dict[str, tuple[str, ...]]]:
    """:func:`match_items`, and item id -> the entities each item mentions (those that
    mention one only), for the mention counts."""
    found: list[tuple[Item, list[Match]]] = []
    entities: dict[str, tuple[str, ...]] = {}
    for item in items:
        matches, mentioned = ruleset.match_mentions(item, tags=tags)
        found.append((item, matches))
        if mentioned:
            entities[item.id] = mentioned
    return found, entities


def fetch_feed(
    feed: FeedConfig,
    config: Config,
    fetcher: Fetcher,
    state: FeedState | None = None,
    url: str | None = None,
) -> FetchResult | NotModified:
    """Fetch one configured feed with its own limits, headers and credentials."""
    auth = (feed.auth.username, feed.auth.password) if feed.auth else None
    return fetcher.fetch(
        feed.name,
        url or feed.url,
        state,
        allow_private=config.allows_private(feed),
        max_bytes=feed.max_bytes or config.fetch.max_bytes,
        headers=feed.headers,
        auth=auth,
    )


def poll_feed(
    feed: FeedConfig,
    *,
    config: Config,
    fetcher: Fetcher,
    store: Store,
    ruleset: RuleSet,
    now: Clock = utcnow,
    node: str | None = None,
) -> PollOutcome:
    """Fetch, parse, find new items, match, and record it all in one transaction.

    The first successful poll of a feed is a silent baseline: its items are recorded as
    seen and nothing is alerted. Every failure is recorded on the feed, never raised.
    ``node`` holds the feed's claim (see Store.claim_poll): the outcome is recorded only
    while it still does.
    """
    try:
        return _poll(
            feed, config=config, fetcher=fetcher, store=store, ruleset=ruleset, now=now, node=node
        )
    except StoreError as exc:
        # Nothing of this poll was recorded, so its items stay new: the next poll retries.
        log.error("poll feed=%s not recorded, retried next interval: %s", feed.name, exc)
        return PollOutcome(feed.name, "error", error=str(exc), error_kind="store")
    except Exception as exc:  # a bug must not kill the scheduler
        log.exception("poll crashed feed=%s", feed.name)
        return PollOutcome(feed.name, "error", error=f"internal error: {type(exc).__name__}: {exc}")


def _poll(
    feed: FeedConfig,
    *,
    config: Config,
    fetcher: Fetcher,
    store: Store,
    ruleset: RuleSet,
    now: Clock,
    node: str | None,
) -> PollOutcome:
    state = store.feed_state(feed.name)
    started = now()
    clock = time.monotonic()
    if state.disabled_for(feed.url):
        log.debug("poll skipped feed=%s status=disabled", feed.name)
        return PollOutcome(feed.name, "disabled", error=state.disabled_reason or "")
    # Backing off: not before the time the last failure set. (The schedule only hands out
    # due feeds; this guards a poll started otherwise.) A wait longer than any backoff can
    # ask for means the clock went back: poll now.
    wait_limit = timedelta(seconds=backoff.FEED_CAP + feed.interval)
    if (
        state.failures
        and state.next_poll_at is not None
        and started < state.next_poll_at <= started + wait_limit
    ):
        log.debug("poll skipped feed=%s status=backoff until=%s", feed.name, state.next_poll_at)
        return PollOutcome(feed.name, "backoff", next_poll_at=state.next_poll_at)
    url = state.url_for(feed.url)
    try:
        result = fetch_feed(feed, config, fetcher, state if state.baselined else None, url)
        if isinstance(result, NotModified) or (
            state.baselined and result.body_hash == state.body_hash
        ):
            status = "not-modified" if isinstance(result, NotModified) else "unchanged"
            code = 304 if isinstance(result, NotModified) else result.status
            decided = decide.unchanged(feed, state, config, result, now(), node)
            took = time.monotonic() - clock
            store.commit_poll(replace(decided, history=PollRecord(status, took, code)))
            _log_move(feed, state, result.moved_to)
            log.debug("poll feed=%s status=%s", feed.name, status)
            return PollOutcome(feed.name, status)
        document = PARSERS.parse(feed.name, result)
    except FetchAborted:
        return PollOutcome(feed.name, "aborted")
    except FeedError as exc:
        decision = decide.failure(feed, state, config, exc, now(), node)
        answered = exc.status if isinstance(exc, HTTPStatusError) else None
        took = time.monotonic() - clock
        history = PollRecord("error", took, answered, error=exc.reason)
        decision = replace(decision, history=history)
        store.commit_poll(decision)
        retry_at = decision.next_poll_at
        log.warning(
            "poll failed feed=%s failures=%d retry_at=%s error=%r",
            feed.name,
            state.failures + 1,
            retry_at.isoformat(timespec="seconds") if retry_at else "never (disabled)",
            exc.reason,
        )
        return PollOutcome(
            feed.name, "error", error=exc.reason, next_poll_at=retry_at, error_kind=exc.kind
        )

    at = now()
    keys = {item.id: item_keys(item) for item in document.items}
    # Only a parsed poll records items, and it baselines the feed: a feed not yet
    # baselined has none to look up (a new fleet's first round skips 200 queries).
    known = store.known(feed.name, keys) if state.baselined else Known()
    judged = classify(document.items, known, keys)
    new, old = decide.new_and_old(config, feed, judged, at)
    found, entities = match_new(new, ruleset, tags=feed.tags) if state.baselined else ([], {})
    want = decide.wanted(config, judged, found)
    since = at - timedelta(seconds=config.story_window)
    recent = (
        store.recent_stories(
            feed.name, decide.story_keys_read(want), since=since, shapes=decide.shapes(want)
        )
        if want
        else Recent()
    )
    story = decide.stories(feed, judged, found, want, recent, since, entities)
    outcome = decide.parsed(
        feed,
        state,
        config,
        result,
        document,
        judged,
        new=new,
        old=old,
        found=found,
        story=story,
        notifiers_of=ruleset.notifiers_of,
        url=url,
        at=at,
        node=node,
    )
    history = PollRecord(
        outcome.status, time.monotonic() - clock, result.status, len(document.items), outcome.new
    )
    queued = store.commit_poll(replace(outcome.decision, history=history))
    _log_move(feed, state, result.moved_to)
    for alert in outcome.decision.alerts:
        log.info(
            "alert queued feed=%s rules=%s notifier=%s item=%r",
            feed.name,
            ",".join(alert.rules),
            alert.notifier,
            alert.title,
        )
    log.info(
        "poll feed=%s status=%s items=%d new=%d renumbered=%d alerts=%d",
        feed.name,
        outcome.status,
        len(document.items),
        outcome.new,
        len(judged.renumbered) if state.baselined else 0,
        len(outcome.decision.alerts),
    )
    return PollOutcome(
        feed.name,
        outcome.status,
        len(document.items),
        outcome.new,
        queued,
        matched=outcome.matched,
        mentioned=frozenset(m for seen in outcome.decision.seen for m in seen.mentions),
    )


def _log_move(feed: FeedConfig, state: FeedState, moved_to: str | None) -> None:
    if moved_to and moved_to != state.url_for(feed.url):
        log.warning(
            "feed moved permanently feed=%s from=%s to=%s (update the config to silence this)",
            feed.name,
            state.url_for(feed.url),
            moved_to,
        )


@dataclass(frozen=True)
class DeliveryOutcome:
    sent: int = 0  # alerts delivered (a digest counts each alert in it)
    failed: int = 0  # alerts whose attempt failed (retried later)
    deferred: int = 0  # alerts held back: quiet hours, digest window, rate limit, backoff
    given_up: int = 0  # alerts past max_age, now marked failed
    latencies: tuple[float, ...] = ()  # seconds from queued to delivered, per alert sent

    def __add__(self, other: DeliveryOutcome) -> DeliveryOutcome:
        return DeliveryOutcome(
            self.sent + other.sent,
            self.failed + other.failed,
            self.deferred + other.deferred,
            self.given_up + other.given_up,
            self.latencies + other.latencies,
        )


def deliver_pending(
    store: Store,
    notifiers: Mapping[str, Notifier],
    *,
    now: Clock = utcnow,
    max_age: float = 86400.0,
    retry: float = 30.0,
    observe: Callable[[str, DeliveryOutcome], None] | None = None,
    muted: Collection[str] = (),
    node: str | None = None,
    only: str | None = None,
    watched: Collection[tuple[str, str]] = (),
) -> DeliveryOutcome:
    """Send what is due, each notifier on its own so a dead one delays no other.

    A failure leaves alerts pending with a later retry time; an alert that has been
    failing for longer than ``max_age`` seconds is marked failed, never dropped silently.
    Alerts for a ``muted`` notifier (``enabled: false``) wait, untried, until it is not.
    ``node`` claims each attempt by lease (see Store.claim): an alert another process
    holds is left to it, so two processes never both send one alert.
    ``only`` names the one notifier to deliver for (a cluster's delivery job).
    ``watched``: the (kind, name) of every rule and entity with a ``spike:`` setting;
    item alerts about one in an open episode are folded into digests (delivery.SPIKE_FOLD).
    """
    pending = store.pending_alerts(notifier=only)
    by_notifier = delivery.due_by_notifier(pending, now=now(), muted=muted)
    if not by_notifier:
        return DeliveryOutcome()
    # What spikes now, among what is watched (an episode of a setting since removed is
    # never closed, and must not fold that rule's alerts for ever); asked only then.
    spiking = (
        frozenset(
            key
            for e in store.spike_episodes(active_only=True)
            if (key := (e.kind, e.name)) in watched
        )
        if watched
        else frozenset()
    )
    with ThreadPoolExecutor(max_workers=min(8, len(by_notifier))) as pool:
        outcomes = list(
            pool.map(
                lambda entry: _deliver_to(
                    store,
                    notifiers.get(entry[0]),
                    entry[0],
                    entry[1],
                    now,
                    max_age,
                    retry,
                    node,
                    spiking,
                ),
                by_notifier.items(),
            )
        )
    if observe is not None:
        for name, outcome in zip(by_notifier, outcomes, strict=True):
            observe(name, outcome)
    return sum(outcomes, DeliveryOutcome())


def _deliver_to(
    store: Store,
    notifier: Notifier | None,
    name: str,
    due: list[PendingAlert],
    now: Clock,
    max_age: float,
    retry: float,
    node: str | None = None,
    spiking: frozenset[tuple[str, str]] = frozenset(),
) -> DeliveryOutcome:
    try:
        return _Delivery(store, notifier, name, now, max_age, retry, node, spiking).run(due)
    except StoreError as exc:
        # Nothing is sent unless its attempt was recorded first (claim), so a database that
        # cannot be written pauses delivery instead of resending the same alert each round.
        log.error("delivery to notifier=%s paused, its alerts stay queued: %s", name, exc)
        return DeliveryOutcome()
    except Exception:
        log.exception("delivery to notifier=%s crashed; its alerts stay queued", name)
        return DeliveryOutcome()


DELIVERY_LEASE = 60.0  # seconds a delivery holds its alerts, beyond the notifier's timeout


class _HeldElsewhere(Exception):
    """Another process holds an alert of this pass: the rest of the pass is left to it."""


class _Delivery:
    """One pass over one notifier's due alerts: takes the actions delivery.plan decides,
    in order, and at a failed attempt those delivery.after_failure decides instead."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier | None,
        name: str,
        now: Clock,
        max_age: float,
        retry: float,
        node: str | None = None,
        spiking: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.store, self.notifier, self.name, self.now = store, notifier, name, now
        self.max_age, self.retry, self.node = max_age, retry, node
        self.spiking = spiking

    def run(self, due: list[PendingAlert]) -> DeliveryOutcome:
        at = self.now()
        settings = delivery.Settings.of(self.notifier.settings) if self.notifier else None
        recent: list[datetime] = []
        if settings is not None and settings.max_per_hour is not None:
            recent = self.store.messages_sent_since(self.name, at - delivery.HOUR)
        actions = deque(
            delivery.plan(due, settings=settings, now=at, recent_sends=recent, spiking=self.spiking)
        )
        outcome = DeliveryOutcome()
        while actions:
            action = actions.popleft()
            try:
                done, error = self._take(action)
            except _HeldElsewhere:
                log.info("delivery to notifier=%s left to the process that holds it", self.name)
                break
            outcome += done
            if error is not None:
                actions = deque(
                    delivery.after_failure(
                        action.alerts,
                        list(actions),
                        error=error,
                        now=self.now(),
                        max_age=self.max_age,
                        retry=self.retry,
                    )
                )
        return outcome

    def _take(self, action: delivery.Action) -> tuple[DeliveryOutcome, str | None]:
        """Carry out one action: what it did, and the error if it was an attempt that failed."""
        match action:
            case delivery.Send(alert):
                return self._send_one(alert)
            case delivery.Digest():
                return self._send_digest(action)
            case delivery.Defer(group, until, reason, held):
                return self._defer(group, until, reason, held=held), None
            case delivery.Fail(group, error):
                self._claim(group)
                return DeliveryOutcome(), error
            case delivery.Retry():
                return self._retry(action), None
            case delivery.GiveUp():
                return self._give_up(action), None

    def _claim(self, group: Sequence[PendingAlert]) -> None:
        """Record the attempt before making it (see Store.claim), as a lease when this is
        a daemon: :class:`_HeldElsewhere` when another process holds any of them."""
        at = self.now()
        retry_at = delivery.retry_at(group, now=at, retry=self.retry)
        lease = timedelta(seconds=DELIVERY_LEASE + self._timeout())
        if not self.store.claim(
            [a.id for a in group], retry_at=retry_at, node=self.node, now=at, until=at + lease
        ):
            raise _HeldElsewhere

    def _timeout(self) -> float:
        return self.notifier.settings.timeout if self.notifier is not None else 0.0

    def _send_one(self, alert: PendingAlert) -> tuple[DeliveryOutcome, str | None]:
        assert self.notifier is not None
        self._claim([alert])
        result = self.notifier.send(alert.title, alert.body, priority=alert.priority)
        if not result.ok:
            return DeliveryOutcome(), result.error
        at = self._sent_at()
        self.store.mark_sent([alert.id], at)
        log.info("alert sent alert=%d notifier=%s", alert.id, self.name)
        return DeliveryOutcome(sent=1, latencies=((at - alert.created_at).total_seconds(),)), None

    def _sent_at(self) -> datetime:
        """When a send that went out happened: by the database's clock, or by this
        machine's when that cannot be read (the database went away), so that mark_sent
        is still called and remembers the send rather than it being made again."""
        try:
            return self.now()
        except StoreError:
            return utcnow()

    def _send_digest(self, digest: delivery.Digest) -> tuple[DeliveryOutcome, str | None]:
        assert self.notifier is not None
        group = digest.alerts
        entries = [
            {**a.payload, "sources": list(a.sources)} if a.sources else a.payload for a in group
        ]
        title, body = render_digest(entries, self.notifier.style)
        self._claim(group)
        result = self.notifier.send(title, body, priority=digest.priority)
        if not result.ok:
            return DeliveryOutcome(), result.error
        at = self._sent_at()
        self.store.mark_sent([a.id for a in group], at)
        log.info("digest sent alerts=%d notifier=%s", len(group), self.name)
        waited = tuple((at - a.created_at).total_seconds() for a in group)
        return DeliveryOutcome(sent=len(group), latencies=waited), None

    def _retry(self, retry: delivery.Retry) -> DeliveryOutcome:
        ids = [a.id for a in retry.alerts]
        self.store.mark_failed(ids, self.now(), retry.error, retry_at=retry.at)
        log.warning(
            "alert delivery failed alerts=%s notifier=%s attempts=%d retry_at=%s error=%r",
            ",".join(map(str, ids)),
            self.name,
            retry.attempts,
            retry.at.isoformat(timespec="seconds"),
            retry.error,
        )
        return DeliveryOutcome(failed=len(ids))

    def _give_up(self, give_up: delivery.GiveUp) -> DeliveryOutcome:
        ids = [a.id for a in give_up.alerts]
        self.store.give_up(ids, self.now(), give_up.reason)
        log.error(
            "alerts failed for good alerts=%s notifier=%s error=%r",
            ",".join(map(str, ids)),
            self.name,
            give_up.error,
        )
        return DeliveryOutcome(given_up=len(ids))

    def _defer(
        self, group: Sequence[PendingAlert], until: datetime, why: str, *, held: bool
    ) -> DeliveryOutcome:
        self.store.defer([a.id for a in group], until, held=held)
        log.debug(
            "alerts deferred count=%d notifier=%s reason=%s until=%s",
            len(group),
            self.name,
            why,
            until.isoformat(timespec="seconds"),
        )
        return DeliveryOutcome(deferred=len(group))


@dataclass(frozen=True)
class SpikeOutcome:
    """What one look at the spikes did."""

    opened: tuple[Episode, ...] = ()  # raised now, by this process (it queued the alerts)
    closed: tuple[Episode, ...] = ()
    alerts: int = 0  # alerts queued


def setting_of(watch: SpikeWatch) -> SpikeSetting:
    spike = watch.spike
    return SpikeSetting(timedelta(seconds=spike.window), spike.factor, spike.min)


def evaluate_spikes(store: Store, config: Config, *, now: datetime) -> SpikeOutcome:
    """Look at every rule and entity with a ``spike:`` setting once, at ``now``: raise an
    episode (and its alerts, through the outbox) where the last window is a spike and none
    is open, and close the open ones that stayed below their bar for a whole window, or
    whose ``spike:`` setting is gone from the config (nothing would ever close them, and
    `watcher trends --spikes` would list them as open for good).

    Any number of processes may look at once (a cluster's nodes all do): the store opens
    an episode ON CONFLICT DO NOTHING on its (kind, name, seq) key, and only the process
    whose row went in queues its alerts, in the same transaction.
    """
    watches = config.spike_watches
    unwatched = _close_unwatched(store, {(w.kind, w.name) for w in watches}, now)
    if not watches:
        return SpikeOutcome(closed=unwatched)
    longest = max(timedelta(seconds=w.spike.window) for w in watches)
    since = bucket_of(now) - BASELINE_DAYS * DAY - longest
    counts, starts, latest = store.spike_inputs([(w.kind, w.name) for w in watches], since)
    styles = {
        name: Style(n.format, n.title, n.body, n.spike_title, n.spike_body)
        for name, n in config.active_notifiers.items()
    }
    opened: list[Episode] = []
    closed: list[Episode] = list(unwatched)
    queued = 0
    for watch in watches:
        key = (watch.kind, watch.name)
        setting = setting_of(watch)
        reading = read_counts(counts.get(key, {}), starts.get(key), now, setting)
        last = latest.get(key)
        step = spike_step(last, reading, setting, now)
        if step == "high" and last is not None:
            store.spike_still_high(last, now, reading.count)
        elif step == "close" and last is not None:
            if store.close_spike(last, now):
                closed.append(last)
                log.info(
                    "spike over kind=%s name=%s started=%s peak=%d",
                    watch.kind,
                    watch.name,
                    last.started_at.isoformat(timespec="seconds"),
                    last.peak,
                )
        elif step == "open":
            first, end = window_buckets(now, setting.window)
            feeds, headlines, _ = store.spike_details(watch.kind, watch.name, first, end)
            seq = last.seq + 1 if last is not None else 1
            episode = Episode(
                watch.kind,
                watch.name,
                seq,
                started_at=now,
                last_high_at=now,
                stories=reading.count,
                usual=reading.usual,
                peak=reading.count,
                window=setting.window.total_seconds(),
                feeds=tuple(feeds),
                headlines=tuple(headlines),
            )
            spike = Spike(
                watch.kind,
                watch.name,
                reading.count,
                reading.usual,
                setting.window.total_seconds(),
                setting.factor,
                setting.min,
                feeds,
                headlines,
                now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                watch.priority,
            )
            targets = [n for n in watch.notify or config.active_notifiers if n in styles]
            alerts = spike_alerts(
                spike,
                f"spike:{watch.kind}:{watch.name}:{seq}:{first.isoformat()}",
                notifiers=targets,
                styles=styles,
            )
            done = store.open_spike(episode, alerts, now)
            if done is None:
                continue  # another process raised it first, and queued its alerts
            opened.append(episode)
            queued += done
            log.warning(
                "spike kind=%s name=%s stories=%d usual=%.1f window=%ds feeds=%d alerts=%d",
                watch.kind,
                watch.name,
                reading.count,
                reading.usual,
                setting.window.total_seconds(),
                len(feeds),
                done,
            )
    return SpikeOutcome(tuple(opened), tuple(closed), queued)


def _close_unwatched(
    store: Store, watched: set[tuple[str, str]], now: datetime
) -> tuple[Episode, ...]:
    """Close the open episodes of rules and entities no longer watched for spikes."""
    closed = []
    for episode in store.spike_episodes(active_only=True):
        if (episode.kind, episode.name) in watched or not store.close_spike(episode, now):
            continue
        closed.append(episode)
        log.info(
            "spike over kind=%s name=%s started=%s peak=%d reason=no longer watched",
            episode.kind,
            episode.name,
            episode.started_at.isoformat(timespec="seconds"),
            episode.peak,
        )
    return tuple(closed)


@dataclass(frozen=True)
class BacktestEntry:
    """One (item, rule) pair whose outcome differs, or not, between now and then."""

    item: Item
    rule: str
    change: str  # "added" (the current rules alert it, it was not), "removed", or "kept"
    match: Match | None = None


@dataclass(frozen=True)
class BacktestReport:
    items: int  # stored items replayed (baselines and renumberings excluded)
    would: int  # (item, rule) pairs the current rules would alert
    alerted: int  # (item, rule) pairs that were alerted
    entries: tuple[BacktestEntry, ...]

    def changed(self, kind: str) -> list[BacktestEntry]:
        return [e for e in self.entries if e.change == kind]


def backtest(
    store: Store,
    config: Config,
    *,
    since: datetime,
    rules: Sequence[str] = (),
    ruleset: RuleSet | None = None,
) -> BacktestReport:
    """Replay the items seen since ``since`` against the current rules, next to what was
    actually alerted: how a rule change would have played out. Reads, never writes."""
    ruleset = ruleset or RuleSet.from_config(config)
    wanted = set(rules)
    tags = {feed.name: feed.tags for feed in config.feeds}
    alerted = store.alerted_rules(since)
    entries: list[BacktestEntry] = []
    replayed = would = was = 0
    for item, silent in store.stored_items(since):
        if silent:
            continue  # a baseline or a renumbering: nothing was ever going to alert
        replayed += 1
        matches = {
            m.rule: m
            for m in ruleset.match(item, tags=tags.get(item.feed, ()))
            if not wanted or m.rule in wanted
        }
        settle(matches.values())  # kept in the report: without the item's scan
        actual = {r for r in alerted.get((item.feed, item.id), set()) if not wanted or r in wanted}
        would += len(matches)
        was += len(actual)
        for rule in sorted(set(matches) | actual):
            change = (
                "kept"
                if rule in matches and rule in actual
                else ("added" if rule in matches else "removed")
            )
            entries.append(BacktestEntry(item, rule, change, matches.get(rule)))
    return BacktestReport(replayed, would, was, tuple(entries))


@dataclass(frozen=True)
class SpikeReplay:
    """What a rule's or an entity's ``spike:`` setting would have raised over stored
    history, next to the episodes that were really raised."""

    watch: SpikeWatch
    episodes: tuple[Episode, ...]  # the setting's, replayed
    raised: tuple[Episode, ...]  # recorded, oldest first

    def change(self, episode: Episode) -> str:
        """``kept`` when a replayed episode overlaps one really raised, else ``added``."""
        return "kept" if any(_overlap(episode, r) for r in self.raised) else "added"

    @property
    def removed(self) -> tuple[Episode, ...]:
        """Episodes really raised that the setting would not raise now."""
        return tuple(r for r in self.raised if not any(_overlap(e, r) for e in self.episodes))


def _overlap(a: Episode, b: Episode) -> bool:
    far = datetime.max.replace(tzinfo=UTC)
    return a.started_at <= (b.ended_at or far) and b.started_at <= (a.ended_at or far)


def backtest_spikes(
    store: Store,
    config: Config,
    *,
    since: datetime,
    now: datetime,
    names: Collection[str] = (),
    ruleset: RuleSet | None = None,
) -> list[SpikeReplay]:
    """Replay the current rules over the stored items (their text is kept for
    ``retention``) to count, story by story, what each rule or entity with a ``spike:``
    setting (or those named) would have counted, then look at the counts bucket by bucket
    from ``since`` to ``now`` as the daemon does: the spikes a new setting would have
    raised. Counting starts a baseline (7 days and a window) before ``since``. Reads,
    never writes."""
    watches = [w for w in config.spike_watches if not names or w.name in names]
    if not watches:
        return []
    longest = max(timedelta(seconds=w.spike.window) for w in watches)
    ruleset = ruleset or RuleSet.from_config(config)
    tags = {feed.name: feed.tags for feed in config.feeds}
    wanted = {(w.kind, w.name) for w in watches}
    counted: dict[tuple[str, str], dict[str, datetime]] = {key: {} for key in wanted}
    for stored in store.stored_stories(bucket_of(since) - BASELINE_DAYS * DAY - longest):
        if stored.silent:
            continue  # a baseline, a renumbering: never counted
        item = stored.item
        matches, entities = ruleset.match_mentions(item, tags=tags.get(item.feed, ()))
        story = stored.story or f"{item.feed}\n{item.id}"
        for key in {("rule", m.rule) for m in matches} | {("entity", e) for e in entities}:
            if key in wanted:
                counted[key].setdefault(story, bucket_of(stored.first_seen_at))
    replays = []
    for watch in watches:
        buckets: dict[datetime, int] = {}
        for bucket in counted[(watch.kind, watch.name)].values():
            buckets[bucket] = buckets.get(bucket, 0) + 1
        episodes = replay_spikes(
            buckets,
            min(buckets, default=None),
            setting_of(watch),
            start=since,
            end=now,
            kind=watch.kind,
            name=watch.name,
        )
        raised = store.spike_episodes(since=since, kind=watch.kind, name=watch.name)
        replays.append(SpikeReplay(watch, tuple(episodes), tuple(reversed(raised))))
    return replays

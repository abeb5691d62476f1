"""One poll of one feed, and one pass of the delivery loop, wired from the pure parts.

Owns the order of the steps and the rule that a feed's failure is captured,
recorded and logged here, never raised to the scheduler.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.alerts import notices, plan
from watcher.config import Config, FeedConfig, FeedHealthSettings
from watcher.exceptions import FeedError, FeedGone, FetchError
from watcher.fetch import Fetcher
from watcher.models import Alert, FeedState, FetchResult, Item, Match, NotModified
from watcher.notify import Notifier
from watcher.parse import parse
from watcher.rules import RuleSet
from watcher.store import KEEP, PollRecord, Store

log = logging.getLogger(__name__)

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


def match_items(
    items: Sequence[Item], ruleset: RuleSet, *, tags: Sequence[str] = ()
) -> list[tuple[Item, list[Match]]]:
    """Every item with the rules it matches (items that match nothing included)."""
    return [(item, ruleset.match(item, tags=tags)) for item in items]


def backoff_delay(
    failures: int, interval: float, retry_after: float | None = None, *, cap: float = 86400.0
) -> timedelta:
    """The wait after ``failures`` consecutive failures: the interval, doubling, with jitter.

    A Retry-After the server sent is honoured when it asks for longer. Never over ``cap``.
    """
    delay = min(cap, interval * 2 ** max(0, failures - 1)) * random.uniform(0.9, 1.1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=min(delay, cap))


def is_churn(new: int, total: int, health: FeedHealthSettings) -> bool:
    """Whether a poll's new items mean the feed renumbered them rather than published them."""
    return new >= health.churn_min_items and new > health.churn_ratio * total


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
) -> PollOutcome:
    """Fetch, parse, find new items, match, and record it all in one transaction.

    The first successful poll of a feed is a silent baseline: its items are recorded as
    seen and nothing is alerted. Every failure is recorded on the feed, never raised.
    """
    try:
        return _poll(feed, config=config, fetcher=fetcher, store=store, ruleset=ruleset, now=now)
    except Exception as exc:  # a bug or a store failure must not kill the scheduler
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
) -> PollOutcome:
    state = store.feed_state(feed.name)
    started = now()
    if state.disabled_for(feed.url):
        log.debug("poll skipped feed=%s status=disabled", feed.name)
        return PollOutcome(feed.name, "disabled", error=state.disabled_reason or "")
    if state.next_poll_at is not None and started < state.next_poll_at:
        log.debug("poll skipped feed=%s status=backoff until=%s", feed.name, state.next_poll_at)
        return PollOutcome(feed.name, "backoff", next_poll_at=state.next_poll_at)
    url = state.url_for(feed.url)
    try:
        result = fetch_feed(feed, config, fetcher, state if state.baselined else None, url)
        if isinstance(result, NotModified) or (
            state.baselined and result.body_hash == state.body_hash
        ):
            status = "not-modified" if isinstance(result, NotModified) else "unchanged"
            record = PollRecord(
                feed.name,
                feed.url,
                now(),
                etag=result.etag,
                last_modified=result.last_modified,
                moved_to=result.moved_to,
                health_notice=None,
                notices=_recovery(feed, state, config),
            )
            store.record_poll(record)
            _log_move(feed, state, result.moved_to)
            log.debug("poll feed=%s status=%s", feed.name, status)
            return PollOutcome(feed.name, status)
        parsed = parse(feed.name, result)
    except FeedError as exc:
        return _failed(feed, state, config, store, exc, now())

    new = store.new_items(feed.name, parsed.items)
    notices = _recovery(feed, state, config)
    planned: list[Alert] = []
    if not state.baselined:
        status = "baseline"
    elif is_churn(len(new), len(parsed.items), config.feed_health):
        status = "renumbered"
        title = f"[watcher] feed {feed.name} renumbered its items"
        body = (
            f"{len(new)} of the {len(parsed.items)} items in feed {feed.name} ({url}) have ids "
            "never seen before, so the feed most likely changed how it identifies items. "
            "They were recorded as seen and not alerted one by one."
        )
        notices += _health(feed, config, "renumbered", now().isoformat(), title, body)
    else:
        status = "new"
        planned = plan(
            match_items(new, ruleset, tags=feed.tags),
            notifiers_of=ruleset.notifiers_of,
            notifiers=tuple(config.notifiers),
        )
    queued = store.record_poll(
        PollRecord(
            feed.name,
            feed.url,
            now(),
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=result.body_hash,
            baselined=True,
            seen=parsed.items,
            alerts=planned,
            notices=notices,
            moved_to=result.moved_to,
            health_notice=None,
        )
    )
    _log_move(feed, state, result.moved_to)
    for alert in planned:
        log.info(
            "alert queued feed=%s rules=%s notifier=%s item=%r",
            feed.name,
            ",".join(alert.rules),
            alert.notifier,
            alert.title,
        )
    log.info(
        "poll feed=%s status=%s items=%d new=%d alerts=%d",
        feed.name,
        status,
        len(parsed.items),
        len(new),
        len(planned),
    )
    return PollOutcome(feed.name, status, len(parsed.items), len(new), queued)


def _health(
    feed: FeedConfig, config: Config, kind: str, key: str, title: str, body: str
) -> list[Alert]:
    """Notices to the feed_health notifiers; logged either way."""
    log.warning("feed health feed=%s notice=%s: %s", feed.name, kind, body)
    return notices(feed.name, kind, key, title, body, notifiers=config.feed_health.notify)


def _recovery(feed: FeedConfig, state: FeedState, config: Config) -> list[Alert]:
    if state.health_notice != "failing":
        return []
    since = state.failing_since.isoformat() if state.failing_since else "?"
    title = f"[watcher] feed {feed.name} recovered"
    body = f"Feed {feed.name} ({feed.url}) works again; it had been failing since {since}."
    return _health(feed, config, "recovered", since, title, body)


def _log_move(feed: FeedConfig, state: FeedState, moved_to: str | None) -> None:
    if moved_to and moved_to != state.url_for(feed.url):
        log.warning(
            "feed moved permanently feed=%s from=%s to=%s (update the config to silence this)",
            feed.name,
            state.url_for(feed.url),
            moved_to,
        )


def _failed(
    feed: FeedConfig,
    state: FeedState,
    config: Config,
    store: Store,
    exc: FeedError,
    at: datetime,
) -> PollOutcome:
    failures = state.failures + 1
    retry_after = exc.retry_after if isinstance(exc, FetchError) else None
    retry_at = at + backoff_delay(failures, feed.interval, retry_after)
    gone = isinstance(exc, FeedGone)
    health: Any = KEEP
    found: list[Alert] = []
    since = (state.failing_since or at).isoformat()
    if gone:
        title = f"[watcher] feed {feed.name} disabled"
        body = f"Feed {feed.name}: {exc.reason}. Polling stopped; change its URL to resume."
        found = _health(feed, config, "gone", since, title, body)
    elif failures >= config.feed_health.failures and state.health_notice != "failing":
        health = "failing"
        title = f"[watcher] feed {feed.name} is failing"
        body = (
            f"Feed {feed.name} ({feed.url}) failed {failures} times in a row since {since}. "
            f"Last error: {exc.reason}"
        )
        found = _health(feed, config, "failing", since, title, body)
    store.record_poll(
        PollRecord(
            feed.name,
            feed.url,
            at,
            error=exc.reason,
            retry_at=retry_at,
            disabled_url=state.url_for(feed.url) if gone else None,
            notices=found,
            health_notice=health,
        )
    )
    log.warning(
        "poll failed feed=%s failures=%d retry_at=%s error=%r",
        feed.name,
        failures,
        retry_at.isoformat(timespec="seconds"),
        exc.reason,
    )
    return PollOutcome(feed.name, "error", error=exc.reason, next_poll_at=retry_at)


def retry_delay(attempts: int, *, base: float = 30.0, cap: float = 3600.0) -> timedelta:
    """Exponential backoff with jitter after ``attempts`` failed tries."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class DeliveryOutcome:
    sent: int = 0
    failed: int = 0
    deferred: int = 0


def deliver_pending(
    store: Store, notifiers: Mapping[str, Notifier], *, now: Clock = utcnow, limit: int = 100
) -> DeliveryOutcome:
    """Send what is due. A failure leaves the alert pending with a later retry time.

    A notifier that fails once is not tried again in the same pass, so one dead target
    costs one timeout per pass, and never holds up the others.
    """
    sent = failed = deferred = 0
    down: set[str] = set()
    for alert in store.pending_alerts(now(), limit=limit):
        if alert.notifier in down:
            deferred += 1
            continue
        notifier = notifiers.get(alert.notifier)
        if notifier is None:
            error = f"notifier {alert.notifier!r} is not configured"
            ok = False
        else:
            result = notifier.send(alert.title, alert.body)
            ok, error = result.ok, result.error
        if ok:
            store.mark_sent(alert.id, now())
            sent += 1
            log.info("alert sent alert=%d notifier=%s", alert.id, alert.notifier)
            continue
        failed += 1
        down.add(alert.notifier)
        attempts = alert.attempts + 1
        retry_at = now() + retry_delay(attempts)
        store.mark_failed(alert.id, now(), error, retry_at=retry_at)
        log.warning(
            "alert delivery failed alert=%d notifier=%s attempts=%d retry_at=%s error=%r",
            alert.id,
            alert.notifier,
            attempts,
            retry_at.isoformat(timespec="seconds"),
            error,
        )
    return DeliveryOutcome(sent, failed, deferred)

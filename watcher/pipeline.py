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

import httpx

from watcher.alerts import plan
from watcher.config import FeedConfig
from watcher.exceptions import FeedError
from watcher.fetch import fetch
from watcher.models import Item, Match, NotModified
from watcher.notify import Notifier
from watcher.parse import parse
from watcher.rules import RuleSet
from watcher.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PollOutcome:
    """What one poll did; ``status`` is new, baseline, not-modified, unchanged or error."""

    feed: str
    status: str
    items: int = 0
    new: int = 0
    alerts: int = 0
    error: str = ""


def match_items(
    items: Sequence[Item], ruleset: RuleSet, *, tags: Sequence[str] = ()
) -> list[tuple[Item, list[Match]]]:
    """Every item with the rules it matches (items that match nothing included)."""
    return [(item, ruleset.match(item, tags=tags)) for item in items]


def poll_feed(
    feed: FeedConfig,
    *,
    client: httpx.Client,
    store: Store,
    ruleset: RuleSet,
    notifiers: Sequence[str],
    now: Clock = utcnow,
) -> PollOutcome:
    """Fetch, parse, find new items, match, and commit items and alerts in one transaction.

    The first successful poll of a feed is a silent baseline: its items are recorded as
    seen and nothing is alerted.
    """
    try:
        return _poll(
            feed, client=client, store=store, ruleset=ruleset, notifiers=notifiers, now=now
        )
    except FeedError as exc:
        error = exc.reason
        log.warning("poll failed feed=%s error=%r", feed.name, error)
    except Exception as exc:  # a bug or a store failure must not kill the scheduler
        error = f"internal error: {type(exc).__name__}: {exc}"
        log.exception("poll crashed feed=%s", feed.name)
    try:
        store.record_error(feed.name, feed.url, now(), error)
    except Exception:
        log.exception("cannot record the error of feed=%s", feed.name)
    return PollOutcome(feed.name, "error", error=error)


def _poll(
    feed: FeedConfig,
    *,
    client: httpx.Client,
    store: Store,
    ruleset: RuleSet,
    notifiers: Sequence[str],
    now: Clock,
) -> PollOutcome:
    state = store.feed_state(feed.name)
    result = fetch(client, feed.name, feed.url, state if state.baselined else None)
    if isinstance(result, NotModified):
        store.record_success(
            feed.name, feed.url, now(), etag=result.etag, last_modified=result.last_modified
        )
        log.debug("poll feed=%s status=not-modified", feed.name)
        return PollOutcome(feed.name, "not-modified")
    if state.baselined and result.body_hash == state.body_hash:
        store.record_success(
            feed.name, feed.url, now(), etag=result.etag, last_modified=result.last_modified
        )
        log.debug("poll feed=%s status=unchanged", feed.name)
        return PollOutcome(feed.name, "unchanged")
    parsed = parse(feed.name, result)
    new = store.new_items(feed.name, parsed.items)
    if state.baselined:
        status = "new"
        planned = plan(
            match_items(new, ruleset, tags=feed.tags),
            notifiers_of=ruleset.notifiers_of,
            notifiers=notifiers,
        )
    else:
        status, planned = "baseline", []
    queued = store.commit_poll(
        feed.name,
        feed.url,
        now(),
        seen=parsed.items,
        alerts_to_queue=planned,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=result.body_hash,
    )
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
        queued,
    )
    return PollOutcome(feed.name, status, len(parsed.items), len(new), queued)


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

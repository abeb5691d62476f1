"""Delivery policy: what to do with one notifier's pending alerts, and when. Pure.

:func:`plan` turns the due alerts, the notifier's settings, the clock and the messages
sent in the last hour into a list of actions; :func:`after_failure` says what becomes of
the failed alerts and of the actions not yet taken when a send fails. The delivery loop
in pipeline.py takes the actions in order, writing the store and sending; nothing here
sends or stores, so every rule below is tested as a table (tests/test_delivery.py).

The rules, in order:

- urgent alerts go out at once, each alone, through quiet hours, digest windows and
  ``max_per_hour``, and count against ``max_per_hour``;
- quiet hours defer everything else to the end of the window;
- a digest window defers until the oldest alert has waited ``digest``, then sends all
  of them as one digest;
- otherwise alerts held back earlier (quiet hours, ``max_per_hour``) go out as one
  digest, then each alert alone while the hourly budget lasts (highest priority first:
  the store's order); the rest is held for the next digest, when the budget frees up;
- a notifier that is not configured fails every attempt;
- after a failed send nothing else is tried: the rest waits, uncounted, for the failed
  alert's retry time; a failed alert is retried with backoff, or given up (marked
  failed, never dropped) once it has been undelivered for longer than ``max_age``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher import backoff
from watcher.models import PRIORITIES, PendingAlert, Priority

if TYPE_CHECKING:
    from watcher.config import NotifierConfig, QuietHours

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Settings:
    """The part of a notifier's config that decides when it is sent to."""

    quiet_hours: QuietHours | None = None
    digest: float | None = None  # seconds
    max_per_hour: int | None = None

    @classmethod
    def of(cls, config: NotifierConfig) -> Settings:
        return cls(config.quiet_hours, config.digest, config.max_per_hour)


@dataclass(frozen=True)
class Send:
    """One alert, one message."""

    alert: PendingAlert

    @property
    def alerts(self) -> tuple[PendingAlert, ...]:
        return (self.alert,)


@dataclass(frozen=True)
class Digest:
    """Many alerts, one message, at the priority of the highest among them."""

    alerts: tuple[PendingAlert, ...]

    @property
    def priority(self) -> Priority:
        return max((a.priority for a in self.alerts), key=PRIORITIES.index)


@dataclass(frozen=True)
class Defer:
    """Not now, and no attempt counted; ``held`` ones go out in a digest later."""

    alerts: tuple[PendingAlert, ...]
    until: datetime
    reason: str  # quiet hours, digest window, max_per_hour, notifier failing
    held: bool


@dataclass(frozen=True)
class Fail:
    """An attempt that cannot be made (the notifier is not configured): counted, and
    then failed like a send that failed with ``error``."""

    alerts: tuple[PendingAlert, ...]
    error: str


@dataclass(frozen=True)
class Retry:
    """A failed attempt: tried again at ``at``."""

    alerts: tuple[PendingAlert, ...]
    at: datetime
    error: str
    attempts: int  # the attempt that failed


@dataclass(frozen=True)
class GiveUp:
    """Undelivered for longer than ``max_age``: marked failed, kept, shown."""

    alerts: tuple[PendingAlert, ...]
    reason: str  # what the alert records
    error: str  # the last attempt's error


Action = Send | Digest | Defer | Fail | Retry | GiveUp


def due_by_notifier(
    pending: Iterable[PendingAlert], *, now: datetime, muted: Collection[str] = ()
) -> dict[str, list[PendingAlert]]:
    """Each notifier's due alerts, in the store's order (highest priority first, then
    oldest), up to its first alert that is not due: nothing overtakes an alert before it.
    A ``muted`` notifier's alerts wait, untried."""
    due: dict[str, list[PendingAlert]] = {}
    blocked = set(muted)
    for alert in pending:
        if alert.notifier in blocked:
            continue
        if alert.next_attempt_at is not None and alert.next_attempt_at > now:
            blocked.add(alert.notifier)
            continue
        due.setdefault(alert.notifier, []).append(alert)
    return due


def next_wake(
    pending: Iterable[tuple[str, datetime | None]], *, muted: Collection[str] = ()
) -> datetime | None:
    """When delivery can next do something, from the (notifier, next attempt) of the
    pending alerts in the store's order: the earliest time at which some notifier's first
    alert is due. An alert queued behind one that waits for its retry waits with it, so
    its own (earlier) time does not count."""
    heads: dict[str, datetime | None] = {}
    for notifier, when in pending:
        if notifier not in muted:
            heads.setdefault(notifier, when)
    times = [when for when in heads.values() if when is not None]
    return min(times, default=None)


def plan(
    pending: Sequence[PendingAlert],
    *,
    settings: Settings | None,
    now: datetime,
    recent_sends: Sequence[datetime] = (),
    spiking: Collection[tuple[str, str]] = (),
) -> list[Action]:
    """What to do, in order, with one notifier's due alerts (in the store's order).

    ``settings`` None: the notifier is not configured. ``recent_sends``: when each message
    to it went out in the last hour (a digest counts once); only ``max_per_hour`` reads it.
    ``spiking``: the (kind, name) of every rule and entity in an open spike episode; an
    item alert about one of them is folded into a digest (see :data:`SPIKE_FOLD`).
    """
    if not pending:
        return []
    if settings is None:
        return [Fail(tuple(pending), f"notifier {pending[0].notifier!r} is not configured")]
    urgent: list[Action] = [Send(a) for a in pending if a.priority == "urgent"]
    rest = [a for a in pending if a.priority != "urgent"]
    since = now - HOUR
    sent = sorted(t for t in recent_sends if t >= since)
    sent += [now] * len(urgent)  # urgent alerts count against max_per_hour
    return urgent + _ordinary(rest, settings, now, sent, spiking)


# During a spike, item alerts about what spikes go out as one digest every 10 minutes: the
# spike's own alert says what is happening, and a burst of 40 stories is then 40 lines in
# a few messages, not 40 messages. Every alert is listed; urgent ones still go at once.
SPIKE_FOLD = timedelta(minutes=10)


def in_spike(alert: PendingAlert, spiking: Collection[tuple[str, str]]) -> bool:
    """An item alert whose every rule spikes, or that mentions an entity that spikes."""
    payload = alert.payload
    rules = payload.get("rules") or ()
    if "entries" in payload or not rules:  # a spike's own alert, a summary, a notice
        return False
    if all(("rule", r) in spiking for r in rules):
        return True
    return any(("entity", e) in spiking for e in payload.get("entities") or ())


def _ordinary(
    due: list[PendingAlert],
    settings: Settings,
    now: datetime,
    sent: list[datetime],
    spiking: Collection[tuple[str, str]] = (),
) -> list[Action]:
    """Everything below urgent, highest priority first."""
    if not due:
        return []
    if settings.quiet_hours is not None:
        end = settings.quiet_hours.window_end(now)
        if end is not None:
            return [Defer(tuple(due), end, "quiet hours", held=True)]
    if settings.digest is not None:
        window_end = min(a.created_at for a in due) + timedelta(seconds=settings.digest)
        if now < window_end:
            return [Defer(tuple(due), window_end, "digest window", held=True)]
        return [Digest(tuple(due))]
    held = [a for a in due if a.held]
    fresh = [a for a in due if not a.held]
    actions: list[Action] = []
    if spiking:
        folded = [a for a in fresh if in_spike(a, spiking)]
        if folded:
            fresh = [a for a in fresh if not in_spike(a, spiking)]
            until = min(a.created_at for a in folded) + SPIKE_FOLD
            if until > now:
                actions.append(Defer(tuple(folded), until, "spike", held=True))
            else:  # waited long enough (or the notifier was down): out with the held ones
                held += folded
    if held:
        actions.append(Digest(tuple(held)) if len(held) > 1 else Send(held[0]))
        sent = [*sent, now]
    if settings.max_per_hour is not None:
        budget = max(0, settings.max_per_hour - len(sent))
        if len(fresh) > budget:
            free_at = (sent[0] if sent else now) + HOUR
            actions.append(Defer(tuple(fresh[budget:]), free_at, "max_per_hour", held=True))
            fresh = fresh[:budget]
    return actions + [Send(a) for a in fresh]


def after_failure(
    failed: Sequence[PendingAlert],
    rest: Sequence[Action],
    *,
    error: str,
    now: datetime,
    max_age: float,
    retry: float,
) -> list[Action]:
    """What replaces ``rest`` (the actions not yet taken) when an attempt at ``failed``
    fails with ``error`` at ``now``.

    Alerts undelivered for longer than ``max_age`` are given up; the others are retried
    with backoff from ``retry`` seconds. Every alert in ``rest`` waits, uncounted, until
    the failed alert's retry time (the notifier is down: trying them now would fail too).
    """
    limit = timedelta(seconds=max_age)
    expired = tuple(a for a in failed if now - a.created_at > limit)
    again = tuple(a for a in failed if a not in expired)
    actions: list[Action] = []
    if expired:
        actions.append(GiveUp(expired, f"undelivered for over {limit}: {error}", error))
    until = retry_at(again, now=now, retry=retry)
    if again:
        actions.append(Retry(again, until, error, max(a.attempts for a in again) + 1))
    waiting = tuple(a for action in rest for a in action.alerts)
    if waiting:
        actions.append(Defer(waiting, until, "notifier failing", held=False))
    return actions


def retry_at(alerts: Sequence[PendingAlert], *, now: datetime, retry: float) -> datetime:
    """When an attempt at ``alerts`` that fails at ``now`` is tried again: also written
    with the claim before the attempt, for when its outcome is never recorded (a crash)."""
    attempt = max((a.attempts for a in alerts), default=0) + 1
    return now + backoff.delay(
        attempt=attempt, base=retry, cap=backoff.DELIVERY_CAP, jitter=backoff.DELIVERY_JITTER
    )

"""What each page of the console shows, read from the state and the config as plain data
for the templates. Nothing here knows HTTP or HTML; nothing here writes.

Feed text stays text: the templates escape it (Jinja2's autoescape). Every URL and error
text goes through redaction first (see security.py), and notifiers appear only in
apprise's privacy form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from watcher.config import Config, FeedConfig
from watcher.models import Item, Match
from watcher.redact import redact_text, redact_url
from watcher.rules import RuleSet
from watcher.stories import Episode
from watcher.text import html_to_text

if TYPE_CHECKING:
    from watcher.store import AlertRecord, FeedStatus, Store

CHART_DAYS = 7
PAGE_SIZE = 50


@dataclass(frozen=True)
class Segment:
    """A piece of a snippet: plain text, or a hit to highlight."""

    text: str
    hit: bool = False


def segments(match: Match) -> list[Segment]:
    """The snippet cut at its marks: the template wraps hits in <mark>, escaping all."""
    out: list[Segment] = []
    last = 0
    for start, end in match.marks:
        if start < last:
            continue
        if start > last:
            out.append(Segment(match.snippet[last:start]))
        out.append(Segment(match.snippet[start:end], True))
        last = end
    if last < len(match.snippet):
        out.append(Segment(match.snippet[last:]))
    return out


class View:
    """One config and the secrets to keep out of every page; made again on reload."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.ruleset = RuleSet.from_config(config.unmuted(rules=[r.name for r in config.rules]))
        self.rule_names = tuple(r.name for r in config.rules)
        self.feed_names = tuple(f.name for f in config.feeds)
        self.notifier_names = tuple(config.notifiers)

    @cached_property
    def secrets(self) -> frozenset[str]:
        """Values that must never be shown: feed header values and passwords, the
        console's token, notifier URLs' user info, a database URL's password."""
        found: set[str] = set()
        for feed in self.config.feeds:
            found |= set(feed.headers.values())
            if feed.auth is not None:
                found.add(feed.auth.password)
        web = self.config.web
        if web is not None and web.auth is not None and web.auth.token:
            found.add(web.auth.token)
        url = self.config.state_url
        if url is not None:
            from sqlalchemy.engine import make_url

            password = make_url(url).password
            if password:
                found.add(str(password))
        return frozenset(found)

    @cached_property
    def notifier_urls(self) -> dict[str, str]:
        """Each notifier's URL in apprise's privacy form (tokens and passwords masked)."""
        from watcher.notify import Notifier

        shown: dict[str, str] = {}
        for name, settings in self.config.notifiers.items():
            try:
                shown[name] = redact_text(
                    Notifier(name, settings).redacted_url, self.secrets, urls=False
                )
            except Exception:  # an invalid URL: say so, never show it
                shown[name] = "(not a valid apprise URL)"
        return shown

    def redact(self, text: str | None) -> str:
        return redact_text(text or "", self.secrets)

    def feed_url(self, url: str) -> str:
        return redact_text(redact_url(url), self.secrets)

    def feed(self, name: str) -> FeedConfig | None:
        return next((f for f in self.config.feeds if f.name == name), None)

    def tags(self, feed: str) -> tuple[str, ...]:
        found = self.feed(feed)
        return found.tags if found is not None else ()


# -- feeds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedRow:
    name: str
    url: str
    health: str  # ok, failing, backing off, disabled, muted, waiting, not configured
    since: datetime | None = None  # failing since / disabled since
    next_poll_at: datetime | None = None
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    failures: int = 0
    error: str = ""
    items: int = 0
    overdue: float = 0.0  # seconds past its due time (0: not due yet)


HEALTH_ORDER = ("failing", "backing off", "disabled", "waiting", "ok", "muted", "not configured")


def feed_row(view: View, status: FeedStatus | None, name: str, now: datetime) -> FeedRow:
    configured = view.feed(name)
    url = configured.url if configured is not None else (status.url if status else "")
    if status is None:
        health = "muted" if configured is not None and not configured.enabled else "waiting"
        return FeedRow(name, view.feed_url(url), health)
    if configured is None:
        health = "not configured"
    elif not configured.enabled:
        health = "muted"
    elif status.disabled_reason:
        health = "disabled"
    elif status.failures >= view.config.feed_health.failures:
        health = "failing"
    elif status.failures:
        health = "backing off"
    elif status.last_poll_at is None:
        health = "waiting"
    else:
        health = "ok"
    overdue = 0.0
    if health in ("ok", "failing", "backing off", "waiting") and status.next_poll_at is not None:
        overdue = max(0.0, (now - status.next_poll_at).total_seconds())
    return FeedRow(
        name,
        view.feed_url(url),
        health,
        since=status.failing_since if status.failures else None,
        next_poll_at=None if status.disabled_reason else status.next_poll_at,
        last_poll_at=status.last_poll_at,
        last_success_at=status.last_success_at,
        failures=status.failures,
        error=view.redact(status.disabled_reason or status.last_error),
        items=status.items,
        overdue=overdue,
    )


def feed_rows(view: View, store: Store, now: datetime) -> list[FeedRow]:
    statuses = {s.name: s for s in store.feed_statuses()}
    names = list(view.feed_names) + sorted(set(statuses) - set(view.feed_names))
    rows = [feed_row(view, statuses.get(name), name, now) for name in names]
    return sorted(rows, key=lambda r: (HEALTH_ORDER.index(r.health), r.name))


@dataclass(frozen=True)
class FeedPage:
    row: FeedRow
    status: FeedStatus | None
    interval: float | None
    tags: tuple[str, ...]
    etag: str
    last_modified: str
    moved_to: str
    polls: list[Any]  # PollEntry, error texts redacted
    alerts: list[AlertRecord]


def feed_page(view: View, store: Store, name: str, now: datetime) -> FeedPage | None:
    status = store.feed_status(name)
    configured = view.feed(name)
    if status is None and configured is None:
        return None
    from watcher.store import PollEntry

    polls = [
        PollEntry(p.at, p.poll.__class__(**{**vars(p.poll), "error": view.redact(p.poll.error)}))
        for p in store.recent_polls(name)
    ]
    return FeedPage(
        row=feed_row(view, status, name, now),
        status=status,
        interval=configured.interval if configured is not None else None,
        tags=configured.tags if configured is not None else (),
        etag=(status.etag or "") if status else "",
        last_modified=(status.last_modified or "") if status else "",
        moved_to=view.feed_url(status.moved_to) if status and status.moved_to else "",
        polls=polls,
        alerts=store.list_alerts(feed=name, limit=10),
    )


# -- overview ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifierRow:
    name: str
    url: str
    pending: int
    failed: int
    sent: int
    muted: bool


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    count: int
    day: date


@dataclass(frozen=True)
class Chart:
    """Matches of one rule per day, as the bars of a small inline SVG."""

    rule: str
    total: int
    bars: list[Bar]
    width: int = 7 * 18
    height: int = 40


def charts(
    counts: Mapping[str, Mapping[date, int]], rules: Sequence[str], today: date
) -> list[Chart]:
    days = [today - timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]
    names = list(rules) + sorted(set(counts) - set(rules))
    peak = max((n for per_day in counts.values() for n in per_day.values()), default=0) or 1
    out: list[Chart] = []
    for rule in names:
        per_day = counts.get(rule, {})
        bars = []
        for i, day in enumerate(days):
            n = per_day.get(day, 0)
            height = 0.0 if n == 0 else max(2.0, 36.0 * n / peak)
            bars.append(Bar(i * 18.0 + 2, 38.0 - height, height, n, day))
        out.append(Chart(rule, sum(b.count for b in bars), bars))
    return out


@dataclass(frozen=True)
class Overview:
    feeds: list[FeedRow]
    by_health: dict[str, int]
    most_overdue: tuple[str, float] | None
    last_poll_at: datetime | None
    notifiers: list[NotifierRow]
    charts: list[Chart]
    daemons: list[Any]
    now: datetime
    spikes: list[Episode] = field(default_factory=list)  # open episodes, the latest first


def overview(view: View, store: Store, now: datetime) -> Overview:
    rows = feed_rows(view, store, now)
    by_health: dict[str, int] = {}
    for row in rows:
        by_health[row.health] = by_health.get(row.health, 0) + 1
    active = [f.name for f in view.config.active_feeds]
    counts = store.alert_counts_by_notifier()
    names = list(view.notifier_names) + sorted(set(counts) - set(view.notifier_names))
    notifiers = [
        NotifierRow(
            name,
            view.notifier_urls.get(name, "(not in the config)"),
            counts.get(name, {}).get("pending", 0),
            counts.get(name, {}).get("failed", 0),
            counts.get(name, {}).get("sent", 0),
            name in view.config.notifiers and not view.config.notifiers[name].enabled,
        )
        for name in names
    ]
    today = now.astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=CHART_DAYS - 1), datetime.min.time(), UTC)
    return Overview(
        feeds=rows,
        by_health=by_health,
        most_overdue=store.most_overdue(active, now) if active else None,
        last_poll_at=store.last_poll_at(active) if active else None,
        notifiers=notifiers,
        charts=charts(store.matches_per_day(since), view.rule_names, today),
        daemons=[(d, d.running(now)) for d in store.daemon_records()[:5]],
        now=now,
        spikes=[  # open, and still watched: a removed setting's episode is never closed
            e
            for e in store.spike_episodes(active_only=True)
            if (e.kind, e.name) in view.config.spike_keys
        ],
    )


# -- alerts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    rule: str | None = None
    feed: str | None = None
    notifier: str | None = None
    status: str | None = None
    before: int | None = None

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        def one(key: str) -> str | None:
            value = query.get(key, "").strip()
            return value or None

        before = one("before")
        status = one("status")
        return cls(
            one("rule"),
            one("feed"),
            one("notifier"),
            status if status in ("pending", "sent", "failed") else None,
            int(before) if before is not None and before.isdigit() else None,
        )

    def query(self, **changes: object) -> dict[str, str]:
        """These filters as query parameters (with ``changes``), for links."""
        values = {**vars(self), **changes}
        return {k: str(v) for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Explained:
    """An alert's item matched again, with the rules it named, as `watcher match` does."""

    rule: str
    known: bool  # the rule is still in the config
    matched: bool = False
    clauses: tuple[Any, ...] = ()
    terms: tuple[str, ...] = ()
    snippet: list[Segment] = field(default_factory=list)
    score: float = 0.0


@dataclass(frozen=True)
class AlertView:
    record: AlertRecord
    terms: tuple[str, ...]
    snippet: list[Segment]  # the first match's, hits marked; empty when the text is gone
    link: str
    error: str
    kind: str  # alert, summary (a flood summary), notice (feed health)
    text_kept: bool
    explained: list[Explained] = field(default_factory=list)
    listed: int = 0  # items a flood summary lists


def _kind(record: AlertRecord) -> str:
    if record.item_id.startswith("flood:"):
        return "summary"
    if record.item_id.startswith("notice:"):
        return "notice"
    return "alert"


def alert_view(view: View, store: Store, record: AlertRecord, *, explain: bool) -> AlertView:
    from watcher.alerts import safe_link

    kind = _kind(record)
    terms = tuple(str(t) for t in record.payload.get("terms", ()))
    item = store.stored_item(record.feed, record.item_id) if kind == "alert" else None
    snippet: list[Segment] = []
    explained: list[Explained] = []
    if item is not None:
        reports = view.ruleset.explain(
            item, rules=[r for r in record.rules if r in view.rule_names], tags=view.tags(item.feed)
        )
        by_rule = {r.rule: r for r in reports}
        first = next((r.match for r in reports if r.match is not None and r.match.snippet), None)
        if first is not None:
            snippet = segments(first)
        if explain:
            for rule in record.rules:
                report = by_rule.get(rule)
                if report is None:
                    explained.append(Explained(rule, known=False))
                    continue
                found = report.match
                explained.append(
                    Explained(
                        rule,
                        True,
                        report.matched,
                        report.clauses,
                        found.terms if found else (),
                        segments(found) if found and found.snippet else [],
                        found.score if found else 0.0,
                    )
                )
    listed = len(record.payload.get("items", {})) if kind == "summary" else 0
    return AlertView(
        record,
        terms,
        snippet,
        safe_link(record.link),
        view.redact(record.last_error),
        kind,
        item is not None,
        explained,
        listed,
    )


def alert_list(view: View, store: Store, filters: Filters) -> list[AlertView]:
    found = store.list_alerts(
        status=filters.status,
        rule=filters.rule,
        feed=filters.feed,
        notifier=filters.notifier,
        before=filters.before,
        limit=PAGE_SIZE,
    )
    return [alert_view(view, store, record, explain=False) for record in found]


def alert_page(view: View, store: Store, alert_id: int) -> AlertView | None:
    found = store.list_alerts(ids=[alert_id], limit=1)
    return alert_view(view, store, found[0], explain=True) if found else None


# -- the rule tester --------------------------------------------------------------------------


def test_text(
    view: View, *, text: str, title: str, rules: Iterable[str], feed: str
) -> list[Explained]:
    """``watcher match`` on a pasted text: every clause, hits and near-misses; changes nothing."""
    wanted = [r for r in rules if r in view.rule_names]
    item = Item(
        feed=feed or "(text)", id="(text)", title=html_to_text(title), content=html_to_text(text)
    )
    reports = view.ruleset.explain(item, rules=wanted or None, tags=view.tags(feed))
    return [
        Explained(
            r.rule,
            True,
            r.matched,
            r.clauses,
            r.match.terms if r.match else (),
            segments(r.match) if r.match and r.match.snippet else [],
            r.match.score if r.match else 0.0,
        )
        for r in reports
    ]


# -- health -----------------------------------------------------------------------------------


def stalled(view: View, store: Store, now: datetime) -> str | None:
    """Why polling looks stuck, judged from the state alone (so a console on another
    machine than the daemon can tell): no poll of an active feed finished for longer
    than the daemon's own watchdog allows. None when healthy."""
    config = view.config
    active = config.active_feeds
    if not active:
        return None
    limit = 3 * max(min(f.interval for f in active), 60) + 2 * config.fetch.deadline + 60
    last = store.last_poll_at([f.name for f in active])
    if last is None:
        started = max((d.started_at for d in store.daemon_records()), default=None)
        if started is None:
            return "no daemon has run on this state yet"
        if (now - started).total_seconds() > limit:
            return f"no poll has finished since a daemon started {_whole(now - started)} ago"
        return None
    idle = (now - last).total_seconds()
    if idle > limit:
        return f"no poll has finished for {idle:.0f} s (the limit is {limit:.0f} s)"
    return None


def _whole(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"

"""One poll and one delivery pass, end to end in-process: loopback feed, receiver, and the
state on each backend (a SQLite file, a real PostgreSQL database: conftest.state_db)."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from support import MATCH_RULES, FeedServer, Receiver, Route, Story, rss, wait_until

from watcher import backoff
from watcher.alerts import json_lines
from watcher.config import Config, parse_config
from watcher.exceptions import ParseError
from watcher.fetch import Fetcher, make_fetcher
from watcher.metrics import Metrics
from watcher.models import Alert, FetchResult, Priority
from watcher.notify import Notifier, build_notifiers
from watcher.parse import parse
from watcher.pipeline import deliver_pending, poll_feed
from watcher.rules import RuleSet
from watcher.store import PollDecision, Store
from watcher.workers import Found, Parsers, default_parse_processes


def make_config(feed_server: FeedServer, receiver: Receiver, *paths: str) -> Config:
    feeds = "".join(f"  - name: {p.strip('/')}\n    url: {feed_server.url(p)}\n" for p in paths)
    return parse_config(
        f"""
allow_private_networks: true
feeds:
{feeds}
{MATCH_RULES}  - name: ceasefire
    keywords: [ceasefire]
notifiers:
  hook: "{receiver.url}"
"""
    )


def poll(config: Config, name: str, client: Fetcher, store: Store) -> str:
    outcome = poll_feed(
        config.feed(name),
        config=config,
        fetcher=client,
        store=store,
        ruleset=RuleSet.from_config(config),
    )
    return f"{outcome.status} new={outcome.new} alerts={outcome.alerts} {outcome.error}".strip()


def test_baseline_is_silent_then_a_new_match_is_alerted_once(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    story = Story()
    story.add(1, "Kharkiv already in the feed")
    feed_server.routes["/news"] = route = Route(story.body())
    config = make_config(feed_server, receiver, "/news")
    notifiers = build_notifiers(config.notifiers)

    assert poll(config, "news", client, store) == "baseline new=1 alerts=0"
    assert deliver_pending(store, notifiers).sent == 0

    story.add(2, "Ceasefire near Kharkov")
    story.add(3, "Weather")
    route.body = story.body()
    assert poll(config, "news", client, store) == "new new=2 alerts=1"
    assert deliver_pending(store, notifiers).sent == 1
    (message,) = receiver.messages
    assert message["title"] == "[kharkiv, ceasefire] Ceasefire near Kharkov"
    assert "http://example.org/story/2" in message["message"]

    route.body = story.body() + b"\n"  # same items, different bytes
    assert poll(config, "news", client, store) == "new new=0 alerts=0"
    assert deliver_pending(store, notifiers).sent == 0
    assert len(receiver.messages) == 1


def test_unchanged_body_is_not_parsed_again(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    story = Story()
    story.add(1, "x")
    feed_server.routes["/news"] = Route(story.body())
    config = make_config(feed_server, receiver, "/news")
    assert poll(config, "news", client, store).startswith("baseline")
    assert poll(config, "news", client, store).startswith("unchanged")


def test_etag_gives_not_modified(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = Route(Story().body(), etag='"1"')
    config = make_config(feed_server, receiver, "/news")
    poll(config, "news", client, store)
    assert poll(config, "news", client, store).startswith("not-modified")


def test_a_broken_feed_is_recorded_and_never_stops_the_others(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/html"] = Route(
        b"<html><body>Moved</body></html>", content_type="text/html"
    )
    feed_server.routes["/good"] = Route(Story().body())
    config = make_config(feed_server, receiver, "/html", "/missing", "/good")
    assert poll(config, "html", client, store).startswith(
        "error new=0 alerts=0 the document is an HTML page"
    )
    assert poll(config, "missing", client, store).startswith("error new=0 alerts=0 HTTP 404")
    assert poll(config, "good", client, store).startswith("baseline")
    statuses = {s.name: s for s in store.feed_statuses()}
    assert (statuses["html"].last_error or "").startswith("the document is an HTML page")
    assert not statuses["html"].baselined  # an error never counts as "the feed is empty"
    assert statuses["good"].last_error is None


def test_a_failing_notifier_delays_but_never_drops(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    story = Story()
    feed_server.routes["/news"] = route = Route(story.body())
    config = make_config(feed_server, receiver, "/news")
    notifiers = build_notifiers(config.notifiers)
    poll(config, "news", client, store)
    story.add(1, "Kharkiv one")
    story.add(2, "Kharkiv two")
    route.body = story.body()
    poll(config, "news", client, store)

    receiver.status = 500
    outcome = deliver_pending(store, notifiers)
    assert (outcome.sent, outcome.failed, outcome.deferred) == (0, 1, 1)
    assert store.alert_counts() == {"pending": 2}

    receiver.status = 200
    later = datetime.now(UTC) + timedelta(hours=2)
    outcome = deliver_pending(store, notifiers, now=lambda: later)
    assert outcome.sent == 2
    assert sorted(m["title"] for m in receiver.messages) == [
        "[kharkiv] Kharkiv one",
        "[kharkiv] Kharkiv two",
    ]
    assert store.alert_counts() == {"sent": 2}


# -- issue 3: failures, backoff, moves, floods, health --------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def health_config(feed_server: FeedServer, receiver: Receiver, extra: str = "") -> Config:
    return parse_config(
        f"""
allow_private_networks: true
feed_health:
  notify: [hook]
  failures: 3
{extra}
feeds:
  - name: news
    url: {feed_server.url("/news")}
    interval: 10m
rules:
  - name: kharkiv
    keywords: [Kharkiv]
notifiers:
  hook: "{receiver.url}"
"""
    )


def run(
    config: Config, fetcher: Fetcher, store: Store, clock: Clock
) -> tuple[str, datetime | None]:
    outcome = poll_feed(
        config.feed("news"),
        config=config,
        fetcher=fetcher,
        store=store,
        ruleset=RuleSet.from_config(config),
        now=clock,
    )
    return outcome.status, outcome.next_poll_at


def test_backoff_doubles_skips_polls_and_resets_on_success(
    feed_server: FeedServer,
    receiver: Receiver,
    client: Fetcher,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="watcher")
    feed_server.routes["/news"] = route = Route(status=500)
    config = health_config(feed_server, receiver)
    clock = Clock()

    status, first = run(config, client, store, clock)
    assert status == "error" and first is not None
    assert timedelta(minutes=9) <= first - clock.now <= timedelta(minutes=11)
    clock.advance(minutes=1)
    assert run(config, client, store, clock)[0] == "backoff"
    assert feed_server.hits("/news") == 1  # skipped without a request

    clock.now = first
    status, second = run(config, client, store, clock)
    assert second is not None and timedelta(minutes=18) <= second - clock.now <= timedelta(
        minutes=22
    )

    route.status, route.body = 200, Story().body()
    clock.now = second
    assert run(config, client, store, clock) == ("baseline", None)
    assert store.feed_state("news").failures == 0
    assert "feed recovered feed=news failures=2" in caplog.text  # a recovery is said


def test_backoff_is_capped_at_a_day() -> None:
    feeds = {"cap": backoff.FEED_CAP, "jitter": backoff.FEED_JITTER}
    assert backoff.delay(attempt=30, base=3600, **feeds) <= timedelta(hours=24)
    assert backoff.delay(attempt=1, base=60, retry_after=7200, **feeds) >= timedelta(hours=2)


def test_retry_after_is_honoured(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = Route(status=429, headers={"Retry-After": "7200"})
    config = health_config(feed_server, receiver)
    clock = Clock()
    status, until = run(config, client, store, clock)
    assert status == "error" and until is not None and until - clock.now >= timedelta(hours=2)


def test_410_disables_the_feed_until_its_url_changes(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = Route(status=410)
    config = health_config(feed_server, receiver)
    clock = Clock()
    assert run(config, client, store, clock)[0] == "error"
    clock.advance(days=3)
    assert run(config, client, store, clock)[0] == "disabled"
    assert feed_server.hits("/news") == 1
    (status,) = store.feed_statuses()
    assert status.disabled_reason is not None and "410" in status.disabled_reason
    deliver_pending(store, build_notifiers(config.notifiers), now=clock)
    assert [m["title"] for m in receiver.messages] == ["[watcher] feed news disabled"]

    feed_server.routes["/news2"] = Route(Story().body())
    moved = parse_config(
        config.model_dump_json().replace("/news", "/news2")  # the user edits the URL
    )
    assert run(moved, client, store, clock)[0] == "baseline"


def test_failed_polls_keep_their_kind_labels_in_the_metrics(
    feed_server: FeedServer, receiver: Receiver, store: Store
) -> None:
    """watcher_fetch_errors_total{kind}: the labels dashboards count, taken from the class
    of the error. Read back from the message, a 404 whose URL says "deadline" was a timeout."""
    feed_server.routes["/busy"] = Route(status=429, headers={"Retry-After": "60"})
    feed_server.routes["/unavailable"] = Route(status=503)
    feed_server.routes["/broken"] = Route(status=500)
    feed_server.routes["/gone"] = Route(status=410)
    feed_server.routes["/huge"] = Route(rss([{"title": "x" * 4096, "guid": "1"}]))
    feed_server.routes["/html"] = Route(
        b"<html><body>Moved</body></html>", content_type="text/html"
    )
    feed_server.routes["/loop-a"] = Route(status=302, headers={"Location": "/loop-b"})
    feed_server.routes["/loop-b"] = Route(status=302, headers={"Location": "/loop-a"})
    feed_server.routes["/ftp"] = Route(status=302, headers={"Location": "ftp://example.org/f"})
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    with socket.socket() as hung:  # accepts, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        expected = {
            "missing": (feed_server.url("/missing"), "http"),
            "deadline": (feed_server.url("/deadline"), "http"),
            "broken": (feed_server.url("/broken"), "http"),
            "busy": (feed_server.url("/busy"), "rate_limited"),
            "unavailable": (feed_server.url("/unavailable"), "rate_limited"),
            "gone": (feed_server.url("/gone"), "gone"),
            "huge": (feed_server.url("/huge"), "size"),
            "html": (feed_server.url("/html"), "parse"),
            "loop": (feed_server.url("/loop-a"), "other"),
            "ftp": (feed_server.url("/ftp"), "connect"),
            "down": (down, "connect"),
            "intranet": (feed_server.url("/missing"), "connect"),  # the address policy
            "hung": (f"http://127.0.0.1:{hung.getsockname()[1]}/", "timeout"),
        }
        feeds = "".join(
            f"  - {{name: {name}, url: '{url}', allow_private_networks: {name != 'intranet'}}}\n"
            for name, (url, _) in expected.items()
        )
        config = parse_config(
            f"""
fetch: {{timeout: 1s, max_bytes: 2KiB}}
feeds:
{feeds}rules:
  - name: kharkiv
    keywords: [Kharkiv]
notifiers:
  hook: "{receiver.url}"
"""
        )
        metrics = Metrics()
        with make_fetcher(config) as fetcher:
            for feed in config.feeds:
                outcome = poll_feed(
                    feed,
                    config=config,
                    fetcher=fetcher,
                    store=store,
                    ruleset=RuleSet.from_config(config),
                )
                assert outcome.status == "error", outcome
                assert outcome.error_kind == expected[feed.name][1], outcome
                metrics.record_poll(outcome, 0.1)
    text = generate_latest(metrics.registry).decode()
    for name, (_, kind) in expected.items():
        assert f'watcher_fetch_errors_total{{feed="{name}",kind="{kind}"}} 1.0' in text


def test_permanent_redirect_is_remembered(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = Route(status=301, headers={"Location": "/new-home"})
    feed_server.routes["/new-home"] = Route(Story().body())
    config = health_config(feed_server, receiver)
    clock = Clock()
    assert run(config, client, store, clock)[0] == "baseline"
    clock.advance(hours=1)
    assert run(config, client, store, clock)[0] == "unchanged"
    assert (feed_server.hits("/news"), feed_server.hits("/new-home")) == (1, 2)
    (status,) = store.feed_statuses()
    assert status.moved_to == feed_server.url("/new-home")


def renumbered(count: int, prefix: str) -> bytes:
    story = Story()
    for n in range(count):
        story.items.append({"title": f"Kharkiv story {n}", "guid": f"{prefix}-{n}"})
    return story.body()


def test_guid_churn_sends_one_notice_instead_of_a_flood(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = route = Route(renumbered(20, "old"))
    config = health_config(feed_server, receiver)
    clock = Clock()
    assert run(config, client, store, clock)[0] == "baseline"
    route.body = renumbered(20, "new")  # every item matches, every id is new
    assert run(config, client, store, clock)[0] == "renumbered"
    deliver_pending(store, build_notifiers(config.notifiers), now=clock)
    assert [m["title"] for m in receiver.messages] == ["[watcher] feed news renumbered its items"]
    route.body = renumbered(20, "new")
    assert run(config, client, store, clock)[0] == "unchanged"


def test_a_small_feed_that_renumbers_is_silent_and_its_new_stories_alert(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = route = Route(renumbered(5, "a"))
    config = health_config(feed_server, receiver)
    clock = Clock()
    run(config, client, store, clock)
    route.body = renumbered(5, "b")  # five items, every id new, every title seen
    assert run(config, client, store, clock)[0] == "renumbered"
    assert store.alert_counts() == {"pending": 1}  # the notice only
    story = Story()
    for n in range(5):
        story.items.append({"title": f"Kharkiv update {n}", "guid": f"c-{n}"})
    route.body = story.body()  # five new ids with titles never seen: five new stories
    assert run(config, client, store, clock)[0] == "new"
    assert store.alert_counts() == {"pending": 6}


def test_churn_without_health_notifiers_is_only_logged(
    feed_server: FeedServer,
    receiver: Receiver,
    client: Fetcher,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.routes["/news"] = route = Route(renumbered(12, "x"))
    config = make_config(feed_server, receiver, "/news")
    poll(config, "news", client, store)
    route.body = renumbered(12, "y")
    assert poll(config, "news", client, store).startswith("renumbered")
    assert store.alert_counts() == {}
    assert "feed health feed=news notice=renumbered" in caplog.text


def test_one_failing_notice_and_one_recovery_notice(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = route = Route(status=503)
    config = health_config(feed_server, receiver)
    clock = Clock()
    for _ in range(6):
        status, until = run(config, client, store, clock)
        assert status == "error" and until is not None
        clock.now = until
    notifiers = build_notifiers(config.notifiers)
    deliver_pending(store, notifiers, now=clock)
    assert [m["title"] for m in receiver.messages] == ["[watcher] feed news is failing"]
    assert "failed 3 times in a row" in receiver.messages[0]["message"]

    route.status, route.body = 200, Story().body()
    assert run(config, client, store, clock)[0] == "baseline"
    clock.advance(hours=1)
    run(config, client, store, clock)
    deliver_pending(store, notifiers, now=clock)
    assert [m["title"] for m in receiver.messages][1:] == ["[watcher] feed news recovered"]


def test_an_item_that_vanishes_and_returns_is_not_new(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    story = Story()
    story.add(1, "Kharkiv one")
    story.add(2, "Kharkiv two")
    feed_server.routes["/news"] = route = Route(story.body())
    config = health_config(feed_server, receiver)
    clock = Clock()
    run(config, client, store, clock)
    route.body = rss(story.items[:1])  # item 1 drops out
    run(config, client, store, clock)
    clock.advance(days=200)
    assert store.prune_items(clock.now) == 0  # within twice the feed's largest size
    route.body = story.body()  # and comes back
    assert run(config, client, store, clock)[0] == "new"
    assert store.alert_counts() == {}


def test_an_html_page_after_the_baseline_touches_no_seen_state(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    story = Story()
    story.add(1, "Kharkiv old")
    feed_server.routes["/news"] = route = Route(story.body())
    config = health_config(feed_server, receiver)
    clock = Clock()
    run(config, client, store, clock)
    route.body, route.content_type = b"<html><body>Maintenance</body></html>", "text/html"
    clock.advance(hours=1)
    assert run(config, client, store, clock)[0] == "error"
    story.add(2, "Kharkiv new")
    route.body, route.content_type = story.body(), "application/rss+xml"
    clock.advance(hours=1)
    assert run(config, client, store, clock)[0] == "new"
    assert store.alert_counts() == {"pending": 1}  # only the really new item


def test_a_feed_added_later_gets_its_own_silent_baseline(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    story = Story()
    story.add(1, "Kharkiv")
    feed_server.routes["/a"] = Route(story.body())
    feed_server.routes["/b"] = Route(story.body())
    first = make_config(feed_server, receiver, "/a")
    assert poll(first, "a", client, store).startswith("baseline")
    both = make_config(feed_server, receiver, "/a", "/b")
    assert poll(both, "b", client, store).startswith("baseline")
    assert poll(both, "a", client, store).startswith("unchanged")
    assert store.alert_counts() == {}


# -- issue 5: delivery ---------------------------------------------------------------------


def outbox(receivers: dict[str, str], extra: str = "", max_age: str = "24h") -> Config:
    notifiers = "".join(f"  {name}: {value}\n" for name, value in receivers.items())
    return parse_config(
        f"allow_private_networks: true\ndelivery: {{max_age: {max_age}}}\nnotifiers:\n{notifiers}{extra}"
    )


def hook(receiver: Receiver, options: str) -> tuple[Clock, dict[str, Notifier]]:
    """A clock, and one notifier, "hook", posting to ``receiver`` with ``options``."""
    config = outbox({"hook": f"{{url: '{receiver.url}', {options}}}"})
    return Clock(), build_notifiers(config.notifiers)


def queue(
    store: Store,
    notifier: str,
    count: int,
    at: datetime,
    *,
    start: int = 0,
    priority: Priority = "normal",
) -> None:
    alerts = [
        Alert(
            feed="f",
            item_id=f"i{n}",
            notifier=notifier,
            rules=("kharkiv",),
            title=f"[kharkiv] story {n}",
            body=f"body {n}",
            link=f"http://x/{n}",
            payload={
                "title": f"story {n}",
                "link": f"http://x/{n}",
                "feed": "f",
                "rules": ["kharkiv"],
                "priority": priority,
            },
            priority=priority,
        )
        for n in range(start, start + count)
    ]
    store.commit_poll(PollDecision("f", "http://x/f", at, baselined=True, alerts=alerts))


def test_a_hung_notifier_hits_its_timeout_and_never_delays_another(store: Store) -> None:
    hung, fine = Receiver(), Receiver()
    hung.delay = 5.0
    try:
        config = outbox({"slow": f"{{url: '{hung.url}', timeout: 1s}}", "fast": f"'{fine.url}'"})
        clock = Clock()
        queue(store, "slow", 1, clock.now)
        queue(store, "fast", 1, clock.now, start=1)
        started = time.monotonic()
        outcome = deliver_pending(store, build_notifiers(config.notifiers), now=clock)
        assert time.monotonic() - started < 4  # the 5 s hang was cut at 1 s, in parallel
        assert (outcome.sent, outcome.failed) == (1, 1)
        assert fine.titles() == ["[kharkiv] story 1"]
        (pending,) = store.list_alerts(status="pending")
        assert pending.last_error == "no answer within 1 s"
    finally:
        hung.close()
        fine.close()


@pytest.mark.parametrize("status", [500, 429])
def test_errors_are_retried_in_order_after_an_outage(
    receiver: Receiver, store: Store, status: int
) -> None:
    receiver.status = status
    receiver.headers = {"Retry-After": "60"} if status == 429 else {}
    config = outbox({"hook": f"'{receiver.url}'"})
    clock = Clock()
    notifiers = build_notifiers(config.notifiers)
    queue(store, "hook", 3, clock.now)
    for _ in range(4):  # a long outage: each pass tries once, the rest wait their turn
        outcome = deliver_pending(store, notifiers, now=clock)
        assert (outcome.sent, outcome.failed) == (0, 1)
        clock.advance(hours=2)
    assert receiver.attempts == 4
    receiver.status, receiver.headers = 200, {}
    assert deliver_pending(store, notifiers, now=clock).sent == 3
    assert receiver.titles() == ["[kharkiv] story 0", "[kharkiv] story 1", "[kharkiv] story 2"]


def test_undeliverable_alerts_are_marked_failed_after_max_age(
    receiver: Receiver, store: Store
) -> None:
    receiver.status = 500
    config = outbox({"hook": f"'{receiver.url}'"}, max_age="1h")
    clock = Clock()
    notifiers = build_notifiers(config.notifiers)
    queue(store, "hook", 2, clock.now)
    deliver_pending(store, notifiers, now=clock, max_age=config.delivery.max_age)
    clock.advance(hours=2)
    outcome = deliver_pending(store, notifiers, now=clock, max_age=config.delivery.max_age)
    assert outcome.given_up >= 1
    clock.advance(hours=2)
    deliver_pending(store, notifiers, now=clock, max_age=config.delivery.max_age)
    failed = store.list_alerts(status="failed")
    assert len(failed) == 2 and all(
        "undelivered for over 1:00:00" in (a.last_error or "") for a in failed
    )
    assert store.pending_alerts() == []


def test_digest_window_batches_alerts_into_one_message(receiver: Receiver, store: Store) -> None:
    clock, notifiers = hook(receiver, "digest: 1h")
    queue(store, "hook", 2, clock.now)
    assert deliver_pending(store, notifiers, now=clock).deferred == 2
    clock.advance(minutes=30)
    queue(store, "hook", 1, clock.now, start=2)
    deliver_pending(store, notifiers, now=clock)
    assert receiver.messages == []
    clock.advance(minutes=31)
    assert deliver_pending(store, notifiers, now=clock).sent == 3
    (message,) = receiver.messages
    assert message["title"] == "[watcher] 3 alerts"
    assert message["message"].splitlines()[:2] == ["kharkiv (3)", "• story 0 (f)"]


def test_quiet_hours_hold_alerts_until_the_window_ends(receiver: Receiver, store: Store) -> None:
    clock, notifiers = hook(receiver, "quiet_hours: '22:00-07:00 Europe/Kyiv'")
    clock.now = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 23:30 in Kyiv
    queue(store, "hook", 3, clock.now)
    assert deliver_pending(store, notifiers, now=clock).deferred == 3
    clock.now = datetime(2026, 11, 25, 4, 59, tzinfo=UTC)  # 06:59 in Kyiv
    assert deliver_pending(store, notifiers, now=clock).sent == 0
    clock.now = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 07:00: the window ends
    assert deliver_pending(store, notifiers, now=clock).sent == 3
    assert receiver.titles() == ["[watcher] 3 alerts"]


def test_max_per_hour_folds_the_excess_into_a_digest(receiver: Receiver, store: Store) -> None:
    clock, notifiers = hook(receiver, "max_per_hour: 2")
    queue(store, "hook", 5, clock.now)
    outcome = deliver_pending(store, notifiers, now=clock)
    assert (outcome.sent, outcome.deferred) == (2, 3)
    clock.advance(minutes=30)
    assert deliver_pending(store, notifiers, now=clock).sent == 0
    clock.advance(minutes=31)
    assert deliver_pending(store, notifiers, now=clock).sent == 3
    assert receiver.titles() == ["[kharkiv] story 0", "[kharkiv] story 1", "[watcher] 3 alerts"]


def test_an_urgent_alert_goes_through_quiet_hours_alone_and_typed_as_failure(
    receiver: Receiver, store: Store
) -> None:
    clock, notifiers = hook(receiver, "quiet_hours: '22:00-07:00 Europe/Kyiv'")
    clock.now = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 23:30 in Kyiv
    queue(store, "hook", 3, clock.now)
    assert deliver_pending(store, notifiers, now=clock).deferred == 3
    clock.advance(minutes=10)
    queue(store, "hook", 1, clock.now, start=3, priority="urgent")
    outcome = deliver_pending(store, notifiers, now=clock)
    assert (outcome.sent, outcome.deferred) == (1, 0)  # the others stay where they were
    (message,) = receiver.messages
    assert (message["title"], message["type"]) == ("[kharkiv] story 3", "failure")
    clock.now = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 07:00: the window ends
    assert deliver_pending(store, notifiers, now=clock).sent == 3
    assert receiver.titles()[1:] == ["[watcher] 3 alerts"]


def test_an_urgent_alert_is_not_stuck_behind_a_full_page_of_deferred_ones(
    receiver: Receiver, store: Store
) -> None:
    clock, notifiers = hook(receiver, "digest: 1h")
    queue(store, "hook", 600, clock.now)  # more than one page of pending_alerts (500)
    assert deliver_pending(store, notifiers, now=clock).deferred == 500
    queue(store, "hook", 1, clock.now, start=600, priority="urgent")
    assert deliver_pending(store, notifiers, now=clock).sent == 1
    assert receiver.titles() == ["[kharkiv] story 600"]


def test_higher_priority_goes_first_and_gets_the_hourly_budget(
    receiver: Receiver, store: Store
) -> None:
    clock, notifiers = hook(receiver, "max_per_hour: 2")
    queue(store, "hook", 2, clock.now, priority="low")
    queue(store, "hook", 2, clock.now, start=2)
    queue(store, "hook", 1, clock.now, start=4, priority="high")
    outcome = deliver_pending(store, notifiers, now=clock)
    assert (outcome.sent, outcome.deferred) == (2, 3)
    assert [(m["title"], m["type"]) for m in receiver.messages] == [
        ("[kharkiv] story 4", "warning"),
        ("[kharkiv] story 2", "info"),
    ]
    clock.advance(minutes=61)
    assert deliver_pending(store, notifiers, now=clock).sent == 3
    assert receiver.titles()[2] == "[watcher] 3 alerts"


def test_ntfy_on_loopback_receives_alerts(receiver: Receiver, store: Store) -> None:
    config = outbox({"chat": f"'ntfy://127.0.0.1:{receiver.port}/desk'"})
    clock = Clock()
    queue(store, "chat", 1, clock.now)
    assert deliver_pending(store, build_notifiers(config.notifiers), now=clock).sent == 1
    (message,) = receiver.messages
    assert (message["topic"], message["title"]) == ("desk", "[kharkiv] story 0")


def test_an_unknown_notifier_keeps_its_alerts_pending(store: Store) -> None:
    clock = Clock()
    queue(store, "removed", 1, clock.now)
    assert deliver_pending(store, {}, now=clock).failed == 1
    (pending,) = store.list_alerts(status="pending")
    assert pending.last_error == "notifier 'removed' is not configured"


def test_flood_guard_on_a_real_poll(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    story = Story()
    for n in range(20):
        story.add(n, f"Old story {n}")
    feed_server.routes["/news"] = route = Route(story.body())
    config = health_config(feed_server, receiver)
    clock = Clock()
    assert run(config, client, store, clock)[0] == "baseline"
    for n in range(20, 32):  # 12 new matches next to 20 old items: news, not churn
        story.add(n, f"Kharkiv update {n}")
    route.body = story.body()
    assert run(config, client, store, clock)[0] == "new"
    deliver_pending(store, build_notifiers(config.notifiers), now=clock)
    assert receiver.titles() == ["[watcher] news: 12 matching items"]


def test_a_backoff_that_outlives_any_possible_wait_is_ignored(
    feed_server: FeedServer, receiver: Receiver, client: Fetcher, store: Store
) -> None:
    feed_server.routes["/news"] = Route(Story().body())
    config = health_config(feed_server, receiver)
    clock = Clock()
    # The clock went back three days after a backoff was stored.
    store.commit_poll(
        PollDecision(
            "news",
            "u",
            clock.now,
            kind="failure",
            error="x",
            next_poll_at=clock.now + timedelta(days=3),
        )
    )
    assert run(config, client, store, clock)[0] == "baseline"


# -- parsing in worker processes ------------------------------------------------------------


def _big_feed(count: int = 60) -> FetchResult:
    story = Story()
    for n in range(count):
        story.add(n, f"Kharkiv story {n}", "<p>Officials said &amp; more.</p> " * 20)
    body = story.body()
    assert len(body) >= Parsers.MIN_BYTES
    return FetchResult(url="http://x/", status=200, body=body, headers={})


def test_worker_processes_parse_exactly_as_the_daemon_would() -> None:
    parsers = Parsers(2)
    try:
        result = _big_feed()
        assert parsers.parse("f", result) == parse("f", result)
        assert parsers._pool is not None  # it really went to a worker
        html = FetchResult(url="http://x/", status=200, body=b"<html>" + b" " * 20000, headers={})
        with pytest.raises(ParseError, match="feed 'f': the document is an HTML page"):
            parsers.parse("f", html)
    finally:
        parsers.shutdown()


def test_a_worker_that_dies_costs_a_retry_in_the_daemon_not_the_poll() -> None:
    parsers = Parsers(1)
    try:
        result = _big_feed()
        pool = parsers._ready_pool()
        pool.submit(time.sleep, 0).result()  # the worker is up
        for process in list(pool._processes.values()):  # what the OOM killer would do
            process.kill()
            process.join()
        assert parsers.parse("f", result) == parse("f", result)
        assert parsers._pool is not pool  # a fresh pool next time
        assert parsers.parse("f", result) == parse("f", result)
    finally:
        parsers.shutdown()


def test_the_pool_stops_when_idle_and_small_documents_stay_in_process() -> None:
    parsers = Parsers(1)
    parsers.IDLE = 0.5
    small = FetchResult(url="http://x/", status=200, body=rss([{"title": "a"}]), headers={})
    assert parsers.parse("f", small).items[0].title == "a"
    assert parsers._pool is None
    parsers.parse("f", _big_feed())
    assert parsers._pool is not None
    assert wait_until(lambda: parsers._pool is None, 10)
    parsers.shutdown()


def test_where_no_worker_can_start_feeds_are_parsed_in_the_daemon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sandbox without POSIX semaphores: multiprocessing refuses, parsing goes on."""

    def refuse(method: str) -> None:
        raise PermissionError(13, "Permission denied", "/dev/shm")

    monkeypatch.setattr("multiprocessing.get_context", refuse)
    parsers = Parsers(2)
    result = _big_feed()
    assert parsers.parse("f", result) == parse("f", result)
    assert parsers.processes == 0 and parsers._pool is None


def test_a_sandbox_that_refuses_sched_getaffinity_still_gets_a_worker_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """systemd's SystemCallFilter answers EPERM to what it filters: count the CPUs instead."""

    def refused(_pid: int) -> set[int]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_getaffinity", refused)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_parse_processes() == 2
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_parse_processes() == 0


def test_workers_that_match_find_what_the_daemon_finds() -> None:
    """test-run's pool: each worker builds the rule set once and matches what it parses."""
    config = parse_config(
        "entities: {kharkiv: {aliases: [Kharkiv, Харків], transliterate: true}}\n"
        "rules: [{name: k, entities: [kharkiv]}, {name: q, query: 'story AND NOT officials'}]\n"
    )
    ruleset = RuleSet.from_config(config)
    result = _big_feed()
    parsers = Parsers(2)
    parsers.configure(2, rules=(config.rules, config.entities))
    try:
        count, matched, _ = parsers.parse_and_match("f", result, lambda: ruleset, tags=("t",))
        assert parsers._pool is not None
    finally:
        parsers.shutdown()
    parsed = parse("f", result)
    assert count == len(parsed.items) == 60
    everything = [(item, ruleset.match(item, tags=("t",))) for item in parsed.items]
    assert matched == [(item, found) for item, found in everything if found]
    assert sum(len(m) for _, m in matched) == 60  # every story names Kharkiv


TWO_RULES = parse_config(
    "rules: [{name: k, keywords: [Kharkiv]}, {name: o, keywords: [officials]}]\n"
)


def _parse_and_match(processes: int, **options: Any) -> Found:
    """_big_feed() through Parsers with TWO_RULES: in two workers, or here (0)."""
    ruleset = RuleSet.from_config(TWO_RULES)
    parsers = Parsers(processes)
    rules = (TWO_RULES.rules, TWO_RULES.entities)
    parsers.configure(processes, rules=rules if processes else None)
    try:
        return parsers.parse_and_match("f", _big_feed(), lambda: ruleset, **options)
    finally:
        parsers.shutdown()


@pytest.mark.parametrize("processes", [0, 2])
def test_parse_and_match_keeps_only_the_named_rules_settled(processes: int) -> None:
    """test-run --rule: the other rules' matches never leave the worker (nor get worked
    out here), and what comes back holds no scan (it waits to be printed)."""
    count, matched, lines = _parse_and_match(processes, only=frozenset({"o"}))
    assert count == 60
    assert len(matched) == 60
    assert lines is None
    ruleset = RuleSet.from_config(TWO_RULES)
    for item, matches in matched:
        assert [m.rule for m in matches] == ["o"]
        assert matches == [m for m in ruleset.match(item) if m.rule == "o"]
        assert all("_scan" not in vars(m) for m in matches)
        assert matches[0].snippet.startswith("Officials said")


@pytest.mark.parametrize("processes", [0, 2])
def test_a_worker_asked_to_render_sends_back_only_the_lines(processes: int) -> None:
    """test-run --json: the lines are written where the feed is matched, the same lines
    the command would write from the matches, in the document's order."""
    found = _parse_and_match(processes, render=json_lines)
    ruleset = RuleSet.from_config(TWO_RULES)
    expected = [
        line
        for item in parse("f", _big_feed()).items
        for line in json_lines(item, ruleset.match(item))
    ]
    assert (found.items, found.matched, found.lines) == (60, [], expected)
    assert len(expected) == 120
    first = json.loads(expected[0])
    assert (first["feed"], first["rule"], first["matched"]) == ("f", "k", ["Kharkiv"])

"""Spikes and trends (issue 19): mention counts, the baseline, spike episodes and alerts.

Pure parts first (the usual count of hand-made series, the episode steps, the replay),
then the counts and the spike look on a real state on each backend (a SQLite file and a
real PostgreSQL database: conftest.state_db), with history written through the store's
own poll path at past times (an injected clock); then `watcher trends` and backtest, and
last the daemon as a real process (one on SQLite, two nodes on PostgreSQL).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from support import (
    Daemon,
    FeedServer,
    Receiver,
    Route,
    Story,
    poll_at,
    rss,
    state_sql,
    trickle,
    wait_until,
)

from watcher.alerts import Spike, Style, render_digest, render_spike
from watcher.config import Config, parse_config
from watcher.delivery import Settings, plan
from watcher.models import Item, PendingAlert, PollDecision, SeenItem
from watcher.pipeline import evaluate_spikes
from watcher.store import Store
from watcher.store.upgrade import alembic_config, head
from watcher.stories import (
    BUCKET,
    DAY,
    Reading,
    SpikeSetting,
    bucket_of,
    read_counts,
    replay_spikes,
    spike_step,
    usual_count,
)

NOW = datetime(2026, 11, 30, 12, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
SETTING = SpikeSetting(window=HOUR, factor=4.0, min=8)


# -- pure: the usual count on hand-made series -------------------------------------------------


def hourly(per_hour: Sequence[int], *, days: int, end: datetime) -> dict[datetime, int]:
    """Bucket counts for ``days`` days before ``end``: ``per_hour[h]`` stories in the first
    bucket of each hour h (UTC) of each day."""
    counts: dict[datetime, int] = {}
    start = bucket_of(end) - days * DAY
    at = start.replace(minute=0)
    while at < bucket_of(end) - HOUR:  # the current window is the test's to fill
        if at >= start and per_hour[at.hour]:
            counts[at] = per_hour[at.hour]
        at += HOUR
    return counts


def test_a_flat_series_is_usual_at_its_level() -> None:
    assert usual_count([5] * 7) == 5
    counts = hourly([5] * 24, days=8, end=NOW)
    history = min(counts)
    quiet = read_counts(counts, history, NOW, SETTING)
    assert (quiet.count, quiet.usual, quiet.days) == (0, 5, 7)
    counts[bucket_of(NOW)] = 19
    assert not read_counts(counts, history, NOW, SETTING).high(SETTING)  # 19 < 4 x 5
    counts[bucket_of(NOW)] = 20
    assert read_counts(counts, history, NOW, SETTING).high(SETTING)


def test_a_daily_cycle_is_compared_with_the_same_time_of_day() -> None:
    """Busy mornings (30 stories an hour from 08 to 11 UTC), quiet nights (1 an hour):
    12 stories at 03:00 are a spike, the same 12 at 09:00 are a quiet morning."""
    cycle = [30 if 8 <= h < 12 else 1 for h in range(24)]
    night = datetime(2026, 11, 30, 3, 5, tzinfo=UTC)
    morning = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
    for at, usual, high in ((night, 1, True), (morning, 30, False)):
        counts = hourly(cycle, days=8, end=at)
        counts[bucket_of(at)] = 12
        reading = read_counts(counts, min(counts), at, SETTING)
        assert (reading.count, reading.usual, reading.high(SETTING)) == (12, usual, high)
    # The daily mean (about 6) would have called neither a spike at the factor of 4.


def test_missing_days_leave_the_median_of_the_days_there_are() -> None:
    # Days before the counts began are missing, not zero; one busy day does not count.
    assert usual_count([None, None, None, 4, 5, 6, 40]) == 5.5
    assert usual_count([6, 5, 5, 6, 5, 5, 90]) == 5  # an earlier spike does not raise the bar
    assert usual_count([0, 0, 0, 0, 0, 0, 0]) == 1  # the floor: never below one story
    counts = hourly([4] * 24, days=4, end=NOW)  # the counts began 4 days ago
    reading = read_counts(counts, min(counts), NOW, SETTING)
    assert (reading.usual, reading.days) == (4, 3)  # the 4th day back began before them


def test_a_new_rule_has_the_floor_then_its_own_recent_rate() -> None:
    assert usual_count([None] * 7) == 1  # nothing known: the floor, and min, guard it
    # No history, a few mentions: below min whatever the factor.
    counts = {bucket_of(NOW): 3}
    reading = read_counts(counts, bucket_of(NOW), NOW, SETTING)
    assert (reading.count, reading.usual, reading.high(SETTING)) == (3, 1, False)
    # Six hours old, 6 stories an hour all along: usually 6, not the floor; 12 is no spike.
    start = bucket_of(NOW) - 6 * HOUR
    counts = {start + i * BUCKET: 1 for i in range(36)}
    counts[bucket_of(NOW)] = 12
    reading = read_counts(counts, start, NOW, SETTING)
    assert reading.days == 0 and reading.usual == pytest.approx(6.0)
    assert not reading.high(SETTING)


def test_one_episode_per_burst_ends_after_a_whole_window_below_the_bar() -> None:
    quiet, busy = Reading(2, 1.0, 7), Reading(12, 1.0, 7)
    assert spike_step(None, quiet, SETTING, NOW) is None
    assert spike_step(None, busy, SETTING, NOW) == "open"
    counts = hourly([1] * 24, days=8, end=NOW)
    history = min(counts)
    burst = bucket_of(NOW)
    for minute in (0, 10, 20):
        counts[burst + timedelta(minutes=minute)] = 4  # 12 in half an hour
    episodes = replay_spikes(counts, history, SETTING, start=NOW - DAY, end=NOW + 3 * HOUR)
    (episode,) = episodes
    assert episode.started_at < burst + 30 * timedelta(minutes=1)
    assert (episode.stories, episode.usual, episode.peak) == (8, 1.0, 12)
    assert episode.ended_at is not None
    assert episode.ended_at - episode.last_high_at >= HOUR


# -- the counts and the spike look, on each backend ------------------------------------------


def spike_config(receiver_url: str = "json://localhost", **extra: str) -> Config:
    return parse_config(spike_config_text(receiver_url, **extra))


def spike_config_text(receiver_url: str = "json://localhost", **extra: str) -> str:
    return f"""\
entities:
  kharkiv:
    aliases: [Kharkiv]
    spike: {{window: 1h, factor: 4, min: 8}}
  dnipro:
    aliases: [Dnipro]
    spike: {{window: 1h, factor: 2, min: 3}}
    notify: [desk]
rules:
  - name: lviv
    keywords: [Lviv]
    spike: {{window: 1h, factor: 4, min: 5}}
    priority: high
notifiers:
  hook: "{receiver_url}"
  desk: {{url: "{receiver_url}", format: html}}
""" + "".join(f"{key}: {value}\n" for key, value in extra.items())


KHARKIV = (("entity", "kharkiv"),)


def test_a_story_counts_once_however_many_feeds_carry_it(store: Store) -> None:
    mentions = (("rule", "lviv"), ("entity", "kharkiv"))
    for n, feed in enumerate(("a", "b", "c")):
        poll_at(store, NOW + n * timedelta(minutes=1), feed, [(f"{feed}1", "s1", mentions)])
    poll_at(store, NOW + timedelta(minutes=12), "a", [("a2", "s2", mentions)])
    counts = store.mention_counts(NOW - HOUR)
    assert [(c.kind, c.name, c.start, c.stories, c.feeds) for c in counts] == [
        ("entity", "kharkiv", bucket_of(NOW), 1, 3),
        ("entity", "kharkiv", bucket_of(NOW) + BUCKET, 1, 1),
        ("rule", "lviv", bucket_of(NOW), 1, 3),
        ("rule", "lviv", bucket_of(NOW) + BUCKET, 1, 1),
    ]
    hourly_counts = store.mention_counts(NOW - HOUR, kind="rule", name="lviv", period=HOUR)
    assert [(c.start, c.stories, c.feeds) for c in hourly_counts] == [
        (NOW.replace(minute=0), 2, 3)  # distinct feeds over the hour, not a sum
    ]
    # Retention drops them (maintenance); what is newer stays.
    assert store.forget_mentions(bucket_of(NOW) + BUCKET) > 0
    assert [c.stories for c in store.mention_counts(NOW - HOUR)] == [1, 1]


def test_counts_are_written_with_the_poll_and_only_for_new_items(store: Store) -> None:
    """A baseline or a renumbered item counts for nothing: only what could alert."""
    store.commit_poll(
        PollDecision(
            "a",
            "http://example.org/a",
            NOW,
            baselined=True,
            seen=[
                SeenItem(Item("a", "old"), kind="baseline", story="s0", mentions=KHARKIV),
                SeenItem(Item("a", "new"), story="s1", mentions=KHARKIV),
            ],
        )
    )
    assert [(c.stories, c.feeds) for c in store.mention_counts(NOW - HOUR)] == [(1, 1)]


def test_a_burst_after_a_steady_week_raises_one_spike_alert(
    store: Store, receiver: Receiver
) -> None:
    config = spike_config(receiver.url)
    trickle(store, NOW)
    # The steady trickle goes on: no spike. Nor for a new rule with few mentions, nor for
    # one story that five feeds carry (counted once).
    poll_at(store, NOW, "kyiv", [("k0", "steady", KHARKIV)])
    poll_at(store, NOW, "lviv-news", [("l1", "lviv-1", (("rule", "lviv"),))])
    poll_at(store, NOW, "lviv-news", [("l2", "lviv-2", (("rule", "lviv"),))])
    for feed in ("f1", "f2", "f3", "f4", "f5"):
        poll_at(store, NOW, feed, [(f"{feed}-d", "dnipro-story", (("entity", "dnipro"),))])
    quiet = evaluate_spikes(store, config, now=NOW + timedelta(minutes=1))
    assert (quiet.opened, quiet.alerts) == ((), 0)
    assert store.pending_alerts() == []

    # The burst: 9 more stories about Kharkiv from five feeds in a few minutes.
    at = NOW + timedelta(minutes=2)
    for n in range(9):
        poll_at(store, at, f"f{n % 5 + 1}", [(f"b{n}", f"burst-{n}", KHARKIV)])
    loud = evaluate_spikes(store, config, now=at + timedelta(seconds=30))
    (episode,) = loud.opened
    assert (episode.kind, episode.name, episode.stories, episode.usual) == (
        "entity",
        "kharkiv",
        10,
        1.0,
    )
    assert episode.feeds == ("f1", "f2", "f3", "f4", "f5", "kyiv")
    assert len(episode.headlines) == 5
    assert loud.alerts == 2  # hook and desk: the entity names no notifier, so every one
    again = evaluate_spikes(store, config, now=at + timedelta(minutes=5))
    assert (again.opened, again.alerts) == ((), 0)  # one alert per episode, not per look
    titles = sorted((a.notifier, a.title) for a in store.pending_alerts())
    assert titles == [
        ("desk", "[spike] kharkiv: 10 stories in 1h (usually 1)"),
        ("hook", "[spike] kharkiv: 10 stories in 1h (usually 1)"),
    ]
    (active,) = store.spike_episodes(active_only=True)
    assert (active.name, active.peak) == ("kharkiv", 10)

    # A window later, back to normal: the episode is over; a new burst is a new one.
    later = at + 2 * HOUR
    assert [e.name for e in evaluate_spikes(store, config, now=later).closed] == ["kharkiv"]
    assert store.spike_episodes(active_only=True) == []
    for n in range(10):
        poll_at(store, later, "f1", [(f"c{n}", f"second-burst-{n}", KHARKIV)])
    (second,) = evaluate_spikes(store, config, now=later + timedelta(minutes=1)).opened
    assert second.seq == 2
    assert [e.seq for e in store.spike_episodes(since=NOW)] == [2, 1]


def test_an_episode_whose_spike_setting_is_removed_is_closed_at_the_next_look(
    store: Store,
) -> None:
    for n in range(4):  # dnipro: min 3, factor 2, no history
        poll_at(store, NOW, "a", [(f"d{n}", f"dnipro-{n}", (("entity", "dnipro"),))])
    for n in range(6):
        poll_at(store, NOW, "a", [(f"l{n}", f"lviv-{n}", (("rule", "lviv"),))])
    opened = evaluate_spikes(store, spike_config(), now=NOW).opened
    assert sorted(e.name for e in opened) == ["dnipro", "lviv"]
    # dnipro keeps its setting; lviv's is removed from the config, which is reloaded.
    text = spike_config_text().replace("    spike: {window: 1h, factor: 4, min: 5}\n", "")
    assert "lviv" in text and text.count("spike:") == 2
    later = NOW + timedelta(minutes=5)
    look = evaluate_spikes(store, parse_config(text), now=later)
    assert [(e.name, e.seq) for e in look.closed] == [("lviv", 1)]
    assert [e.name for e in store.spike_episodes(active_only=True)] == ["dnipro"]
    (ended,) = [e for e in store.spike_episodes() if e.name == "lviv"]
    assert ended.ended_at == later
    # With no spike: setting left at all, the last one is closed too; then nothing is.
    none = "rules: [{name: lviv, keywords: [Lviv]}]\n"
    assert [e.name for e in evaluate_spikes(store, parse_config(none), now=later).closed] == [
        "dnipro"
    ]
    assert evaluate_spikes(store, parse_config(none), now=later).closed == ()


def test_nodes_looking_at_once_raise_one_episode_and_one_alert(
    store: Store, state_db: str | Path
) -> None:
    """Several processes' looks at the same moment (a cluster's nodes): the episode's key
    lets one of them in, and only it queues the alert."""
    config = spike_config()
    for n in range(12):
        poll_at(store, NOW, f"f{n % 3}", [(f"b{n}", f"burst-{n}", KHARKIV)])
    nodes = [Store.open(state_db) for _ in range(4)]
    barrier = threading.Barrier(len(nodes))
    results: list[int] = []

    def look(node: Store) -> None:
        barrier.wait()
        results.append(evaluate_spikes(node, config, now=NOW + timedelta(minutes=1)).alerts)

    threads = [threading.Thread(target=look, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for node in nodes:
        node.close()
    assert sorted(results) == [0, 0, 0, 2]
    assert len(store.spike_episodes()) == 1
    assert sorted(a.notifier for a in store.pending_alerts()) == ["desk", "hook"]


def test_an_entity_spike_goes_to_the_notifiers_it_names(store: Store) -> None:
    config = spike_config()
    for n in range(4):  # dnipro: min 3, factor 2, no history
        poll_at(store, NOW, "a", [(f"d{n}", f"dnipro-{n}", (("entity", "dnipro"),))])
    assert evaluate_spikes(store, config, now=NOW).alerts == 1
    (alert,) = store.pending_alerts()
    assert alert.notifier == "desk" and alert.title.startswith("[spike] dnipro: 4 stories")
    assert '<a href="http://example.org/dnipro-0">' in alert.body
    assert (
        "Dnipro: headline of dnipro-0 &lt;b&gt;&amp;&lt;/b&gt;" in alert.body
    )  # feed text escaped


def test_a_rule_spike_has_the_rules_priority(store: Store) -> None:
    config = spike_config()
    for n in range(6):
        poll_at(store, NOW, "a", [(f"l{n}", f"lviv-{n}", (("rule", "lviv"),))])
    evaluate_spikes(store, config, now=NOW)
    assert {(a.priority, a.title.split(" [")[0]) for a in store.pending_alerts()} == {
        ("high", "HIGH")
    }


@pytest.mark.parametrize("revision", ["0002", "0003"])
def test_an_upgrade_keeps_everything_and_counts_from_then_on(
    state_db: str | Path, revision: str
) -> None:
    """From the revision before (0003, the web console's polls) and the one before it."""
    url = state_db if isinstance(state_db, str) else f"sqlite:///{state_db}"
    engine = create_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.execute(
            text(
                "INSERT INTO items (feed, item_id, title, link, first_seen_at, last_seen_at, "
                "silent, kind, link_key, fragment, title_key) VALUES ('a', 'x', 'Kharkiv', "
                "'', '2026-11-29 10:00:00', '2026-11-29 10:00:00', false, 'new', '', '', '')"
            )
        )
    engine.dispose()
    store = Store.open(state_db)
    try:
        assert store.migration is not None
        assert (store.migration.before, store.migration.after) == (f"revision {revision}", head())
        assert store.seen_ids("a", ["x"]) == {"x"}
        poll_at(store, NOW, "a", [("y", "s-y", KHARKIV)])
        assert [c.stories for c in store.mention_counts(NOW - HOUR)] == [1]
    finally:
        store.close()
    assert state_sql(state_db, "SELECT version_num FROM alembic_version") == [("0004",)]


# -- messages -----------------------------------------------------------------------------------


def spike(**changes: object) -> Spike:
    fields: dict[str, object] = {
        "kind": "entity",
        "name": "kharkiv",
        "count": 12,
        "usual": 2.5,
        "window": 3600.0,
        "factor": 4.0,
        "min": 8,
        "feeds": ["bbc", "kyiv-independent"],
        "stories": [
            {
                "title": "Strikes on *Kharkiv* <script>x</script>",
                "link": "https://example.org/a?b=1&c=2",
                "feed": "bbc",
                "feeds": ["bbc", "kyiv-independent"],
            },
            {"title": "No link here", "link": "javascript:alert(1)", "feed": "bbc", "feeds": []},
        ],
        "started": "2026-11-30 10:05 UTC",
    }
    fields.update(changes)
    return Spike(**fields)  # type: ignore[arg-type]


def test_spike_messages_escape_feed_text_in_every_format() -> None:
    title, body = render_spike(spike())
    assert title == "[spike] kharkiv: 12 stories in 1h (usually 2.5)"
    assert body.splitlines() == [
        "kharkiv (entity): 12 stories in the last 1h (usually 2.5 at this time of day), "
        "from 2 feeds.",
        "Feeds: bbc, kyiv-independent",
        "Top stories:",
        "• Strikes on *Kharkiv* <script>x</script> (bbc, kyiv-independent)",
        "  https://example.org/a?b=1&c=2",
        "• No link here ()",  # a javascript: link is no link
    ]
    _, markdown = render_spike(spike(), Style("markdown"))
    assert r"[Strikes on \*Kharkiv\* \<script\>x\</script\>](https://" in markdown
    assert "javascript" not in markdown
    _, html = render_spike(spike(), Style("html"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="https://example.org/a?b=1&amp;c=2">' in html


def test_spike_templates_see_the_spike() -> None:
    style = Style(
        "html",
        spike_title="{{ spike.name }} x{{ spike.count }} ({{ spike.window }})",
        spike_body=(
            "{{ spike.count }}/{{ spike.usual }} from {{ spike.feeds|join(', ') }}: "
            "{% for s in spike.stories %}{{ s.title }} {{ s.link }};{% endfor %}"
        ),
    )
    title, body = render_spike(spike(priority="urgent"), style)
    assert title == "kharkiv x12 (1h)"
    assert body == (
        "12/2.5 from bbc, kyiv-independent: Strikes on *Kharkiv* &lt;script&gt;x&lt;/script&gt; "
        "https://example.org/a?b=1&amp;c=2;No link here ;"
    )
    # Item templates do not apply to a spike: the default spike message is sent.
    assert render_spike(spike(), Style("text", title="{{ item.title }}"))[0].startswith(
        "[spike] kharkiv"
    )


def pending(n: int, payload: dict[str, object], at: datetime = NOW) -> PendingAlert:
    return PendingAlert(n, "hook", f"alert {n}", "body", 0, at, payload=payload)


def test_max_per_hour_overflow_folds_into_one_digest_listing_every_item() -> None:
    """Beyond the budget, every alert is held and goes out in one digest that lists each
    one, and a held spike or flood summary lists the items it stands for."""
    entries = [
        {"title": f"story {n}", "link": f"http://x/{n}", "feed": "f", "rules": ["r"]}
        for n in range(5)
    ]
    spike_payload = {
        "title": "kharkiv: 12 stories in 1h (usually 1)",
        "feed": "(spike)",
        "sources": ["a", "b"],
        "rules": ["spike: kharkiv"],
        "entries": [{"title": "top story", "link": "http://x/top", "feed": "a", "feeds": ["a"]}],
    }
    due = [pending(n, e) for n, e in enumerate(entries)] + [pending(5, spike_payload)]
    actions = plan(due, settings=Settings(max_per_hour=2), now=NOW)
    assert [type(a).__name__ for a in actions] == ["Defer", "Send", "Send"]
    held = [replace_held(a) for a in actions[0].alerts]
    (digest,) = plan(held, settings=Settings(max_per_hour=2), now=NOW + 2 * HOUR)
    title, body = render_digest([a.payload for a in digest.alerts])
    assert title == "[watcher] 4 alerts"
    for n in (2, 3, 4):
        assert f"• story {n} (f)\n  http://x/{n}" in body
    assert "• kharkiv: 12 stories in 1h (usually 1) (a, b)\n  • top story (a)" in body


def replace_held(alert: PendingAlert) -> PendingAlert:
    return PendingAlert(
        alert.id,
        alert.notifier,
        alert.title,
        alert.body,
        0,
        alert.created_at,
        payload=alert.payload,
        held=True,
    )


# -- the commands -------------------------------------------------------------------------------


def write_config(tmp_path: Path, state_db: str | Path, body: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
state: {state_db}
entities:
  kharkiv:
    aliases: [Kharkiv]
    spike: {{window: 1h, factor: 4, min: 8}}
  dnipro:
    aliases: [Dnipro]
rules:
  - name: lviv
    keywords: [Lviv]
notifiers:
  hook: "json://localhost"
{body}"""
    )
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def history(store: Store, state_db: str | Path) -> Iterator[datetime]:
    """A steady week of Kharkiv (one story an hour), then a burst of 12 stories two hours
    ago that the daemon raised as a spike; a Lviv story from two feeds now."""
    now = datetime.now(UTC)
    trickle(store, now - 2 * HOUR, hours=8 * 24)
    burst = now - 2 * HOUR
    for n in range(12):
        poll_at(store, burst, f"f{n % 3}", [(f"b{n}", f"burst-{n}", KHARKIV)])
    assert len(evaluate_spikes(store, parse_config(write_config_text()), now=burst).opened) == 1
    for feed in ("a", "b"):
        poll_at(store, now, feed, [(f"{feed}-l", "lviv-story", (("rule", "lviv"),))])
    yield now


def write_config_text() -> str:
    return (
        "entities:\n  kharkiv: {aliases: [Kharkiv], spike: {window: 1h, factor: 4, min: 8}}\n"
        "  dnipro: {aliases: [Dnipro]}\n"
        "rules:\n  - {name: lviv, keywords: [Lviv]}\n"
        "notifiers:\n  hook: json://localhost\n"
    )


def test_trends_counts_per_hour_as_json_and_as_a_table(
    history: datetime, tmp_path: Path, state_db: str | Path
) -> None:
    config = write_config(tmp_path, state_db)
    proc = cli("trends", "-c", str(config), "--entity", "kharkiv", "--since", "3h", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    hour = (history - 2 * HOUR).replace(minute=0, second=0, microsecond=0)
    assert {"entity": "kharkiv", "start": hour.isoformat(), "stories": 12, "feeds": 3} in rows
    assert {tuple(r) for r in rows} == {("entity", "start", "stories", "feeds")}
    assert len(rows) == 4  # every hour of the window, the quiet ones too
    proc = cli("trends", "-c", str(config), "--rule", "lviv", "--since", "1h", "--json")
    (last,) = [json.loads(line) for line in proc.stdout.splitlines()][-1:]
    assert (last["rule"], last["stories"], last["feeds"]) == ("lviv", 1, 2)

    proc = cli("trends", "-c", str(config), "--since", "2d", "--by", "day")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "STORIES", "PEAK", "PEAK", "AT", "LAST"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["lviv", "rule"],
        ["kharkiv", "entity"],
        ["dnipro", "entity"],
    ]
    assert "▁" not in proc.stdout  # piped: plain

    proc = cli("trends", "-c", str(config), "--spikes", "--json")
    (episode,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (episode["entity"], episode["stories"], episode["usual"], episode["end"]) == (
        "kharkiv",
        12,
        1.0,
        None,
    )
    assert episode["feeds"] == ["f0", "f1", "f2"] and len(episode["headlines"]) == 5
    proc = cli("trends", "-c", str(config), "--rule", "nope")
    assert proc.returncode == 2 and "no rule named 'nope'" in proc.stderr


def test_backtest_replays_a_spike_setting_over_stored_history(
    history: datetime, tmp_path: Path, state_db: str | Path
) -> None:
    config = write_config(tmp_path, state_db)
    proc = cli("backtest", "-c", str(config), "--spikes", "--json", "--since", "1d")
    assert proc.returncode == 0, proc.stderr
    (kept,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (kept["change"], kept["entity"], kept["usual"]) == ("kept", "kharkiv", 1.0)
    # A lower bar: the steady trickle is no spike still, and the burst is the same one.
    stricter = write_config(tmp_path, state_db).read_text().replace("min: 8", "min: 20")
    config.write_text(stricter)
    proc = cli("backtest", "-c", str(config), "--spikes", "--json", "--since", "1d")
    (removed,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (removed["change"], removed["stories"]) == ("removed", 12)
    # A setting the dnipro entity never had: nothing to raise in its history.
    looser = stricter.replace("aliases: [Dnipro]", "aliases: [Dnipro]\n    spike: {min: 1}")
    config.write_text(looser)
    proc = cli("backtest", "-c", str(config), "--since", "1d")
    assert proc.returncode == 0, proc.stderr
    assert "Spikes since" in proc.stdout
    assert "dnipro (entity, window 1h, factor 4, min 1): 0 (0 raised then too)" in proc.stdout


# -- the daemon as a real process ---------------------------------------------------------------


def feed_item(n: str, title: str, link: str = "") -> dict[str, str]:
    return {
        "title": title,
        "link": link or f"http://example.org/{n}",
        "guid": n,
        "description": title,
    }


@pytest.mark.e2e
def test_the_daemon_raises_one_spike_alert_for_a_burst_after_a_steady_week(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path, state_db: str | Path
) -> None:
    """A steady week of Kharkiv (one story an hour, written through the store beforehand),
    then live feeds: the trickle going on, a new rule with two mentions and one story that
    five feeds carry raise nothing; a burst of Kharkiv stories from five feeds raises
    exactly one spike alert, with the right counts, however long it goes on. On PostgreSQL two daemons (a cluster's
    nodes) look at the spikes, and still one alert goes out."""
    now = datetime.now(UTC)
    store = Store.open(state_db)
    trickle(store, now)  # ends an hour ago: the current window is the feeds' to fill
    store.close()
    feeds = {f"f{n}": Route(rss([])) for n in range(1, 10)}
    for name, route in feeds.items():
        feed_server.routes[f"/{name}"] = route
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
state: {state_db}
allow_private_networks: true
entities:
  kharkiv:
    aliases: [Kharkiv]
    spike: {{window: 1h, factor: 4, min: 8}}
  dnipro:
    aliases: [Dnipro]
    spike: {{window: 1h, factor: 2, min: 3}}
rules:
  - name: lviv
    keywords: [Lviv]
    spike: {{window: 1h, factor: 4, min: 5}}
feeds:
"""
        + "".join(
            f"  - {{name: {name}, url: '{feed_server.url('/' + name)}', interval: 1s}}\n"
            for name in feeds
        )
        + f'notifiers:\n  hook: "{receiver.url}"\n'
    )
    daemons = [Daemon(config, tmp_path / "first.log")]
    if isinstance(state_db, str):
        daemons.append(Daemon(config, tmp_path / "second.log"))
    added: dict[str, list[dict[str, str]]] = {name: [] for name in feeds}

    def publish(name: str, *entries: dict[str, str]) -> None:
        added[name][:0] = entries
        feeds[name].body = rss(added[name])

    def looks() -> int:
        return sum(d.log_text().count("spikes looked") for d in daemons if d.log.exists())

    def counted(sql: str) -> int:
        ((value,),) = state_sql(state_db, sql)
        return int(value or 0)

    def settled(condition: str) -> None:
        """Wait until the state shows ``condition``, then for two looks at the spikes
        after that (a look is woken by a poll that counted a watched mention: a copy of
        the Dnipro story in a feed that had none pokes it without changing any count)."""
        assert wait_until(lambda: counted(condition) == 1, 30), logs()
        for poke in pokes[:2]:
            before = looks()
            publish(poke, feed_item(f"{poke}-dnipro", dnipro_title, dnipro_link))
            assert wait_until(lambda before=before: looks() > before, 30), logs()
        del pokes[:2]

    def logs() -> str:
        return "\n".join(d.log_text() for d in daemons if d.log.exists())

    dnipro_title = "Dnipro bridge reopens after repairs on Monday"
    dnipro_link = "http://example.org/dnipro-bridge"
    pokes = ["f6", "f7", "f8", "f9"]
    try:
        for daemon in daemons:
            daemon.start()
        assert wait_until(lambda: all(feed_server.hits(f"/{name}") >= 2 for name in feeds), 30), (
            logs()
        )  # every feed's silent baseline is done
        # The trickle goes on (1 story this hour); a new rule, 2 mentions; one story, 5 feeds.
        publish("f1", feed_item("k-now", "Kharkiv: the steady trickle goes on"))
        publish("f2", feed_item("l1", "Lviv tram line extended"), feed_item("l2", "Lviv fair"))
        for name in ("f1", "f2", "f3", "f4", "f5"):
            publish(name, feed_item(f"{name}-dnipro", dnipro_title, dnipro_link))
        settled(
            "SELECT COUNT(*) FROM (SELECT 1 FROM mention_feeds WHERE name = 'dnipro' "
            "GROUP BY name HAVING COUNT(DISTINCT feed) = 5) AS five"
        )
        assert counted("SELECT SUM(stories) FROM mention_counts WHERE name = 'dnipro'") == 1
        assert counted("SELECT SUM(stories) FROM mention_counts WHERE name = 'lviv'") == 2
        assert counted("SELECT COUNT(*) FROM spike_episodes") == 0
        assert [t for t in receiver.titles() if t.startswith("[spike]")] == []

        # The burst: 7 more Kharkiv stories from five feeds, 8 in the hour in all: the bar
        # (min 8, and 4 x usually 1) is reached only once every one of them is counted.
        for n in range(7):
            publish(f"f{n % 5 + 1}", feed_item(f"burst-{n}", f"Kharkiv: explosions, report {n}"))
        assert wait_until(lambda: any(t.startswith("[spike]") for t in receiver.titles()), 60), (
            logs()
        )
        settled("SELECT COUNT(*) FROM spike_episodes")
        # It goes on: two more stories are the same episode (its peak), not a second alert.
        publish("f1", feed_item("burst-7", "Kharkiv: more explosions, report 7"))
        publish("f2", feed_item("burst-8", "Kharkiv: more explosions, report 8"))
        settled("SELECT COUNT(*) FROM spike_episodes WHERE peak = 10")
        spikes = [m for m in receiver.messages if m["title"].startswith("[spike]")]
        assert [m["title"] for m in spikes] == ["[spike] kharkiv: 8 stories in 1h (usually 1)"]
        body = spikes[0]["message"]
        assert "from 5 feeds" in body and "Feeds: f1, f2, f3, f4, f5" in body
        assert body.count("http://example.org/") == 5  # the top 5 stories, each with its link
        assert state_sql(state_db, "SELECT name, stories, peak, ended_at FROM spike_episodes") == [
            ("kharkiv", 8, 10, None)
        ]
        for daemon in daemons:
            assert daemon.signal(signal.SIGTERM) == 0
    finally:
        for daemon in daemons:
            daemon.stop()


def test_item_alerts_during_a_spike_go_out_folded_in_one_digest(
    store: Store, feed_server: FeedServer, receiver: Receiver
) -> None:
    """The burst's spike alert goes at once; the item alerts that keep coming about what
    spikes wait up to 10 minutes and go as one digest that lists every one of them."""
    from watcher.fetch import Fetcher
    from watcher.notify import build_notifiers
    from watcher.pipeline import deliver_pending, poll_feed
    from watcher.rules import RuleSet

    now = datetime.now(UTC)
    trickle(store, now)
    story = Story()
    story.add(1, "Kharkiv before the burst")
    feed_server.routes["/live"] = route = Route(story.body())
    config = parse_config(
        f"""\
allow_private_networks: true
feeds:
  - {{name: live, url: "{feed_server.url("/live")}"}}
entities:
  kharkiv:
    aliases: [Kharkiv]
    spike: {{window: 1h, factor: 4, min: 8}}
rules:
  - {{name: kharkiv-watch, entities: [kharkiv]}}
notifiers:
  hook: "{receiver.url}"
  desk: {{url: "{receiver.url}", format: html}}
"""
    )
    notifiers = build_notifiers(config.notifiers)
    ruleset = RuleSet.from_config(config)
    with Fetcher() as fetcher:

        def poll() -> str:
            return poll_feed(
                config.feed("live"), config=config, fetcher=fetcher, store=store, ruleset=ruleset
            ).status

        assert poll() == "baseline"
        for n in range(9):
            poll_at(store, now, f"f{n % 5 + 1}", [(f"b{n}", f"burst-{n}", KHARKIV)])
        assert len(evaluate_spikes(store, config, now=now).opened) == 1
        watched = config.spike_keys
        assert deliver_pending(store, notifiers, watched=watched).sent == 2  # the spike, to both
        spike_titles = [m["title"] for m in receiver.messages]
        assert all(t.startswith("[spike] kharkiv: ") for t in spike_titles), spike_titles

        for n in (2, 3, 4):
            story.add(n, f"Kharkiv, still: report {n}")
        route.body = story.body()
        assert poll() == "new"
        waiting = deliver_pending(store, notifiers, watched=watched)
        assert (waiting.sent, waiting.deferred) == (0, 6)  # 3 items x 2 notifiers, held
        later = deliver_pending(
            store, notifiers, now=lambda: now + timedelta(minutes=11), watched=watched
        )
        assert later.sent == 6
    digests = receiver.messages[2:]
    assert len(digests) == 2  # one message per notifier, not one per item
    for message in digests:
        for n in (2, 3, 4):
            assert f"Kharkiv, still: report {n}" in message["message"], message
    assert store.pending_alerts() == []

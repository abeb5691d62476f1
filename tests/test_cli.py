"""The command line, driven through click's runner and as a real subprocess."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import FeedServer, Receiver, Route, Story, without_dev_log

from watcher import __version__
from watcher.cli import JsonFormatter, cli
from watcher.config import load_config
from watcher.fetch import Fetcher
from watcher.models import Alert
from watcher.pipeline import poll_feed
from watcher.rules import RuleSet
from watcher.store import PollDecision, Store

ROOT = Path(__file__).parent.parent


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def served(feed_server: FeedServer, tmp_path: Path) -> tuple[FeedServer, Path]:
    story = Story()
    story.add(1, "Weather in Lviv")
    story.add(2, "Shelling in Kharkov’s north", "Officials report damage.")
    story.add(3, "Ceasefire talks: Ukraine and Russia meet", "In Geneva. Kharkiv mentioned.")
    feed_server.routes["/news"] = Route(story.body())
    feed_server.routes["/status"] = Route(Story().body())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
state: state/watcher.db
allow_private_networks: true  # the test servers are on loopback
feeds:
  - name: news
    url: {feed_server.url("/news")}
  - name: status
    url: {feed_server.url("/status")}
    tags: [status-pages]
entities:
  kharkiv:
    aliases: [Kharkiv, Kharkov, Харків]
rules:
  - name: kharkiv
    entities: [kharkiv]
  - name: peace-talks
    query: '("peace talks" OR ceasefire) AND (Russia OR Ukraine) AND NOT football'
notifiers:
  ops: "json://127.0.0.1:9/never-called"
""",
        encoding="utf-8",
    )
    return feed_server, config


def test_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == f"watcher, version {__version__}"


def test_check_ok(served: tuple[FeedServer, Path]) -> None:
    _, config = served
    result = invoke("check", "-c", str(config))
    assert result.exit_code == 0
    assert result.stdout == f"ok: {config}: 2 feeds, 2 rules, 1 entity, 1 notifier\n"


def test_check_reports_every_error_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "feeds:\n  - name: a\n    url: http://x.org/\n    colour: red\nrules:\n  - name: r\n    entities: [nope]\n"
    )
    result = invoke("check", "-c", str(config))
    assert result.exit_code == 2
    # A misspelt key does not hide the unknown entity: every problem in one run.
    assert result.stderr.splitlines() == [
        f"{config}:4: feeds.0.colour: unknown key",
        f"{config}:7: rules.0.entities.0: unknown entity 'nope'",
    ]


def test_check_warns_that_the_churn_keys_no_longer_apply(tmp_path: Path) -> None:
    config = tmp_path / "old.yaml"
    config.write_text(
        "feed_health:\n  churn_ratio: 0.5\n  churn_min_items: 10\n"
        "feeds:\n  - {name: a, url: 'http://x.org/'}\n"
    )
    result = invoke("check", "-c", str(config))
    assert result.exit_code == 0
    assert result.stdout == f"ok: {config}: 1 feed, 0 rules, 0 entities, 0 notifiers\n"
    warnings = result.stderr.splitlines()
    assert [w.split(": warning: ")[0] for w in warnings] == [
        f"{config}:2: feed_health.churn_ratio",
        f"{config}:3: feed_health.churn_min_items",
    ]
    assert all("no longer used: renumbering is judged item by item" in w for w in warnings)


def test_test_run_human_output(served: tuple[FeedServer, Path]) -> None:
    _, config = served
    result = invoke("test-run", "-c", str(config))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "== news" in out and "(3 items, 2 matching)" in out
    assert "* Shelling in Kharkov’s north" in out
    assert "rule kharkiv: Kharkov" in out
    assert "rule peace-talks: ceasefire, Ukraine, Russia" in out
    assert "Weather in Lviv" not in out
    assert "== status" in out and "(0 items, 0 matching)" in out


def test_test_run_json_lines(served: tuple[FeedServer, Path]) -> None:
    _, config = served
    result = invoke("test-run", "-c", str(config), "--json", "--feed", "news")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["rule"], r["id"]) for r in rows] == [
        ("kharkiv", "story-3"),
        ("peace-talks", "story-3"),
        ("kharkiv", "story-2"),
    ]
    first = rows[0]
    assert {"feed", "rule", "id", "title", "link", "matched"} <= first.keys()
    assert first["feed"] == "news"
    assert first["link"] == "http://example.org/story/3"
    assert first["matched"] == ["Kharkiv"]
    assert first["priority"] == "normal"


def test_test_run_finds_the_same_with_parse_workers_as_without(
    served: tuple[FeedServer, Path], tmp_path: Path
) -> None:
    """Documents over Parsers.MIN_BYTES go to worker processes, which parse and match."""
    server, config = served
    for name in ("big1", "big2"):
        story = Story()
        for n in range(60):
            about = "Kharkiv under fire" if n % 7 == 0 else "Weather report"
            story.add(n, f"{name} story {n}: {about}", "Officials said more. " * 20)
        server.routes[f"/{name}"] = Route(story.body())
        assert len(story.body()) > 16_384
    text = config.read_text(encoding="utf-8").replace(
        "feeds:\n",
        f"feeds:\n  - {{name: big1, url: '{server.url('/big1')}'}}\n"
        f"  - {{name: big2, url: '{server.url('/big2')}'}}\n",
    )
    outputs = []
    for processes in (2, 0):
        path = tmp_path / f"workers-{processes}.yaml"
        path.write_text(f"parse_processes: {processes}\n{text}", encoding="utf-8")
        result = invoke("test-run", "-c", str(path), "--json")
        assert result.exit_code == 0, result.output
        outputs.append(sorted(result.stdout.splitlines()))
    assert outputs[0] == outputs[1]
    assert sum('"feed": "big' in line for line in outputs[0]) == 2 * 9  # n = 0, 7, ..., 56


# `watcher ARGS...` that reports, on stderr, worker processes still alive when the command
# is done: the moment after which the interpreter only exits.
_LEFT_AT_EXIT = """\
import multiprocessing, sys
from watcher.cli import main
try:
    main()
finally:
    left = multiprocessing.active_children()
    if left:
        print(f"worker processes left at exit: {left}", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "command",
    [["test-run"], ["check"], ["match", "Kharkiv"], ["status"], ["backtest", "--since", "1h"]],
)
def test_commands_stop_their_workers_before_they_exit(
    served: tuple[FeedServer, Path], tmp_path: Path, command: list[str]
) -> None:
    """A parse pool still stopping when Python exits makes Python's own exit hook write
    to the pool's closed wake-up pipe: "Exception ignored in: <module 'threading'> ...
    OSError: [Errno 9] Bad file descriptor" on stderr, one run in dozens. The pool must be
    gone, workers and all, when the command is done."""
    _, config = served
    workers = tmp_path / "workers.yaml"  # two workers even on one core; two feeds start them
    workers.write_text("parse_processes: 2\n" + config.read_text(encoding="utf-8"))
    for argv in (["-m", "watcher"], ["-c", _LEFT_AT_EXIT]):
        proc = subprocess.run(
            [sys.executable, *argv, *command, "-c", str(workers)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Exception ignored" not in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "worker processes left at exit" not in proc.stderr, proc.stderr


def test_test_run_only_fetches_selected_feeds(served: tuple[FeedServer, Path]) -> None:
    server, config = served
    assert invoke("test-run", "-c", str(config), "--feed", "status").exit_code == 0
    assert (server.hits("/news"), server.hits("/status")) == (0, 1)


def test_test_run_unknown_feed_is_a_usage_error(served: tuple[FeedServer, Path]) -> None:
    _, config = served
    result = invoke("test-run", "-c", str(config), "--feed", "nope")
    assert result.exit_code == 2
    assert "no feed named 'nope'" in result.stderr


def test_test_run_reports_a_broken_feed_by_name_and_exits_1(
    served: tuple[FeedServer, Path],
) -> None:
    server, config = served
    server.routes["/status"] = Route(b"<html>oops</html>", content_type="text/html")
    result = invoke("test-run", "-c", str(config))
    assert result.exit_code == 1
    assert "error: feed 'status': the document is an HTML page" in result.stderr
    assert "* Shelling in Kharkov’s north" in result.stdout  # the other feed still ran


def test_test_run_writes_no_state(served: tuple[FeedServer, Path]) -> None:
    _, config = served
    state = config.parent / "state" / "watcher.db"
    assert invoke("test-run", "-c", str(config)).exit_code == 0
    assert not state.parent.exists()

    Store.open(state).close()
    before = {p.name: p.read_bytes() for p in state.parent.iterdir()}
    assert invoke("test-run", "-c", str(config), "--json").exit_code == 0
    after = {p.name: p.read_bytes() for p in state.parent.iterdir()}
    assert after == before


def test_invalid_config_exits_2_for_every_command(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("feeds: 3\n")
    for command in ("check", "test-run", "run"):
        result = invoke(command, "-c", str(config))
        assert result.exit_code == 2, command
        assert f"{config}:1: feeds: expected a list" in result.stderr


def test_feeds_lists_health_without_creating_state(served: tuple[FeedServer, Path]) -> None:
    _, config = served
    result = invoke("feeds", "-c", str(config))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "LAST", "SUCCESS", "NEXT", "POLL", "ITEMS", "URL"]
    assert "never polled" in lines[1]
    assert not (config.parent / "state").exists()


def test_feeds_shows_failing_feeds_with_their_error(served: tuple[FeedServer, Path]) -> None:
    server, config = served
    server.routes["/status"] = Route(status=503)
    loaded = load_config(config)
    store = Store.open(loaded.state_path)
    with Fetcher() as fetcher:
        for feed in loaded.feeds:
            poll_feed(
                feed,
                config=loaded,
                fetcher=fetcher,
                store=store,
                ruleset=RuleSet.from_config(loaded),
            )
    store.close()
    result = invoke("feeds", "-c", str(config), "--failing")
    assert result.exit_code == 0
    out = result.stdout
    assert "status" in out and "failing since" in out and "(1x)" in out
    assert "last error: HTTP 503" in out
    assert "news " not in out  # healthy feeds are filtered out
    everything = invoke("feeds", "-c", str(config)).stdout
    assert any(
        line.startswith("news") and " ok " in line and " 3 " in line
        for line in everything.splitlines()
    )
    assert "2 feeds (1 failing)" in invoke("status", "-c", str(config)).stdout
    # Removed from the config, the failing feed stays in the state: status counts it no more.
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(text[text.index("  - name: status") : text.index("entities:")], "")
    )
    status = invoke("status", "-c", str(config)).stdout
    assert "1 feed (0 failing)" in status and "status" not in status.split("feed (")[1]


def test_match_explains_rule_by_rule(served: tuple[FeedServer, Path]) -> None:
    _, config = served
    result = invoke("match", "-c", str(config), "Shelling in Kharkovsky street, ceasefire talk")
    assert result.exit_code == 1  # nothing matched
    out = result.stdout
    assert "rule kharkiv: no match" in out
    assert (
        "FAIL entities: kharkiv not mentioned; 'Kharkov' appears only inside the word 'kharkovsky'"
        in out
    )
    assert "FAIL query: fails at Russia OR Ukraine" in out

    result = invoke("match", "-c", str(config), "--rule", "kharkiv", "-", input="Вибухи у Харків.")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "rule kharkiv: MATCH (score 1)",
        "  ok   entities: kharkiv mentioned 1x: 'Харків'",
        "  terms: Харків",
        "  snippet: Вибухи у «Харків».",
    ]


def test_match_says_how_to_test_a_feed_scoped_rule(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "feeds:\n  - {name: status, url: 'https://s.example.org/', tags: [ops]}\n"
        "  - {name: news, url: 'https://n.example.org/'}\n"
        "rules:\n  - {name: outage, keywords: [outage], exclude: [resolved], feeds: [ops]}\n"
    )
    result = invoke("match", "-c", str(config), "Outage in Kharkiv")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "rule outage: no match",
        "  ok   exclude: none of 'resolved' present",
        "  ok   keywords: found 'outage'",
        "  FAIL feeds: applies to ops",
        "       (the text is tested as coming from no feed; --feed NAME tests it as coming "
        "from one of: status)",
    ]
    result = invoke("match", "-c", str(config), "--feed", "status", "Outage in Kharkiv")
    assert result.exit_code == 0 and "ok   feeds: applies to ops" in result.stdout


def test_match_and_test_run_show_a_priority_other_than_normal(
    served: tuple[FeedServer, Path], tmp_path: Path
) -> None:
    _, config = served
    graded = tmp_path / "graded.yaml"
    graded.write_text(
        config.read_text(encoding="utf-8").replace(
            "entities: [kharkiv]", "entities: [kharkiv]\n    priority: {high: 3}", 1
        ),
        encoding="utf-8",
    )
    result = invoke("match", "-c", str(graded), "--rule", "kharkiv", "-", input="Kharkiv")
    assert result.stdout.splitlines()[0] == "rule kharkiv: MATCH (score 1)"
    result = invoke(
        "match", "-c", str(graded), "--rule", "kharkiv", "Kharkiv", "--title", "Kharkiv"
    )
    assert result.stdout.splitlines()[0] == "rule kharkiv: MATCH (score 4, priority high)"
    out = invoke("test-run", "-c", str(graded), "--feed", "news").stdout
    assert "rule kharkiv [high]: Kharkov" in out


def test_match_reads_a_file_and_rejects_unknown_rules(
    served: tuple[FeedServer, Path], tmp_path: Path
) -> None:
    _, config = served
    page = tmp_path / "article.html"
    page.write_text('<p>Kharkov <a href="/tags/x">link</a></p>', encoding="utf-8")
    result = invoke("match", "-c", str(config), "--rule", "kharkiv", "--file", str(page))
    assert result.exit_code == 0 and "snippet: «Kharkov» link" in result.stdout
    assert invoke("match", "-c", str(config), "--rule", "nope", "x").exit_code == 2
    assert invoke("match", "-c", str(config)).exit_code == 2


CANARY = "CANARY-s3cret-7f9"


def test_notify_test_reports_success_and_failure(tmp_path: Path, receiver: Receiver) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f'notifiers:\n  hook: "json://user:{CANARY}@127.0.0.1:{receiver.port}/hook"\n'
    )
    result = invoke("notify-test", "-c", str(config), "hook")
    assert result.exit_code == 0 and result.stdout.startswith(
        "sent: hook (json://user:****@127.0.0.1"
    )
    assert receiver.titles() == ["[watcher] test message"]
    receiver.status = 500
    result = invoke("notify-test", "-c", str(config), "hook")
    assert result.exit_code == 1 and result.stderr.startswith("failed: hook")
    assert invoke("notify-test", "-c", str(config), "nope").exit_code == 2


def test_alerts_lists_sent_pending_and_failed(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("state: w.db\n")
    assert invoke("alerts", "-c", str(config)).stdout == "no alerts yet (no state database)\n"
    store = Store.open(tmp_path / "w.db")
    now = datetime.now(UTC)
    store.commit_poll(
        PollDecision(
            "f",
            "u",
            now,
            baselined=True,
            alerts=[
                Alert(
                    "f",
                    str(n),
                    "ops",
                    ("r",),
                    f"[r] item {n}",
                    "b",
                    f"https://x.example.org/{n}",
                    priority=level,
                )
                for n, level in enumerate(("normal", "normal", "low"))
            ],
        )
    )
    first, second, _ = store.pending_alerts(now)
    store.mark_sent([first.id], now)
    store.give_up([second.id], now, "undelivered for over 1 day, 0:00:00: HTTP 500")
    store.close()
    everything = invoke("alerts", "-c", str(config)).stdout
    assert "sent" in everything and "failed" in everything and "pending" in everything
    failed = invoke("alerts", "-c", str(config), "--failed").stdout.splitlines()
    assert len(failed) == 3 and "[r] item 1" in failed[0] and "HTTP 500" in failed[2]
    pending = invoke("alerts", "-c", str(config), "--pending", "--since", "1h").stdout
    assert "[low] [r] item 2" in pending and "next attempt" in pending
    assert "        https://x.example.org/2" in pending.splitlines()
    assert invoke("alerts", "-c", str(config), "--since", "soon").exit_code == 2
    rows = [
        json.loads(line)
        for line in invoke("alerts", "-c", str(config), "--json").stdout.splitlines()
    ]
    assert [(r["id"], r["status"], r["link"]) for r in rows] == [
        (1, "sent", "https://x.example.org/0"),
        (2, "failed", "https://x.example.org/1"),
        (3, "pending", "https://x.example.org/2"),
    ]
    assert set(rows[1]) >= {
        "id",
        "feed",
        "rules",
        "title",
        "link",
        "notifier",
        "status",
        "attempts",
        "created",
        "sent",
        "last_error",
    }
    assert rows[0]["sent"] is not None and rows[1]["last_error"].endswith("HTTP 500")
    assert rows[2]["rules"] == ["r"] and rows[2]["priority"] == "low"
    empty = tmp_path / "empty.yaml"
    empty.write_text("state: empty.db\n")
    Store.open(tmp_path / "empty.db").close()
    assert invoke("alerts", "-c", str(empty), "--pending").stdout == "nothing pending\n"


def test_a_canary_secret_never_appears_in_any_output_or_log(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path
) -> None:
    story = Story()
    story.add(1, "Kharkiv old")
    feed_server.routes["/news"] = route = Route(story.body())
    receiver.status = 500  # failures make every layer talk about the notifier
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""\
state: {tmp_path / "w.db"}
allow_private_networks: true
feeds:
  - {{name: news, url: "{feed_server.url("/news")}", interval: 1s}}
rules:
  - {{name: kharkiv, keywords: [Kharkiv]}}
notifiers:
  hook: "json://user:{CANARY}@127.0.0.1:{receiver.port}/hook?token={CANARY}"
"""
    )
    outputs = [
        invoke("check", "-c", str(config)).output,
        invoke("test-run", "-c", str(config)).output,
        invoke("test-run", "-c", str(config), "--json").output,
        invoke("notify-test", "-c", str(config), "hook").output,
        invoke("--log-level", "debug", "notify-test", "-c", str(config), "hook").output,
    ]
    log = tmp_path / "daemon.log"
    before = feed_server.hits("/news")  # test-run fetched it too
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--log-level", "debug", "run", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while feed_server.hits("/news") < before + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            story.add(2, "Kharkiv new")
            route.body = story.body()
            while "alert delivery failed" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    outputs.append(log.read_text())
    outputs.append(invoke("alerts", "-c", str(config)).output)
    assert "alert delivery failed" in outputs[-2], outputs[-2]  # the failure was logged
    for text in outputs:
        assert CANARY not in text


# -- issue 7: test-run options, backtest, init, OPML ----------------------------------------

FEEDS = ROOT / "tests" / "data" / "feeds"
SNAPSHOTS = ROOT / "tests" / "data" / "snapshots"


def snapshot(name: str, text: str) -> None:
    """Compare with tests/data/snapshots/NAME; WATCHER_REGEN_GOLDEN=1 rewrites it."""
    path = SNAPSHOTS / name
    if os.environ.get("WATCHER_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


SNAPSHOT_CONFIG = """\
entities:
  kharkiv: {type: place, aliases: [Kharkiv, Kharkov, "Харков*", "Харьков*"]}
rules:
  - {name: kharkiv, entities: [kharkiv]}
  - {name: talks, query: '(ceasefire OR "peace talks") AND (Russia OR Ukraine)'}
  - {name: outage, keywords: ["service disruption", "degraded performance"], exclude: [resolved]}
"""


def test_test_run_human_output_snapshot(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(SNAPSHOT_CONFIG)
    args = ["test-run", "-c", str(config)]
    for name in ("rss20.xml", "atom10.xml", "windows1251.xml"):
        args += ["--file", str(FEEDS / name)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    snapshot("test-run.txt", result.stdout.replace(str(FEEDS), "FEEDS"))


def test_test_run_rule_filter_url_and_file(served: tuple[FeedServer, Path]) -> None:
    server, config = served
    server.routes["/adhoc"] = Route(Story().body())
    result = invoke(
        "test-run",
        "-c",
        str(config),
        "--rule",
        "peace-talks",
        "--json",
        "--url",
        server.url("/adhoc"),
        "--file",
        str(FEEDS / "rss20.xml"),
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["rule"] for r in rows} == {"peace-talks"}
    assert {r["feed"] for r in rows} == {"rss20.xml"}  # --url/--file only: config feeds skipped
    assert server.hits("/adhoc") == 1 and server.hits("/news") == 0
    assert invoke("test-run", "-c", str(config), "--url", "ftp://x/").exit_code == 2


def test_test_run_send_delivers_marked_as_a_test_and_writes_nothing(
    served: tuple[FeedServer, Path], receiver: Receiver
) -> None:
    _, config = served
    text = config.read_text().replace("json://127.0.0.1:9/never-called", receiver.url)
    config.write_text(
        text.replace("entities: [kharkiv]", "entities: [kharkiv]\n    priority: urgent")
    )
    assert invoke("test-run", "-c", str(config), "--notifier", "ops").exit_code == 2  # needs --send
    result = invoke("test-run", "-c", str(config), "--feed", "news", "--send")
    assert result.exit_code == 0, result.output
    assert [(m["title"], m["type"]) for m in receiver.messages] == [
        (
            "[test] URGENT [kharkiv, peace-talks] Ceasefire talks: Ukraine and Russia meet",
            "failure",
        ),
        ("[test] URGENT [kharkiv] Shelling in Kharkov’s north", "failure"),
    ]  # what an urgent alert will look like, notify type included
    assert "sent to ops:" in result.stderr
    assert not (config.parent / "state").exists()
    receiver.status = 500
    assert invoke("test-run", "-c", str(config), "--feed", "news", "--send").exit_code == 1


def test_test_run_reads_a_file_given_by_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "c.yaml").write_text(SNAPSHOT_CONFIG)
    (tmp_path / "saved.xml").write_bytes((FEEDS / "rss20.xml").read_bytes())
    monkeypatch.chdir(tmp_path)
    result = invoke("test-run", "-c", "c.yaml", "--file", "saved.xml")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("== saved.xml  saved.xml  (")


def test_test_run_leaves_notifier_urls_to_check_and_send(served: tuple[FeedServer, Path]) -> None:
    """test-run sends nothing without --send, so it does not load apprise to judge a
    notifier's URL (it still needs a scheme); check, and test-run --send, do."""
    _, config = served
    config.write_text(config.read_text().replace("json://127.0.0.1:9", "notaservice://x"))
    result = invoke("test-run", "-c", str(config), "--feed", "news", "--json")
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["rule"] for line in result.stdout.splitlines()} == {
        "kharkiv",
        "peace-talks",
    }
    for refused in (("check",), ("test-run", "--feed", "news", "--send")):
        result = invoke(*refused, "-c", str(config))
        assert result.exit_code == 2
        assert "notifiers.ops: not a valid apprise URL (scheme 'notaservice')" in result.stderr
    config.write_text(config.read_text().replace("notaservice://x", "no scheme"))
    result = invoke("test-run", "-c", str(config), "--feed", "news")
    assert result.exit_code == 2
    assert "notifiers.ops: not an apprise URL: it needs a scheme" in result.stderr


def test_backtest_shows_what_a_rule_change_adds_and_removes(
    served: tuple[FeedServer, Path], receiver: Receiver
) -> None:
    server, path = served
    text = path.read_text().replace("json://127.0.0.1:9/never-called", receiver.url)
    path.write_text(text)
    config = load_config(path)
    store = Store.open(config.state_path)
    with Fetcher() as fetcher:
        poll = lambda c: poll_feed(  # noqa: E731
            c.feed("news"), config=c, fetcher=fetcher, store=store, ruleset=RuleSet.from_config(c)
        )
        first = Story()
        first.add(1, "Baseline Kharkiv item")
        server.routes["/news"] = route = Route(first.body())
        poll(config)  # the baseline: never counted
        first.add(2, "Kharkiv: power restored")
        first.add(3, "Ceasefire: Russia and Ukraine talk")
        route.body = first.body()
        poll(config)
    store.close()
    # The rule change to judge: kharkiv now needs "shelling"; a new rule watches ceasefires.
    changed = text.replace(
        "  - name: kharkiv\n    entities: [kharkiv]\n",
        "  - name: kharkiv\n    entities: [kharkiv]\n    keywords: [shelling]\n"
        "  - name: truce\n    keywords: [ceasefire]\n",
    )
    path.write_text(changed)
    result = invoke("backtest", "-c", str(path), "--since", "1d")
    assert result.exit_code == 0, result.output
    out = re.sub(r"since \S+ \S+", "since DATE", result.stdout)
    snapshot("backtest.txt", out)
    rows = [
        json.loads(line)
        for line in invoke("backtest", "-c", str(path), "--json").stdout.splitlines()
    ]
    assert {(r["change"], r["rule"], r["title"]) for r in rows} == {
        ("added", "truce", "Ceasefire: Russia and Ukraine talk"),
        ("removed", "kharkiv", "Kharkiv: power restored"),
    }
    only = invoke("backtest", "-c", str(path), "--rule", "truce").stdout
    assert "+ 1 added" in only and "- 0 removed" in only


def test_init_writes_a_starter_config_that_checks(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.yaml"
    result = invoke("init", "-c", str(path))
    assert result.exit_code == 0 and path.exists()
    assert (
        invoke("check", "-c", str(path)).stdout
        == f"ok: {path}: 1 feed, 1 rule, 1 entity, 1 notifier\n"
    )
    assert invoke("init", "-c", str(path)).exit_code == 2  # never overwrites by surprise
    assert invoke("init", "-c", str(path), "--force").exit_code == 0


def test_import_opml_prints_or_appends_keeping_comments(tmp_path: Path) -> None:
    opml = ROOT / "tests" / "data" / "opml" / "subscriptions.opml"
    config = tmp_path / "c.yaml"
    config.write_text(
        "# my feeds, hand-written\nfeeds:\n  - name: github-status   # keep me\n"
        "    url: https://www.githubstatus.com/history.rss\n"
    )
    printed = invoke("import-opml", "-c", str(config), str(opml))
    assert printed.exit_code == 0
    assert printed.stdout == (
        "feeds:\n"
        "  - name: kyiv-independent\n    url: https://kyivindependent.example/rss\n    tags:\n      - ukraine\n"
        "  - name: ukrinform\n    url: https://ukrinform.example/rss.xml\n    tags:\n      - ukraine\n"
    )
    assert printed.stderr.splitlines() == [
        "skipped: GitHub Status (https://www.githubstatus.com/history.rss): "
        "already in the config as 'github-status'",
        "skipped: Not a feed (ftp://example.org/feed): not an http(s) URL",
    ]
    written = invoke("import-opml", "-c", str(config), str(opml), "--write")
    assert written.exit_code == 0 and "added 2 feeds" in written.stdout
    text = config.read_text()
    assert text.startswith("# my feeds, hand-written\n") and "# keep me" in text
    assert [f.name for f in load_config(config).feeds] == [
        "github-status",
        "kyiv-independent",
        "ukrinform",
    ]
    again = invoke("import-opml", "-c", str(config), str(opml), "--write")
    assert "added 0 feeds" in again.stdout
    assert (
        "skipped: Укрінформ (https://ukrinform.example/rss.xml): already in the config as 'ukrinform'"
        in again.stderr
    )


def test_import_opml_refuses_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.opml"
    bad.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><opml><body/></opml>')
    result = invoke("import-opml", "-c", str(tmp_path / "c.yaml"), str(bad))
    assert result.exit_code == 2 and "declares XML entities" in result.stderr
    bad.write_text("<html><body/></html>")
    assert (
        "not an OPML document"
        in invoke("import-opml", str(bad), "-c", str(tmp_path / "c.yaml")).stderr
    )


def test_export_opml_round_trips(served: tuple[FeedServer, Path], tmp_path: Path) -> None:
    _, config = served
    exported = invoke("export-opml", "-c", str(config)).stdout
    out = tmp_path / "out.opml"
    out.write_text(exported)
    fresh = tmp_path / "fresh.yaml"
    imported = invoke("import-opml", "-c", str(fresh), str(out), "--write")
    assert imported.exit_code == 0, imported.output
    assert [(f.name, f.url, f.tags) for f in load_config(fresh).feeds] == [
        (f.name, f.url, f.tags) for f in load_config(config).feeds
    ]


def test_every_command_has_an_example_in_its_help() -> None:
    for name in cli.commands:
        text = invoke(name, "--help").stdout
        assert "Example" in text, name


def test_import_opml_names_feeds_in_any_script(tmp_path: Path) -> None:
    opml = tmp_path / "s.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><body>'
        '<outline type="rss" text="Українська правда" xmlUrl="https://pravda.example/rss"/>'
        '<outline type="rss" text="Ελληνικά νέα" xmlUrl="https://nea.example/rss"/>'
        '<outline type="rss" text="Українська правда" xmlUrl="http://www.pravda.example/rss"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    result = invoke("import-opml", "-c", str(tmp_path / "none.yaml"), str(opml))
    assert [line for line in result.stdout.splitlines() if "name:" in line] == [
        "  - name: ukrainska-pravda",
        "  - name: ellinika-nea",
    ]
    assert result.stderr == (
        "skipped: Українська правда (http://www.pravda.example/rss): "
        "listed twice: imported once, as 'ukrainska-pravda'\n"
    )


def test_json_logs_write_numbers_as_numbers() -> None:
    record = logging.LogRecord(
        "watcher.pipeline",
        logging.INFO,
        __file__,
        1,
        "poll feed=%s status=new items=%d took=%.2f id='%s'",
        ("news", 12, 0.25, "7"),
        None,
    )
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["feed"], entry["items"], entry["took"], entry["id"]) == ("news", 12, 0.25, "7")


def test_notify_test_without_a_local_syslog_says_nothing_was_delivered() -> None:
    """The example config's default notifier is the local syslog: where there is none (a
    container, CI), notify-test fails and says why, and the config is still valid."""
    env = {k: v for k, v in os.environ.items() if k != "WATCHER_NOTIFY_URL"}
    example = str(ROOT / "config" / "example.yaml")

    def watcher(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*without_dev_log(), sys.executable, "-m", "watcher", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    sent = watcher("notify-test", "-c", example, "default")
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert sent.stdout == ""
    assert re.fullmatch(
        r"failed: default \(syslog://\S+\): no local syslog: /dev/log does not exist; "
        r"nothing was delivered\n",
        sent.stderr,
    ), sent.stderr
    checked = watcher("check", "-c", example)
    assert checked.returncode == 0 and checked.stdout.startswith("ok: "), checked.stderr

"""Config loading: the documented shape, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import default_state_path, load_config, parse_config, parse_duration
from watcher.exceptions import ConfigError

ROOT = Path(__file__).parent.parent

ISSUE_SHAPE = """\
state: /var/lib/watcher/watcher.db      # optional; default $XDG_STATE_HOME/watcher/watcher.db
feeds:
  - name: kyiv-news                      # unique
    url: https://example.org/feed.xml
    interval: 10m                        # optional, default 15m; units s, m, h, d
    tags: [ukraine]                      # optional
  - name: status-pages
    url: https://status.example.org/history.rss
entities:
  kharkiv:
    aliases: [Kharkiv, Kharkov, Харків, Харьков]
rules:
  - name: kharkiv
    entities: [kharkiv]                  # any of these entities is mentioned
  - name: peace-talks
    query: '("peace talks" OR "peace treaty" OR ceasefire) AND (Russia OR Ukraine) AND NOT football'
  - name: outage
    keywords: [outage, "service disruption"]   # any of these
    exclude: [resolved]                         # none of these
    feeds: [status-pages]                       # feed names or tags; default: every feed
    notify: [ops]                               # notifier names; default: every notifier
notifiers:
  ops: "json://hooks.example.org/watcher"       # any apprise URL; ${VAR} is read from the environment
"""


def errors(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(issue).replace(str(path), "FILE") for issue in info.value.issues]


def test_the_documented_shape_is_accepted() -> None:
    config = parse_config(ISSUE_SHAPE)
    assert config.state == Path("/var/lib/watcher/watcher.db")
    assert [f.name for f in config.feeds] == ["kyiv-news", "status-pages"]
    assert config.feeds[0].interval == 600
    assert config.feeds[1].interval == 900  # the default, 15m
    assert config.feeds[0].tags == ("ukraine",)
    assert config.entities["kharkiv"].aliases[2] == "Харків"
    assert config.rules[2].notify == ("ops",)
    assert config.notifiers["ops"].url == "json://hooks.example.org/watcher"
    assert config.summary() == "2 feeds, 3 rules, 1 entity, 1 notifier"


def test_the_shipped_example_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "example.yaml")
    assert config.feeds and config.rules and config.notifiers
    assert config.state_path == (ROOT / ".watcher-state" / "watcher.db").resolve()


def test_unknown_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    text = "feeds:\n  - name: a\n    url: http://x.org/f\n    intreval: 5m\n"
    assert errors(text, tmp_path) == ["FILE:4: feeds.0.intreval: unknown key"]


def test_priority_is_a_level_or_scores_that_rise(tmp_path: Path) -> None:
    head = "rules:\n  - name: r\n    keywords: [x]\n    priority: "
    fixed = parse_config(head + "urgent\n").rules[0]
    graded = parse_config(head + "{high: 6, urgent: 10}\n").rules[0]
    assert (fixed.priority, graded.priority) == ("urgent", {"high": 6.0, "urgent": 10.0})
    assert parse_config("rules:\n  - {name: r, keywords: [x]}\n").rules[0].priority == "normal"
    levels = "low, normal, high, urgent"
    for value, why in [
        ("hgh", f"expected one of {levels}, or scores such as {{high: 6, urgent: 10}}"),
        ("{hgh: 3}", f"'hgh' is not a priority; use {levels}"),
        ("{high: -1}", "the score for high must be a number >= 0, got -1"),
        ("{high: 6, urgent: 3}", "scores must rise with priority: high 6, urgent 3"),
    ]:
        assert errors(head + value + "\n", tmp_path) == [f"FILE:4: rules.0.priority: {why}"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert errors("feeds: []\nruels: []\n", tmp_path) == ["FILE:2: ruels: unknown key"]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
feeds:
  - name: a
    url: ftp://x.org/f
    interval: soon
entities:
  kyiv:
    aliases: [Kyiv]
rules:
  - name: r1
    entities: [kharkiv]
  - name: r2
    keywords: [x]
    feeds: [nope]
    notify: [ops]
  - name: r3
    query: 'ceasefire AND (Russia OR'
  - name: r4
    exclude: [y]
notifiers:
  bad: "notaservice://whatever"
"""
    # Schema errors (a bad URL, a bad duration) never hide the cross-references: one run
    # reports everything.
    found = errors(text, tmp_path)
    assert found[:2] == [
        "FILE:3: feeds.0.url: must be an http:// or https:// URL, got 'ftp://x.org/f'",
        "FILE:4: feeds.0.interval: invalid duration 'soon': use a number with a unit s, m, h or d",
    ]
    assert found[2:] == errors(text.replace("ftp://", "http://").replace("soon", "5m"), tmp_path)
    found = found[2:]
    assert found[0] == "FILE:10: rules.0.entities.0: unknown entity 'kharkiv'"
    assert found[1] == "FILE:13: rules.1.feeds.0: no feed or tag is named 'nope'"
    assert found[2] == "FILE:14: rules.1.notify.0: unknown notifier 'ops'"
    assert found[3].startswith(
        "FILE:16: rules.2.query: invalid query in rule 'r3': "
        "expected a term, found the end of the query at position 24"
    )
    assert found[3].endswith("ceasefire AND (Russia OR\n" + " " * 28 + "^")
    assert found[4] == "FILE:17: rules.3: rule 'r4' needs keywords, query, entities or regex"
    assert found[5].startswith(
        "FILE:20: notifiers.bad: not a valid apprise URL (scheme 'notaservice')"
    )
    assert len(found) == 6


def test_missing_environment_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHER_TEST_TOKEN", raising=False)
    text = 'notifiers:\n  ops: "json://hooks.example.org/${WATCHER_TEST_TOKEN}"\n'
    assert errors(text, tmp_path) == [
        "FILE:2: notifiers.ops: environment variable WATCHER_TEST_TOKEN is not set"
    ]
    monkeypatch.setenv("WATCHER_TEST_TOKEN", "s3cret")
    config = parse_config(text)
    assert config.notifiers["ops"].url == "json://hooks.example.org/s3cret"


def test_env_default_and_dollar_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHER_UNSET", raising=False)
    config = parse_config(
        'notifiers:\n  a: "${WATCHER_UNSET:-json://localhost/x}"\n'
        "rules:\n  - name: r\n    keywords: ['$$100']\n"
    )
    assert config.notifiers["a"].url == "json://localhost/x"
    assert config.rules[0].keywords == ("$100",)


def test_invalid_apprise_url_is_not_echoed(tmp_path: Path) -> None:
    (issue,) = errors('notifiers:\n  x: "nosuch://user:hunter2@host"\n', tmp_path)
    assert "hunter2" not in issue


def test_duplicate_names_and_keys(tmp_path: Path) -> None:
    text = """\
feeds:
  - name: a
    url: http://x.org/1
  - name: a
    url: http://x.org/2
rules:
  - name: r
    keywords: [x]
    keywords: [y]
"""
    assert errors(text, tmp_path) == [
        "FILE:4: feeds.1.name: duplicate feed name 'a'",
        "FILE:9: rules.0.keywords: duplicate key 'keywords' (first defined on line 8)",
    ]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (issue,) = errors("feeds:\n  - name: a\n   url: [unclosed\n", tmp_path)
    assert issue.startswith("FILE:3: invalid YAML")


def test_wrong_types_and_missing_keys(tmp_path: Path) -> None:
    text = "feeds:\n  - url: http://x.org/f\n    tags: ukraine\n"
    assert errors(text, tmp_path) == [
        "FILE:2: feeds.0.name: required key is missing",
        "FILE:3: feeds.0.tags: expected a list",
    ]


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    assert errors("# nothing\n", tmp_path) == ["FILE: the config is empty"]
    assert errors("- a\n- b\n", tmp_path) == ["FILE:1: the config must be a mapping of keys"]
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("value", "seconds"), [("10m", 600), ("90s", 90), ("1h30m", 5400), ("1d", 86400), (45, 45)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "0s", "5", "10 minutes", True, "-5m"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_relative_state_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("state: data/w.db\n")
    assert load_config(tmp_path / "c.yaml").state_path == tmp_path / "data" / "w.db"


def test_default_state_path_follows_systemd_then_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/watcher")
    assert default_state_path() == Path("/var/lib/watcher/watcher.db")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", "/tmp/xdg")
    assert default_state_path() == Path("/tmp/xdg/watcher/watcher.db")


def test_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ntfy_token").write_text("tk-123\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = parse_config('notifiers:\n  ops: "ntfy://${cred:ntfy_token}@ntfy.example.org/ops"\n')
    assert config.notifiers["ops"].url == "ntfy://tk-123@ntfy.example.org/ops"
    with pytest.raises(
        ConfigError, match=r"notifiers\.ops: systemd credential missing is not available"
    ):
        parse_config('notifiers:\n  ops: "ntfy://${cred:missing}@ntfy.example.org/ops"\n')


@pytest.mark.parametrize(("value", "parsed"), [("auto", "auto"), ("0", 0), ("3", 3)])
def test_parse_processes(value: str, parsed: object) -> None:
    assert parse_config(f"parse_processes: {value}\n").parse_processes == parsed


@pytest.mark.parametrize("value", ["-1", "many", "100"])
def test_bad_parse_processes_name_the_line(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^c\.yaml:2: parse_processes: "):
        parse_config(f"feeds: []\nparse_processes: {value}\n", file="c.yaml")


def test_schema_errors_never_hide_cross_references(tmp_path: Path) -> None:
    text = """\
feeds:
  - name: a
    url: http://x.org/a
    intervall: 5m
  - name: a
    url: http://x.org/b
rules:
  - name: r
    entities: [kharkiv]
    priority: loud
notifiers:
  ops: {url: "notaservice://x", format: pdf}
"""
    found = errors(text, tmp_path)
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["FILE:4", "feeds.0.intervall"],
        ["FILE:5", "feeds.1.name"],
        ["FILE:9", "rules.0.entities.0"],
        ["FILE:10", "rules.0.priority"],
        ["FILE:12", "notifiers.ops.format"],
        ["FILE:12", "notifiers.ops.url"],
    ]
    assert "duplicate feed name 'a'" in found[1]
    assert "unknown entity 'kharkiv'" in found[2]
    assert "not a valid apprise URL" in found[5]


def test_schema_messages_are_ours_not_pydantics(tmp_path: Path) -> None:
    text = """\
fetch: {max_connections: 0}
delivery: {flood_threshold: many}
feeds:
  - {name: "", url: "http://x.org/", tags: news}
notifiers:
  ops: {url: "json://x.org/", format: pdf}
"""
    assert errors(text, tmp_path) == [
        "FILE:1: fetch.max_connections: must be at least 1",
        "FILE:2: delivery.flood_threshold: expected a whole number",
        "FILE:4: feeds.0.name: must not be empty",
        "FILE:4: feeds.0.tags: expected a list",
        "FILE:6: notifiers.ops.format: expected 'text', 'markdown' or 'html', got 'pdf'",
    ]


def test_a_feed_on_a_private_address_is_a_warning_unless_allowed(tmp_path: Path) -> None:
    config = parse_config(
        """\
feeds:
  - {name: a, url: "http://127.0.0.1:8080/feed"}
  - {name: b, url: "http://10.1.2.3/feed"}
  - {name: c, url: "http://localhost/feed", allow_private_networks: true}
  - {name: d, url: "https://example.org/feed"}
""",
        file="FILE",
    )
    assert [(w.line, w.path) for w in config.warnings] == [(2, "feeds.0.url"), (3, "feeds.1.url")]
    assert "127.0.0.1 is a loopback address" in config.warnings[0].message
    assert "10.1.2.3 is a private address" in config.warnings[1].message
    assert (
        parse_config(
            "allow_private_networks: true\n" + "feeds:\n  - {name: a, url: 'http://127.0.0.1/'}\n"
        ).warnings
        == ()
    )


def test_cluster_settings_on_a_sqlite_state_are_warned_about() -> None:
    config = parse_config("state: w.db\ncluster:\n  stall_timeout: 30s\n", file="c.yaml")
    assert config.cluster.stall_timeout == 30.0
    assert [(w.line, w.path) for w in config.warnings] == [(2, "cluster")]
    assert "applies only to a PostgreSQL state" in config.warnings[0].message
    assert parse_config("state: w.db\n", file="c.yaml").warnings == ()
    with pytest.raises(ConfigError, match="stall_timeout"):
        parse_config("cluster: {stall_timeout: 1s}\n", file="c.yaml")


def test_the_config_digest_ignores_layout_and_the_process_but_not_content(tmp_path: Path) -> None:
    """Nodes compare digests: the same config written differently, read by processes with
    different hash seeds, is one digest; a changed feed is another."""
    import subprocess
    import sys

    one = (
        "feeds:\n  - {name: a, url: 'http://example.org/a', tags: [x, y, z]}\n"
        "notifiers:\n  n: {url: 'json://h', quiet_hours: '22:00-07:00 Europe/Kyiv'}\n"
    )
    two = (
        "# the same, laid out otherwise\nnotifiers:\n  n:\n    quiet_hours: 22:00-07:00 "
        "Europe/Kyiv\n    url: json://h\nfeeds:\n  - name: a\n    tags: [x, y, z]\n"
        "    url: http://example.org/a\n"
    )
    digests = set()
    for seed, text in (("1", one), ("2", two), ("3", one)):
        path = tmp_path / f"c{seed}.yaml"
        path.write_text(text)
        code = f"from watcher.config import load_config; print(load_config({str(path)!r}).digest)"
        digests.add(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            ).stdout.strip()
        )
    assert len(digests) == 1
    changed = parse_config(one.replace("/a'", "/b'"), file="c.yaml")
    assert changed.digest not in digests

"""Where the state lives, as a user meets it: ``state:`` as a file or a PostgreSQL URL,
`watcher migrate`, readers that never write, and a password that never shows."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pgserver import PASSWORD_ROLE, PostgresServer
from support import Daemon, FeedServer, Route, Story, wait_until

from watcher.cli import cli
from watcher.cluster import queue_schema_version
from watcher.config import load_config
from watcher.models import Alert, Item, SeenItem
from watcher.store import PollDecision, Store
from watcher.store.upgrade import head

DATA = Path(__file__).parent / "data"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def write_config(path: Path, state: str | Path, rest: str = "") -> Path:
    path.write_text(f'# the state\nstate: "{state}"\n{rest}', encoding="utf-8")
    return path


def seed(target: str | Path) -> None:
    """A state with one feed, one item and one pending alert, as a daemon leaves it."""
    from datetime import UTC, datetime

    store = Store.open(target)
    item = Item(feed="news", id="a", title="Kharkiv story", link="http://x/a")
    store.commit_poll(
        PollDecision(
            "news",
            "http://x/news",
            datetime.now(UTC),
            baselined=True,
            seen=[SeenItem(item)],
            present=["a"],
            alerts=[Alert("news", "a", "ops", ("kharkiv",), "[kharkiv] Kharkiv story", "b")],
        )
    )
    store.close()


# -- state: a file or a URL ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://watcher@db.example.org/watcher", "unsupported database URL scheme 'mysql'"),
        ("sqlite:///var/lib/watcher/w.db", "unsupported database URL scheme 'sqlite'"),
        ("postgresql+psycopg2://db/watcher", "unsupported database URL scheme 'postgresql+psy"),
        ("postgresql://watcher@db.example.org", "the URL names no database"),
        ("postgresql://watcher@db.example.org:port/watcher", "not a valid database URL"),
    ],
)
def test_a_state_url_watcher_cannot_open_is_a_check_error_naming_key_and_line(
    tmp_path: Path, value: str, message: str
) -> None:
    config = write_config(tmp_path / "c.yaml", value)
    result = invoke("check", "-c", str(config))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{config}:2: state: {message}"), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # never a file name


def test_a_url_is_never_taken_for_a_file_name(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", "postgresql://watcher@db/watcher"))
    assert (config.backend, config.state_name) == (
        "postgresql",
        "postgresql+psycopg://watcher@db/watcher",
    )
    with pytest.raises(ValueError, match="not a file"):
        _ = config.state_path
    sqlite = load_config(write_config(tmp_path / "s.yaml", "data/w.db"))
    assert (sqlite.backend, sqlite.state_path) == ("sqlite", tmp_path / "data" / "w.db")
    assert sqlite.state_url is None


def test_a_postgresql_state_without_the_driver_says_what_to_install(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", "postgresql://watcher@db.example.org/watcher")
    # psycopg is installed here: the process is made to see it missing, as a plain
    # `pip install watcher` would leave it.
    code = (
        "import sys; sys.modules['psycopg'] = None; "
        f"from watcher.cli import main; main(['check', '-c', {str(config)!r}])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"{config}:2: state: a PostgreSQL state needs the psycopg driver: "
        "pip install 'watcher[postgres]'\n"
    )


# -- watcher migrate ---------------------------------------------------------------------


def test_migrate_creates_the_state_then_finds_nothing_to_do(
    state_db: str | Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", state_db)
    name = load_config(config).state_name
    # PostgreSQL: and the cluster's job queue beside it (tests/test_cluster_ops.py).
    queue = f"queue schema created ({queue_schema_version()}) on {name}\n"
    queue_again = f"queue schema ({queue_schema_version()}) on {name}; nothing to do\n"
    if isinstance(state_db, Path):
        queue = queue_again = ""
    first = invoke("migrate", "-c", str(config))
    assert (first.exit_code, first.stdout) == (
        0,
        f"state {name} created at revision {head()}\n{queue}",
    )
    again = invoke("migrate", "-c", str(config))
    assert (again.exit_code, again.stdout) == (
        0,
        f"state {name} at revision {head()}; nothing to do\n{queue_again}",
    )


def test_readers_ask_for_migrate_on_an_old_state_and_migrate_upgrades_it(
    tmp_path: Path,
) -> None:
    """A file of the previous release: status leaves it untouched and says what to do."""
    import sqlite3

    db = tmp_path / "w.db"
    conn = sqlite3.connect(db)
    conn.executescript((DATA / "state" / "schema-v2.sql").read_text(encoding="utf-8"))
    conn.close()
    config = write_config(tmp_path / "c.yaml", db)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    for command in ("status", "feeds", "alerts", "backtest"):
        result = invoke(command, "-c", str(config))
        assert result.exit_code == 1, command
        assert result.stderr == (
            f"error: cannot open state database {db}: it is at schema version 2, older than "
            "this watcher; start `watcher run` once, or run `watcher migrate`\n"
        ), command
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before

    result = invoke("migrate", "-c", str(config))
    assert (result.exit_code, result.stdout) == (
        0,
        f"state {db} upgraded from schema version 2 to revision {head()}\n",
    )
    assert invoke("status", "-c", str(config)).exit_code == 0


def test_migrate_refuses_a_state_newer_than_this_watcher(
    state_db: str | Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", state_db)
    assert invoke("migrate", "-c", str(config)).exit_code == 0
    from sqlalchemy import create_engine, text

    engine = create_engine(state_db if isinstance(state_db, str) else f"sqlite:///{state_db}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'beef_from_the_future'"))
    engine.dispose()
    for command in ("migrate", "status"):
        result = invoke(command, "-c", str(config))
        assert result.exit_code == 1
        assert "is at revision beef_from_the_future, newer than this watcher" in result.stderr
        assert result.stderr.rstrip().endswith("; upgrade watcher")


# -- readers write nothing -----------------------------------------------------------------


def test_reading_commands_leave_a_sqlite_state_byte_for_byte_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    seed(db)
    config = write_config(
        tmp_path / "c.yaml", db, "feeds:\n  - name: news\n    url: http://x/news\n"
    )
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    status = invoke("status", "-c", str(config))
    assert status.exit_code == 0 and "[kharkiv] Kharkiv story" in status.stdout
    for command in ("feeds", "alerts", "backtest"):
        assert invoke(command, "-c", str(config)).exit_code == 0, command
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_status_of_an_empty_postgresql_database_says_never_run(
    postgres_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", postgres_url)
    result = invoke("status", "-c", str(config))
    assert result.exit_code == 0
    assert f"never run (no state at {postgres_url})" in result.stdout
    assert invoke("alerts", "-c", str(config)).stdout == "no alerts yet (no state database)\n"


# -- the password ----------------------------------------------------------------------------

CANARY = "Canary-4b1d-secret"


@pytest.fixture
def password_state(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """A database owned by a role that logs in with a password (scram), and the URL that
    gives it from ${WATCHER_DB_PASSWORD}: what the README tells users to set up."""
    with postgres.admin() as conn:
        conn.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
        conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{CANARY}'")
    database = postgres.create_database(owner=PASSWORD_ROLE)
    monkeypatch.setenv("WATCHER_DB_PASSWORD", CANARY)
    url = f"postgresql://{PASSWORD_ROLE}:${{WATCHER_DB_PASSWORD}}@127.0.0.1:{postgres.port}/{database}"
    masked = f"postgresql+psycopg://{PASSWORD_ROLE}:***@127.0.0.1:{postgres.port}/{database}"
    yield url, masked
    postgres.drop_database(database)
    with postgres.admin() as conn:
        conn.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")


def test_the_password_never_shows_in_output_errors_or_logs(
    password_state: tuple[str, str], tmp_path: Path, feed_server: FeedServer
) -> None:
    url, masked = password_state
    story = Story()
    story.add(1, "Weather in Lviv")
    feed_server.routes["/news"] = Route(story.body())
    rest = (
        "allow_private_networks: true\n"
        f"feeds:\n  - name: news\n    url: {feed_server.url('/news')}\n    interval: 1s\n"
    )
    config = write_config(tmp_path / "c.yaml", url, rest)
    outputs = []
    for command in ("check", "migrate", "status", "feeds", "alerts", "backtest"):
        result = invoke(command, "-c", str(config))
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.output)
    assert f"state {masked} created at revision {head()}" in outputs[1]
    assert all(CANARY not in out for out in outputs), outputs

    # The daemon, logging at debug level: it polls into PostgreSQL and never says it.
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        assert daemon.started(), daemon.log_text()
        assert wait_until(lambda: "status=baseline" in daemon.log_text(), 30), daemon.log_text()
        assert daemon.signal(signal.SIGTERM) == 0
    finally:
        daemon.stop()
    log = daemon.log_text()
    assert f"state={masked}" in log and CANARY not in log

    # A wrong password: refused, explained, and neither password shown.
    wrong = write_config(
        tmp_path / "wrong.yaml", url.replace("${WATCHER_DB_PASSWORD}", "x" + CANARY)
    )
    for command in ("migrate", "status"):
        result = invoke(command, "-c", str(wrong))
        assert result.exit_code == 1
        assert "password authentication failed" in result.stderr, result.stderr
        assert "check them in `state`" in result.stderr and masked in result.stderr
        assert CANARY not in result.output


def test_status_names_the_backend_and_how_many_daemons_share_it(
    postgres_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", postgres_url)
    assert invoke("migrate", "-c", str(config)).exit_code == 0
    lines = invoke("status", "-c", str(config)).stdout.splitlines()
    assert lines[:2] == [
        "daemon: never ran on this state",
        f"state: PostgreSQL {postgres_url} (shared: 0 daemons running)",
    ]

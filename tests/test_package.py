"""The public surface: every name watcher re-exports resolves, and importing one part
does not drag in the rest (parse workers import only the parser)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import watcher


def test_every_public_name_resolves() -> None:
    for name in watcher.__all__:
        assert getattr(watcher, name) is not None, name


def test_the_parse_workers_import_without_the_daemons_dependencies() -> None:
    code = (
        "import sys, watcher.workers; "
        "print(','.join(m for m in ('sqlalchemy', 'apprise', 'jinja2', 'pydantic', 'httpx') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_new_daemon_on_sqlite_imports_nothing_of_the_cluster_nor_of_migrations() -> None:
    """Single machine stays simple: procrastinate, psycopg and SQLAlchemy's PostgreSQL
    dialects are for PostgreSQL only. And a daemon keeps what it imported for months:
    Alembic is for migrating a state (a new one is created from the tables' declaration),
    rapidfuzz for comparing two headlines (only when an item resembles another feed's)."""
    code = (
        "import sys, tempfile, pathlib\n"
        "from watcher.config import parse_config\n"
        "from watcher.daemon import Daemon\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "config = parse_config(f'state: {d}/w.db\\n', file='c.yaml')\n"
        "daemon = Daemon(config)\n"
        "daemon._schedule()\n"
        "print(daemon.store.migration.describe('w.db'), daemon.cluster)\n"
        "print(*(m for m in ('procrastinate', 'psycopg', 'psycopg_pool', 'watcher.cluster', "
        "'sqlalchemy.dialects.postgresql', 'alembic', 'mako', 'rapidfuzz') if m in sys.modules))\n"
        "daemon.store.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["state w.db created at revision 0004 None", ""]


HEAVY = ("apprise", "prometheus_client", "jinja2", "sqlalchemy", "httpx")
FEEDS = Path(__file__).parent / "data" / "feeds"
CONFIG = """\
feeds:
  - {name: news, url: "https://news.example.org/feed.xml"}
rules:
  - {name: everything, query: "NOT zzzzqqq"}
notifiers:
  ops: "json://hooks.example.org/watcher"
"""


def modules_after(tmp_path: Path, *args: str) -> tuple[str, set[str]]:
    """What ``watcher ARGS`` printed, and which of HEAVY its process imported: the CLI
    runs in the process that then looks at sys.modules."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    code = (
        "import sys\n"
        "from watcher.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('imported:', *(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    argv = [a.replace("CONFIG", str(config)) for a in args]
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    ).stdout
    *printed, last = out.splitlines()
    assert last.startswith("imported:"), out
    return "\n".join(printed), set(last.split()[1:])


def test_test_run_imports_neither_apprise_nor_jinja2_nor_the_daemons_parts(
    tmp_path: Path,
) -> None:
    """Nothing is sent, so apprise is not loaded, not even to check the notifier's URL;
    messages are not rendered; no metrics, no state. (httpx is there: test-run fetches.)"""
    printed, imported = modules_after(
        tmp_path, "test-run", "-c", "CONFIG", "--file", str(FEEDS / "rss20.xml"), "--json"
    )
    assert '"rule": "everything"' in printed
    assert imported == {"httpx"}


def test_match_and_check_import_no_more_than_they_need(tmp_path: Path) -> None:
    printed, imported = modules_after(tmp_path, "match", "-c", "CONFIG", "anything at all")
    assert "rule everything: MATCH" in printed
    assert imported == set()
    # check asks apprise whether the notifier URL is valid: only apprise knows.
    printed, imported = modules_after(tmp_path, "check", "-c", "CONFIG")
    assert printed.startswith("ok: ")
    assert imported == {"apprise"}


def test_a_daemon_imports_prometheus_only_for_metrics_and_jinja2_only_for_templates(
    tmp_path: Path,
) -> None:
    code = (
        "import pathlib, sys\n"
        "from watcher.config import parse_config\n"
        "from watcher.daemon import Daemon\n"
        "config = parse_config(sys.argv[1], file='c.yaml', base=pathlib.Path(sys.argv[3]))\n"
        "daemon = Daemon(config, metrics_port=None if sys.argv[2] == 'none' else 0)\n"
        "daemon._schedule()\n"
        "print(*(m for m in ('prometheus_client', 'jinja2', 'apprise') if m in sys.modules))\n"
        "daemon.store.close()\n"
    )

    def imported(config: str, metrics: str) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-c", code, f"state: w.db\n{config}", metrics, str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return set(out.stdout.split())

    assert imported("", "none") == set()
    assert imported("", "0") == {"prometheus_client"}
    notifier = "notifiers:\n  ops: {url: 'json://hooks.example.org/w'"
    assert imported(notifier + "}", "none") == {"apprise"}
    assert imported(notifier + ", body: '{{ item.title }}'}", "none") == {"apprise", "jinja2"}

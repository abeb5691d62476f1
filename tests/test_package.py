"""The public surface: every name watcher re-exports resolves, and importing one part
does not drag in the rest (parse workers import only the parser)."""

from __future__ import annotations

import subprocess
import sys

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


def test_a_daemon_on_sqlite_imports_nothing_of_the_cluster(tmp_path: object) -> None:
    """Single machine stays simple: procrastinate and psycopg are for PostgreSQL only."""
    code = (
        "import sys, tempfile, pathlib\n"
        "from watcher.config import parse_config\n"
        "from watcher.daemon import Daemon\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "config = parse_config(f'state: {d}/w.db\\n', file='c.yaml')\n"
        "daemon = Daemon(config)\n"
        "daemon._schedule()\n"
        "print(','.join(m for m in ('procrastinate', 'psycopg', 'psycopg_pool', "
        "'watcher.cluster') if m in sys.modules), daemon.cluster)\n"
        "daemon.store.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"

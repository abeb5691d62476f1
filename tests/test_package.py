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

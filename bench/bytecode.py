"""watcher's own modules compiled to bytecode before a benchmark starts processes of it.

pip compiles every module it installs (reader's and each dependency's in .bench-venv),
and a plain `python` writes __pycache__ the first time it imports a module. The bench
environment installs watcher editable from this checkout, and these machines set
PYTHONDONTWRITEBYTECODE=1: without this step every watcher process, and every parse
worker, compiled watcher's modules from source (about 0.25 s of an empty test-run's
0.65 s), a cost no installed watcher pays.
"""

from __future__ import annotations

import compileall
from pathlib import Path

WATCHER = Path(__file__).resolve().parent.parent / "watcher"


def compile_watcher() -> None:
    """Write (or refresh) the bytecode of every module of this checkout's watcher."""
    if not compileall.compile_dir(WATCHER, quiet=1):
        raise SystemExit(f"could not compile {WATCHER} to bytecode")

"""The runtime settings a watcher process makes (watcher/tuning.py), each checked in a
process of its own: they are process-wide, and this test process must keep its own."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest


def _in_process(code: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_importing_watcher_leaves_the_collector_alone() -> None:
    assert _in_process(
        "import gc, json, watcher, watcher.cli, watcher.workers\n"
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"
    ) == [[700, 10, 10], 0]


def test_the_command_collects_young_objects_less_often_and_freezes_its_imports() -> None:
    threshold, frozen = _in_process(
        "import gc, json\n"
        "from watcher.tuning import tune_gc\n"
        "tune_gc()\n"
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"
    )
    assert threshold == [10_000, 10, 10]
    assert frozen > 1_000


@pytest.mark.parametrize(
    ("before", "after"), [((0, 10, 10), [0, 10, 10]), ((50_000, 5, 5), [50_000, 5, 5])]
)
def test_a_setting_already_made_stands(before: tuple[int, int, int], after: list[int]) -> None:
    """A collector switched off, or tuned higher, by whoever embeds watcher stays so."""
    assert (
        _in_process(
            "import gc, json\n"
            f"gc.set_threshold(*{before!r})\n"
            "from watcher.tuning import tune_gc\n"
            "tune_gc()\n"
            "print(json.dumps(gc.get_threshold()))"
        )
        == after
    )

"""The shipped unit passes systemd-analyze verify, warnings included."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "watcher.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    # A private root, so verify can check ExecStart without installing anything system-wide.
    exec_start = next(
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    binary = Path(exec_start.split()[0])
    assert exec_start.split()[1] == "run"
    fake = tmp_path / binary.relative_to("/")
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, tmp_path / "etc/systemd/system/watcher.service")
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr/lib/systemd/system", symlinks=True)
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", "watcher.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "watcher.service" not in proc.stderr, proc.stderr  # no warnings about our unit


def test_unit_runs_unprivileged_with_state_and_config_directories() -> None:
    text = UNIT.read_text()
    for line in ("DynamicUser=yes", "StateDirectory=watcher", "ConfigurationDirectory=watcher"):
        assert line in text.splitlines()

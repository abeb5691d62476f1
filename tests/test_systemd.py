"""The shipped unit (systemd-analyze verify and security) and the notify protocol, live."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import FeedServer, Route, Story

from watcher.systemd import Notifier

UNIT = Path(__file__).parent.parent / "systemd" / "watcher.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def _root_with_the_unit(root: Path) -> Path:
    """A private root holding the unit and stand-ins for its commands: nothing is installed."""
    for line in UNIT.read_text().splitlines():
        if line.startswith(("ExecStart=", "ExecReload=")):
            binary = root / line.split("=", 1)[1].split()[0].lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/watcher.service")
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    return root


@needs_systemd_analyze
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    root = _root_with_the_unit(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "watcher.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "watcher.service" not in proc.stderr, proc.stderr  # no warnings about our unit


@needs_systemd_analyze
def test_unit_exposure_is_at_most_2(tmp_path: Path) -> None:
    root = _root_with_the_unit(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}", "watcher.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for watcher.service: ([\d.]+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 2.0, proc.stdout


def test_unit_settings() -> None:
    lines = set(UNIT.read_text().splitlines())
    for line in (
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=watcher",
        "ConfigurationDirectory=watcher",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/local/bin/watcher run -c /etc/watcher/config.yaml",
    ):
        assert line in lines
    assert any(line.startswith("WatchdogSec=") for line in lines)


def test_notifier_is_a_no_op_outside_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.send(READY=1) is False
    assert Notifier({"WATCHDOG_USEC": "4000000"}).watchdog_interval == 2.0
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_the_daemon_speaks_the_notify_protocol(feed_server: FeedServer, tmp_path: Path) -> None:
    # Started the way the unit starts it: Type=notify, a watchdog, a StateDirectory.
    feed_server.routes["/news"] = Route(Story().body())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"allow_private_networks: true\nfeeds:\n  - {{name: news, url: '{feed_server.url('/news')}', interval: 1s}}\n"
    )
    state = tmp_path / "state"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    env = {
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "1000000",
        "STATE_DIRECTORY": str(state),
        "PATH": "/usr/bin:/bin",
    }
    log = tmp_path / "daemon.log"  # a file, not a pipe nobody reads: shown if it fails
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "-c", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    messages: list[str] = []

    def collect(until: str, timeout: float = 20.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and sum(until in m for m in messages) < count:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    try:
        collect("READY=1")
        assert any("READY=1" in m for m in messages)
        assert any("STATUS=feeds=1 failing=0 pending_alerts=0" in m for m in messages)
        collect("WATCHDOG=1", count=3)  # pinged every half WATCHDOG_USEC
        assert sum("WATCHDOG=1" in m for m in messages) >= 3
        proc.send_signal(signal.SIGHUP)
        collect("RELOADING=1")
        assert any("RELOADING=1" in m for m in messages)
        proc.send_signal(signal.SIGTERM)
        collect("STOPPING=1")
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 20 s after SIGTERM:\n{log.read_text()}")
        assert code == 0, log.read_text()
        assert any("STOPPING=1" in m for m in messages)
        assert (state / "watcher.db").exists()  # $STATE_DIRECTORY was used
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()

"""What a daemon costs when nothing is due: a real `watcher run` over a synthetic fleet,
its first round waited for, then the CPU it uses while every feed waits for its next poll.

Run: .bench-venv/bin/python bench/idle.py [--feeds 10000] [--seconds 30]

A daemon runs for months and spends nearly all of that time idle: the ticker looks at the
schedule every second, the status line is written every 30 s. CPU is read from /proc
(user + system of the daemon's process) over ``--seconds``; the first round's time is
printed too, start-up included.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import _polled, write_config
from fleet import Fleet


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    fleet = Fleet(args.feeds, args.items)
    with tempfile.TemporaryDirectory() as tmp, fleet.serving() as base:
        config, state = Path(tmp) / "idle.yaml", Path(tmp) / "idle.db"
        write_config(config, fleet.urls(base), args.rules, state, parse_processes=0)
        command = [sys.executable, "-m", "watcher", "--log-level", "warning", "run", "-c"]
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*command, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while _polled(state)[0] < args.feeds:
                if proc.poll() is not None:
                    raise SystemExit(f"watcher run exited with {proc.returncode}")
                time.sleep(0.5)
            first = time.perf_counter() - started
            time.sleep(5)  # the last polls' writes and the first status line
            before = cpu_seconds(proc.pid)
            time.sleep(args.seconds)
            used = cpu_seconds(proc.pid) - before
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    print(
        f"{args.feeds:,} feeds x {args.items} items, {args.rules} rules, interval 1h: "
        f"first round {first:.1f} s; idle {used / args.seconds:.1%} of a core "
        f"over {args.seconds:.0f} s"
    )


if __name__ == "__main__":
    main()

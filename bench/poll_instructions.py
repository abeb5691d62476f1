"""Instructions per changed poll, counted by valgrind: a figure that machine load cannot move.

This machine's speed swings by a quarter from hour to hour, and CPU time swings with
it; callgrind counts instructions, the same for the same code and inputs. It runs the
changed poll of bench/poll_cost.py (a 50-item feed gaining 5 matching items) 5 and 25
times and prints the difference per poll, so start-up cost drops out.

Run: .venv/bin/python bench/poll_instructions.py
     .venv/bin/python bench/poll_instructions.py --python /old/venv/bin/python  # another build
(needs valgrind; about two minutes per interpreter)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DRIVE = """
import logging, sys, tempfile, importlib.util
from pathlib import Path
spec = importlib.util.spec_from_file_location("poll_cost", sys.argv[1])
pc = importlib.util.module_from_spec(spec); spec.loader.exec_module(pc)
from watcher.config import parse_config
from watcher.fetch import make_fetcher
from watcher.pipeline import poll_feed
from watcher.rules import RuleSet
from watcher.store import Store
logging.disable(logging.WARNING)
state = pc.State(); httpd = pc.serve(state)
url = f"http://127.0.0.1:{httpd.server_address[1]}/feed"
config = parse_config(
    f"allow_private_networks: true\\nparse_processes: 0\\n"
    f"feeds:\\n  - {{name: bench, url: '{url}'}}\\nrules:\\n  - {{name: r, keywords: [Kharkiv]}}\\n"
)
ruleset = RuleSet.from_config(config)
with make_fetcher(config) as fetcher:
    store = Store.open(Path(tempfile.mkdtemp()) / "bench.db")
    def poll():
        return poll_feed(config.feeds[0], config=config, fetcher=fetcher, store=store,
                         ruleset=ruleset).status
    state.body, state.etag = pc.feed(50, 0), ""
    poll()
    for i in range(int(sys.argv[2])):
        state.body = pc.feed(50, 5 * (i + 1))
        assert poll() == "new"
httpd.shutdown()
"""


def instructions(python: str, poll_cost: Path, polls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "drive.py"
        script.write_text(DRIVE)
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                python,
                str(script),
                str(poll_cost),
                str(polls),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    assert found, out.stderr[-2000:]
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    parser.add_argument(
        "--poll-cost",
        default=str(Path(__file__).with_name("poll_cost.py")),
        help="the bench/poll_cost.py that builds the feed (of the same build)",
    )
    args = parser.parse_args()
    few, many = (instructions(args.python, Path(args.poll_cost), n) for n in (5, 25))
    print(f"changed poll: {(many - few) / 20 / 1e6:.1f} M instructions ({args.python})")


if __name__ == "__main__":
    main()

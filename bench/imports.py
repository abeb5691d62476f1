"""What each import costs: milliseconds and MiB of resident memory, one module at a time.

Run: .venv/bin/python bench/imports.py [--repeat 5] [--markdown]

Each figure comes from a fresh interpreter that imports only what is measured, so
what a module shares with another (pydantic's core, typing_extensions) is counted in
each. "Alone" is the module on its own; the code paths below are what watcher's
commands import before they read a feed (``watcher.cli`` imports the rest lazily:
SQLAlchemy for a state, apprise for a notifier, Jinja2 for a template, prometheus-client
for --metrics-port). Time is the best of ``--repeat`` runs (the machine's load moves it);
memory is the same in every run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bytecode import compile_watcher

# Third-party modules watcher uses, as imported by its code.
MODULES = (
    "sqlalchemy",
    "alembic.command",
    "apprise",
    "httpx",
    "prometheus_client",
    "feedparser",
    "jinja2.sandbox",
    "pydantic",
    "yaml",
    "ruamel.yaml",
    "click",
    "regex",
    "ahocorasick",
    "rapidfuzz",
    "anyascii",
    "psycopg",
    "procrastinate",
)
# What a command imports before it reads a feed, in the order it does.
PATHS = {
    "watcher.cli (every command)": ("watcher.cli",),
    "watcher check": ("watcher.cli", "watcher.config"),
    "watcher test-run": ("watcher.cli", "watcher.pipeline", "watcher.fetch", "watcher.rules"),
    "watcher run (SQLite), before its first alert": ("watcher.cli", "watcher.daemon"),
    "... and a notifier sends (apprise)": ("watcher.cli", "watcher.daemon", "apprise"),
    "... and a notifier has a template (Jinja2)": (
        "watcher.cli",
        "watcher.daemon",
        "apprise",
        "jinja2.sandbox",
    ),
    "watcher run --metrics-port (prometheus-client)": (
        "watcher.cli",
        "watcher.daemon",
        "prometheus_client",
    ),
    "watcher run, cluster (PostgreSQL, procrastinate)": (
        "watcher.cli",
        "watcher.daemon",
        "watcher.cluster",
        "procrastinate",
        "psycopg",
    ),
}

PROBE = """
import json, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = rss()
start = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
took = time.perf_counter() - start
print(json.dumps({"ms": took * 1000, "mib": rss() - before, "total": rss()}))
"""


def cost(modules: tuple[str, ...], repeat: int) -> dict[str, float]:
    """The best time and the memory of importing ``modules`` in a fresh interpreter."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, *modules],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        figures = json.loads(out)
        if not best or figures["ms"] < best["ms"]:
            best = figures
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args()
    compile_watcher()  # as installed: see bench/bytecode.py
    bare = cost((), args.repeat)
    rows: list[tuple[str, dict[str, float]]] = []
    for module in MODULES:
        try:
            rows.append((module, cost((module,), args.repeat)))
        except subprocess.CalledProcessError:
            rows.append((module + " (not installed)", {}))
    paths = [(label, cost(modules, args.repeat)) for label, modules in PATHS.items()]
    print(f"# python {sys.version.split()[0]}; a bare interpreter: {bare['total']:.1f} MiB")
    rows.sort(key=lambda row: -row[1].get("mib", 0))
    for title, table in (("module, alone", rows), ("command, before any feed", paths)):
        if args.markdown:
            print(f"\n| {title} | ms | MiB |\n| --- | ---: | ---: |")
        else:
            print(f"\n{title:<42} {'ms':>8} {'MiB':>7}")
        for name, figures in table:
            ms = f"{figures['ms']:.0f}" if figures else "-"
            mib = f"{figures['mib']:.1f}" if figures else "-"
            print(
                f"| `{name}` | {ms} | {mib} |" if args.markdown else f"{name:<42} {ms:>8} {mib:>7}"
            )


if __name__ == "__main__":
    main()

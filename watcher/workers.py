"""Worker processes that parse feeds (and, for test-run, match them), so a cold round
uses every core.

Parsing is CPU work under the GIL, so threads cannot share it out; processes can. The
pool starts on the first document worth sending (small ones are parsed here: the
round trip would cost more) and stops after a minute without work, so a daemon whose
feeds rarely change carries no extra processes. Workers fork from a server that
imported only this module and the parser (about 25 MiB each), not the daemon's main
module with SQLAlchemy, apprise and the rest. A worker that dies (the OOM killer, say)
costs one retry here, never the poll; a sandbox that refuses semaphores or sockets
means parsing here.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, NamedTuple

from watcher.models import FetchResult, Item, Match, ParsedFeed
from watcher.parse import parse
from watcher.tuning import tune_gc

if TYPE_CHECKING:
    from watcher.config import EntityConfig, RuleConfig
    from watcher.rules import RuleSet

log = logging.getLogger(__name__)

Rules = tuple[Sequence["RuleConfig"], Mapping[str, "EntityConfig"]]
Matched = list[tuple[Item, list[Match]]]
# What to make of an item's matches where they were found (test-run --json: its lines).
Render = Callable[[Item, list[Match]], list[str]]


class Found(NamedTuple):
    """A document parsed and matched: how many items it has, the matching ones with their
    matches, or (when asked to render) only the lines made of them."""

    items: int
    matched: Matched
    lines: list[str] | None = None


class Parsers:
    """Where documents are parsed: in worker processes when there are cores to spare.

    In this process, one document at a time: twenty fetch threads parsing at once are
    no faster than one, but hold twenty parse trees in memory.
    """

    MIN_BYTES = 16_384
    IDLE = 60.0

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self.rules: Rules | None = None  # set: workers also match (test-run)
        self._lock = threading.Lock()
        self._here = threading.BoundedSemaphore(1)
        self._pool: ProcessPoolExecutor | None = None
        self._idle: threading.Timer | None = None
        self._stopping: list[threading.Thread] = []  # each waits for one retired pool

    def configure(self, processes: int, *, rules: Rules | None = None) -> None:
        with self._lock:
            if processes != self.processes or rules is not self.rules:
                self._retire()
            self.processes, self.rules = processes, rules

    def parse(self, feed: str, result: FetchResult) -> ParsedFeed:
        parsed: ParsedFeed | None = self._in_pool(parse, feed, result)
        if parsed is not None:
            return parsed
        with self._here:
            return parse(feed, result)

    def parse_and_match(
        self,
        feed: str,
        result: FetchResult,
        ruleset: Callable[[], RuleSet],
        *,
        tags: Sequence[str] = (),
        only: frozenset[str] = frozenset(),
        render: Render | None = None,
    ) -> Found:
        """How many items the document has, and those that match with their matches (of
        the rules named in ``only``, if any), every detail worked out: in a worker when the
        pool matches, else here. Only matching items come back from a worker, so the
        others are never pickled; with ``render``, only the lines it makes of them (the
        worker writes them: on a fleet where every item matches 17 rules, pickling the
        matches and writing their JSON here took more of this process than all the rest).
        ``ruleset`` is called only when the document is matched here: with 10,000 rules,
        building a rule set takes a second and a half, which a process whose workers do
        the matching need never spend.

        Here, parsing, matching and working out details hold the one lane together:
        twenty fetch threads matching at once under the GIL spent a fifth more CPU than
        one at a time (test-run on 200 real feeds, parse_processes 0)."""
        if self.rules is not None:
            done: Found | None = self._in_pool(
                _parse_and_match, feed, result, tuple(tags), only, render
            )
            if done is not None:
                return done
        with self._here:
            parsed = parse(feed, result)
            return _found(parsed.items, ruleset(), tags, only, render)

    def start(self) -> None:
        """Start the workers now rather than at the first document, so their start-up
        (and, for test-run, building the rule set) overlaps the caller's own work."""
        if self.processes > 0:
            try:
                pool = self._ready_pool()
                for _ in range(self.processes):
                    pool.submit(_ready)
            except (OSError, RuntimeError) as exc:
                log.warning("parse workers cannot start, parsing in this process: %s", exc)
                self.configure(0)

    def _in_pool(self, fn: Any, feed: str, result: FetchResult, *args: Any) -> Any:
        """The function's result from a worker, or None to do it here."""
        if self.processes <= 0 or len(result.body) < self.MIN_BYTES:
            return None
        pool = None
        try:
            pool = self._ready_pool()
            return pool.submit(fn, feed, result, *args).result()
        except BrokenProcessPool:
            log.warning("parse worker died feed=%s; parsing it in this process", feed)
            with self._lock:
                if self._pool is pool:
                    self._retire()
        except (OSError, RuntimeError) as exc:  # no semaphores or sockets (a sandbox)
            log.warning("parse workers cannot start, parsing in this process: %s", exc)
            self.configure(0)
        return None

    def _ready_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["watcher.workers"])
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(os.getpid(), self.rules),
                )
            if self._idle is not None:
                self._idle.cancel()
            self._idle = threading.Timer(self.IDLE, self.shutdown, kwargs={"wait": False})
            self._idle.daemon = True
            self._idle.start()
            return self._pool

    def _retire(self) -> None:
        """Stop the pool without waiting for it (called with the lock held): a thread of
        its own waits for it, so that ``shutdown(wait=True)`` can wait for it later."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        pool, self._pool = self._pool, None
        if pool is not None:
            stopping = threading.Thread(
                target=pool.shutdown,
                kwargs={"wait": True, "cancel_futures": True},
                name="watcher-parse-stop",
                daemon=True,
            )
            stopping.start()
            self._stopping = [t for t in self._stopping if t.is_alive()] + [stopping]

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the workers; with ``wait``, return only once every pool stopped so far is
        gone, workers and all.

        A process must wait before it exits: at exit, Python writes to the wake-up pipe
        of every process pool whose manager thread still runs, and a pool that is still
        stopping closes that pipe under it ("Exception ignored in: <module 'threading'>
        ... OSError: [Errno 9] Bad file descriptor"); a worker still starting then finds
        the pool's semaphores gone. Waiting costs nothing at exit, where Python waits
        for those threads anyway. Not waiting is for a process that must leave even if a
        worker is stuck."""
        with self._lock:
            self._retire()
            stopping = list(self._stopping)
        if wait:
            for thread in stopping:
                thread.join()


def default_parse_processes() -> int:
    """One worker per core when there is more than one core, at most four; else none."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux, or a seccomp filter refuses the call
        cores = os.cpu_count() or 1
    return 0 if not cores or cores < 2 else min(cores, 4)


PARSERS = Parsers()

# -- in the worker -----------------------------------------------------------------------------

_RULESET: RuleSet | None = None


def _start_worker(
    owner: int, rules: tuple[Sequence[RuleConfig], Mapping[str, EntityConfig]] | None
) -> None:
    """A worker's start: it leaves when its owner (the daemon or command that started the
    pool) is gone, and, for test-run, builds the rule set once (compiled rules are
    closures: they do not pickle).

    A worker's parent is the forkserver, not the owner, and every worker holds the ends of
    the pool's pipes that would tell it: without this, a SIGKILLed daemon left its workers
    and their forkserver running for good (under systemd the unit's cgroup is killed
    anyway; in a terminal they stayed).
    """
    watch = threading.Thread(
        target=_leave_with, args=(owner,), name="watcher-owner-watch", daemon=True
    )
    watch.start()
    tune_gc()
    if rules is not None:
        from watcher.rules import RuleSet

        global _RULESET
        _RULESET = RuleSet(*rules)


def _leave_with(owner: int, every: float = 1.0) -> None:
    while True:
        time.sleep(every)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # alive, under another user (a pid reused: gone too)
            os._exit(0)


def _found(
    items: Sequence[Item],
    ruleset: RuleSet,
    tags: Sequence[str],
    only: frozenset[str],
    render: Render | None,
) -> Found:
    """The items that match, each with its matches settled (see :func:`settle`: kept
    until printed, they must not hold their items' scans); or the lines ``render``
    makes of them."""
    from watcher.rules.engine import settle

    matched: Matched = []
    lines: list[str] = []
    for item in items:
        matches = ruleset.match(item, tags=tags)
        if only:
            matches = [m for m in matches if m.rule in only]
        if not matches:
            continue
        if render is not None:
            lines += render(item, matches)
        else:
            settle(matches)
            matched.append((item, matches))
    return Found(len(items), matched, lines if render is not None else None)


def _parse_and_match(
    feed: str,
    result: FetchResult,
    tags: tuple[str, ...],
    only: frozenset[str],
    render: Render | None,
) -> Found:
    assert _RULESET is not None, "the pool was started without rules"
    return _found(parse(feed, result).items, _RULESET, tags, only, render)


def _ready() -> None:
    """Nothing: submitted once per worker by Parsers.start, so every worker starts."""

"""How a watcher process tunes its runtime: glibc's malloc and the garbage collector.

Set by the ``watcher`` command (and each parse worker), never on import: a program
that uses watcher as a library keeps its own settings.
"""

from __future__ import annotations

import gc
import os
import sys


def tune_malloc(arenas: int = 2, mmap_threshold: int = 128 * 1024) -> None:
    """At most two glibc malloc arenas, and blocks of 128 KiB or more always mapped on
    their own, set before any thread starts.

    glibc gives threads that contend for malloc arenas of their own (up to 8 per core)
    and keeps what they freed: a poll round over 200 feeds with 20 fetch threads peaked
    35 MiB higher with the default (bench/compare.py). And glibc starts mapping blocks of
    128 KiB or more on their own, but raises that threshold each time such a block is
    freed: feed bodies and their decoded text soon came from the heap, where the holes
    they left held the round's peak 22-30 MiB higher (`watcher run` over bench/fleet.py's
    200 feeds, parse_processes 0: 114-123 MiB, 90-99 with the threshold held; see
    docs/benchmarks.md). Held at 128 KiB, each such block is given back when freed, for
    a few percent more system time (64 KiB saved no more memory and cost more). Same
    effect as MALLOC_ARENA_MAX=2 and MALLOC_MMAP_THRESHOLD_=131072; an explicit setting
    of either wins, and other C libraries are left alone.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded into us
    except (OSError, AttributeError):
        return
    m_arena_max, m_mmap_threshold = -8, -3  # from glibc's malloc.h
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(m_arena_max, arenas)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(m_mmap_threshold, mmap_threshold)


def tune_gc(young: int = 10_000) -> None:
    """Everything imported so far kept out of the collector's way, and the young
    generation collected every 10,000 allocations instead of 700.

    Parsing a feed allocates hundreds of thousands of objects that live for one feed;
    at the default threshold the collector ran about 900 times in one test-run over
    200 real feeds and cost 0.65 s of its CPU, 0.16 s tuned so. Called by the
    ``watcher`` command and each parse worker, never on import: a library's user
    keeps their own settings."""
    gc.freeze()
    young_now, older, oldest = gc.get_threshold()
    if young_now:  # 0 means disabled: a choice that stands
        gc.set_threshold(max(young_now, young), older, oldest)

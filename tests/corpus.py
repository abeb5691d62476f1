"""Real feeds saved from the web, for tests: the committed subset by default, the full
corpus with WATCHER_CORPUS=full (bench/corpus.py builds it from pinned public repositories
into .corpus/full/ when missing). See docs/corpus.md.

    import corpus
    @pytest.mark.parametrize("feed", corpus.selected(), ids=corpus.feed_id)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import (  # noqa: E402
    FORMATS,
    LICENSES,
    MANIFEST,
    PERMISSIVE,
    SUBSET_ARCHIVE,
    SUBSET_DIR,
    CorpusError,
    Feed,
    build,
    load_sources,
    read_archive,
    read_manifest,
    sniff_format,
)
from bench.corpus import full as _full  # noqa: E402
from bench.corpus import subset as _subset  # noqa: E402

__all__ = [
    "FORMATS",
    "LICENSES",
    "MANIFEST",
    "PERMISSIVE",
    "SUBSET_ARCHIVE",
    "SUBSET_DIR",
    "CorpusError",
    "Feed",
    "build",
    "feed_id",
    "full",
    "load_sources",
    "read_archive",
    "read_manifest",
    "selected",
    "sniff_format",
    "subset",
]


def subset() -> Iterator[Feed]:
    """The committed feeds (tests/data/corpus/subset.tar.xz), about fifty."""
    return _subset()


def full() -> Iterator[Feed]:
    """Every feed of the corpus, built from bench/corpus-sources.yaml if missing."""
    return _full(log=lambda line: print(f"corpus: {line}", file=sys.stderr))


def selected() -> list[Feed]:
    """The feeds a test run covers: WATCHER_CORPUS=full for all of them, else the subset."""
    which = os.environ.get("WATCHER_CORPUS", "subset")
    if which == "subset":
        return list(subset())
    if which == "full":
        return list(full())
    raise CorpusError(f"WATCHER_CORPUS={which!r}: expected 'subset' or 'full'")


def feed_id(feed: Feed) -> str:
    return feed.name

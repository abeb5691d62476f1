"""Matching throughput: items per second against 10, 100, 1,000 and 10,000 rules.

Run: .venv/bin/python bench/rules.py [--items 2000] [--repeat 3] [--rules 10 10000]

Each item is about 2 KB of plain text (title, summary, content). Rules mix keywords,
entities with aliases (Latin and Cyrillic, some wildcards, some transliterating),
queries and excludes, drawn from a vocabulary that grows with the rule count. Three
streams of items: "dense", where every item mentions a few of the rules' terms (so
every item fires 2-5 rules), "many", where every item names about 18 tracked terms
(10-30 matches per item: what a match costs dominates), and "news", where one item
in ten names a few (closer to a real feed, where most items match nothing).
Folding counts: the timer covers RuleSet.match() from plain text to Match objects.
One core, process time, the collector tuned as the watcher command tunes it. Targets
(issue 4): at least 15,000 items/s at 10,000 rules, and no more than 2x slower at
10,000 rules than at 10.

The second table splits each run: the scan alone (folding and the automaton, what
every item costs whatever the rules), then per match, beyond the scan, what matching
costs (deciding the rule and building its match; timed for each item right after its
scan, the items that match nothing included; then split between the items whose scan
found nothing and, per match, the others) and what reading the match's
details costs (terms, snippet, score and entities: what `test-run --json` prints; a
daemon reads them only for what it alerts). Targets (issue 18): at most 3 us per
match beyond the scan, and a scan no more than 1.5x slower at 10,000 rules than at
10 on the news streams.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import NamedTuple

from watcher.config import parse_config
from watcher.models import Item
from watcher.rules import RuleSet
from watcher.rules.engine import _Scan
from watcher.tuning import tune_gc

COMMON = [
    *("the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "with", "as", "was"),
    *("by", "at", "from", "his", "an", "were", "are", "which", "this", "be", "has", "had"),
    *("not", "but", "after", "said", "year", "over", "new", "government", "officials"),
    *("people", "city", "report", "week", "police", "forces", "talks", "minister"),
    *("president", "region", "local", "more", "than", "two", "three", "according", "told"),
]
SYLLABLES = ["ka", "ri", "mo", "ta", "ne", "sa", "lu", "vo", "de", "pi", "ra", "go", "zu"]
CYRILLIC = ["ка", "ри", "мо", "та", "не", "са", "лу", "во", "де", "пі", "ра", "го", "зу"]
# Filler for Cyrillic items: its own syllables, so text never collides with an alias.
CYRILLIC_FILLER = ["що", "як", "для", "про", "від", "уже", "нам", "їх", "ще", "бут", "ись"]


def word(rng: random.Random, syllables: list[str]) -> str:
    return "".join(rng.choice(syllables) for _ in range(rng.randint(3, 4)))


def make_config(rules: int, rng: random.Random) -> tuple[str, list[str]]:
    """A config with ``rules`` rules and the vocabulary their literals come from."""
    vocab = sorted({word(rng, SYLLABLES).capitalize() for _ in range(rules * 3)})
    entities, lines, used = [], [], []
    for i in range(rules):
        a, b, c = rng.sample(vocab, 3)
        used += [a, b, c]
        kind = i % 4
        if kind == 0:
            lines.append(f"  - {{name: r{i}, keywords: [{a}, '{b} {c}']}}")
        elif kind == 1:
            cyr = word(rng, CYRILLIC).capitalize()
            wild = f"'{cyr}*'" if i % 8 == 1 else cyr
            translit = "true" if i % 16 == 1 else "false"
            entities.append(f"  e{i}: {{aliases: [{a}, {b}, {wild}], transliterate: {translit}}}")
            lines.append(f"  - {{name: r{i}, entities: [e{i}]}}")
        elif kind == 2:
            lines.append(f"  - {{name: r{i}, query: '({a} OR \"{b} {c}\") AND NOT {c}x'}}")
        else:
            lines.append(f"  - {{name: r{i}, keywords: ['{a}*'], exclude: [{b}]}}")
    text = "entities:\n" + ("\n".join(entities) or "  {}") + "\nrules:\n" + "\n".join(lines)
    return text, used


def make_items(
    count: int,
    vocab: list[str],
    rng: random.Random,
    *,
    cyrillic: bool,
    mentions: float = 1.0,
    density: float = 0.01,
) -> list[Item]:
    """Items of ~2 KB; a share ``mentions`` of them name tracked terms, ``density`` of
    their words (0.01: about three)."""
    items = []
    for n in range(count):
        words: list[str] = []
        tracked = rng.random() < mentions
        while sum(len(w) + 1 for w in words) < 1900:
            if tracked and rng.random() < density:
                words.append(rng.choice(vocab))
            elif cyrillic:
                words.append("".join(rng.choice(CYRILLIC_FILLER) for _ in range(3)))
            else:
                words.append(rng.choice(COMMON))
        words[rng.randrange(len(words))] += ","
        title = " ".join(words[:10]).capitalize()
        items.append(
            Item(
                feed="bench",
                id=str(n),
                title=title,
                summary=" ".join(words[10:40]) + "’s —",
                content=" ".join(words[40:]),
            )
        )
    return items


class Beyond(NamedTuple):
    per_item: float  # seconds per item, every item
    missed: float  # seconds per item, over the items whose scan found no tracked term
    missed_share: float  # of the items
    hit: float  # seconds per match, over the items whose scan found some


class Figures(NamedTuple):
    rate: float  # items per second, matching
    matches: int  # per run over all items
    scan: float  # seconds per item: the scan alone
    match: float  # seconds per item: RuleSet.match()
    read: float  # seconds per item: reading every match's details
    beyond: Beyond  # matching after the item's scan (see beyond_scan)


def beyond_scan(ruleset: RuleSet, items: list[Item], repeat: int) -> Beyond:
    """What matching takes once an item is scanned: deciding which rules fire and
    building their matches, each item timed right after its own scan (the best of
    ``repeat`` for each item, the clock's own cost taken off).

    Measured directly: the difference of two ~100 us timings (match() less the scan)
    was noise on the news streams, where matching adds under 1% to the scan, and came
    out negative more than once. Also split: the items whose scan found nothing (asking
    costs a call, and nothing is built) and, per match, the items whose scan found some;
    on a stream where most items match nothing, the first part is most of the whole."""
    clock = time.perf_counter_ns
    best = [sys.maxsize] * len(items)
    found = []  # matches, or -1: the scan found no tracked term
    for item in items:
        scan = _Scan(ruleset, item)
        found.append(len(ruleset._match(scan, item, ())) if scan.hits else -1)
    idle = sys.maxsize
    for _ in range(repeat):
        for i, item in enumerate(items):
            scan = _Scan(ruleset, item)
            # The matches are dropped in the timing, as a poll soon drops them, while the
            # scan lives on (kept here by ``scan``): its own cost is not matching's.
            start = clock()
            ruleset._match(scan, item, ())
            took = clock() - start
            if took < best[i]:
                best[i] = took
            start = clock()
            idle = min(idle, clock() - start)
    net = [max(0, b - idle) / 1e9 for b in best]
    missed = [t for t, n in zip(net, found, strict=True) if n < 0]
    hit = sum(t for t, n in zip(net, found, strict=True) if n >= 0)
    made = sum(n for n in found if n > 0)
    return Beyond(
        sum(net) / len(items),
        sum(missed) / len(missed) if missed else float("nan"),
        len(missed) / len(items),
        hit / made if made else float("nan"),
    )


def measure(ruleset: RuleSet, items: list[Item], repeat: int) -> Figures:
    """Best of ``repeat`` for each part, the parts taking turns so that a machine whose
    speed drifts moves them alike. Matching drops each item's matches, as a daemon's
    poll soon does; reading keeps them all, as test-run does until it prints them."""
    scan = match = read = float("inf")
    matched = 0
    for _ in range(repeat):
        start = time.process_time()
        for item in items:
            _Scan(ruleset, item)
        scan = min(scan, time.process_time() - start)
        start = time.process_time()
        matched = sum(len(ruleset.match(item)) for item in items)
        match = min(match, time.process_time() - start)
        found = [ruleset.match(item) for item in items]
        start = time.process_time()
        for matches in found:
            for m in matches:
                _ = m.terms, m.snippet, m.score, m.entities  # read, as test-run does
        read = min(read, time.process_time() - start)
        del found
    n = len(items)
    return Figures(
        n / match, matched, scan / n, match / n, read / n, beyond_scan(ruleset, items, repeat)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--rules", type=int, nargs="+", default=[10, 100, 1_000, 10_000], metavar="N"
    )
    args = parser.parse_args()
    tune_gc()  # as the watcher command runs
    results: dict[tuple[int, bool, str], Figures] = {}
    streams = {"dense": (1.0, 0.01), "many": (1.0, 0.06), "news": (0.1, 0.01)}
    print(
        f"{'rules':>6} {'text':>9} {'build s':>8}"
        + "".join(f" {name + ' items/s':>15} {'matches/item':>13}" for name in streams)
    )
    for count in args.rules:
        rng = random.Random(count)
        text, vocab = make_config(count, rng)
        start = time.process_time()
        ruleset = RuleSet.from_config(parse_config(text))
        build = time.process_time() - start
        for cyrillic in (False, True):
            label = "Cyrillic" if cyrillic else "English"
            row = f"{count:>6} {label:>9} {build:>8.2f}"
            for name, (share, density) in streams.items():
                items = make_items(
                    args.items,
                    vocab,
                    random.Random(1),
                    cyrillic=cyrillic,
                    mentions=share,
                    density=density,
                )
                found = results[(count, cyrillic, name)] = measure(ruleset, items, args.repeat)
                row += f" {found.rate:>15,.0f} {found.matches / len(items):>13.2f}"
            print(row, flush=True)
    low, high = min(args.rules), max(args.rules)
    for name in streams:
        for cyrillic in (False, True):
            few, many = results[(low, cyrillic, name)], results[(high, cyrillic, name)]
            label = "Cyrillic" if cyrillic else "English"
            # More rules also means more rules fire per item: matches/s shows the cost of
            # the engine itself, apart from how much more it is asked to build.
            print(
                f"slowdown {low:,} -> {high:,} rules ({label}, {name}): "
                f"{few.rate / many.rate:.2f}x, scan alone {many.scan / few.scan:.2f}x"
                f"  (matches/s {few.rate * few.matches / args.items:,.0f}"
                f" -> {many.rate * many.matches / args.items:,.0f})"
            )
    print()
    print(
        f"{'rules':>6} {'text':>9} {'stream':>6} {'scan us/item':>13} {'match us/item':>14}"
        f" {'matches/item':>13} {'us/match beyond scan':>21} {'read us/match':>14}"
        f" {'no hit: share':>14} {'us/item':>8} {'hit: us/match':>14}"
    )
    for (count, cyrillic, name), found in results.items():
        per_item = found.matches / args.items
        beyond = found.beyond.per_item / per_item if per_item else float("nan")
        reading = found.read / per_item if per_item else float("nan")
        print(
            f"{count:>6} {'Cyrillic' if cyrillic else 'English':>9} {name:>6}"
            f" {found.scan * 1e6:>13.1f} {found.match * 1e6:>14.1f} {per_item:>13.2f}"
            f" {beyond * 1e6:>21.2f} {reading * 1e6:>14.2f}"
            f" {found.beyond.missed_share:>14.1%} {found.beyond.missed * 1e6:>8.2f}"
            f" {found.beyond.hit * 1e6:>14.2f}"
        )
    print(
        "us/match beyond scan: every item's matching after its scan, per match (issue 18's"
        " figure); no hit: the items whose scan found no tracked term, their share and what"
        " asking cost each; hit: the other items' matching, per match they made"
    )
    print(f"python {sys.version.split()[0]}, one core, best of {args.repeat}")


if __name__ == "__main__":
    main()

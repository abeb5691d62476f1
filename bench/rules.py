"""Matching throughput: items per second against 10, 100, 1,000 and 10,000 rules.

Run: .venv/bin/python bench/rules.py [--items 2000] [--repeat 3] [--rules 10 10000]

Each item is about 2 KB of plain text (title, summary, content). Rules mix keywords,
entities with aliases (Latin and Cyrillic, some wildcards, some transliterating),
queries and excludes, drawn from a vocabulary that grows with the rule count. Two
streams of items: "dense", where every item mentions a few of the rules' terms (so
every item fires 2-5 rules and the cost of building matches dominates), and "news",
where one item in ten does (closer to a real feed, where most items match nothing).
Folding counts: the timer covers RuleSet.match() from plain text to Match objects.
One core, process time. Targets (issue 4): at least 15,000 items/s at 10,000 rules,
and no more than 2x slower at 10,000 rules than at 10.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from watcher.config import parse_config
from watcher.models import Item
from watcher.rules import RuleSet

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
    count: int, vocab: list[str], rng: random.Random, *, cyrillic: bool, mentions: float = 1.0
) -> list[Item]:
    """Items of ~2 KB; a share ``mentions`` of them name about three tracked terms."""
    items = []
    for n in range(count):
        words: list[str] = []
        tracked = rng.random() < mentions
        while sum(len(w) + 1 for w in words) < 1900:
            if tracked and rng.random() < 0.01:
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


def measure(ruleset: RuleSet, items: list[Item], repeat: int) -> tuple[float, int]:
    best = float("inf")
    matched = 0
    for _ in range(repeat):
        start = time.process_time()
        matched = sum(len(ruleset.match(item)) for item in items)
        best = min(best, time.process_time() - start)
    return len(items) / best, matched


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--rules", type=int, nargs="+", default=[10, 100, 1_000, 10_000], metavar="N"
    )
    args = parser.parse_args()
    results: dict[tuple[int, bool, str], tuple[float, float]] = {}  # items/s, matches/item
    streams = {"dense": 1.0, "news": 0.1}
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
            for name, share in streams.items():
                items = make_items(
                    args.items, vocab, random.Random(1), cyrillic=cyrillic, mentions=share
                )
                rate, matched = measure(ruleset, items, args.repeat)
                results[(count, cyrillic, name)] = (rate, matched / len(items))
                row += f" {rate:>15,.0f} {matched / len(items):>13.2f}"
            print(row)
    low, high = min(args.rules), max(args.rules)
    for name in streams:
        for cyrillic in (False, True):
            (fast, few), (slow, many) = (
                results[(low, cyrillic, name)],
                results[(high, cyrillic, name)],
            )
            label = "Cyrillic" if cyrillic else "English"
            # More rules also means more rules fire per item: matches/s shows the cost of
            # the engine itself, apart from how much more it is asked to build.
            print(
                f"slowdown {low:,} -> {high:,} rules ({label}, {name}): {fast / slow:.2f}x"
                f"  (matches/s {fast * few:,.0f} -> {slow * many:,.0f})"
            )
    print(f"python {sys.version.split()[0]}, one core, best of {args.repeat}")


if __name__ == "__main__":
    main()

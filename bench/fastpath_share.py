"""The fast path's share of real feeds, what it still refuses, and what it saves (issue 18).

Run: .venv/bin/python bench/fastpath_share.py [--corpus full|subset] [--repeat 3]

On the corpus of real feeds (docs/corpus.md; the full one is built when missing) it prints:
- by format, how many documents watcher's fast path reads (RSS 2.0, Atom 1.0 and RSS 1.0;
  the share of the first two is the figure issue 18 holds at 90% or more);
- every reason the fast path gave for leaving a document to feedparser, counted, with the
  first feeds for each: what is left to widen;
- parse throughput in items per second (CPU time, best of --repeat) on the documents the
  fast path reads: watcher's parse() through the fast path and through feedparser alone,
  and what each costs before HTML-to-text (the XML reading only);
- where HTML-to-text (watcher/text.py) spends its time on the corpus, and the same text through
  two HTML parsers built for speed, selectolax's Lexbor and lxml, when they are installed
  (``pip install selectolax lxml``; watcher does not depend on them): their time, and on how
  many values their text differs from watcher's. Neither gives the same text (HTML5 tree
  building: raw-text <iframe> content, stray end tags, foster parenting), so watcher keeps its
  own path, whose output every item id built from a title depends on.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import importlib.util
import io
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import feedparser
from corpus import Feed, full, subset  # bench/corpus.py, beside this script

from watcher.exceptions import ParseError
from watcher.models import FetchResult
from watcher.parse import _xml_body, fast_path_refusal, parse
from watcher.rss_fast import read_fast
from watcher.text import _BLOCK_TAGS, _SKIP_TAGS, _TAG_HINT, _tidy, html_to_text
from watcher.text import _parser_text as html_parser_text
from watcher.text import _simple_markup_text as simple_markup_text

TARGET = ("rss2.0", "atom1.0")
HEADERS = {"content-type": "application/xml"}


def fetched(feed: Feed) -> FetchResult:
    return FetchResult(url=f"corpus:{feed.name}", status=200, body=feed.data, headers=HEADERS)


def share(feeds: list[Feed]) -> list[FetchResult]:
    """Prints the share by format and the refusals; returns the documents the fast path reads."""
    by_format: Counter[str] = Counter()
    fast: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    examples: defaultdict[str, list[str]] = defaultdict(list)
    taken: list[FetchResult] = []
    for feed in feeds:
        result = fetched(feed)
        by_format[feed.format] += 1
        reason = fast_path_refusal(result)
        if reason is None:
            fast[feed.format] += 1
            taken.append(result)
        elif feed.format in TARGET:
            reasons[reason] += 1
            examples[reason].append(feed.name)
    print("format     feeds  fast path")
    for fmt, n in sorted(by_format.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{fmt:<9} {n:>6} {fast[fmt]:>6}  {100 * fast[fmt] / n:5.1f}%")
    total = sum(by_format[fmt] for fmt in TARGET)
    taken_target = sum(fast[fmt] for fmt in TARGET)
    print(
        f"RSS 2.0 + Atom 1.0: the fast path reads {taken_target} of {total} "
        f"({100 * taken_target / max(total, 1):.1f}%)"
    )
    print()
    print(f"left to feedparser ({total - taken_target} RSS 2.0 / Atom 1.0 feeds), by reason:")
    for reason, n in reasons.most_common():
        more = f" and {n - 3} more" if n > 3 else ""
        print(f"{n:>4}  {reason}\n      {', '.join(examples[reason][:3])}{more}")
    return taken


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def parse_all(results: Iterable[FetchResult], *, fast: bool) -> int:
    items = 0
    for result in results:
        with contextlib.suppress(ParseError):
            items += len(parse(result.url, result, fast=fast).items)
    return items


def throughput(taken: list[FetchResult], repeat: int) -> None:
    items = parse_all(taken, fast=True)
    if parse_all(taken, fast=False) != items:
        raise SystemExit("the two paths disagree on the number of items: run the tests")
    bodies = [(_xml_body(r.url, r), r.headers) for r in taken]
    rows = [
        ("parse(): fast path", best(repeat, lambda: parse_all(taken, fast=True))),
        ("parse(): feedparser alone", best(repeat, lambda: parse_all(taken, fast=False))),
        ("XML only: fast path", best(repeat, lambda: [read_fast(b, h) for b, h in bodies])),
        (
            "XML only: feedparser",
            best(
                repeat,
                lambda: [
                    feedparser.parse(
                        io.BytesIO(b),
                        response_headers=dict(h),
                        sanitize_html=False,
                        resolve_relative_uris=False,
                    )
                    for b, h in bodies
                ],
            ),
        ),
    ]
    print(f"on the {len(taken)} documents the fast path reads ({items} items), best of {repeat}:")
    for label, seconds in rows:
        print(f"{label:<27} {seconds:7.3f} s  {items / seconds:>9,.0f} items/s")
    print(
        f"parse(): the fast path is {rows[1][1] / rows[0][1]:.1f}x feedparser; reading the XML "
        f"alone, {rows[3][1] / rows[2][1]:.1f}x"
    )


def markup_values(taken: list[FetchResult]) -> list[str]:
    """Every title, summary and content the fast path reads that parse() turns from HTML."""
    values = []
    for result in taken:
        read = read_fast(_xml_body(result.url, result), result.headers)
        assert read is not None
        for entry in read[1]:
            details = [entry.get("title_detail"), entry.get("summary_detail")]
            details += entry.get("content", [])
            values += [d["value"] for d in details if d and d["type"] != "text/plain"]
    return values


def lexbor_text(markup: str) -> str:
    """watcher's text of an HTML fragment, from selectolax's Lexbor tree."""
    from selectolax.lexbor import LexborHTMLParser

    if not _TAG_HINT.search(markup):
        return _tidy(html.unescape(markup))
    tree = LexborHTMLParser(markup)
    for node in tree.css(",".join(_SKIP_TAGS)):
        node.decompose()
    for node in tree.css(",".join(_BLOCK_TAGS)):
        node.insert_before("\n")
        node.insert_after("\n")
    root = tree.root
    return _tidy(root.text(deep=True) if root is not None else "")


def lxml_text(markup: str) -> str:
    """watcher's text of an HTML fragment, from lxml's (libxml2's) HTML tree."""
    import lxml.etree
    import lxml.html

    if not _TAG_HINT.search(markup):
        return _tidy(html.unescape(markup))
    try:
        document = lxml.html.document_fromstring(markup)
    except (lxml.etree.ParserError, ValueError):
        return ""
    for element in list(document.iter(*_SKIP_TAGS)):
        element.drop_tree()
    for element in document.iter(*_BLOCK_TAGS):
        element.text = "\n" + (element.text or "")
        element.tail = "\n" + (element.tail or "")
    return _tidy(document.text_content())


def html_text(taken: list[FetchResult], repeat: int) -> None:
    values = markup_values(taken)
    tagged = [value for value in values if _TAG_HINT.search(value)]
    simple = [value for value in tagged if simple_markup_text(value) is not None]
    unusual = [value for value in tagged if simple_markup_text(value) is None]
    print(
        f"HTML to text: {len(values)} values ({sum(map(len, values)) / 1e6:.1f} MB); "
        f"{len(values) - len(tagged)} without tags (entities only), {len(simple)} simple "
        f"markup (the regex pass), {len(unusual)} through HTMLParser"
    )
    every = best(repeat, lambda: [html_to_text(v) for v in values])
    print(f"{'html_to_text, every value':<36} {every:7.3f} s")
    regex = best(repeat, lambda: [simple_markup_text(v) for v in tagged])
    print(f"{'  the regex pass (all markup)':<36} {regex:7.3f} s")
    parser = best(repeat, lambda: [html_parser_text(v) for v in unusual])
    print(f"{'  HTMLParser (unusual markup)':<36} {parser:7.3f} s")
    reference = [html_to_text(value) for value in tagged]
    ours = best(repeat, lambda: [html_to_text(v) for v in tagged])
    print(f"the {len(tagged)} values with markup, through:")
    print(f"{'  watcher (regex, else HTMLParser)':<36} {ours:7.3f} s")
    for label, module, convert in (
        ("selectolax (Lexbor)", "selectolax", lexbor_text),
        ("lxml (libxml2)", "lxml", lxml_text),
    ):
        if importlib.util.find_spec(module) is None:
            print(f"  {label:<34} not installed (pip install {module})")
            continue
        seconds = best(repeat, lambda convert=convert: [convert(v) for v in tagged])
        differ = sum(convert(v) != text for v, text in zip(tagged, reference, strict=True))
        print(f"  {label:<34} {seconds:7.3f} s, text differs on {differ} of {len(tagged)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("full", "subset"), default="full")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    feeds = list(full() if args.corpus == "full" else subset())
    print(f"corpus: {args.corpus}, {len(feeds)} feeds")
    print()
    taken = share(feeds)
    print()
    throughput(taken, args.repeat)
    print()
    html_text(taken, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

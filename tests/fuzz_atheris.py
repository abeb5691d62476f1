"""Coverage-guided fuzzing of the entry points that take outside input, for long local runs.

    pip install atheris
    python tests/fuzz_atheris.py parse  -max_total_time=600 tests/data/feeds
    python tests/fuzz_atheris.py query  -max_total_time=600
    python tests/fuzz_atheris.py config -max_total_time=600
    python tests/fuzz_atheris.py html   -max_total_time=600

Arguments after the target go to libFuzzer (a corpus directory seeds it). Anything but
the result or our own error is a crash: libFuzzer writes the input to crash-*, and it
becomes a case in tests/test_fuzz.py. Not collected by pytest (CI runs test_fuzz.py,
hypothesis, bounded).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from watcher.config import parse_config
    from watcher.exceptions import ConfigError, ParseError, QuerySyntaxError
    from watcher.models import FetchResult
    from watcher.parse import parse
    from watcher.rules import parse_query
    from watcher.text import fold, html_to_text, transliterate


def _text(data: bytes) -> str:
    return atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))


def fuzz_parse(data: bytes) -> None:
    for kind in ("application/rss+xml", "application/feed+json"):
        with contextlib.suppress(ParseError):
            parse(
                "fuzz",
                FetchResult(url="http://x/", status=200, body=data, headers={"content-type": kind}),
            )


def fuzz_query(data: bytes) -> None:
    with contextlib.suppress(QuerySyntaxError):
        parse_query(_text(data))


def fuzz_config(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(_text(data), file="fuzz.yaml")


def fuzz_html(data: bytes) -> None:
    transliterate(fold(html_to_text(_text(data))))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "parse": fuzz_parse,
    "query": fuzz_query,
    "config": fuzz_config,
    "html": fuzz_html,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options] [corpus]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

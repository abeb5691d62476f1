"""Hostile input, fuzzed: every entry point that takes outside input either returns its
result or raises our own error for it, never anything else.

Bounded for CI (hypothesis, a few hundred examples each). For a longer hunt, raise
HYPOTHESIS_FUZZ_EXAMPLES, or run the coverage-guided fuzzer in tests/fuzz_atheris.py.
Every crash found becomes a case in this file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config import parse_config
from watcher.exceptions import ConfigError, ParseError, QuerySyntaxError
from watcher.models import FetchResult, ParsedFeed
from watcher.parse import MAX_FIELD_CHARS, parse
from watcher.rules import parse_query
from watcher.rules.query import to_text
from watcher.text import fold, html_to_text, transliterate

EXAMPLES = int(os.environ.get("HYPOTHESIS_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DATA = Path(__file__).parent / "data"
GOLDEN_FEEDS = sorted(
    p for p in (DATA / "feeds").iterdir() if p.suffix in (".xml", ".rdf", ".json")
)
EXAMPLE_CONFIG = (Path(__file__).parent.parent / "config" / "example.yaml").read_text()


def _check_parsed(parsed: ParsedFeed) -> None:
    for item in parsed.items:
        assert item.id and isinstance(item.id, str)
        for value in (item.title, item.summary, item.content, item.link, item.author):
            assert isinstance(value, str) and len(value) <= MAX_FIELD_CHARS
        assert "\x00" not in item.title + item.summary + item.content


def _parse(body: bytes, content_type: str = "application/xml") -> None:
    result = FetchResult(
        url="http://x/", status=200, body=body, headers={"content-type": content_type}
    )
    try:
        parsed = parse("fuzzed", result)
    except ParseError as exc:
        assert "fuzzed" in str(exc)  # the error names the feed
        return
    _check_parsed(parsed)


# -- the feed parser: bytes in --------------------------------------------------------------


@fuzz
@given(st.binary(max_size=4096))
def test_parse_survives_arbitrary_bytes(body: bytes) -> None:
    _parse(body)


@st.composite
def mutated_feeds(draw: st.DrawFn) -> tuple[bytes, str]:
    """A golden feed, damaged: bytes flipped, cut, spliced with markup and entities."""
    path = draw(st.sampled_from(GOLDEN_FEEDS))
    body = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if kind == "flip" and at < len(body):
            body[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del body[at:]
        elif kind == "insert":
            piece = draw(
                st.sampled_from(
                    [
                        b"<",
                        b"&",
                        b"&amp;",
                        b"&eacute;",
                        b"&#0;",
                        b"&#x110000;",
                        b"]]>",
                        b"<![CDATA[",
                        b"<item>",
                        b"</item>",
                        b"<entry>",
                        b'<!DOCTYPE r [<!ENTITY a "aaaa">]>',
                        b"\xff\xfe",
                        b"\xc3",
                        b"\x00",
                        b'{"items": [',
                    ]
                )
            )
            body[at:at] = piece
        else:
            del body[at : at + draw(st.integers(1, 64))]
    kind = "application/feed+json" if path.suffix == ".json" else "application/rss+xml"
    return bytes(body), kind


@fuzz
@given(mutated_feeds())
def test_parse_survives_damaged_golden_feeds(case: tuple[bytes, str]) -> None:
    _parse(*case)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<rss><channel><item><title>&b;</title></item></channel></rss>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><item><title>&x;</title></item></channel></rss>",
        "\ufeff<rss version='2.0'><channel><item><title>x</title></item></channel></rss>".encode(
            "utf-16"
        ),
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": 1e999}]}',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": "no"}',
        b"[" * 10000,
    ],
    ids=["billion-laughs", "xxe", "utf16-doctype", "huge-number", "items-not-a-list", "deep-json"],
)
def test_parse_hostile_documents(body: bytes) -> None:
    _parse(body)


# -- the query parser -------------------------------------------------------------------------

QUERY_ALPHABET = st.sampled_from(
    [*'ab kyiv()"*~-:@!&|+^\\/\t\n', "AND", "OR", "NOT", "&&", "||", "title:", "~5", "@e", "Харків"]
)


@fuzz
@given(st.lists(QUERY_ALPHABET, max_size=30).map("".join))
def test_query_parser_answers_every_string(query: str) -> None:
    try:
        node = parse_query(query)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(query)
        return
    again = parse_query(to_text(node))  # what it writes back, it reads the same way
    assert to_text(again) == to_text(node)


# -- the config loader --------------------------------------------------------------------------

_LOCATION = re.compile(r"^fuzz\.yaml(:\d+)?: ", re.MULTILINE)


@st.composite
def damaged_configs(draw: st.DrawFn) -> str:
    """The example config with lines dropped, doubled, swapped or retyped."""
    lines = EXAMPLE_CONFIG.splitlines()
    for _ in range(draw(st.integers(1, 5))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["drop", "double", "swap", "indent", "junk"]))
        if kind == "drop":
            del lines[at]
        elif kind == "double":
            lines.insert(at, lines[at])
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == "indent":
            lines[at] = "  " + lines[at]
        else:
            junk = draw(st.sampled_from(["{", "[", ": :", "- -", "*x", "&a", "${", "\t", "'"]))
            lines[at] += junk
    return "\n".join(lines) + "\n"


def _load(text: str) -> None:
    try:
        parse_config(text, file="fuzz.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message and _LOCATION.search(message), message  # names the file (and line)


@fuzz
@given(damaged_configs())
def test_config_loader_answers_every_damaged_config(text: str) -> None:
    _load(text)


@fuzz
@given(st.text(alphabet=st.sampled_from(list("abfeds:-[]{}'\"\n #&*!|>$%@`\t,?0")), max_size=200))
def test_config_loader_answers_arbitrary_text(text: str) -> None:
    _load(text)


# -- HTML to text, folding, transliteration ------------------------------------------------------


@fuzz
@given(st.text(max_size=500))
def test_text_steps_take_any_text(text: str) -> None:
    plain = html_to_text(text)
    assert plain == plain.strip() and "\x00" not in plain
    folded = fold(plain)
    assert fold(folded) == folded
    transliterate(folded)


@fuzz
@given(
    st.lists(
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<script>",
                "</script>",
                "<a href='x>y'>",
                "<!--",
                "-->",
                "&amp;",
                "&",
                "<",
                ">",
                "Kharkiv",
                " ",
                "\n",
                "<br/>",
                "<![CDATA[",
                "]]>",
                "<?x",
                "<style>",
                "é",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_html_to_text_takes_any_markup(markup: str) -> None:
    plain = html_to_text(markup)
    assert "<script" not in plain.lower() or "<script" in markup.lower()
    assert plain == plain.strip()


# -- crashes the fuzzers found, kept ------------------------------------------------------------


def test_found_xml_declaration_with_a_broken_encoding_name() -> None:
    body = b'<?xml version="1.0" encoding="IS\xe9-8859-1"?>\n<rss version="2.0"></rss>'
    with pytest.raises(ParseError, match="could not be read"):
        parse("f", FetchResult(url="http://x/", status=200, body=body, headers={}))


@pytest.mark.parametrize(
    "query", ["(" * 1000 + "a" + ")" * 1000, "NOT " * 1000 + "a", "-" * 999 + "a"]
)
def test_found_queries_nested_past_the_recursion_limit(query: str) -> None:
    with pytest.raises(QuerySyntaxError, match="nested too deeply"):
        parse_query(query)


def test_found_html_declaration_that_htmlparser_asserts_on() -> None:
    assert html_to_text("Kharkiv <![ZZZZ[ <b>news</b> <script>x()</script>") == "Kharkiv news"


def test_found_control_character_in_config() -> None:
    with pytest.raises(ConfigError, match=r"^fuzz\.yaml:2: invalid YAML: character #x0016"):
        parse_config("state: x\nfeeds: \x16\n", file="fuzz.yaml")

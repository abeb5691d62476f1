"""HTML to text, folding, and snippets."""

from __future__ import annotations

import html
import re
import unicodedata

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from watcher.text import (
    OffsetMap,
    TranslitMap,
    _fold_char,
    _parser_text,
    _simple_markup_text,
    _tidy,
    fold,
    fold_with_map,
    html_to_text,
    snippet,
    transliterate,
    transliterate_with_map,
)


def test_html_to_text_drops_tags_and_attribute_values() -> None:
    markup = '<p>Talks in <a href="/tags/lavrov" title="Lavrov">Geneva</a></p><p>Day two</p>'
    text = html_to_text(markup)
    assert text == "Talks in Geneva\nDay two"
    assert "lavrov" not in text.lower()


def test_html_to_text_decodes_entities_and_skips_scripts() -> None:
    assert html_to_text("It&#8217;s &amp; <b>bold</b>") == "It’s & bold"
    assert html_to_text("<script>alert('Kharkiv')</script>Safe") == "Safe"
    assert html_to_text("caf&eacute; &lt;not a tag&gt;") == "café <not a tag>"


def test_html_to_text_removes_nul_bytes_and_collapses_space() -> None:
    assert html_to_text("a\x00b   c\n\n\n d") == "ab c\nd"


# -- the fast paths of html_to_text, held to their references -------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list("ab Kyïv&;#<>/=\"'\n\t\r\u00a0\u2003\x00\x85")))
_NAMES = st.sampled_from(["p", "a", "b", "br", "DIV", "em", "script", "style", "h1", "x-y", "li"])
_ATTRIBUTES = st.lists(
    st.tuples(
        st.sampled_from(["href", "title", "data-x", "class", "=odd", "a b"]),
        st.sampled_from(['"/x?a=1&b=2"', "'Kharkiv>'", "v", '"a<b"', "", '"unclosed']),
    ),
    max_size=2,
)


@st.composite
def markup(draw: st.DrawFn) -> str:
    """Feed-like HTML with traps: odd attributes, stray < and >, comments, scripts, CDATA."""
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["text", "start", "end", "self", "entity", "other"]))
        if kind == "text":
            parts.append(draw(_TEXT))
        elif kind in ("start", "self"):
            attrs = "".join(
                f" {name}={value}" if value else f" {name}" for name, value in draw(_ATTRIBUTES)
            )
            parts.append(f"<{draw(_NAMES)}{attrs}{' /' if kind == 'self' else ''}>")
        elif kind == "end":
            parts.append(f"</{draw(_NAMES)}{draw(st.sampled_from(['', ' ', ' x']))}>")
        elif kind == "entity":
            parts.append(draw(st.sampled_from(["&amp;", "&eacute;", "&#8217;", "&am", "&#x41"])))
        else:
            parts.append(
                draw(st.sampled_from(["<!-- c -->", "<![CDATA[x]]>", "<?pi?>", "< p", "<"]))
            )
    return "".join(parts)


@settings(max_examples=500, deadline=None)
@given(markup())
def test_simple_markup_reads_like_htmlparser(source: str) -> None:
    fast = _simple_markup_text(source)
    event("fast path" if fast is not None else "HTMLParser")
    if fast is not None:
        assert fast == _parser_text(source)


def _tidy_reference(text: str) -> str:
    """The whitespace rules as first written: three regexes."""
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text)
    text = re.sub(r"\s*\n\s*", "\n", text)
    return unicodedata.normalize("NFC", text.strip())


@settings(max_examples=500, deadline=None)
@given(_TEXT)
def test_tidy_agrees_with_the_regex_reference(text: str) -> None:
    assert _tidy(text) == _tidy_reference(text)


def test_html_to_text_of_plain_markup_takes_the_fast_path() -> None:
    fragment = '<p>Talks in <a href="/x?a=1&amp;b=2">Kharkiv</a> &#8212; <em>day</em> two</p>'
    assert _simple_markup_text(fragment) is not None
    assert html_to_text(fragment) == html.unescape("Talks in Kharkiv &#8212; day two")


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("KHARKOV", "kharkov"),
        ("Kyïv", "kyiv"),
        ("Kharkiv’s", "kharkiv's"),
        ("peace\n\t talks", "peace talks"),
        ("Straße", "strasse"),
        ("Королёв", "королев"),
        ("ХАРКІВ", "харків"),
        ("pro–Russian", "pro-russian"),
        ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_fold_keeps_cyrillic_letters_distinct() -> None:
    # й is not и with a decoration: the two are different letters.
    assert fold("мой") != fold("мои")


@pytest.mark.parametrize("text", ["Plain ascii  text", "Ünïcödé\u00a0Kyïv’s — ХАРКІВ ß ﬁ"])
def test_fold_with_map_agrees_with_fold_and_points_back(text: str) -> None:
    folded, index = fold_with_map(text)
    assert folded == fold(text)
    assert len(index) == len(folded)
    assert index == sorted(index)
    assert all(0 <= i < len(text) for i in index)


# Characters that fold to none or to several (soft hyphen, zero-width space, ß, ligatures,
# the ellipsis, combining marks), spaces of several kinds, and plain letters around them.
_ODD_TEXT = st.text(
    alphabet=st.sampled_from(list("ab Z\u00ad\u200bßﬁ…\u0301é\u00a0\t\n’—ХаЁ")),
    max_size=60,
)


@given(_ODD_TEXT)
def test_offset_map_agrees_with_the_per_character_map(text: str) -> None:
    # OffsetMap finds breakpoints with regexes; fold_with_map walks every character.
    folded, index = fold_with_map(text)
    back = OffsetMap(text, folded)
    assert [back(i) for i in range(len(folded))] == index


def test_offset_map_agrees_on_real_feed_text() -> None:
    import corpus

    from watcher.exceptions import FeedError
    from watcher.models import FetchResult
    from watcher.parse import parse

    checked = 0
    for feed in corpus.selected():
        kind = "application/feed+json" if feed.format.startswith("json") else "application/xml"
        result = FetchResult(
            url="http://localhost/", status=200, body=feed.data, headers={"content-type": kind}
        )
        try:
            items = parse(feed.name, result).items
        except FeedError:  # a feed watcher refuses has no text to map
            continue
        for item in items:
            for text in (item.title, item.summary, item.content):
                if text:
                    folded, index = fold_with_map(text)
                    back = OffsetMap(text, folded)
                    assert [back(i) for i in range(len(folded))] == index, feed.name
                    checked += 1
    assert checked > 1000


def test_snippet_cuts_at_word_edges_with_ellipses() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    start = text.index("word50")
    piece = snippet(text, start, start + 6, width=40)
    assert "word50" in piece
    assert piece.startswith("…") and piece.endswith("…")
    assert len(piece) <= 42
    assert snippet("short text", 0, 5) == "short text"


def test_fast_fold_equals_per_character_folding_for_every_bmp_character() -> None:
    # fold() takes shortcuts (C-level lower(), replacing only the characters that need it);
    # it must give exactly what folding character by character gives, or offsets drift.
    contexts = ("{}", "abc {} def", "Харків {} Київ", "x{}y", "Kyïv’s {}—")
    for codepoint in range(0x10000):
        if 0xD800 <= codepoint <= 0xDFFF:
            continue
        ch = chr(codepoint)
        for context in contexts:
            text = context.format(ch)
            assert fold(text) == fold_with_map(text)[0], (hex(codepoint), context)


def test_folding_is_idempotent() -> None:
    # fold() substitutes characters in set order; that is only safe if every character of
    # a fold folds to itself.
    for codepoint in range(0x10000):
        if 0xD800 <= codepoint <= 0xDFFF:
            continue
        for ch in _fold_char(chr(codepoint)):
            assert _fold_char(ch) == ch, hex(codepoint)


def test_transliteration_maps_back() -> None:
    folded = fold("Харьков, Київ and Θεσσαλονίκη")
    latin, index = transliterate_with_map(folded)
    assert latin == transliterate(folded) == "kharkov, kiiv and thessaloniki"
    assert len(index) == len(latin)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Харків", "ь", "Щ", "ъ", "Kyiv", "Θ", "№", " ", "  ", "-", "’s", "ї"]),
        max_size=40,
    )
)
def test_the_translit_map_agrees_with_the_character_by_character_map(pieces: list[str]) -> None:
    """TranslitMap jumps word by word; transliterate_with_map walks every character."""
    folded = fold("".join(pieces))
    latin, index = transliterate_with_map(folded)
    back = TranslitMap(folded)
    assert [back(i) for i in range(len(latin))] == index

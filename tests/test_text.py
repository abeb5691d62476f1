"""HTML to text, folding, and snippets."""

from __future__ import annotations

import pytest

from watcher.text import (
    _fold_char,
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

"""HTML to text, folding, and snippets."""

from __future__ import annotations

import html
import re
import unicodedata

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from watcher.text import (
    _NON_ASCII,
    OffsetMap,
    TranslitMap,
    _fold_char,
    _parser_text,
    _simple_markup_text,
    _tidy,
    fold,
    fold_noting,
    fold_with_map,
    html_to_text,
    snippet,
    transliterate,
    transliterate_sparse,
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
_NAMES = st.sampled_from(
    [
        *("p", "a", "b", "br", "DIV", "em", "h1", "x-y", "li"),
        *("script", "SCRIPT", "style", "Style", "head", "title", "TITLE", "template", "noscript"),
    ]
)
_ATTRIBUTES = st.lists(
    st.tuples(
        st.sampled_from(["href", "title", "data-x", "class", "=odd", "a b"]),
        st.sampled_from(['"/x?a=1&b=2"', "'Kharkiv>'", "v", '"a<b"', "", '"unclosed', "/x/"]),
    ),
    max_size=2,
)
# What may follow a tag's name or attributes: HTML whitespace, and what HTMLParser reads
# as part of a name (a vertical tab, a no-break space).
_TAG_SPACES = ["", " ", "\n", "\t", "\f"]
_ODD_TAG_SPACES = ["\x0b", "\u00a0", "\u2003"]
_COMMENTS = ["<!-- c -->", "<!---->", "<!-- a -- >", "<!--x--\n>", "<!-- <p>b</p> -->"]
_ODD_COMMENTS = ["<!-->", "<!--->", "<!-- <script> -->", "<!-- x --!>", "<!-- &am", "<!--"]
# The raw text of a <script> or <style>: markup that is not markup there.
_RAW = st.lists(
    st.sampled_from(
        [
            *("a", " ", "\n", "<", ">", "</", "<b>", "</p>", "<!--", "-->", "&amp;", "&am"),
            "</style>",
        ]
    ),
    max_size=6,
).map("".join)


@st.composite
def markup(draw: st.DrawFn) -> str:
    """Feed-like HTML: tags, comments, skipped elements nested and unclosed, scripts with
    odd content; with traps (odd attributes and spaces, stray < and >, unclosed comments
    and scripts, CDATA) in half the examples, so that the other half takes the fast path."""
    traps = draw(st.booleans())

    def pick(usual: list[str], odd: list[str]) -> str:
        return draw(st.sampled_from(usual + odd if traps else usual))

    parts = []
    for _ in range(draw(st.integers(0, 10))):
        kind = pick([*("text", "start", "end") * 2, "self", "entity", "comment", "raw"], ["other"])
        if kind == "text":
            text = draw(_TEXT)
            parts.append(text if traps else text.replace("<", ""))
        elif kind in ("start", "self"):
            attrs = "".join(
                f" {name}={value}" if value else f" {name}" for name, value in draw(_ATTRIBUTES)
            )
            close = pick(["/>", " />"], []) if kind == "self" else ">"
            parts.append(f"<{draw(_NAMES)}{attrs}{pick(_TAG_SPACES, _ODD_TAG_SPACES)}{close}")
        elif kind == "end":
            rest = pick(["", " ", " x", "/", ' a=">"', "\n"], ["\x0b", "\u00a0"])
            parts.append(f"</{draw(_NAMES)}{rest}>")
        elif kind == "entity":
            parts.append(draw(st.sampled_from(["&amp;", "&eacute;", "&#8217;", "&am", "&#x41"])))
        elif kind == "comment":
            parts.append(pick(_COMMENTS, _ODD_COMMENTS))
        elif kind == "raw":
            # A <script> or <style>, closed in any of the ways HTMLParser accepts or ignores.
            name = draw(st.sampled_from(["script", "SCRIPT", "style", "Style"]))
            close = pick(
                [f"</{name}>", f"</{name.upper()} >", f"</ {name}>", f"</{name}\n>"],
                [f"</{name}\u00a0>", f"</{name} x>", f"</{name}s>", "</\u017fcript>", ""],
            )
            space = pick(_TAG_SPACES, _ODD_TAG_SPACES)
            parts.append(f"<{name}{space}>{draw(_RAW)}{close}")
        else:
            parts.append(draw(st.sampled_from(["<![CDATA[x]]>", "<?pi?>", "< p", "<", "</>"])))
    return "".join(parts)


_FEATURES = {
    "a comment": re.compile("<!--"),
    "raw text": re.compile("<(script|style)[^/]*?>", re.IGNORECASE),
    "a skipped element": re.compile("<(head|title|template|noscript)", re.IGNORECASE),
}


@settings(max_examples=1000, deadline=None)
@given(markup())
def test_simple_markup_reads_like_htmlparser(source: str) -> None:
    fast = _simple_markup_text(source)
    if fast is None:
        event("HTMLParser")
    else:
        event("fast path")
        for feature, pattern in _FEATURES.items():
            if pattern.search(source):
                event(f"fast path, with {feature}")
        assert fast == _parser_text(source)


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("a<!-- hidden <p>b</p> -->c", "ac"),
        ("a<!-- x -- >b<!---->c", "abc"),
        ("<p>a</p><!--[if gte mso 9]><xml><w:x/></xml><![endif]--><p>b</p>", "\na\n\nb\n"),
        ("x<script>if (a < b) document.write('<p>');</script>y", "xy"),
        ("<SCRIPT type='t'>x</ScRiPt >y<style>p {}</style>", "y"),
        ("a<script/>b<style />c", "abc"),  # self-closing: nothing skipped
        ("a<script src=/x/>b</script>c", "ac"),  # the "/" belongs to the value
        ("<head><title>T</title><p>x</p></head>y", "\n\ny"),  # block tags still break
        ("<title>a</script>b", "b"),  # any skipped element's end tag lowers the depth
        ("<noscript><noscript>a</noscript>b</noscript>c", "c"),
        ("<template>a<script>b</script>c</template>&amp;d", "&d"),
        ("a<stacked-sparklines x='1'/>b", "ab"),
        ('a</p x=">">b', 'a\n">b'),  # an end tag ends at its first ">"
    ],
)
def test_simple_markup_reads_comments_and_skipped_elements(source: str, text: str) -> None:
    assert _simple_markup_text(source) == text
    assert _parser_text(source) == text


@pytest.mark.parametrize(
    "source",
    [
        "a<!-- never closed",
        "a<script>never closed",
        "a<script>b</\u017fcript>c</script>d",  # only IGNORECASE reads "\u017f" as "s"
        "&am<!-- -->p;",  # a comment splits a run of text, so this is no reference
        "a<p\x0b>b",  # a vertical tab is part of the name for HTMLParser
        "a<b\u00a0>b</b>",
        "a<![CDATA[b]]>",
        "a < b",
    ],
)
def test_what_simple_markup_leaves_to_htmlparser(source: str) -> None:
    assert _simple_markup_text(source) is None
    assert html_to_text(source) == _tidy(_parser_text(source))


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


# Characters that fold to several and whitespace, but none that folds to nothing or to a
# space: OffsetMap then finds whitespace runs in the text itself, not in its folded copy.
_EXPANDING_TEXT = st.text(
    alphabet=st.sampled_from(list("ab Zßﬁ…é\u00a0\u2003\t\n’—ХаЁ")),
    max_size=60,
)


@given(st.one_of(_ODD_TEXT, _EXPANDING_TEXT))
def test_offset_map_agrees_with_the_per_character_map(text: str) -> None:
    # OffsetMap finds breakpoints with regexes; fold_with_map walks every character.
    folded, index = fold_with_map(text)
    back = OffsetMap(text, folded)
    assert [back(i) for i in range(len(folded))] == index
    assert back.identity == (index == list(range(len(folded))) and len(text) == len(folded))
    # The scan hands over what folding found (fold_noting): the same map.
    noted = OffsetMap(text, *fold_noting(text))
    assert fold_noting(text)[0] == folded
    assert [noted(i) for i in range(len(folded))] == index


@pytest.mark.parametrize(
    "text",
    [
        "a  ß  b",  # runs after an expansion: found in the text, shifted by its growth
        "ﬁ…ß x  y\t\tz  …",
        "a \u00ad b",  # the soft hyphen vanishes: two single spaces become one run
        "a ¨ b  c",  # "¨" folds to a space: a run the text itself does not show
        "a ¨ ß  c",
        "Straße  und   Weg ¨  x",
        "x\u00a0 \u2003y  z",
    ],
)
def test_offset_map_where_folding_moves_or_makes_spaces(text: str) -> None:
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


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                *("Харків", "ь", "Щ", "ъ", "Kyiv", "Θ", "№", " ", "  ", "-", "’s", "ї", "a"),
                *("news ", "the city ", "police said ", "x" * 60 + " "),  # few words change
            ]
        ),
        max_size=60,
    )
)
def test_the_sparse_transliteration_is_the_same_text_and_map(pieces: list[str]) -> None:
    """transliterate_sparse maps back from the changed words alone: the same text and the
    same offset for every character as the word-list map and the per-character one."""
    folded = fold("".join(pieces))
    latin, index = transliterate_with_map(folded)
    sparse = transliterate_sparse(folded)
    event(f"sparse: {sparse is not None}")
    if sparse is None:  # too many non-ASCII characters or words to be worth it
        assert (
            len(folded.encode()) - len(folded) > len(folded) // 8
            or len(_NON_ASCII.findall(folded)) > len(folded) // 48 + 2
        )
        return
    text, back = sparse
    assert text == latin == transliterate(folded)
    assert [back(i) for i in range(len(latin))] == index


def test_sparse_transliteration_is_for_text_with_few_non_ascii_words() -> None:
    english = fold("Officials in Kharkiv (Харків) said the shelling went on all night. " * 4)
    text, back = transliterate_sparse(english) or ("", None)
    assert text.count("(kharkiv)") == 4 and back is not None
    assert text.index("(kharkiv)") + 1 == text.index("kharkiv)")
    assert back(text.index("kharkiv)")) == english.index("харків")
    assert back(len(text) - 1) == len(english) - 1
    assert transliterate_sparse(fold("Харків і Київ: обстріли тривали всю ніч")) is None

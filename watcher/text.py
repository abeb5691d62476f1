"""Text normalisation shared by parse and rules.

Owns two things: turning feed HTML into plain text (tags and attribute values
dropped, entities decoded, block elements separated) and *folding* text so that
matching is case-, accent- and punctuation-insensitive. Folding works one
character at a time so that every folded character maps back to an offset in
the original text: that is how snippets quote the feed's own words.
"""

from __future__ import annotations

import bisect
import html
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from html.parser import HTMLParser
from itertools import accumulate, chain, count, repeat
from operator import add

from anyascii import anyascii

_BLOCK_TAGS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header"),
        *("hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr"),
        "ul",
    }
)
_SKIP_TAGS = frozenset(("script", "style", "template", "noscript", "head", "title"))
_TAG_HINT = re.compile(r"<[A-Za-z!/?]")
# The spaces that _tidy turns into plain ones (\f and \v are control characters, gone by
# then), by str.replace: a regex over every character cost more than the rest of _tidy.
_ODD_SPACES = ("\t", "\r", "\u00a0")


class _TextExtractor(HTMLParser):
    """Collects character data only; attribute values never reach the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


# A comment's start, an end tag, or a start tag with well-formed attributes: a strict
# subset of what HTMLParser reads as one, so whatever this matches, HTMLParser reads the
# same way. Only HTML whitespace separates the parts: HTMLParser takes a vertical tab or a
# no-break space after a tag name for part of the name. An end tag ends at the first ">",
# quotes or not, as HTMLParser's does. Names may hold "-" (custom elements). Groups: 1 a
# comment, 2 the "/" of an end tag, 3 a tag's name, 4 the "/" of a self-closing start tag.
_WS = "[ \t\n\r\f]"
_MARKUP = re.compile(
    r"<(?:(!--)|(/)?([a-zA-Z][a-zA-Z0-9-]*)(?(2)"
    rf"(?:[ \t\n\r\f/][^>]*)?>|"  # an end tag
    rf"""(?:{_WS}+[^\s"'<>/=]+(?:{_WS}*={_WS}*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*"""
    rf"{_WS}*(/?)>))"
)
_GROUPS = 4
_BREAKS = dict.fromkeys(_BLOCK_TAGS, "\n")
# _markupbase's end of a comment, and HTMLParser's end of a CDATA element's content.
_COMMENT_END = re.compile(r"--\s*>")
_CDATA_END = {
    name: re.compile(rf"</\s*({name})\s*>", re.IGNORECASE) for name in ("script", "style")
}


def _simple_markup_text(markup: str) -> str | None:
    """The text HTMLParser would extract, for markup made only of simple tags, comments
    and skipped elements; else None.

    Feed HTML is nearly always paragraphs, links and emphasis; a regex pass reads that
    ten times faster than HTMLParser. Anything else (CDATA, declarations, an unclosed
    comment or script, a stray ``<``, an odd attribute) returns None and goes through
    HTMLParser; a property test holds the two to the same output.

    Markup of tags alone is split by one regex call and joined again without a loop in
    Python (a loop cost as much as the regex); comments and skipped elements need one.
    """
    pieces = _MARKUP.split(markup)
    if any(pieces[1 :: _GROUPS + 1]):
        return _skipping_markup_text(markup)  # a comment
    names = list(map(str.lower, pieces[3 :: _GROUPS + 1]))
    if not _SKIP_TAGS.isdisjoint(names):
        return _skipping_markup_text(markup)
    texts = pieces[:: _GROUPS + 1]
    if "&" in markup and _REFERENCE_BEFORE_TAG.search(markup):
        # HTMLParser decodes each run of text on its own: "&am<b></b>p;". Every run but
        # the last ends at a tag's "<"; one search of the whole markup finds them all (and
        # a "<" inside an attribute value too, which HTMLParser then reads, as it may).
        return None
    breaks = map(_BREAKS.get, names, repeat(""))  # one fewer than texts
    text = "".join(chain.from_iterable(zip(texts, breaks, strict=False))) + texts[-1]
    if "<" in text:
        return None
    return html.unescape(text) if "&" in text else text


def _skipping_markup_text(markup: str) -> str | None:
    """_simple_markup_text for markup with comments or skipped elements.

    The rules are those of _TextExtractor over Python 3.11's HTMLParser: a comment ends at
    the first ``--`` that only whitespace separates from a ``>``; <script> and <style>
    hold raw text up to their end tag; every start tag of a skipped element counts one
    deeper (a self-closing one does not), every end tag one shallower, and block tags
    break lines even where text is skipped.
    """
    parts: list[str] = []
    pos = 0
    skip = 0
    while (m := _MARKUP.search(markup, pos)) is not None:
        data = markup[pos : m.start()]
        if "<" in data:
            return None
        if not skip:
            if "&" in data and _OPEN_REFERENCE.search(data):
                # HTMLParser decodes each run of text on its own: "&am<b></b>p;" stays as is.
                return None
            parts.append(data)
        pos = m.end()
        if m.group(1):  # a comment
            close = _COMMENT_END.search(markup, pos)
            if close is None:
                return None
            pos = close.end()
            continue
        name = m.group(3).lower()
        if name in _SKIP_TAGS:
            if m.group(2):  # an end tag
                skip = max(0, skip - 1)
            elif not m.group(4):
                end_tag = _CDATA_END.get(name)
                if end_tag is None:
                    skip += 1
                    continue
                # Raw text up to the end tag, skipped: the depth goes up and down again.
                close = end_tag.search(markup, pos)
                if close is None or not close.group(1).isascii():
                    return None  # unclosed, or an end tag only IGNORECASE takes ("ſcript")
                pos = close.end()
        elif name in _BLOCK_TAGS:
            parts.append("\n")
    data = markup[pos:]
    if "<" in data:
        return None
    if not skip:
        parts.append(data)
    text = "".join(parts)
    return html.unescape(text) if "&" in text else text


_OPEN_REFERENCE = re.compile(r"&[^\t\n\f <&;]*\Z")
_REFERENCE_BEFORE_TAG = re.compile(r"&[^\t\n\f <&;]*<")


def _parser_text(markup: str) -> str:
    """Text through HTMLParser: the reference, and the path for anything unusual."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except AssertionError:
        # Python 3.11's HTMLParser asserts on some hostile declarations ("<![ZZZZ["): read
        # such a fragment crudely, scripts and anything tag-like removed.
        return html.unescape(_ANY_TAG.sub("", _SCRIPT.sub("", markup)))
    return "".join(parser.parts)


_ANY_TAG = re.compile(r"<[^>]*>?")
_SCRIPT = re.compile(r"<(script|style)\b.*?(</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment (or of text that merely contains entities)."""
    if not markup:
        return ""
    if _TAG_HINT.search(markup):
        text = _simple_markup_text(markup)
        if text is None:
            text = _parser_text(markup)
    else:
        text = html.unescape(markup)
    return _tidy(text)


def _tidy(text: str) -> str:
    """No control characters; each run of spaces and tabs one space; each whitespace run
    that holds a line break one line break; stripped; NFC."""
    text = _CONTROL.sub("", text)
    for space in _ODD_SPACES:
        if space in text:
            text = text.replace(space, " ")
    if "  " in text:
        text = _SPACE_RUN.sub(" ", text)
    if "\n" in text:
        text = "\n".join(filter(None, map(str.strip, text.split("\n"))))
    return unicodedata.normalize("NFC", text.strip())


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain_text(text: str) -> str:
    """Text that was never HTML, cleaned the same way: no control characters, NFC."""
    return unicodedata.normalize("NFC", _CONTROL.sub("", text).strip())


_APOSTROPHES = frozenset("'\u2018\u2019\u201b\u02bc\u02b9\u00b4\u2032\uff07")
_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")
# Letters whose diacritics distinguish letters rather than decorate them.
_KEEP_MARKS_SCRIPTS = ("CYRILLIC",)
_SPECIAL = {"ё": "е", "ß": "ss", "ø": "o", "đ": "d", "ł": "l", "æ": "ae", "œ": "oe", "ı": "i"}


def _fold_char(ch: str) -> str:
    """The folded form of one character (possibly empty, possibly several characters).

    Idempotent: every character of the result folds to itself, so fold() may substitute
    characters in any order.
    """
    folded = _fold_once(ch)
    if len(folded) == 1 and folded == ch:
        return folded
    return "".join(_fold_once(c) for c in folded)


def _fold_once(ch: str) -> str:
    if ch in _APOSTROPHES:
        return "'"
    if ch in _DASHES:
        return "-"
    if ch.isspace():
        return " "
    if ch.isascii():
        return ch.lower()
    folded = unicodedata.normalize("NFKC", ch).casefold()
    out: list[str] = []
    for part in unicodedata.normalize("NFD", folded):
        if unicodedata.combining(part):
            base = out[-1][-1:] if out else ""
            if base and any(s in unicodedata.name(base, "") for s in _KEEP_MARKS_SCRIPTS):
                out.append(part)
            continue
        out.append(_SPECIAL.get(part, part))
    result = unicodedata.normalize("NFC", "".join(out))
    # .lower() last: fold() lower-cases after substituting, so entries must be stable under
    # it (casefold maps Cherokee to upper case, lower() back).
    return "".join(_SPECIAL.get(c, c) for c in result).lower()


class _LazyTable(dict[int, str]):
    """A str.translate table that computes each character's entry the first time it is met.

    translate() runs in C, so folding costs about as much as copying the string, and
    because it is per character by construction, offsets can always be mapped back.
    """

    def __init__(self, fn: Callable[[str], str]) -> None:
        super().__init__()
        self._fn = fn

    def __missing__(self, codepoint: int) -> str:
        value = self._fn(chr(codepoint))
        self[codepoint] = value
        return value


_FOLD = _LazyTable(_fold_char)

# fold() is the hot path of matching (every field of every item), so it avoids touching
# characters one by one in Python. Its result is defined to equal folding each character
# with _fold_char (what fold_with_map does); tests/test_text.py checks that for every
# character of the Basic Multilingual Plane, alone and inside ASCII and Cyrillic text.
_ASCII_SPACES = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_ASCII_SPACE_TABLE = str.maketrans(dict.fromkeys(_ASCII_SPACES, " "))
# Written with its two spaces first: the regex engine then searches for that pair, not
# for every space of the text (2.4x faster on the real feeds' texts than " {2,}").
_SPACE_RUN = re.compile("  [ ]*")
_WHITESPACE_RUN = re.compile(r"\s{2,}")
# The Cyrillic-block characters whose fold is not their lower case (ё, combining titlo...).
_CYRILLIC_EXCEPTIONS = "".join(
    c for c in map(chr, range(0x400, 0x500)) if _fold_char(c) != c.lower()
)


def _character_class(chars: Iterable[str]) -> str:
    """A regex character class body (no brackets) for a set of characters, as ranges."""
    points = sorted(set(map(ord, chars)))
    ranges: list[tuple[int, int]] = []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return "".join(
        re.escape(chr(lo)) + (f"-{re.escape(chr(hi))}" if hi > lo else "") for lo, hi in ranges
    )


# Every character whose fold may differ from its lower case: outside ASCII and outside
# the Cyrillic block, plus the block's exceptions. One class, so one regex pass.
_MAY_FOLD = re.compile(
    "[^"
    + _character_class(
        [
            *map(chr, range(0x80)),
            *(chr(c) for c in range(0x400, 0x500) if chr(c) not in _CYRILLIC_EXCEPTIONS),
        ]
    )
    + "]"
)


def _distinct_non_ascii(text: str) -> set[str]:
    """The distinct characters of ``text`` whose fold may differ from their lower case:
    those outside ASCII and the Cyrillic block, plus the block's few exceptions (ё,
    combining marks).

    Cyrillic text is mostly Cyrillic letters, which never need the table, so one regex
    pass (C speed) finds the few others.
    """
    return set(_MAY_FOLD.findall(text))


def fold(text: str) -> str:
    """Case-, accent- and punctuation-folded text with whitespace runs collapsed to one space."""
    return fold_noting(text)[0]


def fold_noting(text: str) -> tuple[str, Collection[str]]:
    """:func:`fold`, and the characters of ``text`` whose fold may differ from their lower
    case (none for ASCII): an :class:`OffsetMap` of the same text needs them too."""
    if text.isascii():
        low = text.lower().translate(_ASCII_SPACE_TABLE)
        specials: Collection[str] = ()
    else:
        low = text
        specials = _distinct_non_ascii(text)
        for ch in specials:
            folded = _FOLD[ord(ch)]
            if folded != ch:
                low = low.replace(ch, folded)
        low = low.lower()
        for space in _ASCII_SPACES:
            if space in low:
                low = low.replace(space, " ")
    return (_SPACE_RUN.sub(" ", low) if "  " in low else low), specials


class _SpacingTable(dict[str, bool]):
    """Per character, remembered: whether folding it keeps whitespace where it was (a
    whitespace character folds to one space; anything else to one or more characters,
    none of them whitespace). Only "¨" and a few other spacing marks fold to a space, and
    soft hyphens and lone combining marks to nothing (which can join two spaces)."""

    def __missing__(self, ch: str) -> bool:
        folded = _FOLD[ord(ch)]
        if ch.isspace():
            keeps = folded == " "
        else:
            keeps = bool(folded) and not any(c.isspace() for c in folded)
        self[ch] = keeps
        return keeps


_KEEPS_SPACING = _SpacingTable()


class OffsetMap:
    """Maps offsets of ``fold(text)`` back to offsets of ``text``.

    Usually every character folds to exactly one character and only whitespace runs
    (collapsed to one space) shift offsets, so a list of runs is enough. Characters that
    fold to none or to several (soft hyphens, ß, ligatures, "…") add a breakpoint each,
    found by one regex pass: a map per character, built in a Python loop, cost more than
    the rest of test-run on real feeds (news articles are long, and one "…" in them was
    enough). Whitespace runs are looked for in ``text`` itself, not in its folded copy
    (translating a long text costs several regex passes), unless folding moves spaces
    (see :class:`_SpacingTable`). :func:`fold_with_map` is the reference it is tested
    against.
    """

    def __init__(
        self, text: str, folded: str | None = None, specials: Collection[str] | None = None
    ) -> None:
        """``folded`` and ``specials``, when the caller has them: what :func:`fold_noting`
        returns for ``text``."""
        self._starts: list[int] = []  # folded offset just after each collapsed run
        self._shifts: list[int] = []  # characters dropped up to and including that run
        # Where the odd characters are: from each translated offset in ``_pieces`` on, the
        # source offset is ``_sources`` at that index plus the distance.
        self._pieces: list[int] = []
        self._sources: list[int] = []
        self.identity = True  # every offset maps to itself
        if specials is None:
            specials = () if text.isascii() else _distinct_non_ascii(text)
        odd = [c for c in specials if len(_FOLD[ord(c)]) != 1]
        spacing = _KEEPS_SPACING
        plain = all(spacing[c] for c in specials)
        # Source offsets where the translated text has grown (by the odd characters
        # before them) and by how much: for runs found in ``text`` itself.
        grown_at: list[int] = []
        growth: list[int] = []
        if odd:
            self.identity = False
            self._map_odd(text, odd, grown_at, growth)
            if plain:
                spaced, runs = text, _WHITESPACE_RUN
            else:  # what _with_map collapses: spaces of the translated text
                spaced, runs, grown_at = text.translate(_FOLD), _SPACE_RUN, []
        else:
            if len(fold(text) if folded is None else folded) == len(text):
                return  # one character for one, and no whitespace run collapsed: identity
            spaced = text if plain else text.translate(_FOLD)
            runs = _WHITESPACE_RUN
        dropped = 0
        for m in runs.finditer(spaced):
            end = m.end()
            if grown_at:
                k = bisect.bisect_right(grown_at, end)
                end += growth[k - 1] if k else 0
            dropped += m.end() - m.start() - 1
            self._starts.append(end - dropped)
            self._shifts.append(dropped)
        if self._starts:
            self.identity = False

    def _map_odd(
        self, text: str, odd: Iterable[str], grown_at: list[int], growth: list[int]
    ) -> None:
        pieces, sources = self._pieces, self._sources
        pieces.append(0)
        sources.append(0)
        shift = 0  # translated offset minus source offset, so far
        for m in re.finditer(f"[{_character_class(odd)}]", text):
            pos = m.start()
            width = len(_FOLD[ord(m.group())])
            for k in range(width):  # every piece of an expansion points at its source
                pieces.append(pos + k + shift)
                sources.append(pos)
            shift += width - 1
            pieces.append(pos + 1 + shift)  # the next character, one for one again
            sources.append(pos + 1)
            grown_at.append(pos + 1)
            growth.append(shift)

    def __call__(self, offset: int) -> int:
        i = bisect.bisect_right(self._starts, offset)
        offset += self._shifts[i - 1] if i else 0
        if not self._pieces:
            return offset
        j = bisect.bisect_right(self._pieces, offset) - 1
        return self._sources[j] + offset - self._pieces[j]


def fold_with_map(text: str) -> tuple[str, list[int]]:
    """Folded text plus, for each folded character, the offset of its source character."""
    return _with_map(text, _FOLD)


def _with_map(text: str, table: _LazyTable) -> tuple[str, list[int]]:
    out: list[str] = []
    index: list[int] = []
    last_space = False
    for pos, ch in enumerate(text):
        for piece in table[ord(ch)]:
            if piece == " ":
                if last_space:
                    continue
                last_space = True
            else:
                last_space = False
            out.append(piece)
            index.append(pos)
    return "".join(out), index


_SIGNS = {"ь": "", "ъ": "", "Ь": "", "Ъ": ""}


def _translit_char(ch: str) -> str:
    """Latin letters for one already-folded character (anyascii), signs dropped."""
    if ch.isascii():
        return ch
    if ch in _SIGNS:
        return _SIGNS[ch]
    latin = anyascii(ch)
    return fold(latin).replace("'", "").replace(" ", "") if latin else ch


_TRANSLIT = _LazyTable(_translit_char)


class _WordCache(dict[str, str]):
    """Transliterated words, remembered: news repeats its words (Zipf), and a dictionary
    lookup per word costs a fraction of translate() per character on non-ASCII text.
    Bounded: cleared when full, which costs one re-warm, not a leak."""

    limit = 16_384

    def __missing__(self, word: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        latin = self[word] = word.translate(_TRANSLIT)
        return latin


_TRANSLIT_WORDS = _WordCache()


def transliterate(folded: str) -> str:
    """Folded text in Latin letters (Харьков -> kharkov), for transliterating entities.

    Per character by construction (word by word, each word with translate()), so
    :class:`TranslitMap` can map offsets back.
    """
    if folded.isascii():
        return folded
    return " ".join(transliterate_words(folded.split(" ")))


def transliterate_words(words: list[str]) -> list[str]:
    """Each word of a folded text (split at spaces) in Latin letters; a transliterated
    word never contains a space, so the two lists stay aligned."""
    return list(map(_TRANSLIT_WORDS.__getitem__, words))


def transliterate_with_map(folded: str) -> tuple[str, list[int]]:
    """Transliterated text plus, per character, its offset in ``folded``."""
    out: list[str] = []
    index: list[int] = []
    for pos, ch in enumerate(folded):
        for piece in _TRANSLIT[ord(ch)]:
            out.append(piece)
            index.append(pos)
    return "".join(out), index


class TranslitMap:
    """Maps offsets of ``transliterate(folded)`` back to offsets of ``folded``.

    transliterate() goes word by word (words split at spaces, each cached), so the map
    keeps where each word starts on both sides and a lookup walks characters in Python
    only inside one word.
    """

    def __init__(
        self,
        folded: str,
        words: list[str] | None = None,
        latin_words: list[str] | None = None,
    ) -> None:
        """``words`` and ``latin_words``, when the caller has them: ``folded.split(" ")``
        and :func:`transliterate_words` of that."""
        self._folded = folded
        self._ascii = folded.isascii()
        if self._ascii:
            return
        if words is None or latin_words is None:
            words = folded.split(" ")
            latin_words = transliterate_words(words)
        # Where word k starts in the folded text and in its transliteration: the lengths
        # of the words before it, plus k spaces (C-level iterators: no loop in Python).
        self._starts: list[int] = list(map(add, accumulate(map(len, words), initial=0), count()))
        self._latin_starts: list[int] = list(
            map(add, accumulate(map(len, latin_words), initial=0), count())
        )

    @classmethod
    def of_words(
        cls,
        folded: str,
        spans: tuple[list[int], list[int]],
        latin_spans: tuple[list[int], list[int]],
    ) -> TranslitMap:
        """The map from a few words alone: where each word that transliteration changes
        starts and ends in ``folded`` and in the transliteration. Between those words
        offsets only shift (see :func:`transliterate_sparse`)."""
        back = cls.__new__(cls)
        back._folded, back._ascii = folded, False
        back._starts, back._ends = spans
        back._latin_starts, back._latin_ends = latin_spans
        return back

    # Set by of_words: the map holds only the words that change, and where they end.
    _ends: list[int]
    _latin_ends: list[int] | None = None

    def __call__(self, offset: int) -> int:
        if self._ascii:
            return offset
        k = bisect.bisect_right(self._latin_starts, offset) - 1
        ends = self._latin_ends
        if ends is not None:
            if k < 0:  # before the first word that changes
                return offset
            if offset >= ends[k]:  # after it, before the next: one for one, shifted
                return min(self._ends[k] + offset - ends[k], len(self._folded) - 1)
        pos, length = self._starts[k], self._latin_starts[k]
        while pos < len(self._folded):
            length += len(_TRANSLIT[ord(self._folded[pos])])
            if length > offset:
                return pos
            pos += 1
        return len(self._folded) - 1


_NON_ASCII = re.compile("[^\x00-\x7f]+")


def transliterate_sparse(folded: str) -> tuple[str, TranslitMap] | None:
    """:func:`transliterate` of folded text and its :class:`TranslitMap`, from the words
    that hold a non-ASCII character alone; None for text with more than a few of them.

    English text that names Київ once is 300 words, one of which changes: splitting it
    into words, transliterating each and summing every word's length on both sides (what
    the word-list map needs) cost as much as the rest of the scan.
    """
    # UTF-8 takes a byte more for each non-ASCII character (or more): counted in C, it
    # tells Cyrillic or Greek text (no use trying) from English that names a place.
    if (len(folded.encode()) - len(folded)) * 8 > len(folded):
        return None
    limit = len(folded) // 48 + 2
    starts: list[int] = []
    ends: list[int] = []
    latin_starts: list[int] = []
    latin_ends: list[int] = []
    pieces: list[str] = []
    pos = shift = 0
    for m in _NON_ASCII.finditer(folded):
        if m.start() < pos:
            continue  # in the word just transliterated
        if len(starts) == limit:
            return None
        start = folded.rfind(" ", 0, m.start()) + 1
        end = folded.find(" ", m.end())
        if end < 0:
            end = len(folded)
        latin = _TRANSLIT_WORDS[folded[start:end]]
        pieces += (folded[pos:start], latin)
        starts.append(start)
        ends.append(end)
        latin_starts.append(start + shift)
        shift += len(latin) - (end - start)
        latin_ends.append(end + shift)
        pos = end
    pieces.append(folded[pos:])
    back = TranslitMap.of_words(folded, (starts, ends), (latin_starts, latin_ends))
    return "".join(pieces), back


def is_word_char(ch: str) -> bool:
    """Whether ``ch`` continues a word, so a term next to it is not a whole-word hit."""
    return ch.isalnum() or ch == "_"


def cut_snippet(text: str, start: int, end: int, *, width: int = 160) -> tuple[str, int, int]:
    """About ``width`` characters of ``text`` around ``[start, end)``, cut at word edges,
    with ellipses where it was cut, and the window ``(lo, hi)``: offset ``i`` of ``text``
    in ``[lo, hi)`` is ``i - lo + (lo > 0)`` in it. In one function: test-run cuts a
    snippet for most of its matches."""
    if not text:
        return "", 0, 0
    half = max(0, (width - (end - start)) // 2)
    lo = max(0, start - half)
    size = len(text)
    hi = min(size, end + half)
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < size:
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    if lo > 0:
        return ("…" + text[lo:hi] + "…" if hi < size else "…" + text[lo:]), lo, hi
    return (text[:hi] + "…" if hi < size else text), lo, hi


def snippet(text: str, start: int, end: int, *, width: int = 160) -> str:
    """The text of :func:`cut_snippet`, with ellipses where it was cut."""
    return cut_snippet(text, start, end, width=width)[0]

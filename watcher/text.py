"""Text normalisation shared by parse and rules.

Owns two things: turning feed HTML into plain text (tags and attribute values
dropped, entities decoded, block elements separated) and *folding* text so that
matching is case-, accent- and punctuation-insensitive. Folding works one
character at a time so that every folded character maps back to an offset in
the original text: that is how snippets quote the feed's own words.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from html.parser import HTMLParser

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
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")


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


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment (or of text that merely contains entities)."""
    if not markup:
        return ""
    if _TAG_HINT.search(markup):
        parser = _TextExtractor()
        parser.feed(markup)
        parser.close()
        text = "".join(parser.parts)
    else:
        text = html.unescape(markup)
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text)
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


@lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
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
            base = out[-1] if out else ""
            if base and any(s in unicodedata.name(base, "") for s in _KEEP_MARKS_SCRIPTS):
                out.append(part)
            continue
        out.append(_SPECIAL.get(part, part))
    result = unicodedata.normalize("NFC", "".join(out))
    return "".join(_SPECIAL.get(c, c) for c in result)


_WS_RUN = re.compile(r"\s+")


def fold(text: str) -> str:
    """Case-, accent- and punctuation-folded text with whitespace runs collapsed to one space."""
    if text.isascii():
        return _WS_RUN.sub(" ", text.lower())
    return fold_with_map(text)[0]


def fold_with_map(text: str) -> tuple[str, list[int]]:
    """Folded text plus, for each folded character, the offset of its source character."""
    out: list[str] = []
    index: list[int] = []
    last_space = False
    for pos, ch in enumerate(text):
        for piece in _fold_char(ch):
            if piece == " " or piece.isspace():
                if last_space:
                    continue
                last_space = True
                out.append(" ")
            else:
                last_space = False
                out.append(piece)
            index.append(pos)
    return "".join(out), index


def is_word_char(ch: str) -> bool:
    """Whether ``ch`` continues a word, so a term next to it is not a whole-word hit."""
    return ch.isalnum() or ch == "_"


def snippet(text: str, start: int, end: int, *, width: int = 160) -> str:
    """About ``width`` characters of ``text`` around ``[start, end)``, cut at word edges."""
    if not text:
        return ""
    half = max(0, (width - (end - start)) // 2)
    lo = max(0, start - half)
    hi = min(len(text), end + half)
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    piece = " ".join(text[lo:hi].split())
    return ("…" if lo > 0 else "") + piece + ("…" if hi < len(text) else "")

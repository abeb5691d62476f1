"""Terms as written in a config (keywords, aliases, query words) and regexes: validation
and their compiled form, the :class:`Literal` the automaton looks for."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import regex

from watcher.text import fold, transliterate

REGEX_TIMEOUT = 0.05  # seconds per field: a pathological pattern cannot stall a poll


class Literal(NamedTuple):
    """One thing to find in folded text.

    ``key`` is what the automaton looks up; ``prefix`` means the word may go on (a
    trailing *); ``exact`` is the spelling a case-sensitive alias must have in the
    original text; ``translit`` means ``key`` is looked up in transliterated text.
    A tuple, because literals key the dictionaries of the matching hot path and a
    tuple hashes in C.
    """

    key: str
    display: str
    prefix: bool = False
    exact: str | None = None
    translit: bool = False


def split_wildcard(term: str) -> tuple[str, bool]:
    """``"Харков*"`` -> ``("Харков", True)``."""
    term = term.strip()
    if term.endswith("*"):
        return term[:-1], True
    return term, False


def literal(term: str, *, case_sensitive: bool = False) -> Literal:
    text, prefix = split_wildcard(term)
    return Literal(
        key=fold(text).strip(),
        display=term,
        prefix=prefix,
        exact=text if case_sensitive else None,
    )


def translit_literal(term: str) -> Literal:
    text, prefix = split_wildcard(term)
    return Literal(
        key=transliterate(fold(text).strip()), display=term, prefix=prefix, translit=True
    )


def term_problem(term: str) -> str | None:
    """Why a keyword or alias cannot be matched, or None."""
    text, prefix = split_wildcard(term)
    if "*" in text:
        return f"{term!r}: only a trailing * is supported"
    if not fold(text).strip():
        return "term is blank"
    if prefix and len(fold(text).strip()) < 2:
        return f"{term!r}: a wildcard needs at least two letters before the *"
    return None


def compile_regex(pattern: str) -> regex.Pattern[str]:
    """Case-insensitive unless the pattern says otherwise; run with a timeout."""
    return regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)


def regex_problem(pattern: str) -> str | None:
    """Why a rule's regex is refused: it does not compile, or it can backtrack badly."""
    try:
        re.compile(pattern)
        compile_regex(pattern)
    except (re.error, regex.error) as exc:
        return str(exc)
    if _nested_quantifier(pattern):
        return (
            "a repeated group contains another unbounded repeat, e.g. (a+)+ or (\\w*)*; "
            "such patterns can take exponential time (catastrophic backtracking)"
        )
    return None


def _nested_quantifier(pattern: str) -> bool:
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - the runtime timeout still guards
        return False
    from re import _constants as c  # type: ignore[attr-defined]

    def unbounded(items: Any, inside_repeat: bool) -> bool:
        for op, arg in items:
            if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                _lo, hi, sub = arg
                is_unbounded = hi == c.MAXREPEAT or hi > 100
                if inside_repeat and is_unbounded:
                    return True
                if unbounded(sub, inside_repeat or is_unbounded):
                    return True
            elif op is c.SUBPATTERN:
                if unbounded(arg[-1], inside_repeat):
                    return True
            elif op is c.BRANCH:
                if any(unbounded(branch, inside_repeat) for branch in arg[1]):
                    return True
            elif op in (c.ASSERT, c.ASSERT_NOT) and unbounded(arg[1], inside_repeat):
                return True
        return False

    try:
        return unbounded(sre_parse.parse(pattern), False)
    except Exception:  # pragma: no cover - compile() already accepted it
        return False

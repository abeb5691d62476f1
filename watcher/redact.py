"""Secrets out of what is shown: feed URLs and error messages can carry credentials
(``user:password@``, ``?apikey=...``) that logs, the state, `watcher feeds` and the web
console must not repeat. Pure: no I/O here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAM = re.compile(
    r"key|token|secret|pass|pwd|auth|sig|session|sid|credential|code|ticket|jwt|bearer|hash",
    re.IGNORECASE,
)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` with its user and password, and the values of query parameters named like a
    secret (key, token, secret, password, auth, sig...), masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*/:,@"
        )
    fragment = parts.fragment
    if fragment and _SECRET_PARAM.search(fragment):
        fragment = MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str, known: Iterable[str] = (), *, urls: bool = True) -> str:
    """``text`` (an error message) with every URL in it redacted (unless not ``urls``),
    and every ``known`` secret (a feed's header values and password...) masked wherever
    it appears."""
    if urls:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    for secret in sorted({s for s in known if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


__all__ = ["MASK", "redact_text", "redact_url"]

"""Delivery through apprise: named notifiers, sending, and keeping secrets out of sight.

Owns every call into apprise. Decides nothing about *what* to alert; it is handed
a title and a body and reports whether they went out and, if not, why (in words
that never contain the notifier's URL secrets). A body longer than the service takes
goes out as several messages, split between entries, so nothing is ever cut off.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import socket
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from watcher.alerts import Style
from watcher.config import NotifierConfig
from watcher.exceptions import NotifyError
from watcher.models import Priority

if TYPE_CHECKING:
    # Imported where used: apprise costs about 0.2 s and 17 MiB to import and as much
    # again to load its plugins, which test-run, match and a daemon without notifiers
    # never need (docs/benchmarks.md, "What each import costs").
    import apprise

log = logging.getLogger(__name__)

# apprise logs tokens and payloads at DEBUG, and urllib3 (under apprise) logs request
# lines, which for some services carry the token in the path. Neither gets through
# unless asked for with --debug-notifiers; apprise's warnings reach our own log lines,
# redacted, through LogCapture in Notifier.send.
_CHATTY = ("apprise", "urllib3", "requests_oauthlib", "oauthlib")


def debug_notifiers(enabled: bool) -> None:
    """Let apprise and the HTTP stack under it log everything (tokens included), or not."""
    for name in _CHATTY:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG if enabled else logging.WARNING)
        logger.propagate = enabled


debug_notifiers(False)


@contextmanager
def _quiet_apprise() -> Iterator[None]:
    """Silence apprise while it parses a URL: its errors quote the URL, secrets and all."""
    logger = logging.getLogger("apprise")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


def _instantiate(url: str) -> apprise.NotifyBase | None:
    import apprise

    with _quiet_apprise():
        return apprise.Apprise.instantiate(url)


def validate_url(url: str, *, ask_apprise: bool = True) -> str | None:
    """None when apprise accepts the URL, else a message that does not repeat it.

    Without ``ask_apprise``, only whether it has a scheme: apprise is not imported.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme:
        return "not an apprise URL: it needs a scheme such as json://, mailto:// or ntfy://"
    if ask_apprise and _instantiate(url) is None:
        return f"not a valid apprise URL (scheme {scheme!r}): check the scheme and its parts"
    return None


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    error: str = ""


# Sends run here so that a hung one can be abandoned: apprise has no overall timeout.
# A send that never returns keeps its worker until apprise's own socket timeouts fire.
_SENDERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="watcher-send")


@cache
def _body_format(fmt: str) -> Any:
    import apprise

    return {
        "text": apprise.NotifyFormat.TEXT,
        "markdown": apprise.NotifyFormat.MARKDOWN,
        "html": apprise.NotifyFormat.HTML,
    }[fmt]


@cache
def _notify_type(priority: Priority) -> Any:
    """Chat services colour a message by its type (Slack, Discord, Teams...): priority shows."""
    import apprise

    return {
        "low": apprise.NotifyType.INFO,
        "normal": apprise.NotifyType.INFO,
        "high": apprise.NotifyType.WARNING,
        "urgent": apprise.NotifyType.FAILURE,
    }[priority]


_URL_PIECES = re.compile(r"[/:@?&=,+]+")


def _secrets(plugin: apprise.NotifyBase, url: str) -> frozenset[str]:
    """The parts of a URL that its privacy form hides: passwords, tokens, keys."""
    full = unquote(str(plugin.url(privacy=False)))  # type: ignore[no-untyped-call]
    private = unquote(str(plugin.url(privacy=True)))  # type: ignore[no-untyped-call]
    hidden = set(_URL_PIECES.split(full)) - set(_URL_PIECES.split(private))
    password = urlsplit(url).password
    if password:
        hidden.add(unquote(password))
    return frozenset(piece for piece in hidden if len(piece) >= 4)


# -- long messages: split at line boundaries, never cut ---------------------------------------

# What a hard cut of one over-long line must not fall inside: in HTML a tag, an entity or a
# whole link; in Markdown a link, a bold span or a backslash escape.
_ATOMS = {
    "html": re.compile(r"<a\b[^>]*>.*?</a\s*>|<[^>]*>|&#?\w+;", re.IGNORECASE | re.DOTALL),
    "markdown": re.compile(
        r"\*\*(?:\\.|[^*\\\n])+\*\*|\[(?:\\.|[^\]\\\n])*\]\([^)\s]*\)|\\.", re.DOTALL
    ),
}
_TRAILING_BR = re.compile(r"(?:\s*<br\s*/?>)+\s*\Z", re.IGNORECASE)


def _inside_atoms(text: str, fmt: str) -> set[int]:
    """Positions strictly inside an atom of ``fmt``: no cut may fall there."""
    pattern = _ATOMS.get(fmt)
    if pattern is None:
        return set()
    return {i for m in pattern.finditer(text) for i in range(m.start() + 1, m.end())}


def _lines(body: str, fmt: str) -> list[str]:
    """``body`` split at its newlines, except those inside an atom (a tag that spans lines)."""
    inside = _inside_atoms(body, fmt)
    lines, start = [], 0
    for newline in re.finditer("\n", body):
        if newline.start() not in inside:
            lines.append(body[start : newline.start()])
            start = newline.end()
    lines.append(body[start:])
    return lines


def _blocks(lines: list[str]) -> list[list[str]]:
    """Lines grouped into entries: an indented line belongs with the line before it
    (a digest entry's link line stays with its title line)."""
    blocks: list[list[str]] = []
    for line in lines:
        if blocks and line[:1] in (" ", "\t") and line.strip() and blocks[-1][-1].strip():
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


@dataclass(frozen=True)
class _Unit:
    """A run of body text that goes into one part whole, unless it alone does not fit."""

    sep: str  # what joins it to the unit before it: "\n", or "" inside a line cut hard
    lines: tuple[str, ...]  # an entry's lines; one line; or one piece of a line cut hard
    cut: bool = False  # a piece: taken as it is, even the one character that did not fit

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _hard_cut(line: str, fmt: str, fits: Callable[[str], bool]) -> list[str]:
    """An over-long line in pieces that each fit, each as long as it can be, cut outside
    atoms where an atom allows it; every piece has at least one character."""
    inside = _inside_atoms(line, fmt)
    clean = [p for p in range(1, len(line) + 1) if p not in inside]
    everywhere = range(1, len(line) + 1)
    pieces, start = [], 0
    while start < len(line):
        end = _longest(line, start, clean, bisect.bisect_right(clean, start), fits)
        if end is None:  # an atom longer than the limit: it has to be cut too
            end = _longest(line, start, everywhere, start, fits) or start + 1
        pieces.append(line[start:end])
        start = end
    return pieces


def _longest(
    line: str, start: int, ends: Sequence[int], first: int, fits: Callable[[str], bool]
) -> int | None:
    """The largest of ``ends[first:]`` (ascending) whose ``line[start:end]`` fits, or None."""
    lo, hi = first - 1, len(ends)  # ends[lo] fits (or lo is before first); ends[hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(line[start : ends[mid]]):
            lo = mid
        else:
            hi = mid
    return ends[lo] if lo >= first else None


def _tidy(part: str, fmt: str) -> str:
    part = part.strip("\r\n")
    return _TRAILING_BR.sub("", part) if fmt == "html" else part


def split_body(
    body: str,
    limit: int,
    *,
    fmt: str = "text",
    measure: Callable[[str], int] = len,
    max_lines: int = 0,
) -> list[str]:
    """``body`` as consecutive parts that each measure at most ``limit`` (and have at most
    ``max_lines`` lines, when set), so that a service with a length limit gets all of it.

    Parts are cut between entries (a line and the indented lines under it), else between
    lines; only a single line that alone is too long is cut inside, as late as fits, and
    never inside a tag, an entity or a link (HTML), nor a link, a bold span or an escape
    (Markdown), unless that alone is too long. ``measure`` is how long the service will
    find a part (after format conversion); it must grow with the text. A body that fits
    comes back unchanged; split parts lose the blank lines (and HTML ``<br>``) at their
    edges, and blank parts are dropped (a blank body that does not fit comes back as "").
    """

    def fits(text: str) -> bool:
        return measure(text) <= limit and (max_lines <= 0 or text.count("\n") < max_lines)

    if fits(body):
        return [body]
    units = [_Unit("\n", tuple(block)) for block in _blocks(_lines(body, fmt))]

    def joined(start: int, count: int) -> str:
        run = units[start : start + count]
        return run[0].text + "".join(unit.sep + unit.text for unit in run[1:])

    parts: list[str] = []
    i = 0
    while i < len(units):
        unit = units[i]
        if not unit.cut and not fits(unit.text):
            if len(unit.lines) > 1:  # an entry too long for one part: line by line
                first, *rest = unit.lines
                finer = [_Unit(unit.sep, (first,)), *(_Unit("\n", (line,)) for line in rest)]
            else:  # one line too long for one part: cut it hard
                first, *rest = _hard_cut(unit.text, fmt, fits)
                finer = [
                    _Unit(unit.sep, (first,), cut=True),
                    *(_Unit("", (piece,), cut=True) for piece in rest),
                ]
            units[i : i + 1] = finer
            continue
        # The most units from i on that fit together: double while they fit, then bisect.
        lo, probe = 1, 2
        while i + probe <= len(units) and fits(joined(i, probe)):
            lo, probe = probe, probe * 2
        hi = min(probe, len(units) - i + 1)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(joined(i, mid)):
                lo = mid
            else:
                hi = mid
        part = _tidy(joined(i, lo), fmt)
        if part.strip():
            parts.append(part)
        i += lo
    return parts or [""]


# -- local syslog: a socket that must be there ------------------------------------------------

# syslog(3), which apprise's syslog:// calls, writes to this socket and, when nothing is
# there (containers, CI, many cloud images), drops the message without a word.
SYSLOG_SOCKET = "/dev/log"


def local_syslog_problem(path: str = SYSLOG_SOCKET) -> str | None:
    """Why a message written to the local syslog at ``path`` would go nowhere, or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as exc:
        return f"{path} cannot be reached ({exc.strerror})"
    if not stat.S_ISSOCK(mode):
        return f"{path} is not a socket"
    refused = ""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):  # syslog(3) tries both
        with socket.socket(socket.AF_UNIX, kind) as sock:
            try:
                sock.connect(path)
            except OSError as exc:
                refused = exc.strerror or type(exc).__name__
                continue
            return None
    return f"nothing listens on {path} ({refused})"


class Notifier:
    """One named apprise target with its message style and volume settings."""

    def __init__(self, name: str, settings: NotifierConfig | str) -> None:
        if isinstance(settings, str):
            settings = NotifierConfig(url=settings)
        plugin = _instantiate(settings.url)
        if plugin is None:
            raise NotifyError(f"notifier {name!r}: not a valid apprise URL")
        self.name = name
        self.settings = settings
        self.style = Style(
            settings.format,
            settings.title,
            settings.body,
            settings.spike_title,
            settings.spike_body,
        )
        self._plugin = plugin
        import apprise

        self._apprise = apprise.Apprise()
        self._apprise.add(plugin)
        self._secrets = _secrets(plugin, settings.url)

    @property
    def redacted_url(self) -> str:
        """The URL with passwords and tokens masked, safe for logs and output."""
        return str(self._plugin.url(privacy=True))  # type: ignore[no-untyped-call]

    def redact(self, text: str) -> str:
        """``text`` with this notifier's secrets masked."""
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    def problem(self) -> str | None:
        """Why nothing sent through this notifier can arrive from this machine, or None.

        Only the local syslog (syslog://; the remote rsyslog:// is another plugin) is
        known to lose messages without an error: see local_syslog_problem.
        """
        if self._plugin.protocol == "syslog":
            reason = local_syslog_problem()
            if reason is not None:
                return f"no local syslog: {reason}"
        return None

    def parts(self, title: str, body: str) -> list[tuple[str, str]]:
        """The messages that carry ``title`` and ``body`` within the service's limits.

        One message when it fits. Else the body is split (split_body) by the length the
        service will see, after apprise converts it to the service's format and, for a
        service without a title, puts the title on top; each part's title ends in "(1/3)",
        shortened where needed so that it still fits the service's title limit.
        """
        plugin = self._plugin
        limit = int(plugin.body_maxlen or 0)
        if limit <= 0 or not body:
            return [(title, body)]
        source = _body_format(self.style.format)
        resolve = getattr(plugin, "resolve_format", None)  # apprise 2: per-send format
        target = resolve(source) if resolve is not None else plugin.notify_format
        on_top = plugin.title_maxlen <= 0  # no title field: apprise writes it atop the body
        # Services whose limit counts the title too (apprise keeps room for a counter).
        counted = not on_top and bool(getattr(plugin, "overflow_amalgamate_title", False))
        reserve = int(getattr(plugin, "overflow_max_display_count_width", 0) or 0)
        dialect = getattr(plugin, "dialect_convert", None)
        # apprise sizes a body before the service's own markup (Telegram's, Slack's...) is
        # applied; it only does so when told to split or truncate (?overflow=...), and then
        # both lengths must fit. Else only what the service receives counts.
        sized_by_apprise = getattr(plugin, "overflow_mode", "upstream") != "upstream"
        line_cap = int(getattr(plugin, "body_max_line_count", 0) or 0)
        max_lines = max(line_cap - (1 if on_top and title else 0), 1) if line_cap > 0 else 0

        def measure_with(part_title: str) -> Callable[[str], int]:
            shown = _convert(source, target, part_title) if on_top else part_title
            extra = len(part_title) + reserve if counted else 0

            def measure(chunk: str) -> int:
                text = _convert(source, target, chunk)
                if on_top and shown:
                    text = _title_on_top(shown, text, target, plugin.default_html_tag_id)
                size = len(text)
                if dialect is not None:
                    sent = len(dialect(text, target))
                    size = max(size, sent) if sized_by_apprise else sent
                return size + extra

            return measure

        if measure_with(title)(body) <= limit and (max_lines <= 0 or body.count("\n") < max_lines):
            return [(title, body)]
        room = limit // 4 if on_top else int(plugin.title_maxlen)
        digits = 1
        while True:  # the suffix's width depends on the count of parts, and the reverse
            widest = f" ({'9' * digits}/{'9' * digits})"
            base = _shortened(title, room - len(widest))
            chunks = split_body(
                body,
                limit,
                fmt=self.style.format,
                measure=measure_with(base + widest),
                max_lines=max_lines,
            )
            if len(str(len(chunks))) <= digits:
                break
            digits += 1
        if len(chunks) == 1:
            return [(title, chunks[0])]
        return [
            (f"{base} ({number}/{len(chunks)})".lstrip(), chunk)
            for number, chunk in enumerate(chunks, 1)
        ]

    def send(self, title: str, body: str, *, priority: Priority = "normal") -> DeliveryResult:
        """Deliver one message, in as many parts as the service's limits need; never raises.

        It is ok only when every part went out. The first part that fails stops the rest,
        and the caller retries the whole message later, so parts that went out before it
        arrive again then: at-least-once, the same promise as for whole alerts. The
        notifier's timeout bounds each part.
        """
        problem = self.problem()
        if problem is not None:
            return DeliveryResult(False, f"{problem}; nothing was delivered")
        try:
            parts = self.parts(title, body)
        except Exception as exc:  # splitting must never stop a delivery: send it whole
            log.warning(
                "notifier %s: could not split a long message, sending it whole: %s",
                self.name,
                self.redact(f"{type(exc).__name__}: {exc}"),
            )
            parts = [(title, body)]
        if len(parts) > 1:
            log.info("message split notifier=%s parts=%d", self.name, len(parts))
        for number, (part_title, part_body) in enumerate(parts, 1):
            future = _SENDERS.submit(self._send, part_title, part_body, priority)
            try:
                result = future.result(timeout=self.settings.timeout)
            except FutureTimeout:
                result = DeliveryResult(False, f"no answer within {self.settings.timeout:g} s")
            if not result.ok:
                if len(parts) == 1:
                    return result
                return DeliveryResult(False, f"part {number} of {len(parts)}: {result.error}")
        return DeliveryResult(True)

    def _send(self, title: str, body: str, priority: Priority) -> DeliveryResult:
        import apprise

        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            try:
                ok = bool(
                    self._apprise.notify(
                        title=title,
                        body=body,
                        body_format=_body_format(self.style.format),
                        notify_type=_notify_type(priority),
                    )
                )
            except Exception as exc:  # a plugin bug must not kill the delivery loop
                return DeliveryResult(False, self.redact(f"{type(exc).__name__} in apprise: {exc}"))
            reason = captured.getvalue() if not ok else ""
        if ok:
            return DeliveryResult(True)
        lines = [line.split(" - ", 2)[-1] for line in reason.strip().splitlines() if line]
        return DeliveryResult(False, self.redact("; ".join(lines) or "apprise reported a failure"))


def _shortened(title: str, room: int) -> str:
    """``title`` in at most ``room`` characters, an ellipsis marking a cut."""
    if len(title) <= room:
        return title
    return title[: room - 1].rstrip() + "…" if room > 1 else ""


def _convert(source: object, target: object, text: str) -> str:
    """``text`` converted as apprise converts a body between formats."""
    try:
        from apprise.conversion.format import convert_between
    except ImportError:  # apprise 1.x
        from apprise.conversion import convert_between
    return str(convert_between(source, target, text))  # type: ignore[no-untyped-call]


def _title_on_top(title: str, body: str, fmt: object, tag: str) -> str:
    """The body as apprise sends it to a service without a title field."""
    import apprise

    if fmt == apprise.NotifyFormat.HTML:
        return f"<{tag}>{title}</{tag}><br />\r\n{body}"
    if fmt == apprise.NotifyFormat.MARKDOWN:
        return f"# {title}\n{body}"
    return f"{title}\r\n{body}"


def build_notifiers(settings: Mapping[str, NotifierConfig | str]) -> dict[str, Notifier]:
    return {name: Notifier(name, value) for name, value in settings.items()}

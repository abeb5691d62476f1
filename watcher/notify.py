"""Delivery through apprise: named notifiers, sending, and keeping secrets out of sight.

Owns every call into apprise. Decides nothing about *what* to alert; it is handed
a title and a body and reports whether they went out and, if not, why (in words
that never contain the notifier's URL secrets).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import apprise

from watcher.alerts import Style
from watcher.config import NotifierConfig
from watcher.exceptions import NotifyError
from watcher.models import Priority

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
    with _quiet_apprise():
        return apprise.Apprise.instantiate(url)


def validate_url(url: str) -> str | None:
    """None when apprise accepts the URL, else a message that does not repeat it."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme:
        return "not an apprise URL: it needs a scheme such as json://, mailto:// or ntfy://"
    if _instantiate(url) is None:
        return f"not a valid apprise URL (scheme {scheme!r}): check the scheme and its parts"
    return None


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    error: str = ""


# Sends run here so that a hung one can be abandoned: apprise has no overall timeout.
# A send that never returns keeps its worker until apprise's own socket timeouts fire.
_SENDERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="watcher-send")
_BODY_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
}
# Chat services colour a message by its type (Slack, Discord, Teams...): priority shows.
_NOTIFY_TYPES = {
    "low": apprise.NotifyType.INFO,
    "normal": apprise.NotifyType.INFO,
    "high": apprise.NotifyType.WARNING,
    "urgent": apprise.NotifyType.FAILURE,
}
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
        self.style = Style(settings.format, settings.title, settings.body)
        self._plugin = plugin
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

    def send(self, title: str, body: str, *, priority: Priority = "normal") -> DeliveryResult:
        """Deliver one message within the notifier's timeout; never raises."""
        future = _SENDERS.submit(self._send, title, body, priority)
        try:
            return future.result(timeout=self.settings.timeout)
        except FutureTimeout:
            return DeliveryResult(False, f"no answer within {self.settings.timeout:g} s")

    def _send(self, title: str, body: str, priority: Priority) -> DeliveryResult:
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            try:
                ok = bool(
                    self._apprise.notify(
                        title=title,
                        body=body,
                        body_format=_BODY_FORMATS[self.style.format],
                        notify_type=_NOTIFY_TYPES[priority],
                    )
                )
            except Exception as exc:  # a plugin bug must not kill the delivery loop
                return DeliveryResult(False, self.redact(f"{type(exc).__name__} in apprise: {exc}"))
            reason = captured.getvalue() if not ok else ""
        if ok:
            return DeliveryResult(True)
        lines = [line.split(" - ", 2)[-1] for line in reason.strip().splitlines() if line]
        return DeliveryResult(False, self.redact("; ".join(lines) or "apprise reported a failure"))


def build_notifiers(settings: Mapping[str, NotifierConfig | str]) -> dict[str, Notifier]:
    return {name: Notifier(name, value) for name, value in settings.items()}

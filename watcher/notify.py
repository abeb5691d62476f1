"""Delivery through apprise: named notifiers, sending, and keeping secrets out of sight.

Owns every call into apprise. Decides nothing about *what* to alert; it is handed
a title and a body and reports whether they went out and, if not, why (in words
that never contain the notifier's URL secrets).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import apprise

from watcher.exceptions import NotifyError

log = logging.getLogger(__name__)

# apprise logs tokens and payloads at DEBUG: never let that through by accident.
logging.getLogger("apprise").setLevel(logging.WARNING)


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


class Notifier:
    """One named apprise target."""

    def __init__(self, name: str, url: str) -> None:
        plugin = _instantiate(url)
        if plugin is None:
            raise NotifyError(f"notifier {name!r}: not a valid apprise URL")
        self.name = name
        self._plugin = plugin
        self._apprise = apprise.Apprise()
        self._apprise.add(plugin)

    @property
    def redacted_url(self) -> str:
        """The URL with passwords and tokens masked, safe for logs and output."""
        return str(self._plugin.url(privacy=True))  # type: ignore[no-untyped-call]

    def send(self, title: str, body: str) -> DeliveryResult:
        """Deliver one message; never raises for delivery problems."""
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            try:
                ok = bool(
                    self._apprise.notify(
                        title=title, body=body, body_format=apprise.NotifyFormat.TEXT
                    )
                )
            except Exception as exc:  # a plugin bug must not kill the delivery loop
                return DeliveryResult(False, f"{type(exc).__name__} in apprise: {exc}")
            reason = captured.getvalue() if not ok else ""
        if ok:
            return DeliveryResult(True)
        lines = [line.split(" - ", 2)[-1] for line in reason.strip().splitlines() if line]
        return DeliveryResult(False, "; ".join(lines) or "apprise reported a failure")


def build_notifiers(urls: Mapping[str, str]) -> dict[str, Notifier]:
    return {name: Notifier(name, url) for name, url in urls.items()}

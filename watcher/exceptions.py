"""The one exception hierarchy of watcher.

Every exception a caller may see derives from :class:`WatcherError`, and every
message names what it is about (the file, the feed, the rule, the notifier)::

    WatcherError
    ├── ConfigError            a config file is unreadable or invalid (all issues at once)
    ├── QuerySyntaxError       a rule query does not parse (also ValueError)
    ├── FeedError              something went wrong with one feed
    │   ├── FetchError         network, HTTP status, size or time limits, address policy
    │   │   ├── FeedGone       the server answered 410 Gone: the feed is disabled
    │   │   └── FetchAborted   watcher is shutting down (not the feed's fault)
    │   └── ParseError         the body is not a feed we can read
    ├── StoreError             the state database cannot be opened or migrated
    └── NotifyError            a notifier cannot be built or reached
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class WatcherError(Exception):
    """Base of every error watcher raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as YAML allows."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(WatcherError):
    """A config file is invalid; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class QuerySyntaxError(WatcherError, ValueError):
    """A rule query does not parse; ``position`` is a 0-based offset into ``query``."""

    def __init__(self, message: str, *, query: str, position: int) -> None:
        self.reason = message
        self.query = query
        self.position = position
        super().__init__(f"{message} at position {position}")

    def pointer(self) -> str:
        """The query with a caret under the offending position."""
        return f"{self.query}\n{' ' * self.position}^"


class FeedError(WatcherError):
    """Something went wrong with one feed; the message always names it."""

    def __init__(self, feed: str, message: str) -> None:
        self.feed = feed
        self.reason = message
        super().__init__(f"feed {feed!r}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable, so a parse worker process can raise it to the daemon."""
        return (type(self), (self.feed, self.reason), self.__dict__)


class FetchError(FeedError):
    """The feed could not be downloaded (network, HTTP status, size or time limit).

    ``retry_after`` is the delay in seconds a 429 or 503 asked for, when it said.
    """

    def __init__(self, feed: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(feed, message)
        self.retry_after = retry_after


class FeedGone(FetchError):
    """The server says the feed is gone for good (HTTP 410)."""


class FetchAborted(FetchError):
    """The fetch was cut short because watcher is stopping; nothing is wrong with the feed."""


class ParseError(FeedError):
    """The downloaded body is not a feed watcher can read."""


class StoreError(WatcherError):
    """The state database cannot be opened, migrated or written."""


class NotifyError(WatcherError):
    """A notifier cannot be built or reached."""

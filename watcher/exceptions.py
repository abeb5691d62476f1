"""The one exception hierarchy of watcher.

Every exception a caller may see derives from :class:`WatcherError`, and every
message names what it is about (the file, the feed, the rule, the notifier).
A feed error's ``kind`` (its label in the metrics, right) belongs to its class and
is never read back from its message; where a library or OS error lies beneath,
it is the ``__cause__``::

    WatcherError
    ├── ConfigError              a config file is unreadable or invalid (all issues at once)
    ├── QuerySyntaxError         a rule query does not parse (also ValueError)
    ├── FeedError                something went wrong with one feed
    │   ├── FetchError           the download failed (as itself: bad URL, broken reply)  other
    │   │   ├── FetchTimeout         connect or read timeout, the overall deadline      timeout
    │   │   ├── FetchConnectError    DNS, refused, unreachable, TLS                     connect
    │   │   │   └── AddressRefused   the address policy refused the host's addresses    connect
    │   │   ├── HTTPStatusError      an error status, in ``status``                     http
    │   │   │   ├── RateLimited      429 or 503, with ``retry_after`` when it said      rate_limited
    │   │   │   └── FeedGone         410 Gone: the feed is disabled                     gone
    │   │   ├── BodyTooLarge         the body is over the byte cap                      size
    │   │   ├── RedirectError        a redirect loop, or too many redirects             other
    │   │   │   └── SchemeRefused    a redirect to a URL that is not http or https      connect
    │   │   └── FetchAborted         watcher is stopping: not counted, not the feed's   aborted
    │   └── ParseError           the body is not a feed we can read                      parse
    ├── StoreError               the state database cannot be opened, migrated or written
    │   ├── StateLocked          another daemon holds the SQLite state's lock
    │   └── LeaseLost            a claim expired and another process took it over
    ├── NotifyError              a notifier cannot be built or reached
    └── WebError                 the web console cannot be served (address, package, port)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


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

    kind: ClassVar[str] = "other"  # the metrics label of this class of failure

    def __init__(self, feed: str, message: str) -> None:
        self.feed = feed
        self.reason = message
        super().__init__(f"feed {feed!r}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable, so a parse worker process can raise it to the daemon.

        Rebuilt from its message and attributes without calling ``__init__``, so a
        subclass with constructor arguments of its own pickles without code of its
        own. The ``__cause__`` stays behind, as with every pickled exception.
        """
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[FeedError], args: tuple[Any, ...], state: dict[str, Any]) -> FeedError:
    """Unpickle a feed error as it was, without asking its ``__init__`` for arguments again."""
    exc = cls.__new__(cls, *args)
    exc.__dict__.update(state)
    return exc


class FetchError(FeedError):
    """The feed could not be downloaded.

    Raised as itself only for what none of its subclasses names (an invalid URL, a
    response that breaks off or cannot be decompressed, a connection reset).
    ``retry_after`` is the delay in seconds a 429 or 503 asked for, when it said.
    """

    def __init__(self, feed: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(feed, message)
        self.retry_after = retry_after


class FetchTimeout(FetchError):
    """The server was too slow: connect or read timeout, or the fetch's overall deadline."""

    kind = "timeout"


class FetchConnectError(FetchError):
    """No connection: the name does not resolve, the port refuses, the network or TLS fails."""

    kind = "connect"


class AddressRefused(FetchConnectError):
    """The address policy refused every address of the host (loopback, private, link-local...).

    Nothing was sent. Kind ``connect``, as before the classes existed: to the feed's
    owner it is a host watcher cannot reach until ``allow_private_networks`` says so.
    """


class HTTPStatusError(FetchError):
    """The server answered with an error status, kept in ``status``."""

    kind = "http"

    def __init__(self, feed: str, message: str, *, status: int) -> None:
        super().__init__(feed, message)
        self.status = status


class RateLimited(HTTPStatusError):
    """429 or 503: the server asks us to come back later (``retry_after`` seconds, if it said)."""

    kind = "rate_limited"

    def __init__(
        self, feed: str, message: str, *, status: int, retry_after: float | None = None
    ) -> None:
        super().__init__(feed, message, status=status)
        self.retry_after = retry_after


class FeedGone(HTTPStatusError):
    """The server says the feed is gone for good (HTTP 410)."""

    kind = "gone"

    def __init__(self, feed: str, message: str) -> None:
        super().__init__(feed, message, status=410)


class BodyTooLarge(FetchError):
    """The body (counted after decompression, or as declared) is over the byte cap."""

    kind = "size"


class RedirectError(FetchError):
    """The redirects go round in a loop or on for too long."""


class SchemeRefused(RedirectError):
    """A URL, in practice a redirect's Location, that is not http or https.

    Kind ``connect``, as before the classes existed, and like :class:`AddressRefused`:
    watcher refused to connect where it was sent.
    """

    kind = "connect"


class FetchAborted(FetchError):
    """The fetch was cut short because watcher is stopping; nothing is wrong with the feed."""

    kind = "aborted"


class ParseError(FeedError):
    """The downloaded body is not a feed watcher can read."""

    kind = "parse"


class StoreError(WatcherError):
    """The state database cannot be opened, migrated or written."""


class StateLocked(StoreError):
    """Another daemon holds the SQLite state's lock; the message says which and what to do."""


class LeaseLost(StoreError):
    """A claim (on a feed's poll) expired and another process took it over: the work done
    under it is not recorded, so it is done once, by the new holder."""


class NotifyError(WatcherError):
    """A notifier cannot be built or reached."""


class WebError(WatcherError):
    """The web console cannot be served: an address it may not listen on (beyond loopback
    without ``web.auth``), a missing package, a port in use."""

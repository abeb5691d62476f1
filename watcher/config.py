"""YAML configuration: reading, `${ENV}` substitution, validation, and precise errors.

Owns turning one YAML file into a frozen :class:`Config`. Every problem found is
reported at once as ``FILE:LINE: key.path: message``; the only I/O is reading the
file itself.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from importlib.util import find_spec
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from watcher.exceptions import ConfigError, ConfigIssue, QuerySyntaxError
from watcher.models import PRIORITIES, Priority
from watcher.rules.query import FIELDS, entity_refs, parse_query
from watcher.rules.terms import regex_problem, term_problem

_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"10m"``, ``"1h30m"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 10m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        while pos < len(text):
            m = _DURATION_PART.match(text, pos)
            if not m:
                raise ValueError(
                    f"invalid duration {value!r}: use a number with a unit s, m, h or d"
                )
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text:
            raise ValueError("empty duration")
    else:
        raise ValueError("a duration is a number of seconds or a string such as 10m")
    if seconds < 1:
        raise ValueError(f"duration {value!r} is shorter than one second")
    return seconds


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"512KiB"``, ``"10MiB"`` or ``"1GB"``."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string such as 10MiB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.fullmatch(value)):
        size = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
    else:
        raise ValueError(f"invalid size {value!r}: use bytes or a unit such as KiB, MiB, GB")
    if size < 1024:
        raise ValueError(f"size {value!r} is smaller than 1 KiB")
    return size


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuth(_Model):
    username: str
    password: str


class FeedConfig(_Model):
    name: NonEmpty
    url: NonEmpty
    interval: Duration = 900.0
    tags: tuple[NonEmpty, ...] = ()
    max_bytes: Size | None = None  # default: fetch.max_bytes
    headers: dict[NonEmpty, str] = Field(default_factory=dict)
    auth: BasicAuth | None = None
    allow_private_networks: bool | None = None  # default: the top-level setting
    max_item_age: Duration | None = None  # default: the top-level setting
    enabled: bool = True  # false: kept and validated, never polled (muted)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
        return url


BUCKET = 600.0  # seconds: mention counts are kept per 10-minute bucket (watcher/stories.py)


def _spike_window(value: object) -> float:
    seconds = parse_duration(value)
    if seconds % BUCKET or seconds > 86400:
        raise ValueError(
            "a spike window is counted in whole 10-minute buckets, up to a day: "
            "use 10m, 30m, 1h, 6h, 24h..."
        )
    return seconds


class SpikeConfig(_Model):
    """Alert when a rule or an entity is in far more new stories than usual (README,
    "Spikes and trends"): at least ``min`` stories in the last ``window``, and at least
    ``factor`` times the usual count of that window at that time of day."""

    window: Annotated[float, BeforeValidator(_spike_window)] = 3600.0
    factor: float = Field(default=4.0, ge=1.0)
    min: int = Field(default=8, ge=1)
    # The spike alert's own level (default: the rule's level when it has one, else normal).
    priority: Priority | None = None


@dataclass(frozen=True)
class SpikeWatch:
    """A rule or an entity whose spikes are watched, with where its alerts go."""

    kind: Literal["rule", "entity"]
    name: str
    spike: SpikeConfig
    notify: tuple[str, ...]  # empty: every notifier
    priority: Priority


class EntityConfig(_Model):
    aliases: tuple[NonEmpty, ...] = Field(min_length=1)  # a trailing * matches inflected forms
    type: NonEmpty | None = None  # person, place, organisation, ...: shown in alerts
    transliterate: bool = False  # a Cyrillic or Greek mention matches a Latin alias, and back
    min_mentions: int = Field(default=1, ge=1)  # a passing mention below this does not count
    case_sensitive: tuple[NonEmpty, ...] = ()  # these aliases match only in this exact case
    spike: SpikeConfig | None = None  # alert when it is in far more stories than usual
    notify: tuple[NonEmpty, ...] = ()  # notifiers for its spike alerts; default: all


def _priority(value: object) -> Priority | dict[Priority, float]:
    levels = ", ".join(PRIORITIES)
    if isinstance(value, str) and value in PRIORITIES:
        return value
    if not isinstance(value, dict) or not value:
        raise ValueError(f"expected one of {levels}, or scores such as {{high: 6, urgent: 10}}")
    scores: dict[Priority, float] = {}
    for level in PRIORITIES:
        if level in value:
            score = value[level]
            if isinstance(score, bool) or not isinstance(score, int | float) or score < 0:
                raise ValueError(f"the score for {level} must be a number >= 0, got {score!r}")
            scores[level] = float(score)
    unknown = [key for key in value if key not in PRIORITIES]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a priority; use {levels}")
    for (low, low_score), (high, high_score) in pairwise(scores.items()):
        if high_score <= low_score:
            raise ValueError(
                f"scores must rise with priority: {low} {low_score:g}, {high} {high_score:g}"
            )
    return scores


class RuleConfig(_Model):
    name: NonEmpty
    keywords: tuple[NonEmpty, ...] = ()
    query: str | None = None
    entities: tuple[NonEmpty, ...] = ()
    regex: str | None = None  # Python re syntax, case-insensitive unless it says (?-i)
    exclude: tuple[NonEmpty, ...] = ()
    fields: tuple[NonEmpty, ...] = ("title", "summary", "content")
    feeds: tuple[NonEmpty, ...] = ()
    notify: tuple[NonEmpty, ...] = ()
    min_score: float = Field(default=0.0, ge=0)  # a title hit weighs 3, any other field 1
    # low | normal | high | urgent, or by score: {high: 6, urgent: 10} (below all: normal)
    priority: Annotated[Priority | dict[Priority, float], PlainValidator(_priority)] = "normal"
    collapse_stories: bool | None = None  # default: the top-level setting
    spike: SpikeConfig | None = None  # alert when it matches far more stories than usual
    enabled: bool = True  # false: kept and validated, never matched (muted)


class FetchSettings(_Model):
    """Limits for every fetch; the defaults suit public feeds."""

    timeout: Duration = 30.0  # connect and read, each
    deadline: Duration = 60.0  # the whole fetch, redirects and body included
    max_bytes: Size = 10 * 1024 * 1024  # after decompression
    max_connections: int = Field(default=20, ge=1, le=1000)
    max_per_host: int = Field(default=2, ge=1, le=100)


_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


class QuietHours:
    """A daily window (may cross midnight) in a time zone, e.g. 22:00-07:00 Europe/Kyiv."""

    __slots__ = ("end", "start", "zone")

    def __init__(self, start: time, end: time, zone: ZoneInfo | timezone) -> None:
        self.start, self.end, self.zone = start, end, zone

    def __repr__(self) -> str:
        return f"QuietHours({self.start:%H:%M}-{self.end:%H:%M} {self.zone})"

    def window_end(self, now: datetime) -> datetime | None:
        """When the quiet window containing ``now`` ends, or None when ``now`` is not quiet."""
        local = now.astimezone(self.zone)
        start = local.replace(
            hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0
        )
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if self.start <= self.end:
            inside = start <= local < end
        else:  # crosses midnight
            inside = local >= start or local < end
            if local >= start:
                end += timedelta(days=1)
        return end.astimezone(UTC) if inside else None


def parse_quiet_hours(value: object) -> QuietHours:
    if isinstance(value, QuietHours):
        return value
    m = _QUIET.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError("use HH:MM-HH:MM with an optional time zone, e.g. 22:00-07:00 Europe/Kyiv")
    h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"invalid time in {value!r}")
    zone: ZoneInfo | timezone = UTC
    if m.group(5):
        try:
            zone = ZoneInfo(m.group(5))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {m.group(5)!r}") from None
    return QuietHours(time(h1, m1), time(h2, m2), zone)


class NotifierConfig(_Model):
    """A notifier: an apprise URL, how its messages look, and how many it may get."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    url: NonEmpty
    format: Literal["text", "markdown", "html"] = "text"
    title: str | None = None  # Jinja2 template; default: [rules] item title
    body: str | None = None  # Jinja2 template; default: see alerts.py
    spike_title: str | None = None  # Jinja2 template for spike alerts; default: alerts.py
    spike_body: str | None = None  # Jinja2 template for spike alerts; default: alerts.py
    digest: Duration | None = None  # batch alerts into one message per window
    max_per_hour: int | None = Field(default=None, ge=1)  # beyond this, fold into a digest
    quiet_hours: Annotated[QuietHours, BeforeValidator(parse_quiet_hours)] | None = None
    timeout: Duration = 30.0  # hard limit on one message (each part of a split one)
    enabled: bool = True  # false: kept and validated, sent nothing (muted); what waits stays


def _notifier(value: object) -> object:
    return {"url": value} if isinstance(value, str) else value


class DeliverySettings(_Model):
    max_age: Duration = 86400.0  # an alert undelivered this long is marked failed
    retry: Duration = 30.0  # wait after a failed send; doubles per attempt, up to an hour
    flood_threshold: int = Field(default=10, ge=1)  # alerts from one poll of one feed


class ClusterSettings(_Model):
    """Several nodes on one PostgreSQL state (watcher/cluster.py); ignored on SQLite."""

    # A job whose node has sent no heartbeat for this long is stalled: it is failed and
    # its work handed out again (its feed polled, its alerts sent, by a live node).
    stall_timeout: Duration = Field(default=60.0, ge=5.0)
    # How often the cluster looks at what is due and hands it out as jobs.
    dispatch_interval: Duration = Field(default=1.0, ge=1.0, le=60.0)


class FeedHealthSettings(_Model):
    """Notices about feeds (failing, recovered, renumbered) and when to send them."""

    notify: tuple[NonEmpty, ...] = ()  # notifier names; none: notices are only logged
    failures: int = Field(default=5, ge=1)  # consecutive failures before a notice
    # Deprecated, no longer used: renumbering is judged per item (watcher/identity.py).
    # Still accepted, so an old config keeps loading; `watcher check` warns.
    churn_ratio: float | None = Field(default=None, gt=0, le=1)
    churn_min_items: int | None = Field(default=None, ge=1)


class WebAuth(_Model):
    """Who may open the console: a bearer token, or users with scrypt password hashes."""

    token: Annotated[str, Field(min_length=16)] | None = None
    users: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)  # name -> hash


class WebSettings(_Model):
    """The web console (watcher/web): ``watcher run`` serves it too when this is set."""

    listen: NonEmpty = "127.0.0.1:8080"
    # Host names it answers to besides its address (a reverse proxy's), against DNS rebinding.
    names: tuple[NonEmpty, ...] = ()
    auth: WebAuth | None = None  # required to listen on anything but loopback


def _processes(value: object) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 64:
        return value
    raise ValueError("expected 'auto' or a number of processes from 0 to 64")


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_POSTGRES = ("postgresql", "postgresql+psycopg")
POSTGRES_INSTALL = "pip install 'watcher[postgres]'"


def looks_like_url(value: str) -> bool:
    """``scheme://...``: a database URL, never a file name."""
    return _URL.match(value) is not None


class StateURL:
    """A PostgreSQL URL given as ``state``: opened with its password, shown without it."""

    __slots__ = ("masked", "url")

    def __init__(self, url: str, masked: str) -> None:
        self.url, self.masked = url, masked

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"StateURL({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateURL) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


def _state(value: object) -> Path | StateURL | None:
    """A file path, or a PostgreSQL URL. The messages never repeat the value: a URL's
    password is in it."""
    if value is None or isinstance(value, Path | StateURL):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a file path or a postgresql:// URL")
    if not looks_like_url(value):
        return Path(value)
    scheme = value.partition("://")[0].lower()
    if scheme not in _POSTGRES:
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}: use postgresql://USER@HOST/DATABASE "
            "(PostgreSQL through psycopg 3), or a file path for SQLite"
        )
    from sqlalchemy.engine import make_url  # only for a URL: check and match stay light
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a valid database URL: use postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    if not url.database:
        raise ValueError("the URL names no database: postgresql://USER@HOST/DATABASE")
    if find_spec("psycopg") is None:
        raise ValueError(f"a PostgreSQL state needs the psycopg driver: {POSTGRES_INSTALL}")
    url = url.set(drivername="postgresql+psycopg")
    return StateURL(
        url.render_as_string(hide_password=False), url.render_as_string(hide_password=True)
    )


class Config(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    # A SQLite file, or a PostgreSQL URL (see state_path, state_url and backend).
    state: Annotated[Path | StateURL | None, PlainValidator(_state)] = None
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    allow_private_networks: bool = False
    feed_health: FeedHealthSettings = Field(default_factory=FeedHealthSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    web: WebSettings | None = None
    retention: Duration = 30 * 86400.0  # how long items' text is kept for `watcher backtest`
    # An item whose date is older than this when first seen is recorded and never alerts.
    max_item_age: Duration | None = None
    # One story across feeds is one alert, within this window (see watcher/stories.py).
    story_window: Duration = 86400.0
    collapse_stories: bool = True
    # Worker processes that parse feeds: "auto" is one per core (at most 4) on a machine
    # with more than one core; 0 parses in the daemon's own process (least memory).
    parse_processes: Annotated[int | Literal["auto"], PlainValidator(_processes)] = "auto"
    feeds: tuple[FeedConfig, ...] = ()
    entities: dict[str, EntityConfig] = Field(default_factory=dict)
    rules: tuple[RuleConfig, ...] = ()
    notifiers: dict[str, Annotated[NotifierConfig, BeforeValidator(_notifier)]] = Field(
        default_factory=dict
    )
    _warnings: tuple[ConfigIssue, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[ConfigIssue, ...]:
        """What is valid but does nothing or is about to go: shown by check, logged by run."""
        return self._warnings

    @property
    def digest(self) -> str:
        """What every node of a cluster compares to tell that they run the same config:
        a hash of the validated config (comments and key order do not count)."""
        import hashlib
        import json

        def plain(value: object) -> object:  # the same text in every process
            if isinstance(value, set | frozenset):
                return sorted(value, key=repr)
            return repr(value)

        dump = self.model_dump(exclude={"state"})  # nodes may name the database apart
        text = json.dumps(dump, sort_keys=True, ensure_ascii=False, default=plain)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        """Which database holds the state: a SQLite file (the default) or PostgreSQL."""
        return "postgresql" if isinstance(self.state, StateURL) else "sqlite"

    @property
    def state_path(self) -> Path:
        """Where a SQLite state lives: the ``state`` key, else the XDG default.

        A PostgreSQL state has no file: asking for one is a mistake (ValueError).
        """
        if isinstance(self.state, StateURL):
            raise ValueError(f"the state is a PostgreSQL database ({self.state}), not a file")
        return self.state if self.state is not None else default_state_path()

    @property
    def state_url(self) -> str | None:
        """A PostgreSQL state's URL, password included, to connect with: never log or
        print it (:attr:`state_name` is for messages). None for SQLite."""
        return self.state.url if isinstance(self.state, StateURL) else None

    @property
    def state_target(self) -> str | Path:
        """What the store opens (watcher.store.open_store): the URL or the file."""
        return self.state_url or self.state_path

    @property
    def state_name(self) -> str:
        """How messages name the state: the file, or the URL with its password masked."""
        return str(self.state) if isinstance(self.state, StateURL) else str(self.state_path)

    @property
    def active_feeds(self) -> tuple[FeedConfig, ...]:
        """The feeds to poll: every feed not muted with ``enabled: false``."""
        return tuple(feed for feed in self.feeds if feed.enabled)

    @property
    def active_rules(self) -> tuple[RuleConfig, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)

    @property
    def active_notifiers(self) -> dict[str, NotifierConfig]:
        return {name: n for name, n in self.notifiers.items() if n.enabled}

    def unmuted(
        self,
        *,
        feeds: Collection[str] = (),
        rules: Collection[str] = (),
        notifiers: Collection[str] = (),
    ) -> Config:
        """This config with muted feeds, rules and notifiers left out, except those named
        here, which are unmuted (`watcher test-run --feed NAME` tries a muted feed)."""
        return self.model_copy(
            update={
                "feeds": tuple(
                    f if f.enabled else f.model_copy(update={"enabled": True})
                    for f in self.feeds
                    if f.enabled or f.name in feeds
                ),
                "rules": tuple(
                    r if r.enabled else r.model_copy(update={"enabled": True})
                    for r in self.rules
                    if r.enabled or r.name in rules
                ),
                "notifiers": {
                    name: n if n.enabled else n.model_copy(update={"enabled": True})
                    for name, n in self.notifiers.items()
                    if n.enabled or name in notifiers
                },
            }
        )

    def item_age_limit(self, feed: FeedConfig) -> float | None:
        """Seconds beyond which an item is too old to alert in this feed (None: no limit)."""
        return feed.max_item_age if feed.max_item_age is not None else self.max_item_age

    def collapses(self, rule: RuleConfig) -> bool:
        """Whether an item this rule matched may join a story another feed started."""
        if rule.collapse_stories is not None:
            return rule.collapse_stories
        return self.collapse_stories

    def allows_private(self, feed: FeedConfig) -> bool:
        """Whether a feed may reach loopback, private and link-local addresses."""
        if feed.allow_private_networks is not None:
            return feed.allow_private_networks
        return self.allow_private_networks

    @functools.cached_property
    def spike_keys(self) -> frozenset[tuple[str, str]]:
        """The (kind, name) of every rule and entity with a ``spike:`` setting: asked
        after every poll and delivery pass, so worked out once."""
        return frozenset((w.kind, w.name) for w in self.spike_watches)

    @property
    def spike_watches(self) -> tuple[SpikeWatch, ...]:
        """Every active rule and every entity with a ``spike:`` setting."""
        found = [
            SpikeWatch(
                "rule",
                rule.name,
                rule.spike,
                rule.notify,
                rule.spike.priority
                or (rule.priority if isinstance(rule.priority, str) else "normal"),
            )
            for rule in self.active_rules
            if rule.spike is not None
        ]
        found += [
            SpikeWatch("entity", name, e.spike, e.notify, e.spike.priority or "normal")
            for name, e in self.entities.items()
            if e.spike is not None
        ]
        return tuple(found)

    def feed(self, name: str) -> FeedConfig:
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(name)

    def summary(self) -> str:
        def n(count: int, word: str, active: int | None = None) -> str:
            muted = f" ({count - active} muted)" if active is not None and active < count else ""
            return f"{count} {word}{'' if count == 1 else 's'}{muted}"

        return ", ".join(
            (
                n(len(self.feeds), "feed", len(self.active_feeds)),
                n(len(self.rules), "rule", len(self.active_rules)),
                n(len(self.entities), "entity").replace("entitys", "entities"),
                n(len(self.notifiers), "notifier", len(self.active_notifiers)),
            )
        )


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "watcher" / "config.yaml"


def default_state_path() -> Path:
    """systemd's ``$STATE_DIRECTORY`` first, then ``$XDG_STATE_HOME``, then ~/.local/state."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "watcher.db"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "watcher" / "watcher.db"


# ---------------------------------------------------------------------------
# YAML with line numbers

Path_ = tuple[str | int, ...]


def _fmt_path(path: Path_) -> str:
    return ".".join(str(p) for p in path)


class _Located:
    """YAML data plus the line of every key path, and structural issues found on the way."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.issues: list[ConfigIssue] = []

    def line_of(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def issue(self, path: Path_, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, self.line_of(path), _fmt_path(path), message))

    def build(self, node: yaml.Node, path: Path_, loader: yaml.SafeLoader) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int):
                    self.issue(path, f"keys must be text, got {type(key).__name__}")
                    continue
                sub = (*path, key)
                if key in result:
                    first = self.lines.get(sub)
                    self.lines[sub] = key_node.start_mark.line + 1
                    self.issue(sub, f"duplicate key {key!r} (first defined on line {first})")
                    continue
                self.lines[sub] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, sub, loader)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i), loader) for i, child in enumerate(node.value)]
        return loader.construct_object(node, deep=True)


_ENV = re.compile(
    r"\$\$|\$\{cred:([A-Za-z0-9_.@-]+)\}|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}"
)


def _credential(name: str) -> str | None:
    """A systemd credential (LoadCredential=): $CREDENTIALS_DIRECTORY/NAME, trailing newline cut."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    try:
        return (Path(directory) / name).read_text(encoding="utf-8").rstrip("\n")
    except OSError:
        return None


def _substitute(value: Any, path: Path_, located: _Located) -> Any:
    """Replace ``${VAR}``, ``${VAR:-default}`` and ``${cred:NAME}`` (a systemd credential)
    in every string; ``$$`` is a literal ``$``."""
    if isinstance(value, dict):
        return {k: _substitute(v, (*path, k), located) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*path, i), located) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group(1) is not None:
            secret = _credential(m.group(1))
            if secret is None:
                located.issue(path, f"systemd credential {m.group(1)} is not available")
                return ""
            return secret
        name, default = m.group(2), m.group(3)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        located.issue(path, f"environment variable {name} is not set")
        return ""

    return _ENV.sub(repl, value)


# libyaml's parser when PyYAML has it (its wheels do): the same node tree with line
# marks, read about ten times faster, which a config of thousands of rules feels.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(text: str, file: str) -> tuple[Any, _Located]:
    located = _Located(file)
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None, located
        data = located.build(node, (), loader)
    except yaml.reader.ReaderError as exc:  # a character YAML refuses
        problem = f"character #x{exc.character:04x} is not allowed in YAML"
        at = text.count("\n", 0, exc.position) + 1
        located.issues.append(ConfigIssue(file, at, "", f"invalid YAML: {problem}"))
        return None, located
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        located.issues.append(ConfigIssue(file, line, "", f"invalid YAML: {problem}"))
        return None, located
    except yaml.YAMLError as exc:
        located.issues.append(ConfigIssue(file, None, "", f"invalid YAML: {exc}"))
        return None, located
    finally:
        if loader is not None:
            loader.dispose()
    return data, located


# ---------------------------------------------------------------------------
# Validation


_TYPE_WORDS = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
}


def _pydantic_message(err: Any) -> str:
    """pydantic's finding in our words. Values are not repeated (they may be secrets),
    except the word given where only a few words are allowed."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return (
            f"expected {ctx.get('expected', 'one of the allowed values')}, got {err.get('input')!r}"
        )
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else "too short"
    if kind == "string_too_short":
        return "must not be empty"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _named(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _texts(value: Any) -> list[tuple[int, str]]:
    """The strings of a list, with their index; anything else is a schema error already."""
    return [(i, v) for i, v in enumerate(_listed(value)) if isinstance(v, str)]


def _cross_check(data: dict[str, Any], located: _Located, *, notifier_urls: bool) -> None:
    """What the schema cannot see: names that must exist, be unique, or parse.

    Works on the YAML as read, not on the validated model, so that a misspelt key or a
    wrong type elsewhere never hides these: `watcher check` reports everything at once.
    A value of the wrong type is skipped here; the schema reports it.
    """
    feeds = [f for f in _listed(data.get("feeds")) if isinstance(f, dict)]
    feed_names: set[str] = set()
    for i, feed in enumerate(_listed(data.get("feeds"))):
        name = feed.get("name") if isinstance(feed, dict) else None
        if not isinstance(name, str):
            continue
        if name in feed_names:
            located.issue(("feeds", i, "name"), f"duplicate feed name {name!r}")
        feed_names.add(name)
    tags = {tag for feed in feeds for _, tag in _texts(feed.get("tags"))}
    entities = _named(data.get("entities"))
    notifiers = _named(data.get("notifiers"))

    for name, entity in entities.items():
        entity = _named(entity)
        aliases = [alias for _, alias in _texts(entity.get("aliases"))]
        for j, alias in _texts(entity.get("aliases")):
            problem = term_problem(alias)
            if problem:
                located.issue(("entities", name, "aliases", j), problem)
        for j, alias in _texts(entity.get("case_sensitive")):
            if alias not in aliases:
                located.issue(
                    ("entities", name, "case_sensitive", j), f"{alias!r} is not one of the aliases"
                )
        for j, target in _texts(entity.get("notify")):
            if target not in notifiers:
                located.issue(("entities", name, "notify", j), f"unknown notifier {target!r}")

    rule_names: set[str] = set()
    for i, rule in enumerate(_listed(data.get("rules"))):
        if not isinstance(rule, dict):
            continue
        where: Path_ = ("rules", i)
        name = rule.get("name")
        label = repr(name) if isinstance(name, str) else f"#{i + 1}"
        if isinstance(name, str):
            if name in rule_names:
                located.issue((*where, "name"), f"duplicate rule name {name!r}")
            rule_names.add(name)
        if not any(rule.get(key) for key in ("keywords", "query", "entities", "regex")):
            located.issue(where, f"rule {label} needs keywords, query, entities or regex")
        for key in ("keywords", "exclude"):
            for j, term in _texts(rule.get(key)):
                problem = term_problem(term)
                if problem:
                    located.issue((*where, key, j), problem)
        for j, field in _texts(rule.get("fields")):
            if field not in FIELDS:
                located.issue(
                    (*where, "fields", j), f"unknown field {field!r}: use {', '.join(FIELDS)}"
                )
        regex = rule.get("regex")
        if isinstance(regex, str):
            problem = regex_problem(regex)
            if problem:
                located.issue((*where, "regex"), f"invalid regex in rule {label}: {problem}")
        for j, ref in _texts(rule.get("entities")):
            if ref not in entities:
                located.issue((*where, "entities", j), f"unknown entity {ref!r}")
        for j, scope in _texts(rule.get("feeds")):
            if scope not in feed_names and scope not in tags:
                located.issue((*where, "feeds", j), f"no feed or tag is named {scope!r}")
        for j, target in _texts(rule.get("notify")):
            if target not in notifiers:
                located.issue((*where, "notify", j), f"unknown notifier {target!r}")
        query = rule.get("query")
        if isinstance(query, str):
            try:
                tree = parse_query(query)
            except QuerySyntaxError as exc:
                pointer = exc.pointer().replace("\n", "\n    ")
                located.issue(
                    (*where, "query"),
                    f"invalid query in rule {label}: {exc}\n    {pointer}",
                )
            else:
                for ref in sorted(entity_refs(tree)):
                    if ref not in entities:
                        located.issue((*where, "query"), f"query names unknown entity @{ref}")

    for j, target in _texts(_named(data.get("feed_health")).get("notify")):
        if target not in notifiers:
            located.issue(("feed_health", "notify", j), f"unknown notifier {target!r}")

    _check_web(_named(data.get("web")), located)

    from watcher.alerts import template_problem
    from watcher.notify import validate_url  # apprise is imported only to ask it

    for name, notifier in notifiers.items():
        url = notifier if isinstance(notifier, str) else _named(notifier).get("url")
        if isinstance(url, str) and url:
            problem = validate_url(url, ask_apprise=notifier_urls)
            if problem:
                where = (
                    ("notifiers", name, "url")
                    if ("notifiers", name, "url") in located.lines
                    else ("notifiers", name)
                )
                located.issue(where, problem)
        for key in ("title", "body", "spike_title", "spike_body"):
            source = _named(notifier).get(key)
            if isinstance(source, str) and (problem := template_problem(source)):
                located.issue(("notifiers", name, key), f"invalid template: {problem}")


def _check_web(web: dict[Any, Any], located: _Located) -> None:
    """The console's address, and that it is not served beyond loopback without auth."""
    from watcher.web.security import hash_problem, is_loopback, parse_listen

    auth = _named(web.get("auth"))
    if "auth" in web and not (auth.get("token") or _named(auth.get("users"))):
        located.issue(("web", "auth"), "give a token, or users with password hashes")
    for name, stored in _named(auth.get("users")).items():
        if isinstance(stored, str) and (problem := hash_problem(stored)):
            located.issue(("web", "auth", "users", name), problem)
    listen = web.get("listen")
    if not isinstance(listen, str):
        return
    try:
        host, _ = parse_listen(listen)
    except ValueError as exc:
        located.issue(("web", "listen"), str(exc))
        return
    if not is_loopback(host) and "auth" not in web:
        located.issue(("web", "auth"), public_without_auth(listen))


def public_without_auth(listen: str) -> str:
    return (
        f"required: the console listens on {listen}, beyond this machine; set web.auth "
        "(a token, or users with password hashes), or listen on 127.0.0.1 and reach it "
        "through an SSH tunnel or a reverse proxy"
    )


def _resolve_state(config: Config, base: Path) -> Config:
    if not isinstance(config.state, Path):
        return config
    state = config.state.expanduser()
    if not state.is_absolute():
        state = (base / state).resolve()
    return config.model_copy(update={"state": state})


def parse_config(
    text: str, *, file: str = "<config>", base: Path | None = None, notifier_urls: bool = True
) -> Config:
    """Validate YAML text; raises :class:`ConfigError` listing every issue.

    ``notifier_urls=False`` checks only that notifier URLs have a scheme, not that apprise
    takes them: for commands that send nothing (apprise takes 0.5 s and 34 MiB to load).
    """
    data, located = _read_yaml(text, file)
    if located.issues and data is None:
        raise ConfigError(located.issues)
    if data is None:
        raise ConfigError([ConfigIssue(file, None, "", "the config is empty")])
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, "", "the config must be a mapping of keys")])
    data = _substitute(data, (), located)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = tuple(p for p in err["loc"] if isinstance(p, str | int))
            located.issue(path, _pydantic_message(err))
    _cross_check(data, located, notifier_urls=notifier_urls)
    if located.issues or config is None:
        raise ConfigError(_sorted(located.issues))
    config = _resolve_state(config, base or Path.cwd())
    config._warnings = tuple(_warnings(config, located))
    return config


_CHURN_GONE = (
    "no longer used: renumbering is judged item by item (an item whose canonical link or "
    "title and date were seen before is the same item), so a burst of new items always "
    "alerts; remove this key"
)


def _private_host(url: str) -> str | None:
    """What kind of non-public address a feed URL names literally, or None.

    Only literal addresses and localhost: a name's address is known at fetch time, and
    checking a config does no I/O.
    """
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback address"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private or address.is_reserved or address.is_unspecified:
        return "a private address"
    return None


def _warnings(config: Config, located: _Located) -> list[ConfigIssue]:
    found = []
    for i, feed in enumerate(config.feeds):
        kind = _private_host(feed.url)
        if kind is not None and not config.allows_private(feed):
            where: Path_ = ("feeds", i, "url")
            message = (
                f"{urlsplit(feed.url).hostname} is {kind}: watcher refuses to fetch it, so "
                "every poll of this feed will fail; set allow_private_networks: true (at the "
                "top level or on this feed) if you mean it"
            )
            found.append(
                ConfigIssue(located.file, located.line_of(where), _fmt_path(where), message)
            )
    for key in ("churn_ratio", "churn_min_items"):
        if getattr(config.feed_health, key) is not None:
            path = ("feed_health", key)
            found.append(
                ConfigIssue(located.file, located.line_of(path), _fmt_path(path), _CHURN_GONE)
            )
    if config.backend == "sqlite" and "cluster" in config.model_fields_set:
        found.append(
            ConfigIssue(
                located.file,
                located.line_of(("cluster",)),
                "cluster",
                "applies only to a PostgreSQL state (state: postgresql://...); "
                "a SQLite state is one daemon on one machine",
            )
        )
    return found


def _sorted(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda i: (i.line or 0, i.path))


def load_config(path: str | os.PathLike[str], *, notifier_urls: bool = True) -> Config:
    """Read and validate one config file; relative ``state`` paths are relative to it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(p), None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(p), None, "", f"not UTF-8 text: {exc}")]) from None
    return parse_config(text, file=str(p), base=p.resolve().parent, notifier_urls=notifier_urls)

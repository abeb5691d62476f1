"""watcher: a feed monitoring and alerting daemon.

The public surface is what this module re-exports; every other name may change.
(Functions are not re-exported under the name of their module, so ``watcher.fetch``
and ``watcher.parse`` stay the modules.)
"""

from watcher._version import __version__
from watcher.alerts import plan, render
from watcher.config import Config, EntityConfig, FeedConfig, RuleConfig, load_config, parse_config
from watcher.exceptions import (
    ConfigError,
    ConfigIssue,
    FeedError,
    FetchError,
    NotifyError,
    ParseError,
    QuerySyntaxError,
    StoreError,
    WatcherError,
)
from watcher.fetch import Fetcher, FetchPolicy
from watcher.models import Alert, FeedState, FetchResult, Hit, Item, Match, NotModified, ParsedFeed
from watcher.pipeline import PollOutcome, deliver_pending, poll_feed
from watcher.rules import RuleSet, parse_query
from watcher.store import Store

__all__ = [
    "Alert",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "EntityConfig",
    "FeedConfig",
    "FeedError",
    "FeedState",
    "FetchError",
    "FetchPolicy",
    "FetchResult",
    "Fetcher",
    "Hit",
    "Item",
    "Match",
    "NotModified",
    "NotifyError",
    "ParseError",
    "ParsedFeed",
    "PollOutcome",
    "QuerySyntaxError",
    "RuleConfig",
    "RuleSet",
    "Store",
    "StoreError",
    "WatcherError",
    "__version__",
    "deliver_pending",
    "load_config",
    "parse_config",
    "parse_query",
    "plan",
    "poll_feed",
    "render",
]

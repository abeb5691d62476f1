"""watcher: a feed monitoring and alerting daemon.

The public surface is what this module re-exports; every other name may change.
(Functions are not re-exported under the name of their module, so ``watcher.fetch``
and ``watcher.parse`` stay the modules.) Names are imported when first used: a parse
worker process that only needs ``watcher.parse`` does not pay for SQLAlchemy, apprise
and the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from watcher._version import __version__

if TYPE_CHECKING:
    from watcher.alerts import plan, render
    from watcher.config import (
        Config,
        EntityConfig,
        FeedConfig,
        RuleConfig,
        load_config,
        parse_config,
    )
    from watcher.exceptions import (
        AddressRefused,
        BodyTooLarge,
        ConfigError,
        ConfigIssue,
        FeedError,
        FeedGone,
        FetchAborted,
        FetchConnectError,
        FetchError,
        FetchTimeout,
        HTTPStatusError,
        NotifyError,
        ParseError,
        QuerySyntaxError,
        RateLimited,
        RedirectError,
        SchemeRefused,
        StoreError,
        WatcherError,
    )
    from watcher.fetch import Fetcher, FetchPolicy
    from watcher.models import (
        Alert,
        FeedState,
        FetchResult,
        Hit,
        Item,
        Match,
        NotModified,
        ParsedFeed,
    )
    from watcher.pipeline import PollOutcome, deliver_pending, poll_feed
    from watcher.rules import RuleSet, parse_query
    from watcher.store import Store

_LAZY = {
    "plan": "watcher.alerts",
    "render": "watcher.alerts",
    "Config": "watcher.config",
    "EntityConfig": "watcher.config",
    "FeedConfig": "watcher.config",
    "RuleConfig": "watcher.config",
    "load_config": "watcher.config",
    "parse_config": "watcher.config",
    "AddressRefused": "watcher.exceptions",
    "BodyTooLarge": "watcher.exceptions",
    "ConfigError": "watcher.exceptions",
    "ConfigIssue": "watcher.exceptions",
    "FeedError": "watcher.exceptions",
    "FeedGone": "watcher.exceptions",
    "FetchAborted": "watcher.exceptions",
    "FetchConnectError": "watcher.exceptions",
    "FetchError": "watcher.exceptions",
    "FetchTimeout": "watcher.exceptions",
    "HTTPStatusError": "watcher.exceptions",
    "NotifyError": "watcher.exceptions",
    "ParseError": "watcher.exceptions",
    "QuerySyntaxError": "watcher.exceptions",
    "RateLimited": "watcher.exceptions",
    "RedirectError": "watcher.exceptions",
    "SchemeRefused": "watcher.exceptions",
    "StoreError": "watcher.exceptions",
    "WatcherError": "watcher.exceptions",
    "Fetcher": "watcher.fetch",
    "FetchPolicy": "watcher.fetch",
    "Alert": "watcher.models",
    "FeedState": "watcher.models",
    "FetchResult": "watcher.models",
    "Hit": "watcher.models",
    "Item": "watcher.models",
    "Match": "watcher.models",
    "NotModified": "watcher.models",
    "ParsedFeed": "watcher.models",
    "PollOutcome": "watcher.pipeline",
    "deliver_pending": "watcher.pipeline",
    "poll_feed": "watcher.pipeline",
    "RuleSet": "watcher.rules",
    "parse_query": "watcher.rules",
    "Store": "watcher.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'watcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AddressRefused",
    "Alert",
    "BodyTooLarge",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "EntityConfig",
    "FeedConfig",
    "FeedError",
    "FeedGone",
    "FeedState",
    "FetchAborted",
    "FetchConnectError",
    "FetchError",
    "FetchPolicy",
    "FetchResult",
    "FetchTimeout",
    "Fetcher",
    "HTTPStatusError",
    "Hit",
    "Item",
    "Match",
    "NotModified",
    "NotifyError",
    "ParseError",
    "ParsedFeed",
    "PollOutcome",
    "QuerySyntaxError",
    "RateLimited",
    "RedirectError",
    "RuleConfig",
    "RuleSet",
    "SchemeRefused",
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

"""Rules: compilation, the query language and matching. Pure: no I/O here."""

from watcher.rules.engine import DEFAULT_FIELDS, RuleSet
from watcher.rules.query import parse_query

__all__ = ["DEFAULT_FIELDS", "RuleSet", "parse_query"]

"""Rules: compilation, the query language and matching. Pure: no I/O here."""

from watcher.rules.engine import DEFAULT_FIELDS, Clause, Explanation, RuleSet, settle
from watcher.rules.query import parse_query

__all__ = ["DEFAULT_FIELDS", "Clause", "Explanation", "RuleSet", "parse_query", "settle"]

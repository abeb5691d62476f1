"""Rule compilation and matching.

Every literal of every rule (keywords, excludes, query terms, entity aliases) is
folded and put into one Aho-Corasick automaton; an item's fields are folded once
and scanned once, and a hit counts only when it stands as a whole word. Rules are
then decided from the set of literals that hit, so the cost of a scan does not
grow with the number of rules, only with the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ahocorasick

from watcher.models import Hit, Item, Match
from watcher.rules.query import EntityRef, Node, Term, evaluate, parse_query, walk
from watcher.text import fold, fold_with_map, is_word_char, snippet

if TYPE_CHECKING:
    from watcher.config import Config, EntityConfig, RuleConfig

DEFAULT_FIELDS: tuple[str, ...] = ("title", "summary", "content")


@dataclass(frozen=True)
class _CompiledRule:
    name: str
    keywords: tuple[str, ...]
    entity_aliases: tuple[str, ...]  # folded aliases of every entity the rule names
    query: Node | None
    leaves: Mapping[Term | EntityRef, tuple[str, ...]]  # query leaf -> the literals it stands for
    exclude: tuple[str, ...]
    scope: frozenset[str]
    notify: tuple[str, ...]
    positive: frozenset[str]  # literals whose hit can make the rule fire
    needs_hit: bool  # False only for a query that holds on an empty text


@dataclass(frozen=True)
class _FieldHit:
    literal: str
    field: str
    start: int  # offsets into the folded field text
    end: int


class RuleSet:
    """All rules of a config, compiled once, matched many times."""

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        entities: Mapping[str, EntityConfig],
        *,
        fields: Sequence[str] = DEFAULT_FIELDS,
    ) -> None:
        self.fields = tuple(fields)
        self._display: dict[str, str] = {}
        aliases = {
            name: tuple(self._literal(a) for a in entity.aliases)
            for name, entity in entities.items()
        }
        self._rules = tuple(self._compile(rule, aliases) for rule in rules)
        self._by_literal: dict[str, list[int]] = {}
        self._always: list[int] = []
        for index, rule in enumerate(self._rules):
            if not rule.needs_hit:
                self._always.append(index)
            for literal in rule.positive:
                self._by_literal.setdefault(literal, []).append(index)
        self._automaton: ahocorasick.Automaton | None = None
        if self._display:
            automaton = ahocorasick.Automaton()
            for literal in self._display:
                automaton.add_word(literal, literal)
            automaton.make_automaton()
            self._automaton = automaton

    @classmethod
    def from_config(cls, config: Config) -> RuleSet:
        return cls(config.rules, config.entities)

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self._rules)

    def notifiers_of(self, rule: str) -> tuple[str, ...]:
        """The notifiers a rule names; empty means every notifier."""
        for compiled in self._rules:
            if compiled.name == rule:
                return compiled.notify
        raise KeyError(rule)

    def _literal(self, term: str) -> str:
        literal = fold(term).strip()
        self._display.setdefault(literal, term)
        return literal

    def _compile(self, rule: RuleConfig, aliases: Mapping[str, tuple[str, ...]]) -> _CompiledRule:
        keywords = tuple(self._literal(k) for k in rule.keywords)
        exclude = tuple(self._literal(x) for x in rule.exclude)
        entity_aliases = tuple(a for e in rule.entities for a in aliases[e])
        query = parse_query(rule.query) if rule.query is not None else None
        positive: set[str] = {*keywords, *entity_aliases}
        leaves: dict[Term | EntityRef, tuple[str, ...]] = {}
        if query is not None:
            for leaf, negated in walk(query):
                if isinstance(leaf, Term):
                    leaves[leaf] = (self._literal(leaf.text),)
                else:
                    leaves[leaf] = aliases[leaf.name]
                if not negated:
                    positive.update(leaves[leaf])
        needs_hit = bool(keywords or entity_aliases) or (
            query is not None and not evaluate(query, lambda _leaf: False)
        )
        return _CompiledRule(
            name=rule.name,
            keywords=keywords,
            entity_aliases=entity_aliases,
            query=query,
            leaves=leaves,
            exclude=exclude,
            scope=frozenset(rule.feeds),
            notify=tuple(rule.notify),
            positive=frozenset(positive),
            needs_hit=needs_hit,
        )

    # -- matching ---------------------------------------------------------------

    def _scan(self, folded: str, field: str) -> Iterable[_FieldHit]:
        assert self._automaton is not None
        for end_index, literal in self._automaton.iter(folded):
            start = end_index - len(literal) + 1
            end = end_index + 1
            if start > 0 and is_word_char(literal[0]) and is_word_char(folded[start - 1]):
                continue
            if end < len(folded) and is_word_char(literal[-1]) and is_word_char(folded[end]):
                continue
            yield _FieldHit(literal, field, start, end)

    def match(self, item: Item, *, tags: Iterable[str] = ()) -> list[Match]:
        """The rules an item satisfies, each with the terms that hit and a snippet."""
        texts = {name: item.field_text(name) for name in self.fields}
        hits: dict[str, list[_FieldHit]] = {}
        if self._automaton is not None:
            for name, text in texts.items():
                if not text:
                    continue
                for hit in self._scan(fold(text), name):
                    hits.setdefault(hit.literal, []).append(hit)

        candidates = set(self._always)
        for literal in hits:
            candidates.update(self._by_literal.get(literal, ()))
        if not candidates:
            return []
        scope_keys = {item.feed, *tags}
        maps: dict[str, list[int]] = {}
        matches: list[Match] = []
        for index in sorted(candidates):
            rule = self._rules[index]
            if rule.scope and not (rule.scope & scope_keys):
                continue
            if not self._holds(rule, hits):
                continue
            matches.append(self._explain(rule, hits, texts, maps))
        return matches

    @staticmethod
    def _holds(rule: _CompiledRule, hits: Mapping[str, object]) -> bool:
        if any(x in hits for x in rule.exclude):
            return False
        if rule.keywords and not any(k in hits for k in rule.keywords):
            return False
        if rule.entity_aliases and not any(a in hits for a in rule.entity_aliases):
            return False
        return rule.query is None or evaluate(
            rule.query, lambda leaf: any(lit in hits for lit in rule.leaves[leaf])
        )

    def _explain(
        self,
        rule: _CompiledRule,
        hits: Mapping[str, list[_FieldHit]],
        texts: Mapping[str, str],
        maps: dict[str, list[int]],
    ) -> Match:
        fired = [h for literal in rule.positive if literal in hits for h in hits[literal]]
        order = {name: i for i, name in enumerate(self.fields)}
        fired.sort(key=lambda h: (order[h.field], h.start))
        terms: list[str] = []
        located: list[Hit] = []
        for h in fired:
            display = self._display[h.literal]
            if display not in terms:
                terms.append(display)
            if h.field not in maps:
                maps[h.field] = fold_with_map(texts[h.field])[1]
            index = maps[h.field]
            located.append(Hit(display, h.field, index[h.start], index[h.end - 1] + 1))
        text = ""
        if located:
            first = located[0]
            text = snippet(texts[first.field], first.start, first.end)
        return Match(rule=rule.name, terms=tuple(terms), hits=tuple(located), snippet=text)

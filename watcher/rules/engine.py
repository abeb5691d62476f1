"""Rule compilation, matching and explanation.

Every literal of every rule (keywords, excludes, query terms, entity aliases) is
folded and put into one Aho-Corasick automaton; an item's fields are folded once and
scanned once, and a hit counts only where it stands as a whole word (a trailing *
lets the word go on). Entities that transliterate also put their aliases, in Latin
letters, into a second automaton that scans the transliterated text. Rules are then
decided from the hits, so a scan costs the same for 10 rules or 10,000: only rules
that some hit could make true are evaluated at all. What a match shows (its hits in
the original text, terms, score, entities, snippet) is worked out when first read:
much of it is never shown (a baseline shows nothing, test-run one snippet per item).
What an item's matches have in common is worked out once for all of them: each
literal's hits in the original text, and what a literal that hit alone shows.
"""

from __future__ import annotations

import bisect
import difflib
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar, overload

import ahocorasick
import regex

from watcher.models import Hit, Item, Match, Priority
from watcher.rules.query import (
    And,
    EntityRef,
    Field,
    Leaf,
    Node,
    Not,
    Term,
    evaluate,
    parse_query,
    to_text,
    walk,
)
from watcher.rules.terms import (
    REGEX_TIMEOUT,
    Literal,
    compile_regex,
    literal,
    translit_literal,
)
from watcher.text import (
    OffsetMap,
    TranslitMap,
    cut_snippet,
    fold_noting,
    is_word_char,
    transliterate,
    transliterate_sparse,
    transliterate_words,
)

if TYPE_CHECKING:
    from watcher.config import Config, EntityConfig, RuleConfig

DEFAULT_FIELDS: tuple[str, ...] = ("title", "summary", "content")
FIELD_WEIGHTS = {"title": 3.0}  # every other field weighs 1
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True, eq=False)  # one object per entity id: identity is equality
class _Entity:
    id: str
    type: str | None
    literals: tuple[Literal, ...]
    min_mentions: int


@dataclass(frozen=True, eq=False)
class _Near:
    """Words that must all occur within ``distance`` words of each other."""

    words: tuple[Literal, ...]
    distance: int


Resolved = Literal | _Near | _Entity


@dataclass(frozen=True)
class _Rule:
    name: str
    keywords: tuple[Literal, ...]
    entities: tuple[_Entity, ...]
    query: Node | None
    leaves: Mapping[Leaf, Resolved]
    pattern: regex.Pattern[str] | None
    exclude: tuple[Literal, ...]
    fields: frozenset[str]
    scope: frozenset[str]
    notify: tuple[str, ...]
    min_score: float
    priority: Priority  # below every score of ``escalate``: the rule's own level
    escalate: tuple[tuple[float, Priority], ...]  # (score, level), highest score first
    positive: frozenset[Literal]  # literals whose hit can make the rule fire
    mentionable: frozenset[_Entity]  # entities named by the rule or its query
    needs_hit: bool  # False for a regex rule, or a query that holds on an empty text


class _Hit(NamedTuple):
    """A hit in the coordinates of the text it was found in (folded or transliterated)."""

    literal: Literal
    field: str
    start: int
    end: int


class _Key(NamedTuple):
    """What the automaton returns for one key: enough to judge a hit without looking again.

    ``plain`` and ``latin`` are the literals with this key in the folded and in the
    transliterated text; each is ``(literal, prefix, exact)``. ``checked`` are plain
    literals whose folded key transliterates to this key: found in the transliterated
    text, each is confirmed in the folded text (``(literal, prefix, exact, starts_word,
    ends_word)``, the last two of its own key).
    """

    length: int
    starts_word: bool  # the key's first character is a word character
    ends_word: bool
    plain: tuple[tuple[Literal, bool, str | None], ...]
    latin: tuple[tuple[Literal, bool, str | None], ...]
    checked: tuple[tuple[Literal, bool, str | None, bool, bool], ...] = ()


Check = Callable[["_Scan"], bool]


@dataclass(frozen=True)
class Clause:
    """One part of a rule and whether it held, in words."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Explanation:
    """Why a rule fired on an item, or which of its clauses failed."""

    rule: str
    matched: bool
    clauses: tuple[Clause, ...]
    match: Match | None = None


class _Scan:
    """One item's fields, folded and scanned once; offset maps computed only when needed."""

    def __init__(self, ruleset: RuleSet, item: Item) -> None:
        self.ruleset = ruleset
        self.texts = {name: item.field_text(name) for name in ruleset.fields}
        self.folded: dict[str, str] = {}
        self._specials: dict[str, Collection[str]] = {}  # for offset maps (see fold_noting)
        for name, text in self.texts.items():
            if text:
                self.folded[name], self._specials[name] = fold_noting(text)
        self.translit: dict[str, str] = {}
        self.hits: dict[Literal, list[_Hit]] = {}
        self._fold_maps: dict[str, OffsetMap | None] = {}  # None: offsets unchanged
        self._translit_maps: dict[str, TranslitMap] = {}
        self._words: dict[str, tuple[list[str], list[str]]] = {}  # folded, transliterated
        self._word_starts: dict[tuple[str, bool], list[int]] = {}
        # What showing matches needs, worked out once per item and shared by its matches:
        # each literal's hits in the original text, what a literal that hit alone shows,
        # and the snippets (by first hit, and with their marks by the match's hits).
        self._located: dict[Literal, list[_Located]] = {}
        self._alone: dict[Literal, tuple[tuple[str, ...], tuple[Hit, ...], float]] = {}
        self._snippets: dict[tuple[str, int, int], tuple[str, int, int]] = {}
        self._cuts: dict[int, tuple[tuple[Hit, ...], str, tuple[tuple[int, int], ...]]] = {}
        self._order: dict[Literal, int] | None = None
        plain, both, via = ruleset._plain, ruleset._both, ruleset._via_latin
        for name, folded in self.folded.items():
            if via is None:  # no entity transliterates
                if plain is not None:
                    self._scan(plain, folded, name, plain=True, latin=False)
            elif both is not None and folded.isascii():
                # Transliterating ASCII changes nothing: one pass finds both kinds of key.
                self.translit[name] = folded
                self._scan(both, folded, name, plain=True, latin=True)
            else:
                # One pass over the transliterated text finds the Latin keys and, under
                # their transliteration, the plain ones, each then confirmed in the folded
                # text: a second pass over the (Cyrillic...) folded text costs more.
                sparse = transliterate_sparse(folded)
                if sparse is not None:  # a few non-ASCII words: mapped back alone
                    transliterated, self._translit_maps[name] = sparse
                else:
                    words = folded.split(" ")
                    latin_words = transliterate_words(words)
                    self._words[name] = (words, latin_words)
                    transliterated = " ".join(latin_words)
                self.translit[name] = transliterated
                self._scan_latin(via, transliterated, name, folded)
                if ruleset._residue is not None:
                    self._scan(ruleset._residue, folded, name, plain=True, latin=False)

    def _scan(
        self, automaton: ahocorasick.Automaton, text: str, name: str, *, plain: bool, latin: bool
    ) -> None:
        size = len(text)
        hits = self.hits
        for end_index, key in automaton.iter(text):
            end = end_index + 1
            start = end - key.length
            # is_word_char, inlined: this loop runs for every hit of every item.
            if key.starts_word and start > 0:
                before = text[start - 1]
                if before.isalnum() or before == "_":
                    continue
            whole = True
            if key.ends_word and end < size:
                after = text[end]
                whole = not (after.isalnum() or after == "_")
            word_end = -1
            for entries in (key.plain if plain else (), key.latin if latin else ()):
                for lit, prefix, exact in entries:
                    if prefix:
                        if word_end < 0:
                            word_end = end
                            while word_end < size and is_word_char(text[word_end]):
                                word_end += 1
                        hit = _Hit(lit, name, start, word_end)
                    elif whole and (exact is None or self._exact(name, start, end, exact)):
                        hit = _Hit(lit, name, start, end)
                    else:
                        continue
                    found = hits.get(lit)
                    if found is None:
                        hits[lit] = [hit]
                    else:
                        found.append(hit)

    def _scan_latin(
        self, automaton: ahocorasick.Automaton, text: str, name: str, folded: str
    ) -> None:
        """Scan transliterated text: Latin keys as :meth:`_scan` does; plain keys (under
        their transliteration) confirmed in ``folded``, with hits in its offsets."""
        size = len(text)
        hits = self.hits
        # A key could be found twice for one place if a character's transliteration
        # repeated itself ("xx"); each place counts once.
        confirmed: set[tuple[Literal, int]] = set()
        for end_index, key in automaton.iter(text):
            end = end_index + 1
            start = end - key.length
            if key.checked:
                at = self._translit_map(name)(start)
                for lit, prefix, exact, starts_word, ends_word in key.checked:
                    found_hit = self._confirm(
                        lit, prefix, exact, starts_word, ends_word, name, folded, at
                    )
                    if found_hit is not None and (lit, at) not in confirmed:
                        confirmed.add((lit, at))
                        hits.setdefault(lit, []).append(found_hit)
            if not key.latin:
                continue
            if key.starts_word and start > 0:
                before = text[start - 1]
                if before.isalnum() or before == "_":
                    continue
            if key.ends_word and end < size:
                after = text[end]
                if after.isalnum() or after == "_":
                    continue
            for lit, _prefix, _exact in key.latin:  # never prefixes nor case-sensitive
                hits.setdefault(lit, []).append(_Hit(lit, name, start, end))

    def _confirm(
        self,
        lit: Literal,
        prefix: bool,
        exact: str | None,
        starts_word: bool,
        ends_word: bool,
        name: str,
        folded: str,
        start: int,
    ) -> _Hit | None:
        """The hit of a plain literal at ``start`` of the folded text, if it is one there."""
        key = lit.key
        if not folded.startswith(key, start):
            return None
        end = start + len(key)
        if starts_word and start > 0 and is_word_char(folded[start - 1]):
            return None
        if prefix:
            while end < len(folded) and is_word_char(folded[end]):
                end += 1
            return _Hit(lit, name, start, end)
        if ends_word and end < len(folded) and is_word_char(folded[end]):
            return None
        if exact is not None and not self._exact(name, start, end, exact):
            return None
        return _Hit(lit, name, start, end)

    def _translit_map(self, name: str) -> TranslitMap:
        back = self._translit_maps.get(name)
        if back is None:
            # The word lists are a string per word: once the map holds where the words
            # start, they go (a Cyrillic field's are several times its text).
            back = self._translit_maps[name] = TranslitMap(
                self.folded[name], *self._words.pop(name, (None, None))
            )
        return back

    def release(self) -> None:
        """Let go of what only deciding needs: the transliterated copies of the text and
        its word lists. What showing a match needs (the folded text, offset maps) stays
        until the item's last match has worked out its details (see :func:`settle`):
        made again, it cost more than the rest of the details."""
        self.translit = {}
        self._words = {}
        self._word_starts = {}

    def hit_order(self) -> dict[Literal, int]:
        """Each literal that hit, numbered in the order of :attr:`hits`."""
        order = self._order
        if order is None:
            order = self._order = {lit: i for i, lit in enumerate(self.hits)}
        return order

    def has(self, lit: Literal, fields: frozenset[str] | None) -> bool:
        """Whether the literal hit in one of ``fields`` (None: in any field scanned)."""
        found = self.hits.get(lit)
        if not found:
            return False
        if fields is None:
            return True
        return any(h.field in fields for h in found)

    def located(self, lit: Literal) -> list[_Located]:
        """The literal's hits in the original text, as alerts show them; once per item."""
        done = self._located.get(lit)
        if done is None:
            done = []  # kept once complete: another thread may read the item's matches
            span, maps, texts = self.original_span, self._fold_maps, self.texts
            prefix, translit, display = lit.prefix, lit.translit, lit.display
            for h in self.hits[lit]:
                name, start, end = h.field, h.start, h.end
                if translit or maps.get(name, span) is not None:  # None: offsets kept
                    start, end = span(name, start, end, translit=translit)
                term = texts[name][start:end] if prefix else display
                hit = _new(Hit)
                hit.__dict__.update(term=term, field=name, start=start, end=end)
                done.append((name, start, end, hit))
            self._located[lit] = done
        return done

    def alone(self, lit: Literal) -> tuple[tuple[str, ...], tuple[Hit, ...], float]:
        """Terms, hits and score of a match where only this literal hit (in any field):
        rules that share the literal share them."""
        done = self._alone.get(lit)
        if done is None:
            located = self.located(lit)
            if len(located) == 1:  # the usual case: no place to pick the longest hit at
                done = _shown_one(located[0][3])
            else:
                done = _shown(_longest(located), self.ruleset._field_rank)
            self._alone[lit] = done
        return done

    def cut(self, hits: tuple[Hit, ...]) -> tuple[str, tuple[tuple[int, int], ...]]:
        """The snippet around the first of ``hits`` and where in it they are; matches
        with the very same hits (see :meth:`alone`) share both, and rules that first hit
        the same place the snippet."""
        done = self._cuts.get(id(hits))
        if done is not None and done[0] is hits:
            return done[1], done[2]
        first = hits[0]
        key = (first.field, first.start, first.end)
        cut = self._snippets.get(key)
        if cut is None:
            cut = self._snippets[key] = cut_snippet(self.texts[first.field], *key[1:])
        text, lo, hi = cut
        shift = (1 if lo > 0 else 0) - lo  # the leading ellipsis, if any
        if len(hits) == 1:  # a window always holds the hit it is cut around
            marks: tuple[tuple[int, int], ...] = ((first.start + shift, first.end + shift),)
        else:
            name = first.field
            marks = tuple(
                (h.start + shift, h.end + shift)
                for h in hits
                if h.field == name and h.start >= lo and h.end <= hi
            )
        self._cuts[id(hits)] = (hits, text, marks)  # holding ``hits``: its id stays its own
        return text, marks

    def _exact(self, name: str, start: int, end: int, spelling: str) -> bool:
        lo, hi = self.original_span(name, start, end, translit=False)
        return self.texts[name][lo:hi] == spelling

    def original_span(self, name: str, start: int, end: int, *, translit: bool) -> tuple[int, int]:
        """Offsets in the field's original text of a span of its folded (or translit) text."""
        if translit:
            back = self._translit_map(name)
            start, end = back(start), back(end - 1) + 1
        try:
            to_original = self._fold_maps[name]
        except KeyError:
            to_original = OffsetMap(self.texts[name], self.folded[name], self._specials[name])
            if to_original.identity:
                to_original = None
            self._fold_maps[name] = to_original
        if to_original is None:
            return start, end
        return to_original(start), to_original(end - 1) + 1

    def original_text(self, hit: _Hit) -> str:
        start, end = self.original_span(
            hit.field, hit.start, hit.end, translit=hit.literal.translit
        )
        return self.texts[hit.field][start:end]

    def word_index(self, name: str, offset: int, *, translit: bool) -> int:
        key = (name, translit)
        if key not in self._word_starts:
            text = self.translit[name] if translit else self.folded[name]
            self._word_starts[key] = [m.start() for m in _WORDS.finditer(text)]
        return bisect.bisect_right(self._word_starts[key], offset) - 1

    def in_fields(self, lit: Literal, fields: Iterable[str]) -> list[_Hit]:
        hits = self.hits.get(lit)
        if not hits:
            return []
        return [h for h in hits if h.field in fields]


class RuleSet:
    """All rules of a config, compiled once (and again on reload), matched many times."""

    def __init__(self, rules: Sequence[RuleConfig], entities: Mapping[str, EntityConfig]) -> None:
        self._entities = {name: self._entity(name, e) for name, e in entities.items()}
        self._entities_of: dict[Literal, list[_Entity]] = {}
        for entity in self._entities.values():
            for lit in entity.literals:
                self._entities_of.setdefault(lit, []).append(entity)
        self._rules = tuple(self._compile(rule) for rule in rules)
        # Every entity is counted where it is mentioned (watcher/stories.py, mention
        # counts), whether or not a rule names it: its aliases are keys of the scan too.
        fields: set[str] = set(DEFAULT_FIELDS) if self._entities else set()
        for rule in self._rules:
            fields.update(rule.fields)
            if rule.query is not None:
                fields.update(f for _, _, f in walk(rule.query) if f)
        order = {name: i for i, name in enumerate(DEFAULT_FIELDS)}
        self.fields = tuple(sorted(fields, key=lambda f: (order.get(f, len(order)), f)))
        self._field_rank = {name: i for i, name in enumerate(self.fields)}
        plain: dict[str, list[Literal]] = {}
        latin: dict[str, list[Literal]] = {}
        by_literal: dict[Literal, list[int]] = {}
        self._always: tuple[int, ...] = ()
        for index, rule in enumerate(self._rules):
            if not rule.needs_hit:
                self._always += (index,)
            for lit in rule.positive:
                by_literal.setdefault(lit, []).append(index)
            for lit in self._literals_of(rule):
                by_literal.setdefault(lit, [])  # every literal the scan can find is a key
                table = latin if lit.translit else plain
                group = table.setdefault(lit.key, [])
                if lit not in group:
                    group.append(lit)
        for entity in self._entities.values():
            for lit in entity.literals:
                by_literal.setdefault(lit, [])
                group = (latin if lit.translit else plain).setdefault(lit.key, [])
                if lit not in group:
                    group.append(lit)
        self._plain = _automaton(plain, {})
        self._both = _automaton(plain, latin) if latin else self._plain
        # For non-ASCII text when entities transliterate: every plain key under its
        # transliteration, beside the Latin keys (see _Scan._scan_latin). A key whose
        # transliteration loses its first or last character (a soft sign) cannot be
        # placed back exactly: those few are scanned in the folded text, as the residue.
        via: dict[str, list[Literal]] = {}
        residue: dict[str, list[Literal]] = {}
        for key, group in plain.items() if latin else ():
            latin_key = transliterate(key)
            if latin_key and transliterate(key[0]) and transliterate(key[-1]):
                via.setdefault(latin_key, []).extend(group)
            else:
                residue[key] = group
        self._via_latin = _automaton({}, latin, checked=via) if latin else None
        self._residue = _automaton(residue, {})
        everywhere = frozenset(self.fields)
        self._deciders = tuple(self._decider(rule, everywhere) for rule in self._rules)
        steps = [self._step(index, rule, everywhere) for index, rule in enumerate(self._rules)]
        # The rules each literal's hit can make true (none for an exclude, say), in rule
        # order: their steps themselves, not their numbers, so that matching goes from a
        # literal to what it runs without an int and a tuple slot to look up on the way
        # (each a cache miss right after a scan: a quarter of a match's cost at 10,000 rules).
        self._candidates = {
            lit: tuple(steps[i] for i in indices) for lit, indices in by_literal.items()
        }
        self._always_steps = tuple(steps[i] for i in self._always)
        # A rule's match in its entirety is found where every field is (see _found).
        self._everywhere = everywhere

    def _step(self, index: int, rule: _Rule, everywhere: frozenset[str]) -> _Step:
        """What matching does for a rule that is a candidate. Being a candidate means one
        of the rule's positive literals hit: for a rule that holds when any of them hit,
        anywhere, and none of some others (most keyword, entity and simple query rules),
        that leaves one set operation in C, and no decider to call."""
        decider: Check | None = self._deciders[index]
        none: frozenset[Literal] | None = None
        some, vetoes, checks = self._test(rule, everywhere)
        if (
            index not in self._always
            and len(some) == 1
            and not checks
            and rule.positive <= frozenset(some[0])
        ):
            decider = None
            none = frozenset(vetoes) or None
        return _Step(
            index,
            decider,
            none,
            rule,
            rule.scope or None,
            rule if rule.escalate or rule.min_score > 0 else None,
        )

    def _ordered(self, fields: Iterable[str]) -> list[str]:
        """Fields in display order (title, summary, content, then the rest)."""
        return sorted(fields, key=self._field_rank.__getitem__)

    @classmethod
    def from_config(cls, config: Config) -> RuleSet:
        return cls(config.active_rules, config.entities)

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self._rules)

    def notifiers_of(self, rule: str) -> tuple[str, ...]:
        """The notifiers a rule names; empty means every notifier."""
        return self._rule(rule).notify

    def _rule(self, name: str) -> _Rule:
        for compiled in self._rules:
            if compiled.name == name:
                return compiled
        raise KeyError(name)

    # -- compilation ------------------------------------------------------------

    @staticmethod
    def _entity(name: str, entity: EntityConfig) -> _Entity:
        exact = set(entity.case_sensitive)
        literals = [literal(a, case_sensitive=a in exact) for a in entity.aliases]
        if entity.transliterate:
            # Not wildcards: "Харков*" is a Cyrillic inflection pattern; in Latin letters
            # it would match "Kharkovsky Street", the very thing aliases must not match.
            literals += [
                translit_literal(a)
                for a in entity.aliases
                if a not in exact and not a.rstrip().endswith("*")
            ]
        return _Entity(name, entity.type, tuple(dict.fromkeys(literals)), entity.min_mentions)

    def _compile(self, rule: RuleConfig) -> _Rule:
        keywords = tuple(literal(k) for k in rule.keywords)
        exclude = tuple(literal(x) for x in rule.exclude)
        entities = tuple(self._entities[e] for e in rule.entities)
        query = parse_query(rule.query) if rule.query is not None else None
        positive: set[Literal] = set(keywords)
        for entity in entities:
            positive.update(entity.literals)
        leaves: dict[Leaf, Resolved] = {}
        if query is not None:
            for leaf, negated, _field in walk(query):
                resolved = self._resolve(leaf)
                leaves[leaf] = resolved
                if not negated:
                    positive.update(_literals(resolved))
        pattern = compile_regex(rule.regex) if rule.regex is not None else None
        needs_hit = pattern is None and (
            bool(keywords or entities)
            or (query is not None and not evaluate(query, lambda _leaf, _field: False))
        )
        priority: Priority = "normal"
        escalate: tuple[tuple[float, Priority], ...] = ()
        if isinstance(rule.priority, str):
            priority = rule.priority
        else:
            escalate = tuple(sorted(((v, k) for k, v in rule.priority.items()), reverse=True))
        return _Rule(
            name=rule.name,
            priority=priority,
            escalate=escalate,
            keywords=keywords,
            entities=entities,
            query=query,
            leaves=leaves,
            pattern=pattern,
            exclude=exclude,
            fields=frozenset(rule.fields),
            scope=frozenset(rule.feeds),
            notify=tuple(rule.notify),
            min_score=rule.min_score,
            positive=frozenset(positive),
            mentionable=frozenset(
                [*entities, *(r for r in leaves.values() if isinstance(r, _Entity))]
            ),
            needs_hit=needs_hit,
        )

    def _resolve(self, leaf: Leaf) -> Resolved:
        if isinstance(leaf, EntityRef):
            return self._entities[leaf.name]
        if leaf.near is not None:
            return _Near(tuple(literal(w) for w in leaf.words), leaf.near)
        return literal(leaf.text + ("*" if leaf.prefix else ""))

    @staticmethod
    def _literals_of(rule: _Rule) -> list[Literal]:
        """The rule's literals in the config's order: keywords, each entity's aliases,
        excludes, the query's terms.

        The order files literals that share a key (Zurich and Zürich fold alike) in the
        automaton, and so decides which spelling a match shows where both hit: the one
        listed first. A set's order followed string hashes, which differ from one
        process to the next.
        """
        found = dict.fromkeys(rule.keywords)
        for entity in rule.entities:
            found.update(dict.fromkeys(entity.literals))
        found.update(dict.fromkeys(rule.exclude))
        for resolved in rule.leaves.values():
            found.update(dict.fromkeys(_literals(resolved)))
        return list(found)

    # -- deciding ---------------------------------------------------------------

    def _mentions(self, entity: _Entity, scan: _Scan, fields: Iterable[str]) -> int:
        """Distinct places the entity is mentioned (counted in the plain or the Latin text)."""
        plain: set[tuple[str, int]] = set()
        latin: set[tuple[str, int]] = set()
        for lit in entity.literals:
            for h in scan.in_fields(lit, fields):
                (latin if lit.translit else plain).add((h.field, h.start))
        return max(len(plain), len(latin))

    def _near(self, near: _Near, scan: _Scan, fields: Iterable[str]) -> bool:
        for name in fields:
            positions: list[tuple[int, int]] = []
            for k, lit in enumerate(near.words):
                hits = [h for h in scan.hits.get(lit, ()) if h.field == name]
                if not hits:
                    break
                positions += [(scan.word_index(name, h.start, translit=False), k) for h in hits]
            else:
                if _window(positions, len(near.words), near.distance + len(near.words) - 2):
                    return True
        return False

    def _leaf_holds(self, resolved: Resolved, scan: _Scan, fields: frozenset[str]) -> bool:
        if isinstance(resolved, Literal):
            return bool(scan.in_fields(resolved, fields))
        if isinstance(resolved, _Near):
            return self._near(resolved, scan, fields)
        return self._mentions(resolved, scan, fields) >= resolved.min_mentions

    def _query_holds(self, rule: _Rule, node: Node, scan: _Scan) -> bool:
        def holds(leaf: Leaf, scoped: str | None) -> bool:
            fields = frozenset((scoped,)) if scoped else rule.fields
            return self._leaf_holds(rule.leaves[leaf], scan, fields)

        return evaluate(node, holds)

    def _decider(self, rule: _Rule, everywhere: frozenset[str]) -> Check:
        """The rule as one function of a scan, for matching: the same verdict as
        :meth:`_clauses`, without its bookkeeping (tests hold the two to agreement).
        """
        return _compiled(self._test(rule, everywhere))

    def _test(self, rule: _Rule, everywhere: frozenset[str]) -> _Test:
        tests: list[_Test] = []
        fields = None if rule.fields >= everywhere else rule.fields
        if rule.exclude:
            tests.append(_not(_some(rule.exclude, fields)))
        if rule.keywords:
            tests.append(_some(rule.keywords, fields))
        if rule.entities:
            # Entities mentioned once are enough: one test for all of their aliases.
            simple = tuple(lit for e in rule.entities if e.min_mentions <= 1 for lit in e.literals)
            held = [_some(simple, fields)] if simple else []
            held += [
                self._leaf_test(e, fields, rule.fields) for e in rule.entities if e.min_mentions > 1
            ]
            tests.append(_or(held))
        if rule.query is not None:
            tests.append(self._node_test(rule, rule.query, None, fields))
        if rule.pattern is not None:  # last: the dearest test runs only when the rest hold
            tests.append(_Test(checks=(lambda scan: bool(self._regex_hits(rule, scan)),)))
        return _and(tests)

    def _node_test(
        self, rule: _Rule, node: Node, scoped: str | None, fields: frozenset[str] | None
    ) -> _Test:
        """A query (sub)tree as one test: no tree walk per item."""
        if isinstance(node, Term | EntityRef):
            if scoped is not None:
                return self._leaf_test(rule.leaves[node], frozenset((scoped,)), None)
            return self._leaf_test(rule.leaves[node], fields, rule.fields)
        if isinstance(node, Not):
            return _not(self._node_test(rule, node.child, scoped, fields))
        if isinstance(node, Field):
            return self._node_test(rule, node.child, node.name, fields)
        children = [self._node_test(rule, c, scoped, fields) for c in node.children]
        return _and(children) if isinstance(node, And) else _or(children)

    def _leaf_test(
        self, resolved: Resolved, fields: frozenset[str] | None, named: frozenset[str] | None
    ) -> _Test:
        """``fields`` None means any field the scan has; ``named`` is the same set spelled out."""
        where = fields if fields is not None else named or frozenset(self.fields)
        if isinstance(resolved, Literal):
            return _some((resolved,), fields)
        if isinstance(resolved, _Near):
            return _Test(checks=(lambda scan: self._near(resolved, scan, where),))
        if resolved.min_mentions <= 1:
            return _some(resolved.literals, fields)
        return _Test(
            checks=(lambda scan: self._mentions(resolved, scan, where) >= resolved.min_mentions,)
        )

    def _regex_hits(self, rule: _Rule, scan: _Scan) -> list[Hit] | None:
        """Hits of the rule's regex; None when it timed out somewhere."""
        assert rule.pattern is not None
        found: list[Hit] = []
        for name in self._ordered(rule.fields):
            text = scan.texts.get(name, "")
            if not text:
                continue
            hits = _regex_field(rule.pattern, text, name)
            if hits is None:
                return None
            found += hits
        return found

    def _clauses(self, rule: _Rule, scan: _Scan, *, explain: bool) -> tuple[list[Clause], bool]:
        """Each clause of the rule, evaluated; stops at the first failure unless explaining.

        Details (words for `watcher match`) are only worked out when explaining: they
        need offset maps and near-miss searches that matching never pays for.
        """
        clauses: list[Clause] = []
        ok = True

        def add(name: str, held: bool, detail: Callable[[], str]) -> bool:
            nonlocal ok
            ok = ok and held
            if explain:
                clauses.append(Clause(name, held, detail()))
            return held or explain

        if rule.exclude:  # a rule without excludes has no such clause to show
            vetoes = [h for lit in rule.exclude for h in scan.in_fields(lit, rule.fields)]
            if not add("exclude", not vetoes, lambda: self._veto_detail(rule, vetoes)):
                return clauses, False
        if rule.keywords:
            found = [lit for lit in rule.keywords if scan.in_fields(lit, rule.fields)]

            def keywords_detail() -> str:
                if found:
                    return f"found {_names(found)}"
                missing = f"none of {_names(rule.keywords)} found; "
                return missing + _near_miss(rule.keywords, scan, rule.fields)

            if not add("keywords", bool(found), keywords_detail):
                return clauses, False
        if rule.entities:
            counts = {e.id: self._mentions(e, scan, rule.fields) for e in rule.entities}
            held = any(counts[e.id] >= e.min_mentions for e in rule.entities)

            def entities_detail() -> str:
                return "; ".join(
                    self._entity_detail(e, counts[e.id], scan, rule) for e in rule.entities
                )

            if not add("entities", held, entities_detail):
                return clauses, False
        if rule.query is not None:
            held = self._query_holds(rule, rule.query, scan)
            if not add("query", held, lambda: "holds" if held else self._query_detail(rule, scan)):
                return clauses, False
        if rule.pattern is not None:
            hits = self._regex_hits(rule, scan)
            if hits is None:
                add("regex", False, lambda: f"timed out after {REGEX_TIMEOUT:g} s")
                return clauses, False

            def regex_detail() -> str:
                assert hits is not None
                if hits:
                    return f"matched {hits[0].term!r} in {hits[0].field}"
                return f"no match in {', '.join(self._ordered(rule.fields))}"

            if not add("regex", bool(hits), regex_detail):
                return clauses, False
        return clauses, ok

    def _veto_detail(self, rule: _Rule, vetoes: Sequence[_Hit]) -> str:
        if vetoes:
            return f"vetoed by {vetoes[0].literal.display!r} in {vetoes[0].field}"
        return f"none of {_names(rule.exclude)} present"

    def _entity_detail(self, entity: _Entity, count: int, scan: _Scan, rule: _Rule) -> str:
        label = f"{entity.id}" + (f" ({entity.type})" if entity.type else "")
        if count >= entity.min_mentions:
            seen = dict.fromkeys(
                scan.original_text(h)
                for lit in entity.literals
                for h in scan.in_fields(lit, rule.fields)
            )
            return f"{label} mentioned {count}x: {', '.join(map(repr, seen))}"
        if count:
            return f"{label} mentioned {count}x, needs {entity.min_mentions}"
        return f"{label} not mentioned; " + _near_miss(entity.literals, scan, rule.fields)

    def _query_detail(self, rule: _Rule, scan: _Scan) -> str:
        assert rule.query is not None
        parts = rule.query.children if isinstance(rule.query, And) else (rule.query,)
        failing = [p for p in parts if not self._query_holds(rule, p, scan)]
        return "fails at " + "; ".join(to_text(p) for p in failing)

    # -- matching ---------------------------------------------------------------

    def match(self, item: Item, *, tags: Iterable[str] = ()) -> list[Match]:
        """The rules an item satisfies. Each match's terms, score and snippet are worked
        out when first read (see :class:`_LazyMatch`): deciding needs none of them."""
        return self._match(_Scan(self, item), item, tags)

    def match_mentions(
        self, item: Item, *, tags: Iterable[str] = ()
    ) -> tuple[list[Match], tuple[str, ...]]:
        """:meth:`match`, and the entities the item mentions (in the title, summary or
        content, at least ``min_mentions`` times), whether a rule names them or not: what
        the mention counts of a poll count. Read from the same scan."""
        scan = _Scan(self, item)
        mentioned: tuple[str, ...] = ()
        if self._entities_of and scan.hits:
            found: dict[str, _Entity] = {}
            for lit, hits in scan.hits.items():
                for entity in self._entities_of.get(lit, ()):
                    if entity.id not in found and any(h.field in DEFAULT_FIELDS for h in hits):
                        found[entity.id] = entity
            mentioned = tuple(
                e.id
                for e in found.values()
                if e.min_mentions <= 1 or self._mentions(e, scan, DEFAULT_FIELDS) >= e.min_mentions
            )
        return self._match(scan, item, tags), mentioned

    def _match(self, scan: _Scan, item: Item, tags: Iterable[str]) -> list[Match]:
        hits = scan.hits
        always = self._always_steps
        if not hits and not always:
            return []  # most items of a news feed: nothing tracked, no rule to ask
        by_literal = self._candidates
        candidates: Iterable[_Step]
        if len(hits) == 1 and not always:
            candidates = by_literal[next(iter(hits))]  # in rule order already
        else:
            # Steps hash by identity: the union reads none of them.
            union = set(always).union(*map(by_literal.__getitem__, hits))
            if not union:
                return []
            candidates = sorted(union, key=_rule_order)
        scope: set[str] | None = None
        matches: list[Match] = []
        hit = hits.keys()
        for step in candidates:
            scoped = step.scope
            if scoped is not None:
                if scope is None:
                    scope = {item.feed, *tags}
                if scoped.isdisjoint(scope):
                    continue
            decider = step.decider
            if decider is not None:
                if not decider(scan):
                    continue
            else:
                none = step.none
                if none is not None and not hit.isdisjoint(none):
                    continue
            # A _LazyMatch without __init__: its attributes set in its dict, without a
            # frozen dataclass's __setattr__ (matching builds one for every rule that fires).
            found = _new(_LazyMatch)
            own = found.__dict__
            own["rule"] = step.name
            own["priority"] = step.priority
            own["_rule"] = step.rule
            own["_scan"] = scan
            rule = step.scored
            if rule is not None:
                if rule.escalate:
                    score = found.score
                    own["priority"] = next(
                        (p for least, p in rule.escalate if score >= least), rule.priority
                    )
                # A score is never negative: a rule without min_score keeps every match.
                if rule.min_score > 0 and found.score < rule.min_score:
                    continue
            matches.append(found)
        if matches:
            scan.release()
        return matches

    def explain(
        self, item: Item, *, rules: Iterable[str] | None = None, tags: Iterable[str] = ()
    ) -> list[Explanation]:
        """For each rule (or the named ones), whether it fires on the item and why, or why not."""
        scan = _Scan(self, item)
        wanted = set(rules) if rules is not None else None
        scope = {item.feed, *tags}
        explanations = []
        for rule in self._rules:
            if wanted is not None and rule.name not in wanted:
                continue
            clauses, ok = self._clauses(rule, scan, explain=True)
            if rule.scope:
                in_scope = bool(rule.scope & scope)
                clauses.append(
                    Clause("feeds", in_scope, f"applies to {', '.join(sorted(rule.scope))}")
                )
                ok = ok and in_scope
            found = _LazyMatch.of(rule, scan) if ok else None
            if found is not None and rule.min_score:
                enough = found.score >= rule.min_score
                clauses.append(
                    Clause("min_score", enough, f"score {found.score:g}, needs {rule.min_score:g}")
                )
                if not enough:
                    ok, found = False, None
            explanations.append(Explanation(rule.name, ok, tuple(clauses), found))
        return explanations

    def _found(self, rule: _Rule, scan: _Scan) -> _Found:
        """The hits of a match in the original text (the longest at each place), its
        terms, score and the entities it mentions."""
        fields = rule.fields
        # The rule's literals that hit, in the order they first hit (which of two hits
        # of one place is shown depends on it). The intersection walks the shorter of
        # the two, in C: a rule may have hundreds of literals and an item hit dozens.
        found = scan.hits.keys() & rule.positive
        order = scan.hit_order().__getitem__ if len(found) > 1 else None
        present = sorted(found, key=order) if order is not None else list(found)
        everywhere = fields >= self._everywhere
        if len(present) == 1 and everywhere and rule.pattern is None:
            terms, hits, score = scan.alone(present[0])
        else:
            located: dict[tuple[str, int], Hit] = {}
            for lit in present:
                for name, start, end, hit in scan.located(lit):
                    if not everywhere and name not in fields:
                        continue
                    key = (name, start)
                    best = located.get(key)
                    if best is None or end - start > best.end - best.start:
                        located[key] = hit
            if rule.pattern is not None:
                for hit in self._regex_hits(rule, scan) or ():
                    located.setdefault((hit.field, hit.start), hit)
            terms, hits, score = _shown(located, self._field_rank)
        entities: tuple[tuple[str, str | None], ...] = ()
        if rule.mentionable:
            mentioned: list[_Entity] = []
            entities_of = self._entities_of
            for lit in present:
                for entity in entities_of.get(lit, ()):
                    if entity not in mentioned and entity in rule.mentionable:
                        mentioned.append(entity)
            entities = tuple(
                (e.id, e.type)
                for e in mentioned
                if e.min_mentions == 1 or self._mentions(e, scan, fields) >= e.min_mentions
            )
        return _Found(terms, hits, score, entities)


_Located = tuple[str, int, int, Hit]  # field, start, end (in the original text), the hit


def _longest(located: Iterable[_Located]) -> dict[tuple[str, int], Hit]:
    """The longest hit at each place (the first of equals)."""
    best: dict[tuple[str, int], Hit] = {}
    for name, start, end, hit in located:
        key = (name, start)
        found = best.get(key)
        if found is None or end - start > found.end - found.start:
            best[key] = hit
    return best


def _shown(
    located: Mapping[tuple[str, int], Hit], rank: Mapping[str, int]
) -> tuple[tuple[str, ...], tuple[Hit, ...], float]:
    """Terms, hits (in field order, then by place) and score of a match's hits."""
    if len(located) == 1:  # the usual case: no sorting, no sets
        return _shown_one(next(iter(located.values())))
    hits = tuple(sorted(located.values(), key=lambda h: (rank.get(h.field, 99), h.start)))
    terms = tuple(dict.fromkeys(h.term for h in hits))
    distinct = {(h.term.casefold(), h.field) for h in hits}
    return terms, hits, sum(FIELD_WEIGHTS.get(name, 1.0) for _, name in distinct)


def _shown_one(hit: Hit) -> tuple[tuple[str, ...], tuple[Hit, ...], float]:
    """:func:`_shown` of a match with a single hit."""
    return (hit.term,), (hit,), FIELD_WEIGHTS.get(hit.field, 1.0)


class _Step:
    """A rule as matching runs it (see :meth:`RuleSet._step`). A class with slots, not a
    tuple: it hashes by identity, so a set of candidates is made without reading them."""

    __slots__ = ("decider", "index", "name", "none", "priority", "rule", "scope", "scored")

    def __init__(
        self,
        index: int,
        decider: Check | None,
        none: frozenset[Literal] | None,
        rule: _Rule,
        scope: frozenset[str] | None,
        scored: _Rule | None,
    ) -> None:
        self.index = index  # the rule's place in the config: matches come in this order
        self.decider = decider  # None: a candidate fires unless one of ``none`` hit
        self.none = none
        self.name, self.priority, self.rule = rule.name, rule.priority, rule
        self.scope = scope  # the feeds and tags it is limited to
        self.scored = scored  # the rule, when the match's score decides (escalate, min_score)


_rule_order = attrgetter("index")


class _Found(NamedTuple):
    terms: tuple[str, ...]
    hits: tuple[Hit, ...]
    score: float
    entities: tuple[tuple[str, str | None], ...]


T = TypeVar("T")


class _Detail(Generic[T]):
    """One detail of a :class:`_LazyMatch`, worked out with its group on first read.

    A descriptor with ``__get__`` only: once ``work_out`` has set the instance's own
    attribute of the same name, Python finds that first, and the descriptor is never
    called again (a property would be, on every read).
    """

    def __init__(self, work_out: Callable[[_LazyMatch], None]) -> None:
        self.work_out = work_out
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, match: None, owner: type | None = None) -> _Detail[T]: ...
    @overload
    def __get__(self, match: _LazyMatch, owner: type | None = None) -> T: ...
    def __get__(self, match: _LazyMatch | None, owner: type | None = None) -> T | _Detail[T]:
        if match is None:
            return self
        self.work_out(match)
        value: T = match.__dict__[self.name]
        return value


class _LazyMatch(Match):
    """A match whose details are worked out when first read, from the item's scan.

    Deciding that a rule fires costs a few closure calls; the details (hits mapped back
    to the original text, terms, score, entities, a snippet with its marks) cost more
    than that, and most are never read: test-run shows one snippet per item, an alert
    one per message, and a daemon's baseline nothing at all. The public attributes are
    those of :class:`Match`, with the same values; pickling (parse workers) or copying
    one makes a plain :class:`Match`.
    """

    _rule: _Rule
    _scan: _Scan

    @staticmethod
    def of(rule: _Rule, scan: _Scan) -> _LazyMatch:
        """The match of ``rule`` in ``scan`` (matching builds its matches inline, the
        same way: see :meth:`RuleSet._match`)."""
        match = _new(_LazyMatch)
        state = match.__dict__
        state.update(rule=rule.name, priority=rule.priority, _rule=rule, _scan=scan)
        if rule.escalate:
            score = match.score
            state["priority"] = next(
                (p for least, p in rule.escalate if score >= least), rule.priority
            )
        return match

    def _work_out(self) -> None:
        """Terms, hits, score and entities, set as the instance's own attributes: read
        again, they are plain attributes (see :class:`_Detail`)."""
        state = self.__dict__
        rule, scan = state.get("_rule"), state.get("_scan")
        if rule is None or scan is None:
            return  # settled meanwhile, by another thread: all is there
        state["terms"], state["hits"], state["score"], state["entities"] = scan.ruleset._found(
            rule, scan
        )

    def _cut(self) -> None:
        """Every detail, the snippet and its marks included, set as the instance's own
        attributes; then the match lets go of the item's scan (which can be several times
        the item's size: offset maps are a list of ints per character or word)."""
        settle((self,))

    terms: _Detail[tuple[str, ...]] = _Detail(_work_out)
    hits: _Detail[tuple[Hit, ...]] = _Detail(_work_out)
    score: _Detail[float] = _Detail(_work_out)
    entities: _Detail[tuple[tuple[str, str | None], ...]] = _Detail(_work_out)
    snippet: _Detail[str] = _Detail(_cut)
    marks: _Detail[tuple[tuple[int, int], ...]] = _Detail(_cut)

    def _fields(self) -> tuple[object, ...]:
        return (
            self.rule,
            self.terms,
            self.hits,
            self.snippet,
            self.score,
            self.entities,
            self.marks,
            self.priority,
        )

    def __reduce__(self) -> tuple[type[Match], tuple[object, ...]]:
        """Pickled (from a parse worker) as a plain Match: the scan stays behind."""
        return Match, self._fields()

    def __eq__(self, other: object) -> bool:
        """Equal to any Match with the same details, a plain one (unpickled) included."""
        if not isinstance(other, Match):
            return NotImplemented
        return self._fields() == tuple(getattr(other, f) for f in _MATCH_FIELDS)

    def __hash__(self) -> int:  # as Match's own (a frozen dataclass): equal, same hash
        return hash(self._fields())


def settle(matches: Iterable[Match]) -> None:
    """Work out every detail of these matches now, so that they no longer hold their
    items' scans: for matches that are kept a while (test-run's, until it prints them;
    backtest's report). On 416 real feeds, test-run peaked at 715 MiB when every matched
    item's scan was kept to the end, 196 MiB when each feed's matches settle at once."""
    for match in matches:
        # _LazyMatch._cut inlined: test-run settles every match it prints (173,000 on
        # bench/compare.py's dense fleet), and this skips two calls a match.
        state = match.__dict__
        if "snippet" in state:
            continue  # settled, or a plain Match
        rule, scan = state.get("_rule"), state.get("_scan")
        if rule is None or scan is None:
            continue  # settled meanwhile, by another thread
        hits = state.get("hits")
        if hits is None:
            state["terms"], hits, state["score"], state["entities"] = scan.ruleset._found(
                rule, scan
            )
            state["hits"] = hits
        if hits:
            state["snippet"], state["marks"] = scan.cut(hits)
        else:
            state["snippet"], state["marks"] = "", ()
        state.pop("_scan", None)
        state.pop("_rule", None)


_new = object.__new__
_MATCH_FIELDS = ("rule", "terms", "hits", "snippet", "score", "entities", "marks", "priority")


class _Test(NamedTuple):
    """A rule, or a part of one, as one conjunction, so that it compiles to few calls:
    each tuple of ``some`` has a literal that hit (anywhere), no literal of ``none`` hit,
    and each of ``checks`` holds (tests where fields matter, proximity, mention counts,
    regexes). Deciders run for every candidate rule of every item: most rules become
    one function making one or two set operations in C."""

    some: tuple[tuple[Literal, ...], ...] = ()
    none: tuple[Literal, ...] = ()
    checks: tuple[Check, ...] = ()

    @property
    def alternatives(self) -> tuple[Literal, ...] | None:
        """The literals when the test is only "one of these hit", else None."""
        if len(self.some) == 1 and not self.none and not self.checks:
            return self.some[0]
        return None


def _some(literals: tuple[Literal, ...], fields: frozenset[str] | None) -> _Test:
    """One of the literals hit, in one of ``fields`` (None: in any field)."""
    if fields is None:
        return _Test(some=(literals,))
    return _Test(checks=(lambda scan: any(scan.has(lit, fields) for lit in literals),))


def _and(tests: Sequence[_Test]) -> _Test:
    return _Test(
        some=tuple(group for test in tests for group in test.some),
        none=tuple(dict.fromkeys(lit for test in tests for lit in test.none)),
        checks=tuple(check for test in tests for check in test.checks),
    )


def _or(tests: Sequence[_Test]) -> _Test:
    """Alternatives of literals merge into one; anything else becomes a function."""
    merged: dict[Literal, None] = {}
    others: list[Check] = []
    for test in tests:
        alternatives = test.alternatives
        if alternatives is not None:
            merged.update(dict.fromkeys(alternatives))
        else:
            others.append(_compiled(test))
    if not others:
        return _Test(some=(tuple(merged),))
    if merged:
        others.insert(0, _compiled(_Test(some=(tuple(merged),))))
    if len(others) == 1:
        return _Test(checks=(others[0],))
    checks = tuple(others)
    return _Test(checks=(lambda scan: any(check(scan) for check in checks),))


def _not(test: _Test) -> _Test:
    alternatives = test.alternatives
    if alternatives is not None:  # not (one of these hit) = none of these hit
        return _Test(none=alternatives)
    if test.none and not test.some and not test.checks:  # not (none hit) = one hit
        return _Test(some=(test.none,))
    check = _compiled(test)
    return _Test(checks=(lambda scan: not check(scan),))


def _compiled(test: _Test) -> Check:
    """The test as one function: the literal tests first (a lookup or a set operation
    in C each), then the checks in order."""
    some, none, checks = test
    if not checks:
        if not some:
            return lambda scan: scan.hits.keys().isdisjoint(none)
        if len(some) == 1:
            (group,) = some
            if not none:
                if len(group) == 1:
                    (only,) = group
                    return lambda scan: only in scan.hits
                return lambda scan: not scan.hits.keys().isdisjoint(group)
            return lambda scan: (
                not (hit := scan.hits.keys()).isdisjoint(group) and hit.isdisjoint(none)
            )
    if not some and not none and len(checks) == 1:
        return checks[0]

    def holds(scan: _Scan) -> bool:
        hit = scan.hits.keys()
        return (
            hit.isdisjoint(none)
            and not any(hit.isdisjoint(group) for group in some)
            and all(check(scan) for check in checks)
        )

    return holds


def _automaton(
    plain: Mapping[str, Sequence[Literal]],
    latin: Mapping[str, Sequence[Literal]],
    *,
    checked: Mapping[str, Sequence[Literal]] | None = None,
) -> ahocorasick.Automaton | None:
    """One automaton over the keys of the tables; each key carries a :class:`_Key`."""
    checked = checked or {}
    if not plain and not latin and not checked:
        return None
    automaton = ahocorasick.Automaton()
    for key in {**plain, **latin, **checked}:
        automaton.add_word(
            key,
            _Key(
                length=len(key),
                starts_word=is_word_char(key[0]),
                ends_word=is_word_char(key[-1]),
                plain=tuple((lit, lit.prefix, lit.exact) for lit in plain.get(key, ())),
                latin=tuple((lit, lit.prefix, lit.exact) for lit in latin.get(key, ())),
                checked=tuple(
                    (
                        lit,
                        lit.prefix,
                        lit.exact,
                        is_word_char(lit.key[0]),
                        is_word_char(lit.key[-1]),
                    )
                    for lit in checked.get(key, ())
                ),
            ),
        )
    automaton.make_automaton()
    return automaton


def _regex_field(pattern: regex.Pattern[str], text: str, name: str) -> list[Hit] | None:
    """The regex's hits in one field, or None when it took :data:`REGEX_TIMEOUT` of this
    thread's CPU time.

    The regex module's timeout is wall-clock time from the start of the search to its
    last match, and by default it lets go of the GIL while it matches (and Python code
    between matches lets go of it too): with twenty poll or test-run threads matching at
    once, patterns that take microseconds ran out of time while waiting for the GIL, and
    each such timeout silently lost a match (about one search in ten under load). So the
    search holds the GIL from start to end (``concurrent=False``, consumed by ``list``
    without Python code in between), and a timeout counts only when this thread really
    spent the time; otherwise (the process was descheduled) the search runs again.
    """
    spent = 0.0
    for _ in range(_REGEX_ATTEMPTS):
        started = time.thread_time()
        try:
            found = list(pattern.finditer(text, timeout=REGEX_TIMEOUT, concurrent=False))
        except TimeoutError:
            spent += time.thread_time() - started
            if spent >= REGEX_TIMEOUT:
                return None
            continue
        return [Hit(m.group(), name, m.start(), m.end()) for m in found if m.end() > m.start()]
    return None


_REGEX_ATTEMPTS = 4  # so that a pathological pattern costs at most a few timeouts


def _literals(resolved: Resolved) -> tuple[Literal, ...]:
    if isinstance(resolved, Literal):
        return (resolved,)
    if isinstance(resolved, _Near):
        return resolved.words
    return resolved.literals


def _names(literals: Iterable[Literal]) -> str:
    return ", ".join(repr(lit.display) for lit in literals)


def _window(positions: list[tuple[int, int]], kinds: int, span: int) -> bool:
    """Whether some window of at most ``span`` words holds every one of ``kinds`` words."""
    positions.sort()
    counts: dict[int, int] = {}
    lo = 0
    for pos, kind in positions:
        counts[kind] = counts.get(kind, 0) + 1
        while positions[lo][0] < pos - span:
            old = positions[lo][1]
            counts[old] -= 1
            if not counts[old]:
                del counts[old]
            lo += 1
        if len(counts) == kinds:
            return True
    return False


def _near_miss(literals: Iterable[Literal], scan: _Scan, fields: Iterable[str]) -> str:
    """The closest thing in the text to any of the literals, for explanations."""
    best: tuple[float, str] = (0.0, "")
    for lit in literals:
        for name in fields:
            text = (scan.translit if lit.translit else scan.folded).get(name, "")
            if not text:
                continue
            if lit.key in text:
                word = next((w for w in _WORDS.findall(text) if lit.key in w), lit.key)
                if lit.exact is not None and word == lit.key:
                    return f"{lit.display!r} matches only in exactly that case, not as {word!r}"
                return f"{lit.display!r} appears only inside the word {word!r} in {name}"
            for word in dict.fromkeys(_WORDS.findall(text)):  # first seen first: ties
                ratio = difflib.SequenceMatcher(None, lit.key, word).ratio()
                if ratio > best[0]:
                    best = (
                        ratio,
                        f"closest word: {word!r} (to {lit.display!r}, {ratio:.0%} alike)",
                    )
    return best[1] if best[0] >= 0.6 else "nothing similar in the text"


__all__ = ["DEFAULT_FIELDS", "Clause", "Explanation", "RuleSet", "settle"]

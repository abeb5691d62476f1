"""The query language, a subset of Lucene / Elasticsearch ``query_string``.

    ceasefire AND (Russia OR Ukraine) AND NOT football
    "peace talks" -football            a minus excludes, like NOT
    attack*                            a trailing wildcard matches attack, attacks, attacked
    title:ceasefire  title:(a OR b)    field scope: title, summary, content, author, tags, link
    "kharkiv offensive"~5              both words within 5 words of each other, any order
    @kharkiv                           any alias of the entity kharkiv

Words side by side mean AND; AND binds tighter than OR; operators are upper case (a
lower-case ``and`` is a word); ``&&`` and ``||`` work too. Parsing is pure and reports
the exact position of the first problem and what was expected there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from watcher.exceptions import QuerySyntaxError

FIELDS = ("title", "summary", "content", "author", "tags", "link")


@dataclass(frozen=True)
class Term:
    """A word or a phrase as written; ``prefix`` for a trailing *, ``near`` for "..."~N."""

    text: str
    position: int
    prefix: bool = False
    near: int | None = None

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


@dataclass(frozen=True)
class EntityRef:
    name: str
    position: int


@dataclass(frozen=True)
class Field:
    """A sub-query that must hold within one field."""

    name: str
    child: Node


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Term | EntityRef | Field | Not | And | Or
Leaf = Term | EntityRef

MAX_NESTING = 50
_OPERATORS = {"AND": "AND", "&&": "AND", "OR": "OR", "||": "OR", "NOT": "NOT"}
_WORD = re.compile(r'[^\s()"]+')
_ENTITY = re.compile(r"@([A-Za-z0-9_][A-Za-z0-9_.-]*)")
_FIELD = re.compile(r"([A-Za-z_]+):")
_NEAR = re.compile(r"~(\d+)")


@dataclass(frozen=True)
class _Token:
    kind: str  # WORD PHRASE ENTITY FIELD MINUS AND OR NOT ( ) END
    text: str
    position: int
    prefix: bool = False
    near: int | None = None


def _fail(message: str, query: str, position: int) -> QuerySyntaxError:
    return QuerySyntaxError(message, query=query, position=position)


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(query):
        ch = query[pos]
        if ch.isspace():
            pos += 1
        elif ch in "()":
            tokens.append(_Token(ch, ch, pos))
            pos += 1
        elif ch in "-+" and pos + 1 < len(query) and not query[pos + 1].isspace():
            if ch == "-":  # "+term" is Lucene's "must", which every term already is
                tokens.append(_Token("MINUS", ch, pos))
            pos += 1
        elif ch == '"':
            end = query.find('"', pos + 1)
            if end == -1:
                raise _fail('unterminated quote: expected a closing "', query, pos)
            phrase = query[pos + 1 : end]
            if not phrase.strip():
                raise _fail("empty phrase", query, pos)
            if "*" in phrase:
                raise _fail(
                    "wildcards do not work inside quotes", query, pos + 1 + phrase.index("*")
                )
            near = None
            m = _NEAR.match(query, end + 1)
            if m:
                near = int(m.group(1))
                if len(phrase.split()) < 2:
                    raise _fail(
                        "proximity (~N) needs a phrase of two or more words", query, end + 1
                    )
                end = m.end() - 1
            elif query.startswith("~", end + 1):
                raise _fail("expected a number of words after ~", query, end + 2)
            tokens.append(_Token("PHRASE", phrase, pos, near=near))
            pos = end + 1
        elif ch == "@":
            m = _ENTITY.match(query, pos)
            if not m:
                raise _fail("expected an entity name after @", query, pos + 1)
            tokens.append(_Token("ENTITY", m.group(1), pos))
            pos = m.end()
        else:
            field = _FIELD.match(query, pos)
            if field and field.group(1).lower() in FIELDS:
                if not query[field.end() :].strip():
                    raise _fail(f"expected a term or '(' after {field.group(0)}", query, len(query))
                tokens.append(_Token("FIELD", field.group(1).lower(), pos))
                pos = field.end()
                continue
            if field and field.end() < len(query) and not query[field.end()].isspace():
                raise _fail(
                    f"unknown field {field.group(1)!r}: expected one of {', '.join(FIELDS)}",
                    query,
                    pos,
                )
            m = _WORD.match(query, pos)
            assert m is not None  # any other character starts a word
            word = m.group(0)
            if word in _OPERATORS:
                tokens.append(_Token(_OPERATORS[word], word, pos))
            else:
                tokens.append(_word_token(word, query, pos))
            pos = m.end()
    tokens.append(_Token("END", "", len(query)))
    return tokens


def _word_token(word: str, query: str, pos: int) -> _Token:
    if "~" in word:
        raise _fail("fuzzy matching (word~) is not supported", query, pos + word.index("~"))
    star = word.find("*")
    if star != -1:
        if star != len(word) - 1:
            raise _fail("only a trailing * is supported", query, pos + star)
        if star < 2:
            raise _fail("a wildcard needs at least two letters before the *", query, pos + star)
        return _Token("WORD", word[:-1], pos, prefix=True)
    return _Token("WORD", word, pos)


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _tokenize(query)
        self.i = 0
        self.depth = 0  # open parentheses and NOTs: the parser and evaluate() recurse

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, message: str, position: int | None = None) -> QuerySyntaxError:
        return _fail(message, self.query, self.tok.position if position is None else position)

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise self.fail("the query is empty")
        node = self.parse_or()
        if self.tok.kind == ")":
            raise self.fail("unexpected ')' with no matching '('")
        if self.tok.kind != "END":
            raise self.fail(f"unexpected {self.tok.text!r}")
        return node

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while self.tok.kind == "OR":
            self.i += 1
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children = [self.parse_unary()]
        while True:
            if self.tok.kind == "AND":
                self.i += 1
                children.append(self.parse_unary())
            elif self.tok.kind in ("WORD", "PHRASE", "ENTITY", "FIELD", "MINUS", "(", "NOT"):
                children.append(self.parse_unary())
            else:
                break
        return children[0] if len(children) == 1 else And(tuple(children))

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nested too deeply: at most {MAX_NESTING} levels of ( and NOT")

    def parse_unary(self) -> Node:
        if self.tok.kind in ("NOT", "MINUS"):
            self.i += 1
            self.deeper()
            node = Not(self.parse_unary())
            self.depth -= 1
            return node
        if self.tok.kind == "FIELD":
            name = self.tok.text
            self.i += 1
            if self.tok.kind not in ("WORD", "PHRASE", "ENTITY", "("):
                raise self.fail(f"expected a term or '(' after {name}:")
            return Field(name, self.parse_primary())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.i += 1
            self.deeper()
            node = self.parse_or()
            self.depth -= 1
            if self.tok.kind != ")":
                raise self.fail(
                    "unclosed '(': expected ')' before the end of the query", tok.position
                )
            self.i += 1
            return node
        if tok.kind in ("WORD", "PHRASE"):
            self.i += 1
            return Term(tok.text, tok.position, prefix=tok.prefix, near=tok.near)
        if tok.kind == "ENTITY":
            self.i += 1
            return EntityRef(tok.text, tok.position)
        if tok.kind == "END":
            raise self.fail("expected a term, found the end of the query")
        if tok.kind == ")":
            raise self.fail("expected a term, found ')'")
        raise self.fail(f"expected a term, found operator {tok.text}")


def parse_query(query: str) -> Node:
    """Parse a query; raises :class:`QuerySyntaxError` with the position of the problem."""
    return _Parser(query).parse()


def walk(
    node: Node, *, negated: bool = False, field: str | None = None
) -> Iterator[tuple[Leaf, bool, str | None]]:
    """Every leaf with whether it sits under an odd number of NOTs, and its field scope."""
    if isinstance(node, Term | EntityRef):
        yield node, negated, field
    elif isinstance(node, Not):
        yield from walk(node.child, negated=not negated, field=field)
    elif isinstance(node, Field):
        yield from walk(node.child, negated=negated, field=node.name)
    else:
        for child in node.children:
            yield from walk(child, negated=negated, field=field)


def entity_refs(node: Node) -> set[str]:
    return {leaf.name for leaf, _, _ in walk(node) if isinstance(leaf, EntityRef)}


def evaluate(
    node: Node, holds: Callable[[Leaf, str | None], bool], field: str | None = None
) -> bool:
    """Truth of the query given which leaves hold (in a field, or anywhere when None)."""
    if isinstance(node, Term | EntityRef):
        return holds(node, field)
    if isinstance(node, Not):
        return not evaluate(node.child, holds, field)
    if isinstance(node, Field):
        return evaluate(node.child, holds, node.name)
    if isinstance(node, And):
        return all(evaluate(child, holds, field) for child in node.children)
    return any(evaluate(child, holds, field) for child in node.children)


def to_text(node: Node) -> str:
    """The query written back (normalised), for explanations."""
    if isinstance(node, Term):
        if node.near is not None:
            return f'"{node.text}"~{node.near}'
        return _written(node.text, prefix=node.prefix)
    if isinstance(node, EntityRef):
        return f"@{node.name}"
    if isinstance(node, Field):
        inner = to_text(node.child)
        return f"{node.name}:{inner if isinstance(node.child, Term | EntityRef) else f'({inner})'}"
    if isinstance(node, Not):
        return f"NOT {_grouped(node.child)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(_grouped(child) for child in node.children)


def _written(text: str, *, prefix: bool) -> str:
    """A term as the query would say it: bare when it reads back as the same word, else
    quoted ("AND", "title:", "(" and anything with spaces are phrases)."""
    bare = text + ("*" if prefix else "")
    try:
        tokens = _tokenize(bare)
    except QuerySyntaxError:
        tokens = []
    if len(tokens) == 2 and tokens[0] == _Token("WORD", text, 0, prefix=prefix):
        return bare
    return f'"{text}"'


def _grouped(node: Node) -> str:
    return f"({to_text(node)})" if isinstance(node, And | Or) else to_text(node)

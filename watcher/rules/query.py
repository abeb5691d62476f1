"""The query language: AND, OR, NOT, parentheses, "quoted phrases" and @entity references.

Words side by side mean AND; AND binds tighter than OR; operators are upper case
(a lower-case ``and`` is a word). Parsing is pure and reports the exact position of
the first problem, so ``watcher check`` can point a caret at it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from watcher.exceptions import QuerySyntaxError


@dataclass(frozen=True)
class Term:
    """A word or a phrase, as written in the query."""

    text: str
    position: int


@dataclass(frozen=True)
class EntityRef:
    name: str
    position: int


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Term | EntityRef | Not | And | Or

_OPERATORS = ("AND", "OR", "NOT")
_WORD = re.compile(r'[^\s()"]+')
_ENTITY = re.compile(r"@([A-Za-z0-9_][A-Za-z0-9_.-]*)")


@dataclass(frozen=True)
class _Token:
    kind: str  # WORD PHRASE ENTITY AND OR NOT ( ) END
    text: str
    position: int


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
        elif ch == '"':
            end = query.find('"', pos + 1)
            if end == -1:
                raise QuerySyntaxError("unterminated quote", query=query, position=pos)
            phrase = query[pos + 1 : end]
            if not phrase.strip():
                raise QuerySyntaxError("empty phrase", query=query, position=pos)
            tokens.append(_Token("PHRASE", phrase, pos))
            pos = end + 1
        elif ch == "@":
            m = _ENTITY.match(query, pos)
            if not m:
                raise QuerySyntaxError("expected an entity name after @", query=query, position=pos)
            tokens.append(_Token("ENTITY", m.group(1), pos))
            pos = m.end()
        else:
            m = _WORD.match(query, pos)
            assert m is not None  # any other character starts a word
            word = m.group(0)
            kind = word if word in _OPERATORS else "WORD"
            tokens.append(_Token(kind, word, pos))
            pos = m.end()
    tokens.append(_Token("END", "", len(query)))
    return tokens


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _tokenize(query)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, message: str, position: int | None = None) -> QuerySyntaxError:
        pos = self.tok.position if position is None else position
        return QuerySyntaxError(message, query=self.query, position=pos)

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
            elif self.tok.kind in ("WORD", "PHRASE", "ENTITY", "(", "NOT"):
                children.append(self.parse_unary())
            else:
                break
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_unary(self) -> Node:
        if self.tok.kind == "NOT":
            self.i += 1
            return Not(self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.i += 1
            node = self.parse_or()
            if self.tok.kind != ")":
                raise self.fail(
                    f"expected ')' to close the '(' at position {tok.position}", len(self.query)
                )
            self.i += 1
            return node
        if tok.kind in ("WORD", "PHRASE"):
            self.i += 1
            return Term(tok.text, tok.position)
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


def walk(node: Node, *, negated: bool = False) -> Iterator[tuple[Term | EntityRef, bool]]:
    """Every leaf with whether it sits under an odd number of NOTs."""
    if isinstance(node, Term | EntityRef):
        yield node, negated
    elif isinstance(node, Not):
        yield from walk(node.child, negated=not negated)
    else:
        for child in node.children:
            yield from walk(child, negated=negated)


def entity_refs(node: Node) -> set[str]:
    return {leaf.name for leaf, _ in walk(node) if isinstance(leaf, EntityRef)}


def evaluate(node: Node, holds: Callable[[Term | EntityRef], bool]) -> bool:
    """Truth of the query given which leaves hold."""
    if isinstance(node, Term | EntityRef):
        return holds(node)
    if isinstance(node, Not):
        return not evaluate(node.child, holds)
    if isinstance(node, And):
        return all(evaluate(child, holds) for child in node.children)
    return any(evaluate(child, holds) for child in node.children)

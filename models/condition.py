"""The condition language of a policy's `when`: grammar, parser and evaluation rules.

A condition reads the request's `context`::

    risk_mode == "DEFENSIVE"
    vix > 30 and risk_mode in ("NORMAL", "DEFENSIVE")
    not (market.region == 'EU') or has(override) and override

The text is parsed by a real grammar (`lark`, LALR) into a small tree
(`models.condition_tree`); it is never handed to Python's `eval`. Syntax errors name the
line, the column and what was expected. The full language, and the rule for context keys a
request does not send, are in docs/conditions.md.

The parser lives with the models because the syntax of `when` is part of the wire format:
a policy with a malformed condition is an invalid `PolicyDefinition` wherever it enters
(HTTP, policy files, inline what-if policies, Python).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from models.condition_tree import (
    And,
    Compare,
    ConditionTypeError,
    Has,
    Literal,
    Member,
    Node,
    Not,
    Or,
    Path,
    Truth,
    describe_value,
    kind_of,
)

__all__ = [
    "CONDITION_GRAMMAR",
    "Condition",
    "ConditionSyntaxError",
    "ConditionTypeError",
    "MissingContextError",
    "parse_condition",
]

CONDITION_GRAMMAR = r"""
start: _or

_or: or_ | _and
or_: _and ("or" _and)+
_and: and_ | _unary
and_: _unary ("and" _unary)+
_unary: not_ | _atom
not_: "not" _unary
_atom: compare | member | not_member | has | truth | "(" _or ")"

compare: name OP literal
member: name "in" "(" _literals ")"
not_member: name "not" "in" "(" _literals ")"
has: "has" "(" name ")"
truth: name
_literals: literal ("," literal)* ","?

name: NAME ("." NAME)*
literal: STRING -> text
       | NUMBER -> number
       | TRUE -> true
       | FALSE -> false
       | NULL -> null

TRUE: "true"
FALSE: "false"
NULL: "null"
OP: "==" | "!=" | "<=" | ">=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\\n]|\\.)*"/ | /'(?:[^'\\\n]|\\.)*'/
NUMBER: /-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/

%ignore /[ \t\r\n]+/
"""
"""The grammar, in lark's EBNF. Keywords: and, or, not, in, has, true, false, null."""

MAX_LENGTH = 2000
"""Longest condition accepted, in characters (a condition is a short rule, not a program)."""

MAX_DEPTH = 32
"""Deepest nesting of `not` and of `and`/`or` groups accepted."""

_WORDS = {
    "NAME": "a context name",
    "STRING": "a quoted text",
    "NUMBER": "a number",
    "OP": "a comparison (==, !=, <, <=, >, >=)",
    "$END": "the end of the condition",
}


class ConditionSyntaxError(ValueError):
    """A condition that does not parse, or compares in a way that can never make sense.

    Parameters
    ----------
    line, column
        Where the problem is (1-based).
    message
        What is wrong there and what was expected, in plain words.
    """

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


class MissingContextError(ValueError):
    """The condition's answer needs context keys the request did not send.

    Parameters
    ----------
    paths
        The missing names, sorted.
    guarded
        True when every missing name is tested with `has(...)` but the answer still
        depends on it.
    """

    def __init__(self, paths: list[Path], *, guarded: bool) -> None:
        self.names = [".".join(p) for p in paths]
        super().__init__(f"context lacks {', '.join(self.names)}")
        self.guarded = guarded


@v_args(inline=True)
class _ToTree(Transformer[Token, Node]):
    """Parse tree -> `condition_tree` nodes, checking what the grammar cannot."""

    def start(self, node: Node) -> Node:
        return node

    def or_(self, *items: Node) -> Node:
        return Or(items)

    def and_(self, *items: Node) -> Node:
        return And(items)

    def not_(self, item: Node) -> Node:
        return Not(item)

    def name(self, *parts: Token) -> tuple[Path, Token]:
        return tuple(str(p) for p in parts), parts[0]

    def text(self, token: Token) -> tuple[Literal, Token]:
        body = str(token)[1:-1]
        return re.sub(r"\\(.)", lambda m: m.group(1), body), token

    def number(self, token: Token) -> tuple[Literal, Token]:
        text = str(token)
        value: int | float = int(text) if re.fullmatch(r"-?[0-9]+", text) else float(text)
        if not math.isfinite(value):
            raise ConditionSyntaxError(token.line or 1, token.column or 1, f"{text} is too large")
        return value, token

    def true(self, token: Token) -> tuple[Literal, Token]:
        return True, token

    def false(self, token: Token) -> tuple[Literal, Token]:
        return False, token

    def null(self, token: Token) -> tuple[Literal, Token]:
        return None, token

    def compare(self, name: tuple[Path, Token], op: Token, literal: tuple[Literal, Token]) -> Node:
        value, token = literal
        if str(op) not in ("==", "!=") and kind_of(value) != "number":
            raise ConditionSyntaxError(
                token.line or 1,
                token.column or 1,
                f"`{op}` compares numbers, but {describe_value(value)} is not a number",
            )
        return Compare(name[0], str(op), value)

    def _list(self, name: tuple[Path, Token], literals: tuple[Any, ...]) -> tuple[Literal, ...]:
        values = tuple(v for v, _ in literals)
        kinds = {kind_of(v) for v in values if v is not None}
        if len(kinds) > 1:
            token = name[1]
            raise ConditionSyntaxError(
                token.line or 1,
                token.column or 1,
                f"the list for {'.'.join(name[0])} mixes "
                f"{' and '.join(sorted(kinds))}; use one type (null may join any)",
            )
        return values

    def member(self, name: tuple[Path, Token], *literals: Any) -> Node:
        return Member(name[0], self._list(name, literals))

    def not_member(self, name: tuple[Path, Token], *literals: Any) -> Node:
        return Member(name[0], self._list(name, literals), negated=True)

    def has(self, name: tuple[Path, Token]) -> Node:
        return Has(name[0])

    def truth(self, name: tuple[Path, Token]) -> Node:
        return Truth(name[0])


@cache
def _parser() -> Lark:
    return Lark(CONDITION_GRAMMAR, parser="lalr", maybe_placeholders=False)


def _expected(names: set[str]) -> str:
    """A parser's set of acceptable terminals, in words: `"and", "or" or ")"`."""
    parser = _parser()
    words = []
    for name in sorted(names):
        if name in _WORDS:
            words.append(_WORDS[name])
            continue
        terminal = parser.get_terminal(name)
        words.append(f'"{terminal.pattern.value}"')
    words = sorted(set(words), key=lambda w: (w.startswith('"'), w))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(text: str, exc: UnexpectedInput) -> ConditionSyntaxError:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream is not None else ""
        hint = {
            "=": " (to compare, write ==)",
            "&": " (write and)",
            "|": " (write or)",
            "!": " (write not, or != to compare)",
        }.get(char, "")
        message = f"unexpected character {char!r}{hint}; expected {_expected(exc.allowed)}"
    elif isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        expected = exc.expected if isinstance(exc, UnexpectedEOF) else exc.accepts or exc.expected
        line, column = text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
        message = f"the condition ends too early; expected {_expected(set(expected))}"
    elif isinstance(exc, UnexpectedToken):
        expected = exc.accepts or exc.expected
        message = f"unexpected {str(exc.token)!r}; expected {_expected(set(expected))}"
    else:  # pragma: no cover - lark raises only the three kinds above
        message = str(exc)
    return ConditionSyntaxError(max(line, 1), max(column, 1), message)


def _check_depth(tree: Tree[Token]) -> None:
    """Reject nesting deeper than `MAX_DEPTH` (walked without recursion)."""
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > MAX_DEPTH:
            first = next(node.scan_values(lambda v: isinstance(v, Token)), None)
            line = getattr(first, "line", None) or 1
            column = getattr(first, "column", None) or 1
            raise ConditionSyntaxError(
                line, column, f"nested more than {MAX_DEPTH} levels deep; simplify the condition"
            )
        stack.extend((child, depth + 1) for child in node.children)


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its text and its tree; evaluate it with `applies`."""

    text: str
    root: Node
    guarded: frozenset[Path] = field(default_factory=frozenset)

    def names(self) -> list[str]:
        """Every context name the condition reads, sorted."""
        return sorted(".".join(p) for p in self.root.names())

    def applies(self, context: Mapping[str, Any]) -> bool:
        """Whether the condition holds for `context`.

        Raises `MissingContextError` when it names a key the context lacks (unless the key
        is tested with `has(...)` and the answer does not depend on it), and
        `ConditionTypeError` when a value has a type it cannot be compared as.
        """
        missing: set[Path] = set()
        value = self.root.evaluate(context, missing)
        required = sorted(p for p in missing if not self._is_guarded(p))
        if required:
            raise MissingContextError(required, guarded=False)
        if value is None:
            raise MissingContextError(sorted(missing), guarded=True)
        return value

    def _is_guarded(self, path: Path) -> bool:
        return any(path[: len(g)] == g for g in self.guarded)


@lru_cache(maxsize=1024)
def parse_condition(text: str) -> Condition:
    """Parse `text` into a `Condition`, or raise `ConditionSyntaxError` saying where and why."""
    if not text.strip():
        raise ConditionSyntaxError(1, 1, "the condition is empty; give one or leave `when` out")
    if len(text) > MAX_LENGTH:
        raise ConditionSyntaxError(1, MAX_LENGTH + 1, f"longer than {MAX_LENGTH} characters")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    _check_depth(tree)
    try:
        root = _ToTree().transform(tree)
    except VisitError as exc:  # lark wraps what the transformer raises
        if isinstance(exc.orig_exc, ConditionSyntaxError):
            raise exc.orig_exc from None
        raise
    return Condition(text=text, root=root, guarded=frozenset(root.guarded()))

"""Parser of the custom-expression language: source text -> typed syntax tree.

The grammar is kept here as a string and parsed by lark (LALR). The language has no
attribute access, no assignment and no way to reach Python objects: a name is a weight
vector, an instrument attribute or a function of `FUNCTIONS`, nothing is ever evaluated by
Python's `eval`. Curvature is checked separately (`engine.compile.language.curvature`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from engine.compile.language.nodes import (
    Arith,
    AttributeTest,
    BoolOp,
    Call,
    Comparison,
    Index,
    Mask,
    Name,
    Negate,
    Node,
    Not,
    Number,
    String,
    Tuple,
)

__all__ = ["GRAMMAR", "MAX_LENGTH", "ExpressionError", "parse"]

MAX_LENGTH = 2000
"""Longest expression accepted, in characters."""

GRAMMAR = r"""
?start: test

?test: or_test
?or_test: and_test | or_test "or" and_test -> or_
?and_test: not_test | and_test "and" not_test -> and_
?not_test: comparison | "not" not_test -> not_

?comparison: arith | arith (comp_op arith)+ -> compare
!comp_op: "<=" | ">=" | "<" | ">" | "==" | "!=" | "in" | "not" "in"

?arith: term | arith "+" term -> add | arith "-" term -> sub
?term: factor | term "*" factor -> mul | term "/" factor -> div
?factor: postfix | "-" factor -> neg | "+" factor
?postfix: atom | postfix "[" test "]" -> index
?atom: NUMBER -> number
     | STRING -> string
     | NAME -> name
     | NAME "(" [test ("," test)*] ")" -> call
     | "(" test ")"
     | "(" test "," [test ("," test)*] ")" -> tuple

NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /"[^"\\\n]*"/ | /'[^'\\\n]*'/

%import common.WS
%ignore WS
"""


class ExpressionError(ValueError):
    """An expression is malformed or not convex; `column` (1-based) points at the problem."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _span(source: str, meta: Any) -> str:
    return source[meta.start_pos : meta.end_pos].strip()


@v_args(meta=True)
class _ToNodes(Transformer[Token, Node]):
    """Lark tree -> typed nodes, with the mask/value distinction made here."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def _text(self, meta: Any) -> str:
        return _span(self.source, meta)

    def number(self, meta: Any, children: list[Token]) -> Node:
        return Number(float(children[0]), text=str(children[0]))

    def string(self, meta: Any, children: list[Token]) -> Node:
        return String(str(children[0])[1:-1], text=str(children[0]))

    def name(self, meta: Any, children: list[Token]) -> Node:
        token = children[0]
        if token.startswith("_"):
            raise ExpressionError(f"{token}: names may not start with '_'", column=token.column)
        return Name(str(token), text=str(token))

    def call(self, meta: Any, children: list[Any]) -> Node:
        func, *args = children
        return Call(str(func), tuple(args), text=self._text(meta))

    def tuple(self, meta: Any, children: list[Node]) -> Node:
        return Tuple(tuple(children), text=self._text(meta))

    def neg(self, meta: Any, children: list[Node]) -> Node:
        operand = children[0]
        if isinstance(operand, Number):
            return Number(-operand.value, text=self._text(meta))
        return Negate(operand, text=self._text(meta))

    def _arith(self, op: Any, meta: Any, children: list[Node]) -> Node:
        return Arith(op, children[0], children[1], text=self._text(meta))

    def add(self, meta: Any, children: list[Node]) -> Node:
        return self._arith("+", meta, children)

    def sub(self, meta: Any, children: list[Node]) -> Node:
        return self._arith("-", meta, children)

    def mul(self, meta: Any, children: list[Node]) -> Node:
        return self._arith("*", meta, children)

    def div(self, meta: Any, children: list[Node]) -> Node:
        return self._arith("/", meta, children)

    def comp_op(self, meta: Any, children: list[Token]) -> str:
        return " ".join(str(c) for c in children)

    def compare(self, meta: Any, children: list[Any]) -> Node:
        return Comparison(tuple(children[0::2]), tuple(children[1::2]), text=self._text(meta))

    def index(self, meta: Any, children: list[Node]) -> Node:
        base, key = children
        if not isinstance(key, String):
            key = _mask(key)
        return Index(base, key, text=self._text(meta))

    def and_(self, meta: Any, children: list[Node]) -> Node:
        return BoolOp("and", _mask(children[0]), _mask(children[1]), text=self._text(meta))

    def or_(self, meta: Any, children: list[Node]) -> Node:
        return BoolOp("or", _mask(children[0]), _mask(children[1]), text=self._text(meta))

    def not_(self, meta: Any, children: list[Node]) -> Node:
        return Not(_mask(children[0]), text=self._text(meta))


def _literal(node: Node, context: str) -> float | str:
    if (
        isinstance(node, Number)
        and node.value.is_integer()
        and not any(c in node.text for c in ".eE")
    ):
        return int(node.value)  # `rating == 1` also matches the text "1", as `where` does
    if isinstance(node, Number | String):
        return node.value
    raise ExpressionError(f"{context}: compare an attribute with a number or a string literal")


def _mask(node: Node) -> Mask:
    """A selection of symbols: attribute tests joined by `and`, `or`, `not`."""
    if isinstance(node, Mask):
        return node
    if not isinstance(node, Comparison):
        raise ExpressionError(
            f'[{node.text}]: an index is a symbol in quotes (w["AAPL"]) or a condition on '
            f'instrument attributes (w[sector == "Energy"])'
        )
    if len(node.ops) != 1:
        raise ExpressionError(f"{node.text}: a condition compares one attribute once")
    left, right = node.operands
    op = node.ops[0]
    if isinstance(left, Name) and left.name not in ("w", "w0", "b"):
        attribute, other = left.name, right
    elif isinstance(right, Name) and right.name not in ("w", "w0", "b") and op in ("==", "!="):
        attribute, other = right.name, left
    else:
        raise ExpressionError(
            f"{node.text}: a condition selects symbols by an instrument attribute "
            f'(sector == "Energy", beta > 1); it cannot depend on the weights'
        )
    if op in ("in", "not in"):
        if not isinstance(other, Tuple):
            raise ExpressionError(f'{node.text}: "in" needs a list in parentheses ("US", "CA")')
        values = tuple(_literal(item, node.text) for item in other.items)
    else:
        value = _literal(other, node.text)
        if op in ("<", "<=", ">", ">=") and isinstance(value, str):
            raise ExpressionError(f"{node.text}: {op} compares numbers, not strings")
        values = (value,)
    return AttributeTest(attribute, op, values, text=node.text)  # type: ignore[arg-type]


def _syntax_error(source: str, exc: LarkError) -> ExpressionError:
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        return ExpressionError(
            f"syntax error: the expression ends too early (after {source.strip()!r}); "
            "something is missing at the end",
            column=len(source.rstrip()) + 1,
        )
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = source[pos] if pos < len(source) else ""
        return ExpressionError(
            f"syntax error at column {exc.column}: unexpected character {char!r}",
            column=exc.column,
        )
    if isinstance(exc, UnexpectedToken):
        return ExpressionError(
            f"syntax error at column {exc.column}: unexpected {str(exc.token)!r}",
            column=exc.column,
        )
    return ExpressionError(f"syntax error: {exc}")


@lru_cache(maxsize=512)
def parse(source: str) -> Node:
    """The syntax tree of `source`, or an `ExpressionError` saying what is wrong and where."""
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    if not source.strip():
        raise ExpressionError("the expression is empty")
    try:
        tree = _parser().parse(source)
    except LarkError as exc:
        raise _syntax_error(source, exc) from None
    try:
        node: Node = _ToNodes(source).transform(tree)
    except LarkError as exc:  # errors raised inside the transformer arrive wrapped
        original = getattr(exc, "orig_exc", None)
        if isinstance(original, ExpressionError):
            raise original from None
        raise
    if isinstance(node, Mask):
        raise ExpressionError(
            f"{node.text}: a condition on attributes selects symbols; use it inside w[...]"
        )
    return node

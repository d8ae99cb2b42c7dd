"""The typed syntax tree of a custom expression (see docs/expressions.md).

Every node keeps `text`, the source it was parsed from, so that messages quote what the
author wrote. Nodes are immutable and hashable: masks are compared by value to decide
whether two vectors run over the same symbols.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "VECTORS",
    "Arith",
    "AttributeTest",
    "BoolOp",
    "Call",
    "Comparison",
    "Constraint",
    "Index",
    "Mask",
    "Name",
    "Negate",
    "Node",
    "Not",
    "Number",
    "String",
    "Tuple",
]

VECTORS = ("w", "w0", "b")
"""Post-trade weights, pre-trade weights and benchmark weights."""

CompareOp = Literal["<=", ">=", "<", ">", "==", "!="]


@dataclass(frozen=True)
class Node:
    """Base of every node; `text` is the source span the node was parsed from."""

    text: str = field(compare=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    """A numeric literal."""

    value: float


@dataclass(frozen=True)
class String(Node):
    """A string literal (a symbol in an index, a value in a mask)."""

    value: str


@dataclass(frozen=True)
class Tuple(Node):
    """A parenthesized list of literals, the right side of `in`."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Name(Node):
    """`w`, `w0`, `b`, or an instrument field / attribute (a vector over the symbols)."""

    name: str


@dataclass(frozen=True)
class Negate(Node):
    """Unary minus."""

    operand: Node


@dataclass(frozen=True)
class Arith(Node):
    """`left op right` for `+ - * /`."""

    op: Literal["+", "-", "*", "/"]
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    """A function call `func(args...)`."""

    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Mask(Node):
    """Base of boolean selections over symbols (only inside `[...]`)."""


@dataclass(frozen=True)
class AttributeTest(Mask):
    """`attribute op literal`, `attribute in (...)` or `attribute not in (...)`."""

    attribute: str
    op: CompareOp | Literal["in", "not in"]
    values: tuple[float | str, ...]


@dataclass(frozen=True)
class BoolOp(Mask):
    """`left and right`, `left or right`."""

    op: Literal["and", "or"]
    left: Mask
    right: Mask


@dataclass(frozen=True)
class Not(Mask):
    """`not operand`."""

    operand: Mask


@dataclass(frozen=True)
class Index(Node):
    """`base[symbol]` (a scalar) or `base[mask]` (the vector over the selected symbols)."""

    base: Node
    key: String | Mask


@dataclass(frozen=True)
class Comparison(Node):
    """A chain `operands[0] ops[0] operands[1] (ops[1] operands[2])` before analysis."""

    operands: tuple[Node, ...]
    ops: tuple[str, ...]


@dataclass(frozen=True)
class Constraint:
    """An analysed constraint: `lower <= body <= upper` (either bound may be absent).

    `body` depends on the weights; the bounds are numbers. When both sides of a comparison
    depend on the weights, `body` is `left - right` and the bound is 0.
    """

    text: str
    body: Node
    lower: float | None
    upper: float | None
    uses_benchmark: bool
    needs_cone: bool

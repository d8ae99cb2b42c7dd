"""Binding an analysed expression to one request: its universe and its data.

The universe U of an expression is V (the decision's variables), then, in sorted order,
the benchmark names outside V when the expression uses `b`, and the symbols it names in
`w["..."]` that are outside V. Weights of symbols outside V are fixed at 0 (they cannot
be traded in this decision); their pre-trade weight is 0 too, since they are not held.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.compile.context import IGNORED, CompileContext
from engine.compile.language.evaluate import Bindings
from engine.compile.language.nodes import (
    AttributeTest,
    BoolOp,
    Call,
    Constraint,
    Index,
    Mask,
    Name,
    Node,
    Not,
    String,
)
from engine.errors import MissingDataError, UnknownSymbolError

__all__ = ["bind", "universe_of"]


def _nodes(node: Node) -> list[Node]:
    out = [node]
    for child in vars(node).values():
        items = child if isinstance(child, tuple) else (child,)
        out += [n for item in items if isinstance(item, Node) for n in _nodes(item)]
    return out


def universe_of(constraint: Constraint, ctx: CompileContext) -> tuple[str, ...]:
    """U: V, then benchmark names (when `b` is used) and named symbols outside V."""
    snap = ctx.snap
    bench = ctx.benchmark_required() if constraint.uses_benchmark else {}
    named = [
        n.key.value
        for n in _nodes(constraint.body)
        if isinstance(n, Index) and isinstance(n.key, String)
    ]
    for symbol in named:
        if symbol not in snap.instruments and symbol not in snap.benchmark:
            raise UnknownSymbolError(
                "portfolio_state.instruments",
                f"{ctx.where()} names the symbol {symbol!r}, which is neither an instrument "
                "of the request nor a benchmark name",
            )
    extra = {s for s in [*bench, *named] if s not in snap.index}
    return snap.symbols + tuple(sorted(extra))


def _test(test: AttributeTest, value: Any) -> bool:
    if test.op in ("==", "in", "!=", "not in"):
        hit = any(value == v or str(value) == str(v) for v in test.values)
        return hit if test.op in ("==", "in") else not hit
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False  # an ordering needs a number; a text value is simply not selected
    limit = float(test.values[0])
    return {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit}[
        test.op
    ]


def _select(mask: Mask, values: dict[str, Any]) -> bool:
    if isinstance(mask, AttributeTest):
        return _test(mask, values[mask.attribute])
    if isinstance(mask, BoolOp):
        left, right = _select(mask.left, values), _select(mask.right, values)
        return (left and right) if mask.op == "and" else (left or right)
    assert isinstance(mask, Not)
    return not _select(mask.operand, values)


def _attributes_of(mask: Mask) -> list[str]:
    if isinstance(mask, AttributeTest):
        return [mask.attribute]
    if isinstance(mask, BoolOp):
        return _attributes_of(mask.left) + _attributes_of(mask.right)
    assert isinstance(mask, Not)
    return _attributes_of(mask.operand)


def _positions(mask: Mask, universe: tuple[str, ...], ctx: CompileContext, missing: Any) -> Any:
    """Positions in U selected by `mask`; a symbol lacking a read attribute (ignored) drops out."""
    chosen = []
    names = dict.fromkeys(_attributes_of(mask))
    for i, symbol in enumerate(universe):
        values = {name: ctx.attribute(symbol, name, missing) for name in names}
        if any(v is IGNORED for v in values.values()):
            continue
        if _select(mask, values):
            chosen.append(i)
    return np.array(chosen, dtype=int)


def bind(
    constraint: Constraint, ctx: CompileContext, universe: tuple[str, ...], missing: Any
) -> Bindings:
    """The data `constraint` reads, over `universe`, honouring the `missing` rule."""
    nodes = _nodes(constraint.body)
    bench = ctx.snap.benchmark if constraint.uses_benchmark else {}
    bindings = Bindings(
        symbols=universe,
        n_v=ctx.snap.n,
        b=np.array([bench.get(s, 0.0) for s in universe], dtype=float),
        positions={s: i for i, s in enumerate(universe)},
    )
    for node in nodes:
        if isinstance(node, Name) and node.name not in ("w", "w0", "b"):
            if node.name not in bindings.attributes:
                values = [ctx.numeric_attribute(s, node.name, missing) for s in universe]
                bindings.attributes[node.name] = np.array(
                    [0.0 if v is IGNORED else v for v in values], dtype=float
                )
        elif isinstance(node, Index) and isinstance(node.key, Mask):
            if node.key not in bindings.masks:
                bindings.masks[node.key] = _positions(node.key, universe, ctx, missing)
        elif isinstance(node, Call) and node.func == "risk" and bindings.F is None:
            factors = ctx.risk(universe)
            bindings.F, bindings.d = factors.F, factors.d
    for node in nodes:
        if isinstance(node, Call) and node.func in ("max", "min"):
            _require_nonempty(node, bindings, ctx)
    return bindings


def _require_nonempty(node: Call, bindings: Bindings, ctx: CompileContext) -> None:
    """Refuse max / min of an empty selection (it has no value) instead of guessing one."""
    for arg in node.args:
        for inner in _nodes(arg):
            if isinstance(inner, Index) and isinstance(inner.key, Mask):
                if len(bindings.masks[inner.key]) == 0:
                    raise MissingDataError(
                        "portfolio_state.instruments",
                        f"{ctx.where()}: {inner.text} selects no symbol of this request, so "
                        f"{node.text} has no value",
                    )

"""One evaluator of the syntax tree, two back ends: numpy (row values) and cvxpy (solver).

Both forms come from the same walk over the same tree with the same bound data, so they
cannot drift apart; tests also compare them at random weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import cvxpy as cp
import numpy as np

from engine.compile.language.nodes import (
    Arith,
    Call,
    Index,
    Mask,
    Name,
    Negate,
    Node,
    Number,
    String,
)
from models.typing import FloatArray

__all__ = ["Bindings", "CvxpyBackend", "NumpyBackend", "Vectors", "evaluate", "selection"]

Vectors = dict[str, Any]


@dataclass
class Bindings:
    """The request's data over the expression's universe U (V first, then extra symbols).

    `b` are the benchmark weights over U; `attributes` numeric vectors over U; `masks` the
    positions (in U) each condition selects; `positions` where each symbol named in the
    expression sits in U; `F`, `d` the risk model's square-root factors over U.
    """

    symbols: tuple[str, ...]
    n_v: int
    b: FloatArray
    attributes: dict[str, FloatArray] = field(default_factory=dict)
    masks: dict[Mask, np.ndarray] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    F: FloatArray | None = None
    d: FloatArray | None = None


class Backend(Protocol):
    """The operations the evaluator needs; numpy and cvxpy implement them."""

    def multiply(self, a: Any, b: Any) -> Any: ...
    def reduce(self, func: str, x: Any, k: int) -> Any: ...
    def elementwise(self, func: str, args: list[Any]) -> Any: ...
    def risk(self, x: Any, F: FloatArray, d: FloatArray | None) -> Any: ...


def _empty_reduction(func: str, where: str) -> float:
    if func in ("max", "min"):
        raise ValueError(f"{where}: {func} of a selection with no symbols is undefined")
    return 0.0


class NumpyBackend:
    """Row values with numpy."""

    def multiply(self, a: Any, b: Any) -> Any:
        """Entrywise (or scalar) product."""
        return np.multiply(a, b)

    def reduce(self, func: str, x: Any, k: int) -> Any:
        """A vector reduced to one number by `func`."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        if func == "sum":
            return float(np.sum(x))
        if x.size == 0:
            return _empty_reduction(func, func)
        ordered = np.sort(x)
        table = {
            "max": lambda: ordered[-1],
            "min": lambda: ordered[0],
            "sum_largest": lambda: ordered[::-1][:k].sum(),
            "sum_smallest": lambda: ordered[:k].sum(),
            "norm1": lambda: np.abs(x).sum(),
            "norm2": lambda: np.sqrt(np.sum(x**2)),
        }
        return float(table[func]())

    def elementwise(self, func: str, args: list[Any]) -> Any:
        """`func` applied entry by entry."""
        if func == "abs":
            return np.abs(args[0])
        if func == "pos":
            return np.maximum(args[0], 0.0)
        if func == "neg":
            return np.maximum(-np.asarray(args[0]), 0.0)
        combine = np.maximum if func == "max" else np.minimum
        out = args[0]
        for a in args[1:]:
            out = combine(out, a)
        return out

    def risk(self, x: Any, F: FloatArray, d: FloatArray | None) -> Any:
        """Risk: sqrt(x' (F F' + diag(d^2)) x)."""
        total = float(np.sum((F.T @ x) ** 2))
        if d is not None:
            total += float(np.sum((d * x) ** 2))
        return float(np.sqrt(total))


class CvxpyBackend:
    """The same rows as cvxpy expressions (of a variable plus the `w0` Parameter)."""

    def multiply(self, a: Any, b: Any) -> Any:
        """Entrywise (or scalar) product."""
        return cp.multiply(a, b)

    def reduce(self, func: str, x: Any, k: int) -> Any:
        """A vector reduced to one number by `func`."""
        size = int(np.prod(x.shape)) if hasattr(x, "shape") else 1
        if size == 0:
            return cp.Constant(_empty_reduction(func, func))
        if func in ("sum_largest", "sum_smallest") and k >= size:
            return cp.sum(x)  # every entry: a plain sum (no degenerate sum_largest)
        table = {
            "sum": lambda: cp.sum(x),
            "max": lambda: cp.max(x),
            "min": lambda: cp.min(x),
            "sum_largest": lambda: cp.sum_largest(x, k),
            "sum_smallest": lambda: cp.sum_smallest(x, k),
            "norm1": lambda: cp.norm(x, 1),
            "norm2": lambda: cp.norm(x, 2),
        }
        return table[func]()

    def elementwise(self, func: str, args: list[Any]) -> Any:
        """`func` applied entry by entry."""
        if func == "abs":
            return cp.abs(args[0])
        if func == "pos":
            return cp.pos(args[0])
        if func == "neg":
            return cp.neg(args[0])
        return (cp.maximum if func == "max" else cp.minimum)(*args)

    def risk(self, x: Any, F: FloatArray, d: FloatArray | None) -> Any:
        """Risk: sqrt(x' (F F' + diag(d^2)) x)."""
        if x.shape[0] == 0:
            return cp.Constant(0.0)
        parts = [F.T @ x]
        if d is not None:
            parts.append(cp.multiply(d, x))
        return cp.norm(cp.hstack(parts) if len(parts) > 1 else parts[0], 2)


def selection(node: Node, bindings: Bindings) -> np.ndarray | None:
    """Positions in U that the vector `node` runs over (None: all of U)."""
    if isinstance(node, Index) and isinstance(node.key, Mask):
        return bindings.masks[node.key]
    for child in vars(node).values():
        items = child if isinstance(child, tuple) else (child,)
        for item in items:
            if isinstance(item, Node) and not isinstance(item, Mask):
                found = selection(item, bindings)
                if found is not None:
                    return found
    return None


def _call(node: Call, w: Vectors, bindings: Bindings, backend: Backend) -> Any:
    func = node.func
    if func == "risk":
        assert bindings.F is not None
        idx = selection(node.args[0], bindings)
        F = bindings.F if idx is None else bindings.F[idx]
        d = bindings.d if idx is None or bindings.d is None else bindings.d[idx]
        return backend.risk(evaluate(node.args[0], w, bindings, backend), F, d)
    if func in ("sum_largest", "sum_smallest"):
        k = int(node.args[1].value) if isinstance(node.args[1], Number) else 0
        return backend.reduce(func, evaluate(node.args[0], w, bindings, backend), k)
    args = [evaluate(a, w, bindings, backend) for a in node.args]
    if func in ("sum", "norm1", "norm2") or (func in ("max", "min") and len(args) == 1):
        return backend.reduce(func, args[0], 0)
    return backend.elementwise(func, args)


def evaluate(node: Node, w: Vectors, bindings: Bindings, backend: Backend) -> Any:
    """Value of `node`; `w` holds the post- and pre-trade weights over U ("w", "w0").

    They are arrays for the numpy back end, cvxpy expressions for the cvxpy one (where
    `w0` is a Parameter, so the compiled problem serves every request of its structure).
    """
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Name):
        if node.name in ("w", "w0"):
            return w[node.name]
        if node.name == "b":
            return bindings.b
        return bindings.attributes[node.name]
    if isinstance(node, Negate):
        return -evaluate(node.operand, w, bindings, backend)
    if isinstance(node, Arith):
        left = evaluate(node.left, w, bindings, backend)
        right = evaluate(node.right, w, bindings, backend)
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return backend.multiply(left, right)
        return backend.multiply(left, 1.0 / right)
    if isinstance(node, Index):
        base = evaluate(node.base, w, bindings, backend)
        if isinstance(node.key, String):
            return base[bindings.positions[node.key.value]]
        return base[bindings.masks[node.key]]
    if isinstance(node, Call):
        return _call(node, w, bindings, backend)
    raise TypeError(f"cannot evaluate {node.text}")  # analysis rejects every other node

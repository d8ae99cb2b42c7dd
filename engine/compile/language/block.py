"""`ExpressionBlock`: one custom-expression row, numeric and cvxpy forms from one tree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import Block, Form, Params, digest
from engine.compile.language.curvature import info
from engine.compile.language.evaluate import (
    Bindings,
    CvxpyBackend,
    NumpyBackend,
    evaluate,
    selection,
)
from engine.compile.language.nodes import Arith, Call, Constraint, Index, Name, Negate, Node, String
from engine.compile.representations import Representation
from models.typing import FloatArray

if TYPE_CHECKING:
    from engine.compile.representations import ExportForms

__all__ = ["ExpressionBlock"]

_NUMPY = NumpyBackend()
_CVXPY = CvxpyBackend()


@dataclass
class ExpressionBlock(Block):
    r"""One row: the value of a custom expression's body at the weights.

    .. math:: v(w) = e(P w, P w^0), \quad P: V \to U \text{ (extra symbols at 0)}

    The cvxpy form has one Parameter, `w0`; every other number (attribute values, masks,
    benchmark, risk factors) is a constant of the compiled problem and part of its
    structure key, so a request with different data compiles its own problem.
    """

    constraint: Constraint
    bindings: Bindings
    w0: FloatArray
    _embed: sp.csr_matrix = field(init=False, repr=False)

    representations: ClassVar[frozenset[Representation]] = frozenset({Representation.EXPORT})
    """Only the export: every other stage evaluates the row whole (`values`, `expression`)."""

    def __post_init__(self) -> None:
        u, n = len(self.bindings.symbols), self.bindings.n_v
        self._embed = sp.csr_matrix(sp.eye(u, n))

    @property
    def rows(self) -> int:
        """One row."""
        return 1

    @property
    def needs_cone(self) -> bool:
        """True when the expression uses norm2 or risk."""
        return self.constraint.needs_cone

    def _vectors(self, w: FloatArray) -> dict[str, Any]:
        return {"w": self._embed @ w, "w0": self._embed @ self.w0}

    def values(self, w: FloatArray) -> FloatArray:
        """The row value at weights `w` over V."""
        value = evaluate(self.constraint.body, self._vectors(w), self.bindings, _NUMPY)
        return np.array([float(value)])

    def structure(self) -> tuple[Any, ...]:
        """The text, the universe and a digest of every number the cvxpy form holds."""
        b = self.bindings
        data = [b.b, *b.attributes.values(), *b.masks.values()]
        data += [x for x in (b.F, b.d) if x is not None]
        names = (tuple(b.attributes), tuple(m.text for m in b.masks))
        return ("expression", self.constraint.text, b.n_v, b.symbols, names, digest(*data))

    def declare(self) -> Params:
        """The `w0` Parameter."""
        return {"w0": cp.Parameter(self.bindings.n_v, name="w0")}

    def fill(self, params: Params, w0: FloatArray) -> None:
        """Set `w0`."""
        params["w0"].value = w0

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        """The row in cvxpy, over the weight change `delta`."""
        embed = self._embed
        vectors = {"w": embed @ (delta + params["w0"]), "w0": embed @ params["w0"]}
        value = evaluate(self.constraint.body, vectors, self.bindings, _CVXPY)
        return cp.reshape(value, (1,), order="C")

    def gradient(self, w: FloatArray) -> FloatArray:
        """A (sub)gradient of the row at `w`, through cvxpy's atoms; zero where it has none."""
        x = cp.Variable(self.bindings.n_v)
        x.value = np.asarray(w, dtype=float)
        vectors = {"w": self._embed @ x, "w0": self._embed @ self.w0}
        expr = evaluate(self.constraint.body, vectors, self.bindings, _CVXPY)
        grad = expr.grad.get(x) if isinstance(expr, cp.Expression) else None
        if grad is None:
            return np.zeros(self.bindings.n_v)
        dense = grad.toarray() if sp.issparse(grad) else np.asarray(grad)
        return np.asarray(dense, dtype=float).ravel()

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        """Lipschitz bound of the row for moves of at most `eps` per weight."""
        spread = _Spread(self.bindings, self._vectors(np.zeros(self.bindings.n_v)))
        step = self._embed @ np.asarray(eps, dtype=float)
        return np.array([float(np.sum(spread.of(self.constraint.body, step)))])

    def export(self, forms: ExportForms[Form]) -> Form:
        """The conic canonical form of the row (cvxpy's)."""
        return forms.expression(self)


class _Spread:
    """How far each entry of a sub-expression can move when each weight moves by `step`.

    Lipschitz bounds of each operation, composed along the tree.
    """

    def __init__(self, bindings: Bindings, vectors: dict[str, Any]) -> None:
        self.bindings = bindings
        self.vectors = vectors

    def _constant(self, node: Node) -> Any:
        return evaluate(node, self.vectors, self.bindings, _NUMPY)

    def of(self, node: Node, step: FloatArray) -> Any:
        if isinstance(node, Name):
            return step if node.name == "w" else 0.0
        if isinstance(node, Negate):
            return self.of(node.operand, step)
        if isinstance(node, Arith):
            return self._arith(node, step)
        if isinstance(node, Index):
            moved = self.of(node.base, step)
            if np.isscalar(moved):
                return moved
            key = node.key
            where = (
                self.bindings.positions[key.value]
                if isinstance(key, String)
                else self.bindings.masks[key]
            )
            return moved[where]
        if isinstance(node, Call):
            return self._call(node, step)
        return 0.0  # a number

    def _arith(self, node: Arith, step: FloatArray) -> Any:
        if node.op in ("+", "-"):
            return self.of(node.left, step) + self.of(node.right, step)
        left_varies, right_varies = info(node.left).varies, info(node.right).varies
        if not (left_varies or right_varies):
            return 0.0
        if node.op == "/":
            return self.of(node.left, step) / abs(self._constant(node.right))
        varying, factor = (node.left, node.right) if left_varies else (node.right, node.left)
        return np.abs(self._constant(factor)) * self.of(varying, step)

    def _call(self, node: Call, step: FloatArray) -> Any:
        moved = [self.of(a, step) for a in node.args]
        first = np.atleast_1d(np.asarray(moved[0], dtype=float))
        func = node.func
        if func in ("abs", "pos", "neg"):
            return moved[0]
        if func in ("max", "min"):
            if len(moved) == 1:
                return float(first.max(initial=0.0))
            out = moved[0]
            for m in moved[1:]:
                out = np.maximum(out, m)
            return out
        if func in ("sum", "norm1"):
            return float(first.sum())
        if func == "norm2":
            return float(np.sqrt(np.sum(first**2)))
        if func in ("sum_largest", "sum_smallest"):
            k = int(node.args[1].value)  # type: ignore[attr-defined]
            return float(np.sort(first)[::-1][:k].sum())
        return self._risk(node, first)

    def _risk(self, node: Call, moved: FloatArray) -> float:
        # Triangle inequality: |r(x + e) - r(x)| <= sum_i |e_i| ||L' e_i||, L L' = Sigma.
        b = self.bindings
        assert b.F is not None
        idx = selection(node.args[0], b)
        F = b.F if idx is None else b.F[idx]
        columns = np.sum(F**2, axis=1)
        if b.d is not None:
            columns = columns + (b.d if idx is None else b.d[idx]) ** 2
        moved = np.broadcast_to(moved, columns.shape)
        return float(np.sqrt(columns) @ moved)

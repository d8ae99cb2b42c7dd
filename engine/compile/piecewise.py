"""Piecewise-linear (and piecewise-constant) row blocks of the rules that need them.

- `CappedSumBlock`: an affine part plus a sum of capped group weights (concave; a `>=` row
  on it is convex: the 1940 Act diversified basket).
- `PositivePartSumBlock`: a sum of positive parts of group weights (convex; a `<=` row on it
  is convex: the restriction that encodes the UCITS 40% aggregate).
- `AboveThresholdSumBlock`: the total weight of the groups above a threshold (neither
  convex nor continuous: the exact UCITS 40% rule). It has exact numeric values for the
  checker and no cvxpy form; its row set carries a convex `restriction` instead.
- `OpenCountBlock`: the number of open positions (piecewise constant; the exact
  `max_positions` rule), likewise checked exactly and solved through a restriction.

Group weights are `y = G w` with a 0/1 membership matrix `G` (one row per group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import Block, Form, Params, digest
from engine.compile.representations import Representation
from engine.tolerances import OPEN_POSITION, THRESHOLD_TOLERANCE
from models.typing import FloatArray

if TYPE_CHECKING:
    from engine.compile.representations import BatchForms, ExportForms, TrackerForms

__all__ = [
    "THRESHOLD_TOLERANCE",
    "AboveThresholdSumBlock",
    "CappedSumBlock",
    "ExactOnlyBlock",
    "OpenCountBlock",
    "PositivePartSumBlock",
]


def _group_weights(G: sp.spmatrix | FloatArray, w: FloatArray) -> FloatArray:
    return np.asarray(G @ w, dtype=float).ravel()


def _group_steps(G: sp.spmatrix | FloatArray, eps: FloatArray) -> FloatArray:
    return np.asarray(abs(G) @ eps, dtype=float).ravel()


@dataclass
class CappedSumBlock(Block):
    r"""One row: an affine part plus the group weights, each capped.

    .. math:: v(w) = a^T w + k + \sum_g \min\big((G w)_g, \mathrm{cap}_g\big)

    Concave in w (a sum of minima of affine functions), so `v(w) >= limit` is convex. The
    caps are Parameters (they may depend on prices and NAV).
    """

    a: FloatArray
    k: float
    G: sp.spmatrix
    cap: FloatArray

    representations: ClassVar[frozenset[Representation]] = frozenset(
        {Representation.TRACKER, Representation.EXPORT, Representation.BATCH}
    )

    @property
    def rows(self) -> int:
        return 1

    def values(self, w: FloatArray) -> FloatArray:
        capped = np.minimum(_group_weights(self.G, w), self.cap)
        return np.array([float(self.a @ w) + self.k + float(capped.sum())])

    def structure(self) -> tuple[Any, ...]:
        return ("capped_sum", digest(self.a), digest(self.G), self.G.shape)

    def declare(self) -> Params:
        groups = self.G.shape[0]
        return {
            "offset": cp.Parameter(name="offset"),
            "y0": cp.Parameter(groups, name="y0"),
            "cap": cp.Parameter(groups, name="cap"),
        }

    def fill(self, params: Params, w0: FloatArray) -> None:
        params["offset"].value = float(self.a @ w0) + self.k
        params["y0"].value = _group_weights(self.G, w0)
        params["cap"].value = np.asarray(self.cap, dtype=float)

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        total = self.a @ delta + params["offset"]
        if self.G.shape[0] > 0:
            groups = sp.csr_matrix(self.G) @ delta + params["y0"]
            total = total + cp.sum(cp.minimum(groups, params["cap"]))
        return cp.reshape(total, (1,), order="C")

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        # min(., cap) is 1-Lipschitz.
        return np.array([float(np.abs(self.a) @ eps) + float(_group_steps(self.G, eps).sum())])

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        return (
            forms.capped_sum(self) if self._values_are(CappedSumBlock) else forms.unsupported(self)
        )

    def export(self, forms: ExportForms[Form]) -> Form:
        return forms.capped_sum(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        return (
            forms.capped_sum(self) if self._values_are(CappedSumBlock) else forms.unsupported(self)
        )


@dataclass
class PositivePartSumBlock(Block):
    r"""One row: the sum of the positive parts of shifted group weights.

    .. math:: v(w) = \sum_g \max\big((G w)_g + c_g, 0\big)

    Convex in w. The shifts `c` vary per request (Parameters).
    """

    G: sp.spmatrix
    c: FloatArray

    representations: ClassVar[frozenset[Representation]] = frozenset(
        {Representation.TRACKER, Representation.EXPORT, Representation.BATCH}
    )

    @property
    def rows(self) -> int:
        return 1

    def values(self, w: FloatArray) -> FloatArray:
        return np.array([float(np.maximum(_group_weights(self.G, w) + self.c, 0.0).sum())])

    def structure(self) -> tuple[Any, ...]:
        return ("positive_part_sum", digest(self.G), self.G.shape)

    def declare(self) -> Params:
        return {"offset": cp.Parameter(self.G.shape[0], name="offset")}

    def fill(self, params: Params, w0: FloatArray) -> None:
        params["offset"].value = _group_weights(self.G, w0) + self.c

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        if self.G.shape[0] == 0:
            return cp.reshape(cp.Constant(0.0), (1,), order="C")
        groups = sp.csr_matrix(self.G) @ delta + params["offset"]
        return cp.reshape(cp.sum(cp.pos(groups)), (1,), order="C")

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        return np.array([float(_group_steps(self.G, eps).sum())])

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        return (
            forms.positive_part_sum(self)
            if self._values_are(PositivePartSumBlock)
            else forms.unsupported(self)
        )

    def export(self, forms: ExportForms[Form]) -> Form:
        return forms.positive_part_sum(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        return (
            forms.positive_part_sum(self)
            if self._values_are(PositivePartSumBlock)
            else forms.unsupported(self)
        )


class ExactOnlyBlock(Block):
    """A rule checked exactly that has no cvxpy form (it is not convex).

    The checker evaluates its `values`; the adjuster solves with the row set's convex
    `restriction` (`Layout.for_solver`) instead, so the cvxpy form is never asked for.
    """

    what: ClassVar[str] = "this rule"
    """What the rows measure, for the error should a cvxpy form be asked for."""

    def declare(self) -> Params:
        return {}

    def fill(self, params: Params, w0: FloatArray) -> None:
        return None

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        raise TypeError(
            f"{self.what} is not convex and has no cvxpy form; solve with the row set's "
            "restriction (Layout.for_solver)"
        )


@dataclass
class AboveThresholdSumBlock(ExactOnlyBlock):
    r"""One row: the total weight of the groups whose weight exceeds a threshold.

    .. math:: v(w) = \sum_g (G w)_g \; [\, (G w)_g > \theta + \epsilon \,]

    with :math:`\epsilon` = `THRESHOLD_TOLERANCE`. Not convex (not even continuous), so this
    block has no cvxpy form: the checker evaluates it exactly and the adjuster solves with the
    row set's `restriction`.
    """

    G: sp.spmatrix
    threshold: float

    representations: ClassVar[frozenset[Representation]] = frozenset(
        {Representation.TRACKER, Representation.BATCH}
    )
    what: ClassVar[str] = "the total weight above a threshold"

    @property
    def rows(self) -> int:
        return 1

    def above(self, w: FloatArray) -> FloatArray:
        """0/1 per group: above the threshold at `w`."""
        y = _group_weights(self.G, w)
        return np.asarray(y > self.threshold + THRESHOLD_TOLERANCE, dtype=float)

    def values(self, w: FloatArray) -> FloatArray:
        y = _group_weights(self.G, w)
        return np.array([float(y[y > self.threshold + THRESHOLD_TOLERANCE].sum())])

    def structure(self) -> tuple[Any, ...]:
        return ("above_threshold", digest(self.G), self.G.shape, self.threshold)

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        # A group that stays on one side moves by at most its step s_g; one that crosses
        # the threshold jumps between 0 and a weight within s_g of it.
        steps = _group_steps(self.G, eps)
        moving = steps > 0
        jumps = self.threshold + THRESHOLD_TOLERANCE
        return np.array([float(steps[moving].sum() + np.count_nonzero(moving) * abs(jumps))])

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        return (
            forms.above_threshold(self)
            if self._values_are(AboveThresholdSumBlock)
            else forms.unsupported(self)
        )

    def batch(self, forms: BatchForms[Form]) -> Form:
        return (
            forms.above_threshold(self)
            if self._values_are(AboveThresholdSumBlock)
            else forms.unsupported(self)
        )


@dataclass
class OpenCountBlock(ExactOnlyBlock):
    r"""One row: the number of open positions among the universe's names.

    .. math:: v(w) = \#\{\, i : |w_i| > \epsilon \,\}

    with :math:`\epsilon` = `OPEN_POSITION`. Not convex (a count), so this block has no
    cvxpy form and opts out of every other representation but the batch checker's: the
    checker evaluates it exactly, lot rounding re-evaluates it whole, and the adjuster solves
    with the row set's `restriction` (see `engine.compile.kinds.controls.MaxPositionsKind`).
    """

    n: int

    representations: ClassVar[frozenset[Representation]] = frozenset({Representation.BATCH})
    what: ClassVar[str] = "a count of open positions"

    @property
    def rows(self) -> int:
        return 1

    def values(self, w: FloatArray) -> FloatArray:
        return np.array([float(np.count_nonzero(np.abs(w) > OPEN_POSITION))])

    def structure(self) -> tuple[Any, ...]:
        return ("open_count", self.n)

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        # Each name that rounding may move may open or close: the count moves by at most
        # the number of such names.
        return np.array([float(np.count_nonzero(eps > 0))])

    def batch(self, forms: BatchForms[Form]) -> Form:
        return (
            forms.open_count(self) if self._values_are(OpenCountBlock) else forms.unsupported(self)
        )

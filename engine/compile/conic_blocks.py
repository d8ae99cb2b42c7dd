"""Cone blocks: rows convex in the weights but not sums of one-name pieces.

The `top_k` largest magnitudes (`SumLargestAbsBlock`), risk norms over a factor model
(`NormBlock`: volatility, tracking error) and scenario CVaR (`CVaRBlock`). Each owns its
values, its cvxpy form and its representations, as the blocks of `engine.compile.blocks`
do; none folds into the separable QP or restricts to the traded names, and the tracker
follows each through its own part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import Block, Form, Params, digest
from engine.compile.representations import Representation
from engine.tolerances import CVAR_TAIL_SNAP
from models.typing import FloatArray

if TYPE_CHECKING:
    from engine.compile.representations import (
        BatchForms,
        ConicForms,
        ExportForms,
        RowShiftForms,
        TrackerForms,
    )

__all__ = ["CVaRBlock", "NormBlock", "SumLargestAbsBlock", "cvar_of_losses"]


@dataclass
class SumLargestAbsBlock(Block):
    r"""One row: the sum of the `top_k` largest `|w_i|`.

    .. math:: v(w) = \max_{|S| = k} \sum_{i \in S} |w_i|
    """

    n: int
    top_k: int

    representations: ClassVar[frozenset[Representation]] = frozenset(
        {Representation.TRACKER, Representation.EXPORT, Representation.BATCH}
    )

    @property
    def rows(self) -> int:
        return 1

    def values(self, w: FloatArray) -> FloatArray:
        k = min(self.top_k, len(w))
        return np.array([float(np.sort(np.abs(w))[::-1][:k].sum())])

    def structure(self) -> tuple[Any, ...]:
        return ("sum_largest_abs", self.n, self.top_k)

    def declare(self) -> Params:
        return {"w0": cp.Parameter(self.n, name="w0")}

    def fill(self, params: Params, w0: FloatArray) -> None:
        params["w0"].value = w0

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        magnitudes = cp.abs(delta + params["w0"])
        if self.top_k >= self.n:  # every position: a plain sum (and no degenerate sum_largest)
            return cp.reshape(cp.sum(magnitudes), (1,), order="C")
        return cp.reshape(cp.sum_largest(magnitudes, self.top_k), (1,), order="C")

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        k = min(self.top_k, len(eps))
        return np.array([float(np.sort(eps)[::-1][:k].sum())])

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        return (
            forms.sum_largest_abs(self)
            if self._values_are(SumLargestAbsBlock)
            else forms.unsupported(self)
        )

    def export(self, forms: ExportForms[Form]) -> Form:
        return forms.sum_largest_abs(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        return (
            forms.sum_largest_abs(self)
            if self._values_are(SumLargestAbsBlock)
            else forms.unsupported(self)
        )


@dataclass
class NormBlock(Block):
    r"""One row: a scaled risk norm of an affine image of w.

    .. math:: v(w) = s \, \sqrt{y^T (F F^T + \mathrm{diag}(d^2)) y}, \quad y = P w + c

    `P` maps V into the risk universe U (V plus benchmark names), `c = -b` for tracking
    error, `F` are factor exposures times a square root of the factor covariance (or a
    square root of a full covariance) and `d` the specific volatilities.

    For a factor model, `F = loadings @ root` is also kept apart: `loadings` (U x k,
    sparse: a name loads on one industry or sector and a few styles) and `root` (k x k).
    The direct conic solve writes the exposures `loadings' y` as rows with the loadings'
    entries, not F's (every name on every factor), and turns them by `root` in the cone
    (`engine.adjust.conic`). Both None for a full covariance, or a block built without them.
    """

    P: sp.spmatrix
    c: FloatArray
    F: FloatArray
    d: FloatArray | None
    scale: float = 1.0
    loadings: sp.csr_matrix | None = None
    root: FloatArray | None = None

    representations: ClassVar[frozenset[Representation]] = frozenset(
        {
            Representation.TRACKER,
            Representation.EXPORT,
            Representation.CONIC,
            Representation.BATCH,
            Representation.ROW_SHIFT,
        }
    )

    @property
    def rows(self) -> int:
        return 1

    @property
    def needs_cone(self) -> bool:
        return True

    def values(self, w: FloatArray) -> FloatArray:
        y = np.asarray(self.P @ w).ravel() + self.c
        total = float(np.sum((self.F.T @ y) ** 2))
        if self.d is not None:
            total += float(np.sum((self.d * y) ** 2))
        return np.array([self.scale * np.sqrt(total)])

    def structure(self) -> tuple[Any, ...]:
        return ("norm", digest(self.P), self.F.shape, self.d is not None, self.scale)

    def declare(self) -> Params:
        k = self.F.shape[1]
        params: Params = {
            "F": cp.Parameter(self.F.shape, name="F"),
            "factor0": cp.Parameter(k, name="factor0"),
        }
        if self.d is not None:
            params["d"] = cp.Parameter(self.P.shape[0], nonneg=True, name="d")
            params["specific0"] = cp.Parameter(self.P.shape[0], name="specific0")
        return params

    def fill(self, params: Params, w0: FloatArray) -> None:
        # F'y = F'(P delta) + F'y0: the second term is computed here, so that the cvxpy
        # form multiplies parameters only by parameter-free expressions (DPP).
        y0 = np.asarray(self.P @ w0).ravel() + self.c
        params["F"].value = self.F
        params["factor0"].value = self.F.T @ y0
        if self.d is not None:
            params["d"].value = self.d
            params["specific0"].value = self.d * y0

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        moved = sp.csr_matrix(self.P) @ delta
        parts = [params["F"].T @ moved + params["factor0"]]
        if "d" in params:
            parts.append(cp.multiply(params["d"], moved) + params["specific0"])
        stacked = cp.hstack(parts) if len(parts) > 1 else parts[0]
        return cp.reshape(self.scale * cp.norm(stacked, 2), (1,), order="C")

    def gradient(self, w: FloatArray) -> FloatArray:
        """Gradient of the (single) row at `w`; zero where the norm vanishes."""
        y = np.asarray(self.P @ w).ravel() + self.c
        sigma_y = self.F @ (self.F.T @ y)
        if self.d is not None:
            sigma_y = sigma_y + self.d**2 * y
        norm = float(np.sqrt(max(float(y @ sigma_y), 0.0)))
        if norm == 0.0:
            return np.zeros(self.P.shape[1])
        return np.asarray(self.scale * (sp.csr_matrix(self.P).T @ sigma_y) / norm).ravel()

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        # Triangle inequality: |s ||L'(y + P e)|| - s ||L'y||| <= s sum_i eps_i ||L' P e_i||.
        P = sp.csr_matrix(self.P)
        columns = np.sum(np.asarray(P.T @ self.F) ** 2, axis=1)  # ||F' P e_i||^2
        if self.d is not None:
            columns = columns + np.asarray(P.multiply(P).T @ self.d**2).ravel()
        return np.array([self.scale * float(np.sqrt(np.clip(columns, 0, None)) @ eps)])

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        return forms.norm(self) if self._values_are(NormBlock) else forms.unsupported(self)

    def export(self, forms: ExportForms[Form]) -> Form:
        return forms.norm(self)

    def conic(self, forms: ConicForms[Form]) -> Form:
        return forms.norm(self)

    def row_shift(self, forms: RowShiftForms[Form]) -> Form:
        return forms.norm(self) if self._values_are(NormBlock) else forms.unsupported(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        return forms.norm(self) if self._values_are(NormBlock) else forms.unsupported(self)


def cvar_of_losses(losses: FloatArray, beta: float) -> float:
    r"""CVaR at level `beta` of equally likely `losses` (Rockafellar-Uryasev, exact).

    The worst `(1 - beta) S` scenarios are averaged, the boundary scenario entering with its
    fractional weight, which equals :math:`\min_\zeta \zeta + E[(L - \zeta)_+]/(1-\beta)`.
    """
    s = len(losses)
    tail = (1.0 - beta) * s
    ordered = np.sort(losses)[::-1]
    whole = int(np.floor(tail + CVAR_TAIL_SNAP))
    total = float(ordered[:whole].sum())
    if whole < s:
        total += (tail - whole) * float(ordered[whole])
    return total / tail


@dataclass
class CVaRBlock(Block):
    r"""One row: scenario CVaR of the loss `-R w`.

    .. math:: v(w) = \min_\zeta \; \zeta + \frac{1}{(1-\beta) S}
              \sum_s \left(-r_s^T w - \zeta\right)_+

    The cvxpy form keeps `zeta` as an auxiliary variable (the Rockafellar-Uryasev LP).
    """

    R: FloatArray
    beta: float

    representations: ClassVar[frozenset[Representation]] = frozenset(
        {Representation.TRACKER, Representation.EXPORT, Representation.BATCH}
    )

    @property
    def rows(self) -> int:
        return 1

    def values(self, w: FloatArray) -> FloatArray:
        return np.array([cvar_of_losses(-(self.R @ w), self.beta)])

    def structure(self) -> tuple[Any, ...]:
        return ("cvar", self.R.shape, self.beta)

    def declare(self) -> Params:
        return {
            "R": cp.Parameter(self.R.shape, name="R"),
            "loss0": cp.Parameter(self.R.shape[0], name="loss0"),
        }

    def fill(self, params: Params, w0: FloatArray) -> None:
        params["R"].value = self.R
        params["loss0"].value = -(self.R @ w0)

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        zeta = cp.Variable(name="zeta")
        s = self.R.shape[0]
        losses = -(params["R"] @ delta) + params["loss0"]
        tail = cp.sum(cp.pos(losses - zeta)) / ((1.0 - self.beta) * s)
        return cp.reshape(zeta + tail, (1,), order="C")

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        # CVaR is 1-Lipschitz in the sup-norm of the loss vector.
        return np.array([float(np.max(np.abs(self.R) @ eps))])

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        return forms.cvar(self) if self._values_are(CVaRBlock) else forms.unsupported(self)

    def export(self, forms: ExportForms[Form]) -> Form:
        return forms.cvar(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        return forms.cvar(self) if self._values_are(CVaRBlock) else forms.unsupported(self)

r"""Maximizing the separable dual over `y >= 0`: projected Newton with an ε-active set.

The dual `q` (engine.adjust.separable.dual) is concave and piecewise quadratic, with gradient
`g` and generalized Hessian `-J D J^T`. At `y`, with `h_i` the `i`-th diagonal entry of
`J D J^T` plus `max|g| / size` (the regularization below, from every row), the method of
Bertsekas (1982, "Projected Newton methods for optimization problems with simple
constraints") takes:

.. math::

    \varepsilon = \max_i \big| y_i - \max(0, y_i + g_i / h_i) \big|, \qquad
    A = \{ i : y_i \le \varepsilon, \ g_i < 0 \}, \quad F = \text{the others}

    d_F = (J_F D J_F^T + \rho I)^{-1} g_F, \qquad d_A = g_A / h_A

and moves along the projected arc :math:`y(t) = \max(0, y + t d)`. The rows of `A` sit at or
near zero while the gradient pushes their multiplier down: they take a scaled gradient
step, which the projection stops at zero. Without the margin `ε` a row with a small
positive multiplier and a negative gradient is free: the Newton direction, which ignores
the bound, can drive it through zero, where the projection bends the arc, and the step
then fails to ascend, or ascends only for a vanishing `t`. `ε` is the scaled
projected-gradient residual, so it vanishes at the maximizer, where `A` is exactly the set
of rows held at zero and the Newton step is exact (quadratic convergence once the pieces
are found).

A step is taken only when it rises. Its predicted rise

.. math::

    \mathrm{rise}(t) = t \, g_F^T d_F + g_A^T (y_A(t) - y_A)

is positive unless `y` is optimal; a direction whose predicted rise is not positive (an
ill-conditioned normal matrix, a singular one) is rejected, and so is a trial point whose
dual does not rise by a fraction of it (Armijo, by backtracking; only near the optimum,
where the rise is below the dual's rounding, is a full step taken that keeps the dual to
rounding and halves the residual of the optimality conditions). A rejected Newton step
is replaced by a scaled projected-gradient step (`d = g / h` on every row, predicted rise
`g^T (y(t) - y)`, positive unless `y` is optimal); when that does not rise either, there
is no answer (None) and the solver chain solves the problem.

`rho` is Levenberg-Marquardt's: a multiple of the residual, so that a row whose names are
all held (a flat dual direction) gets a step of the size of the weight changes instead of
an unbounded one; it vanishes at the optimum.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from engine.adjust.separable.dual import Dual, Matrix, curvature, normal_matrix
from engine.adjust.separable.fold import FEASIBILITY
from engine.tolerances import FLOAT_NOISE
from models.typing import BoolArray, FloatArray

__all__ = [
    "LINE_SEARCH_STEPS",
    "MAX_ITERATIONS",
    "Point",
    "arc_search",
    "epsilon_active",
    "maximize",
    "point_at",
]

MAX_ITERATIONS = 60
LINE_SEARCH_STEPS = 60
_ARMIJO = 1e-4
_WEIGHT = 0.01
"""A typical weight change: the floor of the scale of the Newton regularization."""


@dataclass
class Point:
    """A dual point: the multipliers, `z(y)`, the moving names, the rows and the dual."""

    y: FloatArray
    z: FloatArray
    moving: BoolArray
    values: FloatArray
    q: float


def point_at(dual: Dual, y: FloatArray) -> Point:
    """The dual point at the multipliers `y`."""
    z, moving, _ = dual.primal(y)
    values = dual.values(z)
    return Point(y, z, moving, values, dual.objective(y, z, values))


def _residual(y: FloatArray, gradient: FloatArray) -> float:
    """How far `y` is from maximizing the dual over y >= 0 (0 exactly there)."""
    return float(np.abs(y - np.maximum(y + gradient, 0.0)).max(initial=0.0))


def _solve(H: Matrix, g: FloatArray, rho: float) -> FloatArray | None:
    """`(H + rho I)^{-1} g`, or None when the factorization fails.

    A sparse `H` is factored by SuperLU, whatever its size: a gross limit per group couples
    each group's row only with the few rows over every name, so the factor stays sparse.
    LAPACK on it densified is far slower when the cores are busy: OpenBLAS's threads wait
    spinning (measured on the shared 2-core machine: 0.36 s a solve for ~300 rows, where
    SuperLU took ~5 ms; docs/performance-notes.md).
    """
    try:
        if isinstance(H, np.ndarray):
            H[np.diag_indices_from(H)] += rho
            step = np.linalg.solve(H, g)
        else:
            H = (H + rho * sp.identity(H.shape[0], format="csc")).tocsc()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                step = spla.splu(H, permc_spec="MMD_AT_PLUS_A").solve(g)
    except (np.linalg.LinAlgError, RuntimeError, Warning):
        return None
    found: FloatArray = np.asarray(step, dtype=np.float64)
    return found if np.isfinite(found).all() else None


def epsilon_active(y: FloatArray, gradient: FloatArray, h: FloatArray) -> BoolArray:
    """The rows at or within ε of zero whose gradient pushes their multiplier down.

    ε is the scaled projected-gradient residual `max_i |y_i - max(0, y_i + g_i / h_i)|`.
    """
    epsilon = float(np.abs(y - np.maximum(y + gradient / h, 0.0)).max(initial=0.0))
    return np.asarray((y <= epsilon) & (gradient < 0), dtype=bool)


def _direction(
    J: Matrix,
    gradient: FloatArray,
    active: BoolArray,
    h: FloatArray,
    size: float,
    row_curvature: FloatArray,
) -> FloatArray | None:
    """The Newton step on the free rows, the scaled gradient step on the active ones.

    `row_curvature` is `curvature(J)`, computed once per iteration by the caller.
    """
    free = np.flatnonzero(~active)
    direction = np.zeros(len(gradient))
    direction[active] = gradient[active] / h[active]
    if not len(free):
        return direction
    H = normal_matrix(J, free)
    residual = float(np.abs(gradient[free]).max())
    trace = float(row_curvature[free].sum())
    rho = residual / size + FLOAT_NOISE * max(1.0, trace)
    step = _solve(H, gradient[free], rho)
    if step is None:
        return None
    direction[free] = step
    return direction


def arc_search(
    dual: Dual, at: Point, gradient: FloatArray, direction: FloatArray, newton: BoolArray
) -> Point | None:
    """The first point along `max(0, y + t d)` that rises enough, or None (rejected).

    `newton` marks the rows whose predicted rise is `t g_i d_i` (the Newton step's free
    rows); the others count the move the projection lets them make.
    """
    rounding = 4.0 * np.finfo(float).eps * (len(dual.d) + dual.rows)
    linear = float(gradient[newton] @ direction[newton])
    other = ~newton
    t = 1.0
    for _ in range(LINE_SEARCH_STEPS):
        trial = np.maximum(at.y + t * direction, 0.0)
        rise = t * linear + float(gradient[other] @ (trial[other] - at.y[other]))
        if not rise > 0.0:
            return None  # not an ascent direction
        point = point_at(dual, trial)
        # Near the optimum the rise is below the objective's rounding; there a full step
        # that keeps the objective (to rounding) is taken when it halves the residual of
        # the optimality conditions.
        if point.q >= at.q + _ARMIJO * rise or (
            t == 1.0
            and point.q >= at.q - rounding * abs(at.q)
            and _residual(trial, point.values - dual.b) <= 0.5 * _residual(at.y, gradient)
        ):
            return point
        # The maximizer of the parabola through q, its slope and q_t, kept in [t/10, t/2].
        shortfall = 2.0 * (at.q + rise - point.q)
        t *= min(0.5, max(0.1, rise / shortfall)) if shortfall > 0 else 0.5
    return None


def maximize(dual: Dual) -> tuple[FloatArray, FloatArray, int] | None:
    """Maximize the dual over y >= 0; the multipliers, `z` and the iterations, or None.

    Returns only a certified point: every row within `FEASIBILITY` (relative, plus the
    rounding of its sum) of its bound, and at it wherever its multiplier is positive.
    """
    at = point_at(dual, np.zeros(dual.rows))
    tolerance = FEASIBILITY * np.maximum(1.0, np.abs(dual.b))
    size = max(float(np.abs(dual.d).max(initial=0.0)), _WEIGHT)
    for iteration in range(1, MAX_ITERATIONS + 1):
        gradient = at.values - dual.b
        # Rows summing thousands of names cannot be computed closer than their rounding.
        allowed = tolerance + dual.rounding(at.z)
        positive = at.y > 0
        if (gradient <= allowed).all() and (gradient[positive] >= -allowed[positive]).all():
            return at.y, at.z, iteration
        J = dual.jacobian(at.z, at.moving)
        scale = float(np.abs(gradient).max()) / size + FLOAT_NOISE
        row_curvature = curvature(J)
        h = row_curvature + scale
        active = epsilon_active(at.y, gradient, h)
        direction = _direction(J, gradient, active, h, size, row_curvature)
        found = None if direction is None else arc_search(dual, at, gradient, direction, ~active)
        if found is None:  # rejected: a scaled projected-gradient step, or no answer
            everywhere = np.zeros(dual.rows, dtype=bool)
            found = arc_search(dual, at, gradient, gradient / h, everywhere)
            if found is None:
                return None
        at = found
    return None

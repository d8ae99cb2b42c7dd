"""Reading an exported constraint set: cvxpy constraints, a numeric check, trades.

Everything here reads only the solver-neutral `ConstraintSet` (the JSON the service sends),
so what an optimizer in Python gets is exactly what one in another language gets.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.conic_blocks import cvar_of_losses
from models import Side, Trade
from models.export import ConstraintSet, NamedBlock, SparseMatrix
from models.typing import FloatArray

__all__ = ["cvxpy_constraints", "max_violation", "snap_fixed", "trades_for"]


def _csr(matrix: SparseMatrix) -> sp.csr_matrix:
    return sp.csr_matrix((matrix.val, (matrix.row, matrix.col)), shape=matrix.shape)


def _bounds(values: list[float | None]) -> FloatArray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def cvxpy_constraints(
    constraints: ConstraintSet, w: cp.Variable, aux: cp.Variable | None = None
) -> list[cp.Constraint]:
    """The set as cvxpy constraints over the caller's weights `w` (length = symbols).

    The linearized form (and any custom expression, in either form) needs auxiliary
    variables: pass `aux` (length = auxiliary) to read their values afterwards, or leave it
    out and one is created.
    """
    n = len(constraints.variables.symbols)
    if w.shape != (n,):
        raise ValueError(f"w has shape {w.shape}; the set has {n} symbols")
    n_aux = len(constraints.variables.auxiliary)
    if aux is None and n_aux:
        aux = cp.Variable(n_aux, name="aux")
    if aux is not None and aux.shape != (n_aux,):
        raise ValueError(f"aux has shape {aux.shape}; the set has {n_aux} auxiliary variables")
    x: cp.Expression = cp.hstack([w, aux]) if aux is not None and n_aux else w
    out: list[cp.Constraint] = []
    linear = constraints.linear
    if linear.rows:
        A = _csr(linear.matrix)
        lower, upper = _bounds(linear.lower), _bounds(linear.upper)
        # Rows with equal bounds are equalities (fixed weights); the rest one or two sides.
        equal = np.flatnonzero(lower == upper)
        if len(equal):
            out.append(A[equal] @ x == upper[equal])
        below = np.flatnonzero(~np.isnan(lower) & (lower != upper))
        if len(below):
            out.append(A[below] @ x >= lower[below])
        above = np.flatnonzero(~np.isnan(upper) & (lower != upper))
        if len(above):
            out.append(A[above] @ x <= upper[above])
    auxiliary = constraints.variables.auxiliary
    floors = [(a.index - n, a.lower) for a in auxiliary if a.lower is not None]
    if floors and aux is not None:
        out.append(aux[[j for j, _ in floors]] >= np.array([v for _, v in floors]))
    ceilings = [(a.index - n, a.upper) for a in auxiliary if a.upper is not None]
    if ceilings and aux is not None:
        out.append(aux[[j for j, _ in ceilings]] <= np.array([v for _, v in ceilings]))
    for cone in constraints.cones:
        out.append(cp.norm(_csr(cone.matrix) @ w + np.array(cone.offset), 2) <= cone.bound)
    for rows in constraints.conic:
        z = _csr(rows.matrix) @ x + np.array(rows.offset)
        out.append(cp.SOC(z[0], z[1:]))
    for block in constraints.blocks:
        value = _block_expression(block, w, n)
        if block.upper is not None:
            out.append(value <= np.array(block.upper))
        if block.lower is not None:
            out.append(value >= np.array(block.lower))
    return out


def _block_expression(block: NamedBlock, w: cp.Variable, n: int) -> cp.Expression:
    if block.type in ("capped_sum", "positive_part_sum"):
        return _piecewise_expression(block, w)
    if block.type == "abs_sum":
        assert block.A is not None and block.G is not None
        assert block.c is not None and block.k is not None
        terms = cp.abs(_csr(block.A) @ w + np.array(block.c))
        return _csr(block.G) @ terms + np.array(block.k)
    if block.type == "sum_largest_abs":
        assert block.top_k is not None
        if block.top_k >= n:
            return cp.reshape(cp.sum(cp.abs(w)), (1,), order="C")
        return cp.reshape(cp.sum_largest(cp.abs(w), block.top_k), (1,), order="C")
    assert block.returns is not None and block.beta is not None
    R = np.array(block.returns, dtype=float)
    zeta = cp.Variable(name="cvar_zeta")
    tail = cp.sum(cp.pos(-(R @ w) - zeta)) / ((1.0 - block.beta) * R.shape[0])
    return cp.reshape(zeta + tail, (1,), order="C")


def _piecewise_expression(block: NamedBlock, w: cp.Variable) -> cp.Expression:
    assert block.G is not None
    groups = _csr(block.G) @ w
    if block.type == "capped_sum":
        assert block.a is not None and block.k is not None and block.cap is not None
        total = np.array(block.a) @ w + block.k[0]
        if block.G.shape[0]:
            total = total + cp.sum(cp.minimum(groups, np.array(block.cap)))
        return cp.reshape(total, (1,), order="C")
    assert block.c is not None
    if not block.G.shape[0]:
        return cp.reshape(cp.Constant(0.0), (1,), order="C")
    return cp.reshape(cp.sum(cp.pos(groups + np.array(block.c))), (1,), order="C")


def _block_values(block: NamedBlock, w: FloatArray) -> FloatArray:
    if block.type == "capped_sum":
        assert block.G is not None and block.a is not None
        assert block.k is not None and block.cap is not None
        capped = np.minimum(_csr(block.G) @ w, np.array(block.cap))
        return np.array([float(np.array(block.a) @ w) + block.k[0] + float(capped.sum())])
    if block.type == "positive_part_sum":
        assert block.G is not None and block.c is not None
        positive = np.maximum(_csr(block.G) @ w + np.array(block.c), 0.0)
        return np.array([float(positive.sum())])
    if block.type == "abs_sum":
        assert block.A is not None and block.G is not None
        assert block.c is not None and block.k is not None
        terms = np.abs(_csr(block.A) @ w + np.array(block.c))
        summed: FloatArray = np.asarray(_csr(block.G) @ terms, dtype=float) + np.array(block.k)
        return summed
    if block.type == "sum_largest_abs":
        assert block.top_k is not None
        return np.array([float(np.sort(np.abs(w))[::-1][: block.top_k].sum())])
    assert block.returns is not None and block.beta is not None
    return np.array([cvar_of_losses(-(np.array(block.returns) @ w), block.beta)])


def max_violation(
    constraints: ConstraintSet, w: FloatArray, aux: FloatArray | None = None
) -> float:
    """By how much `w` (and `aux`, when the set has auxiliaries) breaks its worst bound.

    0 inside the set. Cone violations are in the policy's units (volatility, VaR), the rest
    in weight units, so the result compares with the service's 1e-9 tolerance; a `conic`
    row's violation is `||v|| - t` of its cone, in the units of cvxpy's canonical form.
    """
    w = np.asarray(w, dtype=float)
    n_aux = len(constraints.variables.auxiliary)
    if n_aux and aux is None:
        raise ValueError("the set has auxiliary variables: pass their values")
    x = np.concatenate([w, np.asarray(aux, dtype=float)]) if n_aux and aux is not None else w
    worst = [0.0]
    linear = constraints.linear
    if linear.rows:
        values = _csr(linear.matrix) @ x
        lower, upper = _bounds(linear.lower), _bounds(linear.upper)
        worst += np.nan_to_num(lower - values, nan=0.0).tolist()
        worst += np.nan_to_num(values - upper, nan=0.0).tolist()
    auxiliary = constraints.variables.auxiliary
    worst += [a.lower - x[a.index] for a in auxiliary if a.lower is not None]
    worst += [x[a.index] - a.upper for a in auxiliary if a.upper is not None]
    worst += [
        cone.scale * (float(np.linalg.norm(_csr(cone.matrix) @ w + cone.offset)) - cone.bound)
        for cone in constraints.cones
    ]
    for rows in constraints.conic:
        z = _csr(rows.matrix) @ x + np.array(rows.offset)
        worst.append(float(np.linalg.norm(z[1:])) - float(z[0]))
    for block in constraints.blocks:
        values = _block_values(block, w)
        if block.upper is not None:
            worst += (values - np.array(block.upper)).tolist()
        if block.lower is not None:
            worst += (np.array(block.lower) - values).tolist()
    return max(worst)


def _single_weight_bounds(constraints: ConstraintSet) -> tuple[FloatArray, FloatArray]:
    """Per weight, the tightest bounds of the linear rows that involve it alone."""
    n = len(constraints.variables.symbols)
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    linear = constraints.linear
    if not linear.rows:
        return lo, hi
    A = _csr(linear.matrix)
    counts = np.diff(A.indptr)
    for r in np.flatnonzero(counts == 1):
        i, a = int(A.indices[A.indptr[r]]), float(A.data[A.indptr[r]])
        if i >= n:
            continue  # a bound on an auxiliary variable
        low, high = linear.lower[r], linear.upper[r]
        if a < 0:
            low, high = (None if high is None else -high), (None if low is None else -low)
            a = -a
        if low is not None:
            lo[i] = max(lo[i], low / a)
        if high is not None:
            hi[i] = min(hi[i], high / a)
    return lo, hi


def snap_fixed(constraints: ConstraintSet, w: FloatArray) -> FloatArray:
    """`w` with the bounds a solver leaves a little off set exactly.

    Every fixed weight gets its value, and every weight is clipped into the rows that
    bound it alone (single-name limits, no-buy, no-sell, no-short, trade limits): solvers
    stop within their tolerance of such bounds, the service checks to 1e-9. A weight whose
    own rows contradict each other (an empty set) is left as it is.
    """
    out = np.array(w, dtype=float)
    lo, hi = _single_weight_bounds(constraints)
    consistent = lo <= hi
    out[consistent] = np.clip(out[consistent], lo[consistent], hi[consistent])
    for fixed in constraints.fixed:
        out[fixed.index] = fixed.value
    return out


def trades_for(constraints: ConstraintSet, w: FloatArray) -> list[Trade]:
    """The decision that takes the portfolio to weights `w`: `(w - w0) * NAV / price`.

    Fixed weights are snapped first (`snap_fixed`); symbols whose weight does not move get
    no trade. Quantities are not rounded to lots.
    """
    variables = constraints.variables
    shares = (
        (snap_fixed(constraints, w) - np.array(variables.w0))
        * constraints.nav
        / np.array(variables.prices)
    )
    return [
        Trade(symbol=symbol, side=Side.BUY if t > 0 else Side.SELL, quantity=float(abs(t)))
        for symbol, t in zip(variables.symbols, shares, strict=True)
        if t != 0.0
    ]

r"""`project` over many names, solved over a working set of the names that may move.

The projection with a turnover limit is sparse: the turnover's absolute values hold most
names at their current weight (at n = 2000 with volatility and tracking error, 40 to 200
names move; the rest stay exactly). An interior-point solver does not see that: it
carries every name, its turnover auxiliary and its two rows through every iteration. Here
the direct conic solve (`engine.adjust.conic`) runs over a working set `W` of names, the
others folded into constants at their current weight (`x_j = 0`), and the answer is
accepted for the whole problem only when the optimality conditions hold for every name
left out: with `x_j = 0`, the gradient of the Lagrangian in `x_j`

.. math:: g_j = \sum_{\text{affine}} \pm \lambda_r A_{rj}
    + \sum_{\text{absolute terms off their kink}} \rho_i \operatorname{sign}(e_i) A_{ij}
    + \sum_{\text{norms}} z_0 \, \partial \|v\| / \partial x_j

must lie within what the name's own kinks absorb, `|g_j| <= \sum \rho_i |A_{ij}|` over the
absolute terms of that name alone that sit at zero (a turnover term `|x_j|`). The
objective's own term `2 S (x_j - d_j)` is zero there: every traded name is in `W`. A name
that breaks this (beyond a relative `KKT_TOLERANCE`) enters `W`, the most violating first,
and the working set is solved again. Names the conditions cannot be checked for without
more bookkeeping go into `W` from the start: those of rows beyond their bound at the
current weights (no working set without them has an answer), and those of absolute terms
over several names sitting at their kink. A row left out has multiplier zero; one exactly
at its bound may need more, and then the check finds its names away from optimal.

The answer, once accepted, is the whole problem's optimum (the conditions are those of
the whole problem; the duals of the rows left out are zero, as they are inactive), so
the rest of the adjuster (verification, rounding) sees no difference. Above
`MAX_SHARE` of the names the working set gives up and the whole problem is solved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.adjust.conic import ColumnCache, ConicAssembly, assemble
from engine.compile.blocks import AbsSumBlock, AffineBlock
from engine.compile.conic_blocks import NormBlock
from engine.compile.layout import Layout
from engine.tolerances import TOLERANCE
from models.typing import BoolArray, FloatArray, IntArray
from solvers.base import SolveOutcome, SolveStatus
from solvers.direct import ConicData, DirectSolution

__all__ = ["SCREEN_FROM", "Screened", "screened_solve", "violations"]

SCREEN_FROM = 1000
"""Names of V from which `project` with cones is solved over a working set first.

Measured on the benchmark's `project` with volatility and tracking error (names drawn
anew; docs/performance-notes.md, "Cones that do not bind and working sets", 2026-12-05):
at n = 1000 the median fell from 44 to 26 ms, at n = 2000 the mean from 63 to 44 ms; at
n = 500 the whole problem's solve (about 17 ms) is short enough that the working sets
given up on (most requests there move over half the names) doubled the tail."""

MAX_SHARE = 0.5
"""The working set's largest share of V before the whole problem is solved instead."""

MAX_ROUNDS = 8
"""Solves of a growing working set before the whole problem is solved instead."""

EVERY_NAME = 0.98
"""When this share of the names left out are all away from optimal, the whole problem is
solved instead: a row over every name (a budget, a cash floor) is pushing them all, and
at the optimum nearly all of them move (measured: such requests end with 700 to 1,990 of
2,000 names moving, and their first working set has every name outside it away from
optimal; requests that end with under 250 moving have 85-92% away)."""

KKT_TOLERANCE = 1e-7
"""A left-out name's gradient may exceed what its kinks absorb by this, relative to the
largest gradient or multiplier in play: less than an interior-point solver's own error."""

KINK = 1e-12
"""An absolute term whose value is within this of zero sits at its kink."""

Solve = Callable[[ConicData], DirectSolution]


@dataclass
class Screened:
    """The whole problem's answer from a working set: `x` and the duals over all rows."""

    x: FloatArray
    duals: list[FloatArray]
    outcome: SolveOutcome
    columns: int
    """Names in the last working set."""


@dataclass
class Distances:
    """Each name's distance from optimal at `x_j = 0`, and whether a kink holds it there."""

    far: FloatArray
    kinked: BoolArray
    """True where an absolute term of the name alone sits at zero (or it cannot be told):
    without one, a name whose gradient is not zero moves at the optimum, whatever the
    other names do, unless the multipliers change to cancel its gradient exactly."""

    def hopeless(self, inside: BoolArray) -> bool:
        """True when the names that must move exceed `MAX_SHARE` of V already.

        Or when nearly every name left out is away from optimal (`EVERY_NAME`).
        """
        movers = (self.far > 0) & ~self.kinked
        if int(inside.sum() + movers.sum()) > MAX_SHARE * len(self.far):
            return True
        outside = len(self.far) - int(inside.sum())
        away = int((self.far > 0).sum())
        return away > 0 and away >= EVERY_NAME * outside


def _csr(matrix: FloatArray | sp.spmatrix) -> sp.csr_matrix:
    return sp.csr_matrix(matrix, dtype=float)


def forced(layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]) -> BoolArray:
    """Names that must be in any working set.

    The columns of every row beyond its bound at the current weights (a working set
    without them has no answer), and of every absolute term over several names at its
    kink (the check cannot tell its sign). A row exactly at its bound is not forced in:
    left out, its multiplier is taken as zero, which the check then confirms or refutes
    name by name.
    """
    w0 = layout.snap.w0
    mask = np.zeros(len(w0), dtype=bool)
    for k, bound in zip(indices, bounds, strict=True):
        rowset = layout.rowsets[k]
        block = rowset.block
        if not isinstance(block, AffineBlock | AbsSumBlock):
            continue  # a norm moves with every name; `violations` turns down other kinds
        values = block.values(w0)
        excess = values - bound if rowset.sense == "le" else bound - values
        active = excess > TOLERANCE  # as `engine.adjust.conic` leaves rows out
        if isinstance(block, AbsSumBlock) and block.G is not None:
            # A sum of absolute terms beyond its bound: every term it sums is forced.
            terms = np.asarray(_csr(block.G)[active].sum(axis=0)).ravel() != 0
            A = _csr(block.A)
            _mark(mask, A[terms])
            # Terms over several names at their kink: their sign is not the check's.
            e = np.asarray(A @ w0).ravel() + block.c
            several = np.diff(A.indptr) > 1
            _mark(mask, A[several & (np.abs(e) <= KINK)])
        else:
            _mark(mask, _csr(block.A)[active])
    return mask


def _mark(mask: BoolArray, rows: sp.csr_matrix) -> None:
    if rows.nnz:
        mask[rows.indices[rows.data != 0]] = True


def violations(
    layout: Layout,
    indices: Sequence[int],
    duals: Sequence[FloatArray],
    w: FloatArray,
    inside: BoolArray,
) -> Distances | None:
    """How far each name outside `inside` is from optimal at `x_j = 0`.

    0 where optimal, inf where it cannot be told; None when a row set is of a kind not
    covered here. `duals` are the row sets' duals as `ConicAssembly.duals` gives them,
    `w` the weights of the working set's answer.
    """
    n = len(w)
    gradient = np.zeros(n)
    absorbed = np.zeros(n)
    unsure = np.zeros(n, dtype=bool)
    for k, dual in zip(indices, duals, strict=True):
        rowset = layout.rowsets[k]
        block = rowset.block
        if isinstance(block, NormBlock):
            z0 = float(dual[0]) * block.scale
            if z0 > 0:
                gradient += z0 * _norm_gradient(block, w)
            continue
        if rowset.sense != "le" and not isinstance(block, AffineBlock):
            return None
        if isinstance(block, AbsSumBlock):
            A = _csr(block.A)
            e = np.asarray(A @ w).ravel() + block.c
            weight = dual if block.G is None else np.asarray(_csr(block.G).T @ dual).ravel()
            live = weight > 0
            kink = live & (np.abs(e) <= KINK)
            off = live & ~kink
            gradient += np.asarray(A.T @ np.where(off, weight * np.sign(e), 0.0)).ravel()
            single = np.diff(A.indptr) == 1
            alone = A[kink & single]
            per_entry = np.repeat(weight[kink & single], np.diff(alone.indptr))
            np.add.at(absorbed, alone.indices, np.abs(alone.data) * per_entry)
            _mark(unsure, A[kink & ~single])
        elif isinstance(block, AffineBlock):
            sign = 1.0 if rowset.sense == "le" else -1.0
            gradient += sign * np.asarray(_csr(block.A).T @ dual).ravel()
        else:
            return None
    scale = max(1.0, float(np.max(np.abs(gradient), initial=0.0)), float(absorbed.max()))
    excess = np.abs(gradient) - absorbed - KKT_TOLERANCE * scale
    out = np.where(excess > 0, excess, 0.0)
    out[unsure] = np.inf
    out[inside] = 0.0
    return Distances(out, (absorbed > 0) | unsure)


def _norm_gradient(block: NormBlock, w: FloatArray) -> FloatArray:
    r"""The gradient of `\|v\|` in `w`, `v = [F'y ; d o y]`, `y = P w + c`."""
    y = np.asarray(block.P @ w).ravel() + block.c
    f = block.F.T @ y
    u = block.F @ f
    total = float(f @ f)
    if block.d is not None:
        u = u + block.d**2 * y
        total += float(np.sum((block.d * y) ** 2))
    norm = np.sqrt(total)
    if norm <= 0:
        return np.zeros(len(w))
    gradient: FloatArray = np.asarray(block.P.T @ u, dtype=float).ravel() / norm
    return gradient


def screened_solve(
    layout: Layout,
    indices: Sequence[int],
    bounds: Sequence[FloatArray],
    target: FloatArray,
    *,
    scale: float,
    solve: Solve,
    cache: ColumnCache,
    time_left: Callable[[], float],
) -> Screened | None:
    """The `project` problem's optimum found over a growing working set, or None.

    None when the working set grows past `MAX_SHARE` of V or `MAX_ROUNDS` solves, a row
    set's kind is not covered by `violations`, an assembly gives up, or a solve does not
    end solved: the caller then solves the whole problem.
    """
    started = time.perf_counter()
    n = len(target)
    inside = forced(layout, indices, bounds) | (target != 0)
    iterations = 0
    for round_ in range(1, MAX_ROUNDS + 1):
        if inside.sum() > MAX_SHARE * n or time_left() <= 0:
            return None
        columns = np.flatnonzero(inside)
        assembly = assemble(
            layout,
            indices,
            bounds,
            columns=columns.tolist(),
            target=target[columns],
            box=None,
            scale=scale,
            cache=cache,
            constant=True,
        )
        if assembly is None:
            return None
        solved = solve(assembly.data)
        iterations += solved.outcome.iterations or 0
        if solved.outcome.status is not SolveStatus.OPTIMAL or solved.x is None:
            return None
        x, duals = _full(assembly, solved, columns, n)
        distances = violations(layout, indices, duals, layout.snap.w0 + x, inside)
        if distances is None or distances.hopeless(inside):
            return None
        far = distances.far
        if not (far > 0).any():
            outcome = SolveOutcome(
                solved.outcome.solver,
                SolveStatus.OPTIMAL,
                time.perf_counter() - started,
                iterations,
                f"{solved.outcome.message}; {round_} working sets, the last of "
                f"{len(columns)} of {n} names",
            )
            return Screened(x, duals, outcome, len(columns))
        inside |= _most_violating(far, max(len(columns), 32))
    return None


def _full(
    assembly: ConicAssembly, solved: DirectSolution, columns: IntArray, n: int
) -> tuple[FloatArray, list[FloatArray]]:
    assert solved.x is not None and solved.z is not None
    x = np.zeros(n)
    x[columns] = solved.x[: assembly.columns]
    return x, assembly.duals(solved.z)


def _most_violating(far: FloatArray, count: int) -> BoolArray:
    """The `count` names farthest from optimal (all that are, when fewer)."""
    candidates = np.flatnonzero(far > 0)
    if len(candidates) > count:
        candidates = candidates[np.argsort(-far[candidates], kind="stable")[:count]]
    mask = np.zeros(len(far), dtype=bool)
    mask[candidates] = True
    return mask

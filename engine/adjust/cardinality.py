r"""The names a cap on open positions lets be open: chosen by a mixed-integer program.

A strict `max_positions` rule (at most N names with :math:`|w_i| > \epsilon`) is not
convex; the adjuster solves with a restriction, a set S of names allowed open and every
other name closed (`engine.compile.rows.OpenSupport`). This module chooses S, per request
and per method, as the support of the closest compliant decision over every choice of open
positions, when every other strict row is linear:

.. math::

    \min_{x, z} \sum_j (x_j - d_j)^2 \quad \text{s.t.} \quad
    \text{the other rows (linear in } x), \quad
    |w^0_j + x_j| \le M_j z_j, \quad \sum_j z_j \le B - F, \quad z \in \{0, 1\}

over the problem's columns `x` (the weight change of the traded names for scale_back,
boxed between 0 and the proposed change `d`; of every name of V for project). `z_j` is a
binary indicator for each column that can close (0 reachable); a column that cannot and
every name outside the columns count as open when they are (`F` of them). `B` is the
count row's bound in the adjustment (the limit, or the pre-trade count when that is
larger and `cure_passive` is off: a passive breach may stay, never grow).

Big M: a feasible point at distance `r` from the proposal (the stated restriction's
answer, else not trading) bounds the optimum, :math:`|w^*_j - \hat w_j| \le r`, hence
:math:`|w^*_j| \le |\hat w_j| + r = M_j`: valid for the optimum, which is all the search
needs. HiGHS solves no QP with integer variables, so the quadratic is solved by outer
approximation: a MILP over epigraph variables :math:`s_j \ge (x_j - d_j)^2` held by
tangent cuts gives a lower bound and a support; the QP with that support fixed (HiGHS,
active set) gives its exact distance, an upper bound, and cuts at its optimum (which make
the support's MILP value at least that distance: the method ends finitely). It stops when
the bounds meet.

Only the support comes from here: the adjuster then solves with it as its restriction
through its usual chain, rounds to lots and re-checks against the exact rows. When the
other rows are not all linear (a risk cone, top-k, CVaR, an expression: rows the direct
assembly has no linear form for), when no feasible point is known, or when the search does
not close its gap within its budget (`TIME_LIMIT_S`, `MAX_ROUNDS`, half the time the
request has left), the stated restriction stays, and the encoding says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.adjust.bounds import max_violation, solve_bounds
from engine.adjust.conic import assemble
from engine.compile.kinds.controls import support_changes
from engine.compile.layout import Layout
from engine.compile.rows import OpenSupport, RowSet
from engine.deadline import NO_DEADLINE, Deadline
from engine.tolerances import OPEN_POSITION
from models.typing import BoolArray, FloatArray
from solvers.highs_direct import HighsAnswer, solve_highs

__all__ = ["GAP", "MAX_ROUNDS", "TIME_LIMIT_S", "choose_support"]

TIME_LIMIT_S = 2.0
"""Wall-clock budget of one search (less when the request has less than twice that left)."""

MAX_ROUNDS = 30
"""Outer-approximation rounds (one MILP and at most one QP each) before giving up."""

GAP = 1e-6
"""The search ends when the best support's distance is within this (relative, plus 1e-12
absolute) of the lower bound (distances are sums of squared weight changes), or when the
MILP picks a support whose distance is already known."""


@dataclass
class _Problem:
    """The linear rows over `[x; aux]` and what the cardinality terms need."""

    A: sp.csr_matrix
    b: FloatArray
    equal: BoolArray
    m: int
    width: int
    d: FloatArray
    lower: FloatArray
    upper: FloatArray
    closable: FloatArray
    """Per column: the change that closes it (`-w0`), NaN where the box excludes it."""
    budget: int
    """How many of the closable columns may be open (`B - F`)."""


def choose_support(
    exact: Layout,
    space: str,
    *,
    cure_passive: bool,
    deadline: Deadline = NO_DEADLINE,
) -> None:
    """Choose the names each strict cap on open positions lets be open, for `space`.

    Sets the caps' `OpenSupport` (and their encodings) on `exact`'s row sets: the support
    of the integer program's optimum, or the stated restriction with the reason.
    """
    caps = [k for k in exact.strict() if exact.rowsets[k].support is not None]
    if not caps:
        return
    snap = exact.snap
    supports: list[tuple[RowSet, OpenSupport]] = []
    for k in caps:
        owner = exact.rowsets[k]
        assert owner.support is not None
        owner.support.allow(owner, *owner.support.stated(snap))
        supports.append((owner, owner.support))
    budget = min(int(np.floor(solve_bounds(exact, k, cure_passive=cure_passive)[0])) for k in caps)
    started = time.monotonic()
    allowed, reason = _search(exact, space, supports, budget, cure_passive, deadline, started)
    if allowed is None:
        for owner, _support in supports:
            assert owner.encoding is not None
            owner.encoding += f" (the integer program was not used: {reason})"
        return
    pre = np.abs(snap.w0) > OPEN_POSITION
    encoding = (
        f"integer program: the closest decision over every choice of at most {budget} "
        f"open positions ({int(np.count_nonzero(pre))} open before; {reason}); "
        + support_changes(snap.symbols, pre, allowed)
    )
    for owner, support in supports:
        support.allow(owner, allowed, encoding)


def _search(
    exact: Layout,
    space: str,
    supports: list[tuple[RowSet, OpenSupport]],
    budget: int,
    cure_passive: bool,
    deadline: Deadline,
    started: float,
) -> tuple[BoolArray | None, str]:
    """The optimal support (a mask over V) and how it was found, or None and why not."""
    if space == "scale_back" and not exact.snap.traded:
        return None, "no trades"
    problem, why = _linear_problem(exact, space, supports, budget, cure_passive)
    if problem is None:
        return None, why
    if problem.budget < 0:
        return None, "more names must stay open than the limit allows"

    stated = np.ones(exact.snap.n, dtype=bool)
    for _owner, support in supports:
        stated &= support.allowed()
    columns = _columns(exact, space)
    # The stated restriction's names, the smallest targets left out while over the budget
    # (with `cure_passive` the budget may be below the pre-trade count it allows).
    start = stated[columns] & np.isfinite(problem.closable)
    sizes = np.abs(exact.snap.w_hat[columns])
    for j in np.argsort(sizes, kind="stable"):
        if np.count_nonzero(start) <= problem.budget:
            break
        start[j] = False
    incumbent = _fixed_support_qp(
        problem, ~start & np.isfinite(problem.closable), _limit(deadline, started)
    )
    if incumbent.x is None:
        # Not trading: feasible whenever the other rows hold at w0 and the count allows.
        layout = exact.for_solver()
        others = _other_rows(layout, supports)
        bounds = [solve_bounds(layout, k, cure_passive=cure_passive) for k in others]
        open_before = np.abs(exact.snap.w0[columns]) > OPEN_POSITION
        closable_open = open_before & np.isfinite(problem.closable)
        if max_violation(layout, others, bounds, exact.snap.w0) > 0 or (
            np.count_nonzero(closable_open) > problem.budget
        ):
            return None, "no feasible point known to bound it"
        radius = float(np.linalg.norm(problem.d))
        best = (float(np.sum(problem.d**2)), closable_open)
    else:
        x = incumbent.x[: problem.m]
        best = (float(np.sum((x - problem.d) ** 2)), _open_columns(problem, x))
        radius = float(np.sqrt(best[0]))
    return _outer_approximation(exact, problem, columns, best, radius, deadline, started)


def _outer_approximation(
    exact: Layout,
    problem: _Problem,
    columns: list[int],
    best: tuple[float, BoolArray],
    radius: float,
    deadline: Deadline,
    started: float,
) -> tuple[BoolArray | None, str]:
    """Alternate MILPs (lower bounds, supports) and fixed-support QPs (exact distances)."""
    # The margin covers the QP solver's feasibility tolerance on the incumbent.
    milp = _Milp(problem, radius * (1.0 + 1e-6) + 1e-6)
    milp.cut(np.zeros(problem.m))
    milp.cut(np.nan_to_num(problem.closable, nan=0.0))
    milp.cut(problem.d)
    seen: dict[bytes, float] = {}
    lower = -np.inf
    for rounds in range(1, MAX_ROUNDS + 1):
        time_left = _limit(deadline, started)
        if time_left <= 0:
            return None, f"no optimum proven within its time budget ({rounds - 1} rounds)"
        answer = milp.solve(time_left)
        if answer.x is None:
            return None, f"its MILP ended {answer.status} in round {rounds}"
        lower = max(lower, answer.bound)
        x = answer.x[: problem.m]
        z = answer.x[milp.z_at : milp.z_at + problem.m] > 0.5
        key = z.tobytes()
        milp.cut(x)
        # A support seen before: the cuts at its QP optimum hold every point of the MILP at
        # least at that distance, so no support is closer (Duran and Grossmann's stop; it
        # needs the MILP's optimum, not an incumbent cut short by a limit).
        if key in seen and not np.isfinite(seen[key]):
            return None, f"its MILP chose a support its QP found infeasible (round {rounds})"
        repeated = key in seen and answer.status == "optimal"
        if key not in seen:
            fixed = _fixed_support_qp(problem, ~z & np.isfinite(problem.closable), time_left)
            seen[key] = np.inf
            if fixed.x is not None:
                xs = fixed.x[: problem.m]
                seen[key] = float(np.sum((xs - problem.d) ** 2))
                milp.cut(xs)
                if seen[key] < best[0]:
                    best = (seen[key], _open_columns(problem, xs))
        if repeated or best[0] - lower <= GAP * best[0] + 1e-12:
            allowed = _allowed(exact, columns, problem, best[1])
            plural = "s" if rounds > 1 else ""
            return allowed, f"HiGHS MILPs by outer approximation, {rounds} round{plural}"
    return None, f"no optimum proven in {MAX_ROUNDS} rounds"


class _Milp:
    """The outer approximation's MILP over `[x; aux; z; s]`, growing by tangent cuts."""

    def __init__(self, problem: _Problem, radius: float) -> None:
        self.problem = problem
        m, width = problem.m, problem.width
        self.z_at, self.s_at = width, width + m
        self.n = width + 2 * m
        closable = np.isfinite(problem.closable)
        self.closable = closable
        w0 = -np.nan_to_num(problem.closable, nan=0.0)
        target = w0 + problem.d
        big_m = np.abs(target) + radius
        rows: list[sp.spmatrix] = [
            sp.hstack([problem.A, sp.csr_matrix((problem.A.shape[0], 2 * m))])
        ]
        lo = [np.where(problem.equal, problem.b, -np.inf)]
        hi = [problem.b]
        eye = sp.identity(m, format="csr")
        pick = sp.diags(closable.astype(float), format="csr")
        zeros_aux = sp.csr_matrix((m, width - m))
        zeros_s = sp.csr_matrix((m, m))
        # w0 + x <= M z  and  -(w0 + x) <= M z, for the closable columns.
        for sign in (1.0, -1.0):
            rows.append(sp.hstack([sign * pick @ eye, zeros_aux, -sp.diags(big_m) @ pick, zeros_s]))
            lo.append(np.full(m, -np.inf))
            hi.append(np.where(closable, -sign * w0, np.inf))
        count = sp.hstack(
            [
                sp.csr_matrix((1, width)),
                sp.csr_matrix(closable[None, :].astype(float)),
                sp.csr_matrix((1, m)),
            ]
        )
        rows.append(count)
        lo.append(np.array([-np.inf]))
        hi.append(np.array([float(problem.budget)]))
        self.rows, self.lo, self.hi = rows, lo, hi
        # Columns: x within the box and within `radius` of d; aux free; z binary; s >= 0.
        self.col_lower = np.concatenate(
            [
                np.maximum(problem.lower, problem.d - radius),
                np.full(width - m, -np.inf),
                np.zeros(2 * m),
            ]
        )
        self.col_upper = np.concatenate(
            [
                np.minimum(problem.upper, problem.d + radius),
                np.full(width - m, np.inf),
                np.where(closable, 1.0, 0.0),
                np.full(m, np.inf),
            ]
        )
        self.integer = np.zeros(self.n, dtype=bool)
        self.integer[self.z_at : self.s_at] = closable

    def cut(self, at: FloatArray) -> None:
        """Tangent planes of every :math:`(x_j - d_j)^2` at `at`: 2(a-d) x - s <= a^2 - d^2."""
        problem, m = self.problem, self.problem.m
        slope = 2.0 * (at - problem.d)
        x_part = sp.diags(slope, format="csr")
        middle = sp.csr_matrix((m, self.s_at - m))
        self.rows.append(sp.hstack([x_part, middle, -sp.identity(m, format="csr")]))
        self.lo.append(np.full(m, -np.inf))
        self.hi.append(at**2 - problem.d**2)

    def solve(self, time_limit: float) -> HighsAnswer:
        c = np.zeros(self.n)
        c[self.s_at :] = 1.0
        return solve_highs(
            c=c,
            A=sp.vstack(self.rows, format="csc"),
            row_lower=np.concatenate(self.lo),
            row_upper=np.concatenate(self.hi),
            col_lower=self.col_lower,
            col_upper=self.col_upper,
            integer=self.integer,
            time_limit=time_limit,
        )


def _linear_problem(
    exact: Layout,
    space: str,
    supports: list[tuple[RowSet, OpenSupport]],
    budget: int,
    cure_passive: bool,
) -> tuple[_Problem | None, str]:
    """The other strict rows as `A [x; aux] <= b` (equalities marked), or None and why."""
    layout = exact.for_solver()
    others = _other_rows(layout, supports)
    bounds = [solve_bounds(layout, k, cure_passive=cure_passive) for k in others]
    snap = exact.snap
    columns = _columns(exact, space)
    d = (snap.w_hat - snap.w0)[columns]
    box = (np.minimum(d, 0.0), np.maximum(d, 0.0)) if space == "scale_back" else None
    assembly = assemble(
        layout,
        others,
        bounds,
        columns=None if box is None else columns,
        target=d,
        box=box,
        scale=1.0,
    )
    if assembly is None:
        return None, "a row of another policy has no linear form (top-k, CVaR or an expression)"
    if any(kind == "soc" for kind, _size in assembly.data.cones):
        return None, "a row of another policy is a cone (a risk limit)"
    equal = (
        np.concatenate([np.full(size, kind == "zero") for kind, size in assembly.data.cones])
        if assembly.data.cones
        else np.zeros(0, dtype=bool)
    )
    lower, upper = box if box is not None else (np.full(len(d), -np.inf), np.full(len(d), np.inf))
    w0 = snap.w0[columns]
    reachable = (w0 + lower <= OPEN_POSITION) & (-OPEN_POSITION <= w0 + upper)
    closable = np.where(reachable, np.clip(-w0, lower, upper), np.nan)
    fixed_open = int(np.count_nonzero(np.abs(np.delete(snap.w0, columns)) > OPEN_POSITION))
    fixed_open += int(np.count_nonzero(~reachable))
    return (
        _Problem(
            A=sp.csr_matrix(assembly.data.A),
            b=assembly.data.b,
            equal=equal,
            m=assembly.columns,
            width=assembly.data.A.shape[1],
            d=d,
            lower=lower,
            upper=upper,
            closable=closable,
            budget=budget - fixed_open,
        ),
        "",
    )


def _fixed_support_qp(problem: _Problem, closed: BoolArray, time_limit: float) -> HighsAnswer:
    """The closest point with the columns `closed` at zero weight (HiGHS's QP)."""
    m, width = problem.m, problem.width
    lower = np.concatenate([problem.lower, np.full(width - m, -np.inf)])
    upper = np.concatenate([problem.upper, np.full(width - m, np.inf)])
    shut = np.flatnonzero(closed)
    lower[shut] = upper[shut] = problem.closable[shut]
    return solve_highs(
        c=np.concatenate([-2.0 * problem.d, np.zeros(width - m)]),
        A=problem.A,
        row_lower=np.where(problem.equal, problem.b, -np.inf),
        row_upper=problem.b,
        col_lower=lower,
        col_upper=upper,
        hessian=np.concatenate([np.full(m, 2.0), np.zeros(width - m)]),
        time_limit=time_limit,
    )


def _columns(exact: Layout, space: str) -> list[int]:
    snap = exact.snap
    return list(snap.traded) if space == "scale_back" else list(range(snap.n))


def _other_rows(layout: Layout, supports: list[tuple[RowSet, OpenSupport]]) -> list[int]:
    """The solver layout's strict row sets other than the caps' restriction rows."""
    closed = {id(support.closed) for _owner, support in supports}
    return [k for k in layout.strict() if id(layout.rowsets[k]) not in closed]


def _open_columns(problem: _Problem, x: FloatArray) -> BoolArray:
    """The closable columns open at `x` (every column that cannot close is open anyway)."""
    w = x - np.nan_to_num(problem.closable, nan=0.0)
    return np.asarray((np.abs(w) > OPEN_POSITION) & np.isfinite(problem.closable))


def _allowed(exact: Layout, columns: list[int], problem: _Problem, open_: BoolArray) -> BoolArray:
    """A mask over V: every name but the closable columns left closed."""
    allowed = np.ones(exact.snap.n, dtype=bool)
    shut = np.asarray(columns)[np.isfinite(problem.closable) & ~open_]
    allowed[shut] = False
    return allowed


def _limit(deadline: Deadline, started: float) -> float:
    """Seconds the search may still take."""
    own = TIME_LIMIT_S - (time.monotonic() - started)
    return min(own, 0.5 * deadline.remaining())

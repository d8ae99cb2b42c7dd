"""HiGHS through its own API: MILPs (branch and bound) and QPs (active set), no cvxpy.

The cardinality adjustment (`engine.adjust.cardinality`) solves a sequence of small
MILPs that grow by a few cut rows each round, and a QP per support it tries; compiling
each through cvxpy would cost more than solving it. HiGHS does not solve a QP with integer
variables (its MIP solver takes a linear objective only), hence the two calls.

Problems are `min c'x + 1/2 x' diag(h) x` subject to `row_lower <= A x <= row_upper` and
`col_lower <= x <= col_upper`, some columns integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from models.typing import BoolArray, FloatArray
from solvers.base import MIN_TIME_LIMIT_S

__all__ = ["FEASIBILITY", "HighsAnswer", "HighsStatus", "solve_highs"]

FEASIBILITY = 1e-9
"""Row and bound tolerance of every solve (weight units; HiGHS's default is 1e-6)."""

HighsStatus = Literal["optimal", "infeasible", "limit", "failed"]

_STATUS_MAP: dict[str, HighsStatus] = {
    "Optimal": "optimal",
    "Infeasible": "infeasible",
    "Time limit reached": "limit",
    "Iteration limit reached": "limit",
    "Solution limit reached": "limit",
    "Interrupted by user": "limit",
}
"""HiGHS's model status (as `modelStatusToString` spells it) to ours; the rest: failed."""


@dataclass
class HighsAnswer:
    """How one solve ended, its point (None without one), objective and dual bound."""

    status: HighsStatus
    x: FloatArray | None
    objective: float
    bound: float
    """A lower bound on the optimum: the MIP's dual bound (the objective for an LP or QP
    solved to optimality; -inf when there is none)."""


def solve_highs(
    *,
    c: FloatArray,
    A: sp.spmatrix,
    row_lower: FloatArray,
    row_upper: FloatArray,
    col_lower: FloatArray,
    col_upper: FloatArray,
    integer: BoolArray | None = None,
    hessian: FloatArray | None = None,
    time_limit: float,
    mip_rel_gap: float = 1e-7,
    mip_abs_gap: float = 0.0,
    node_limit: int = 5_000,
    feasibility: float = FEASIBILITY,
    dual_feasibility: float = FEASIBILITY,
) -> HighsAnswer:
    """Solve with HiGHS: a MILP when `integer` marks a column, else an LP or a QP.

    `hessian` is the diagonal of the quadratic term (a QP; no integer columns with it).
    Infinite bounds are HiGHS's infinity. `node_limit` bounds the branch and bound by a
    count, so that a request's answer does not depend on the machine's load.
    `feasibility` is the row, bound and integrality tolerance.
    """
    import highspy

    if hessian is not None and integer is not None and integer.any():
        raise ValueError("HiGHS solves no QP with integer variables")
    n = len(c)
    csc = sp.csc_matrix(A, dtype=float)
    csc.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, csc.shape[0]
    lp.col_cost_ = np.asarray(c, dtype=float)
    lp.col_lower_ = _finite(col_lower, highspy.kHighsInf)
    lp.col_upper_ = _finite(col_upper, highspy.kHighsInf)
    lp.row_lower_ = _finite(row_lower, highspy.kHighsInf)
    lp.row_upper_ = _finite(row_upper, highspy.kHighsInf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = csc.data
    mip = integer is not None and bool(integer.any())
    if mip:
        assert integer is not None
        kinds = highspy.HighsVarType
        lp.integrality_ = [kinds.kInteger if flag else kinds.kContinuous for flag in integer]
    solver = highspy.Highs()  # type: ignore[no-untyped-call]
    options = _options(time_limit, mip_rel_gap, node_limit)
    options.update(
        mip_abs_gap=mip_abs_gap,
        mip_feasibility_tolerance=feasibility,
        primal_feasibility_tolerance=feasibility,
        dual_feasibility_tolerance=dual_feasibility,
    )
    for name, value in options.items():
        solver.setOptionValue(name, value)
    if hessian is None:
        solver.passModel(lp)
    else:
        model = highspy.HighsModel()
        model.lp_ = lp
        q = highspy.HighsHessian()
        q.dim_ = n
        q.format_ = highspy.HessianFormat.kTriangular
        diagonal = np.asarray(hessian, dtype=float)
        present = diagonal != 0.0
        q.start_ = np.concatenate([[0], np.cumsum(present)]).astype(np.int32)
        q.index_ = np.flatnonzero(present).astype(np.int32)
        q.value_ = diagonal[present]
        model.hessian_ = q
        solver.passModel(model)
    solver.run()
    status = _STATUS_MAP.get(solver.modelStatusToString(solver.getModelStatus()), "failed")
    info = solver.getInfo()
    has_point = status in ("optimal", "limit") and info.primal_solution_status == 2
    x = np.array(solver.getSolution().col_value, dtype=float) if has_point else None
    objective = float(info.objective_function_value) if x is not None else np.inf
    if mip:
        bound = float(info.mip_dual_bound)
    else:
        bound = objective if status == "optimal" else -np.inf
    if x is None and status == "limit":
        status = "failed"
    return HighsAnswer(status, x, objective, bound)


def _finite(values: FloatArray, inf: float) -> FloatArray:
    """`values` with infinities as HiGHS's infinity."""
    out: FloatArray = np.clip(np.asarray(values, dtype=float), -inf, inf)
    return out


def _options(time_limit: float, mip_rel_gap: float, node_limit: int) -> dict[str, Any]:
    return {
        "output_flag": False,
        "time_limit": max(float(time_limit), MIN_TIME_LIMIT_S),
        "mip_rel_gap": mip_rel_gap,
        "mip_max_nodes": node_limit,
        # No "threads" option: HiGHS keeps one thread scheduler per process, and a solve that
        # asks for a count other than the one it was started with (by any earlier HiGHS
        # solve in the process, e.g. the cvxpy chain's) fails without an answer.
        # The gaps and tolerances come from `solve_highs`'s arguments: weights are
        # fractions of NAV, and rows must hold far tighter than HiGHS's 1e-6.
    }

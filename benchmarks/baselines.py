"""Reference solvers for the baseline `project` QP, written without the engine.

The QP is the engine's `project` adjustment for the baseline policies (SPEC section 6): the
post-trade weights `w` over V closest to the proposal `w_hat`,

    minimize    SCALE * ||w - w_hat||^2
    subject to  w_i <= name bound_i,  S w <= sector bounds,  1 - sum(w) >= cash bound,
                ||w - w0||_1 <= turnover bound,

where a row already beyond its limit before the decision is bounded by its pre-trade value
instead ("no worse than pre-trade"), exactly as the engine does.

- `naive_cvxpy`: a fresh cvxpy problem per request (build + canonicalize + solve), solved
  with OSQP at cvxpy's default OSQP settings (eps 1e-5, polishing on).
- `OSQPDirect`: the same QP assembled once as sparse matrices `P, q, A, l, u` (turnover
  linearized with auxiliary variables, `w - w0 = x+ - x-`), solved with the `osqp` API directly; per
  request only `q`, `l` and `u` are updated and the solver is warm-started from the last
  solution. With the same settings as the naive run it is the floor; with the engine's
  settings (eps 1e-9, polishing) it shows what the engine's accuracy costs at the floor.
- `ClarabelDirect` (the conic floor): the same split QP assembled once for Clarabel's own
  API (`clarabel.DefaultSolver(P, q, A, b, cones, settings)`, every row in one nonnegative
  cone `b - A z >= 0`, all of `b` finite so that presolve removes no row); per request only
  `q` and `b` are replaced in place (`solver.update(q=..., b=...)`, which Clarabel allows
  while `is_data_update_allowed()` holds) and the interior-point method runs from its own
  start (Clarabel has no warm start), at Clarabel's default tolerances (1e-8).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import clarabel
import cvxpy as cp
import numpy as np
import osqp
import scipy.sparse as sp

from benchmarks.policies import Limits
from models import PolicyValidationRequest, Side
from models.typing import FloatArray

__all__ = [
    "CVXPY_OSQP_SETTINGS",
    "ENGINE_OSQP_SETTINGS",
    "SCALE",
    "ClarabelDirect",
    "OSQPDirect",
    "ProjectQP",
    "Solution",
    "naive_cvxpy",
    "project_qp",
]

SCALE = 1e4
"""The engine's objective scale (engine.adjust.problems.OBJECTIVE_SCALE): same QP and tolerances."""

CVXPY_OSQP_SETTINGS: dict[str, Any] = {
    "eps_abs": 1e-5,
    "eps_rel": 1e-5,
    "max_iter": 10000,
    "polishing": True,
}
"""What cvxpy passes to OSQP when given no options."""

ENGINE_OSQP_SETTINGS: dict[str, Any] = {
    "eps_abs": 1e-9,
    "eps_rel": 1e-9,
    "max_iter": 20000,
    "polishing": True,
}
"""The engine's OSQP adapter settings (solvers/osqp.py)."""


@dataclass
class ProjectQP:
    """The numbers of one request's baseline `project` QP."""

    w0: FloatArray
    w_hat: FloatArray
    S: sp.csr_matrix
    name_ub: FloatArray
    sector_ub: FloatArray
    cash_lb: float
    turnover_ub: float

    @property
    def n(self) -> int:
        """Number of symbols in V."""
        return len(self.w0)

    def max_violation(self, w: FloatArray) -> float:
        """The largest excess of `w` over any bound (weight units; 0 when feasible)."""
        excess = [
            float(np.max(w - self.name_ub)),
            float(np.max(self.S @ w - self.sector_ub)),
            self.cash_lb - (1.0 - float(w.sum())),
            float(np.abs(w - self.w0).sum()) - self.turnover_ub,
        ]
        return max(0.0, *excess)

    def distance(self, w: FloatArray) -> float:
        """The engine's `distance`: sum of squared differences to the proposal."""
        return float(np.sum((w - self.w_hat) ** 2))


@dataclass
class Solution:
    """A reference solve: weights, status, iterations, seconds."""

    w: FloatArray
    status: str
    iterations: int
    seconds: float


def project_qp(
    request: PolicyValidationRequest, sector_of: dict[str, str], limits: Limits
) -> ProjectQP:
    """The baseline `project` QP of a request, from the request alone (SPEC section 2)."""
    state = request.portfolio_state
    price = {i.symbol: i.price for i in state.instruments}
    held = {p.symbol: p.quantity for p in state.positions}
    traded: dict[str, float] = {}
    for trade in request.decision.trades:
        sign = 1.0 if trade.side == Side.BUY else -1.0
        traded[trade.symbol] = traded.get(trade.symbol, 0.0) + sign * trade.quantity
    symbols = sorted({s for s, q in held.items() if q != 0} | set(traded))
    p = np.array([price[s] for s in symbols])
    q = np.array([held.get(s, 0.0) for s in symbols])
    t = np.array([traded.get(s, 0.0) for s in symbols])
    cash = state.cash
    assert isinstance(cash, float), "the baselines price single-currency books only"
    nav = cash + float(q @ p)
    w0, w_hat = q * p / nav, (q + t) * p / nav
    groups = sorted({sector_of[s] for s in symbols})
    row = {g: r for r, g in enumerate(groups)}
    S = sp.csr_matrix(
        (np.ones(len(symbols)), ([row[sector_of[s]] for s in symbols], range(len(symbols)))),
        shape=(len(groups), len(symbols)),
    )
    # Rows beyond their limit before the decision may not get worse.
    return ProjectQP(
        w0=w0,
        w_hat=w_hat,
        S=S,
        name_ub=np.maximum(limits.name_max, w0),
        sector_ub=np.maximum(limits.sector_max, S @ w0),
        cash_lb=min(limits.cash_min, 1.0 - float(w0.sum())),
        turnover_ub=limits.turnover_max,
    )


def naive_cvxpy(qp: ProjectQP) -> Solution:
    """Build the QP in cvxpy from scratch and solve it with OSQP (cvxpy's defaults)."""
    start = time.perf_counter()
    w = cp.Variable(qp.n)
    constraints = [
        w <= qp.name_ub,
        qp.S @ w <= qp.sector_ub,
        1 - cp.sum(w) >= qp.cash_lb,
        cp.norm1(w - qp.w0) <= qp.turnover_ub,
    ]
    problem = cp.Problem(cp.Minimize(SCALE * cp.sum_squares(w - qp.w_hat)), constraints)
    with warnings.catch_warnings():
        # "Solution may be inaccurate": recorded through the status instead.
        warnings.simplefilter("ignore")
        problem.solve(solver=cp.OSQP)
    seconds = time.perf_counter() - start
    value = np.asarray(w.value, dtype=float) if w.value is not None else qp.w0.copy()
    iterations = int(problem.solver_stats.num_iters or 0)
    return Solution(value, str(problem.status), iterations, seconds)


class OSQPDirect:
    """The QP as sparse matrices, set up once; per request only q, l, u change.

    Variables `z = (x+, x-) >= 0` with `w - w0 = x+ - x-`, so that turnover is the linear
    `sum(x+ + x-) <= bound` (exact: the optimum never needs both parts of one symbol, and
    any split bounds `|x|` from above). The other obvious linearization, an auxiliary
    `s >= |x|` with rows `x - s <= 0`, `x + s >= 0`, is the same QP but OSQP ran into its
    iteration limit on it at n = 500, so the floor uses this one.
    """

    def __init__(self, qp: ProjectQP, settings: dict[str, Any]) -> None:
        n = qp.n
        eye = sp.identity(n, format="csc")
        ones = sp.csc_matrix(np.ones((1, n)))
        D = sp.hstack([eye, -eye], format="csc")  # x = D z
        self.P = sp.triu(2.0 * SCALE * (D.T @ D), format="csc")
        self.A = sp.vstack(
            [
                sp.identity(2 * n, format="csc"),  # z >= 0
                D,  # name caps
                qp.S @ D,  # sector caps
                ones @ D,  # cash floor
                sp.hstack([ones, ones]),  # turnover
            ],
            format="csc",
        )
        self.D = D
        self.solver = osqp.OSQP()
        q, lower, upper = self._vectors(qp)
        self.solver.setup(
            self.P, q, self.A, lower, upper, verbose=False, warm_starting=True, **settings
        )

    def _vectors(self, qp: ProjectQP) -> tuple[FloatArray, FloatArray, FloatArray]:
        n, k = qp.n, qp.S.shape[0]
        q = np.asarray(-2.0 * SCALE * (self.D.T @ (qp.w_hat - qp.w0)), dtype=float)
        lower = np.concatenate([np.zeros(2 * n), np.full(n + k + 2, -np.inf)])
        upper = np.concatenate(
            [
                np.full(2 * n, np.inf),
                qp.name_ub - qp.w0,
                qp.sector_ub - qp.S @ qp.w0,
                [1.0 - float(qp.w0.sum()) - qp.cash_lb],
                [qp.turnover_ub],
            ]
        )
        return q, lower, upper

    def solve(self, qp: ProjectQP) -> Solution:
        """Update q, l, u for this request and solve (warm-started)."""
        start = time.perf_counter()
        q, lower, upper = self._vectors(qp)
        self.solver.update(q=q, l=lower, u=upper)
        result = self.solver.solve(raise_error=False)  # the status is recorded instead
        seconds = time.perf_counter() - start
        z = np.asarray(result.x, dtype=float)
        x = z[: qp.n] - z[qp.n :] if np.all(np.isfinite(z)) else np.zeros(qp.n)
        return Solution(qp.w0 + x, str(result.info.status), int(result.info.iter), seconds)


class ClarabelDirect:
    """The split QP of `OSQPDirect` for Clarabel's own API; per request only q and b change.

    Rows, all `A z <= b`: `-z <= 0`, name caps, sector caps, cash floor, turnover, so the
    cone is one `NonnegativeConeT` of their number.
    """

    def __init__(self, qp: ProjectQP) -> None:
        n = qp.n
        eye = sp.identity(n, format="csc")
        ones = sp.csc_matrix(np.ones((1, n)))
        self.D = sp.hstack([eye, -eye], format="csc")
        P = sp.triu(2.0 * SCALE * (self.D.T @ self.D), format="csc")
        A = sp.vstack(
            [-sp.identity(2 * n), self.D, qp.S @ self.D, ones @ self.D, sp.hstack([ones, ones])],
            format="csc",
        )
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        q, b = self._vectors(qp)
        cones = [clarabel.NonnegativeConeT(A.shape[0])]
        self.solver = clarabel.DefaultSolver(P, q, A, b, cones, settings)
        if not self.solver.is_data_update_allowed():
            raise RuntimeError("Clarabel does not allow data updates on this problem")

    def _vectors(self, qp: ProjectQP) -> tuple[FloatArray, FloatArray]:
        q = np.asarray(-2.0 * SCALE * (self.D.T @ (qp.w_hat - qp.w0)), dtype=float)
        b = np.concatenate(
            [
                np.zeros(2 * qp.n),
                qp.name_ub - qp.w0,
                qp.sector_ub - qp.S @ qp.w0,
                [1.0 - float(qp.w0.sum()) - qp.cash_lb],
                [qp.turnover_ub],
            ]
        )
        return q, b

    def solve(self, qp: ProjectQP) -> Solution:
        """Replace q and b in place for this request and solve."""
        start = time.perf_counter()
        q, b = self._vectors(qp)
        self.solver.update(q=q, b=b)
        result = self.solver.solve()
        seconds = time.perf_counter() - start
        z = np.asarray(result.x, dtype=float)
        x = z[: qp.n] - z[qp.n :] if np.all(np.isfinite(z)) else np.zeros(qp.n)
        return Solution(qp.w0 + x, str(result.status), int(result.iterations), seconds)

"""The cvxportfolio peer: the baseline `project` QP as a cvxportfolio policy, compiled once.

cvxportfolio (`pip install -e '.[bench]'`) is a back-testing library: a policy such as
`cvx.SinglePeriodOptimization(objective, constraints)` is compiled to a cvxpy problem
once, in `initialize_estimator_recursive(universe, trading_calendar)`, with every datum
that changes in time a cvxpy Parameter; then `values_in_time_recursive(t, current_weights,
...)` sets the parameters for time `t` from the data it was given (pandas objects indexed
by time) and solves. `Policy.execute(h, market_data, t)`, its per-trade entry point,
initializes (compiles) on every call, so the peer drives those two steps directly instead:

- the requests to be timed are given up front, request `i` at the `i`-th day of a
  calendar (data built before the clock, as the engine paths' requests are);
- compile once over the universe (V's symbols and cash, `CASH`) and that calendar;
- per request, `values_in_time_recursive(t_i, current_weights = w0 with cash)`: the
  parameters are read from the time-indexed data and the problem is solved.

The problem is the same QP as `benchmarks.baselines` (the engine's `project` for the
baseline policies), in cvxportfolio's own terms (post-trade weights `w+`, cash last):

    maximize    -SCALE * DiagonalCovariance(1) on w+ - w_hat     (the proposal is the
                                                                   policy's "benchmark")
    subject to  MaxWeights(name bounds), FactorMaxLimit(sector indicators, sector bounds),
                MinCashBalance(cash bound; portfolio value 1, so in weights),
                TurnoverLimit(turnover bound / 2)      (cvxportfolio's turnover is half |z|_1)

with `include_cash_return=False` (no market data). Its answers are checked by the
benchmark's own numpy code (`ProjectQP.max_violation`), not by cvxportfolio.
"""

from __future__ import annotations

import importlib
import time
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.baselines import SCALE, ProjectQP, Solution

__all__ = ["CASH", "CvxportfolioPeer", "cvxportfolio"]

CASH = "USDOLLAR"
"""cvxportfolio's default name of the cash account (the last element of the universe)."""


def cvxportfolio() -> ModuleType:
    """`import cvxportfolio`, without the pandas deprecation warning of its own import.

    cvxportfolio 1.5 builds a default `pd.Timedelta("1d")` at import, which pandas 3 warns
    about ('d' is deprecated); nothing for the benchmark to act on, so that one warning is
    silenced (the test suite turns warnings into errors).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'d' is deprecated")
        return importlib.import_module("cvxportfolio")


class CvxportfolioPeer:
    """The `project` QPs of `qps` as one cvxportfolio policy; `solve(i)` solves request i.

    `solver` is passed to cvxpy through cvxportfolio (`"CLARABEL"`); None leaves the
    choice to cvxpy (its default for this problem). Every QP must be over the same
    symbols and sectors (one case).
    """

    def __init__(self, qps: Sequence[ProjectQP], symbols: Sequence[str], solver: str | None):
        cvx = cvxportfolio()
        self.qps = list(qps)
        self.times = pd.date_range("2026-01-01", periods=len(self.qps), freq="D")
        names = list(symbols)
        self.universe = pd.Index([*names, CASH])
        sectors = [f"sector{k}" for k in range(self.qps[0].S.shape[0])]
        exposure = pd.DataFrame(self.qps[0].S.T.toarray(), index=names, columns=sectors)

        def frame(rows: list[Any], columns: Sequence[str]) -> pd.DataFrame:
            return pd.DataFrame(np.array(rows), index=self.times, columns=list(columns))

        def series(values: list[float]) -> pd.Series:
            return pd.Series(values, index=self.times)

        proposal = frame([np.append(q.w_hat, 1.0 - q.w_hat.sum()) for q in self.qps], self.universe)
        constraints = [
            cvx.MaxWeights(frame([q.name_ub for q in self.qps], names)),
            cvx.FactorMaxLimit(exposure, frame([q.sector_ub for q in self.qps], sectors)),
            cvx.MinCashBalance(series([q.cash_lb for q in self.qps])),
            cvx.TurnoverLimit(series([q.turnover_ub / 2.0 for q in self.qps])),
        ]
        objective = -SCALE * cvx.DiagonalCovariance(pd.Series(1.0, index=names))
        kwargs = {} if solver is None else {"solver": solver}
        self.policy = cvx.SinglePeriodOptimization(
            objective, constraints, include_cash_return=False, benchmark=proposal, **kwargs
        )
        start = time.perf_counter()
        self.policy.initialize_estimator_recursive(
            universe=self.universe, trading_calendar=self.times
        )
        self.compile_seconds = time.perf_counter() - start

    def solve(self, i: int) -> Solution:
        """Set request i's parameters and solve (the timed part)."""
        errors = cvxportfolio().errors
        qp = self.qps[i]
        current = pd.Series(np.append(qp.w0, 1.0 - qp.w0.sum()), index=self.universe)
        failed: str | None = None
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # inaccuracy is recorded through the status
                w_plus = self.policy.values_in_time_recursive(
                    t=self.times[i],
                    current_weights=current,
                    current_portfolio_value=1.0,
                    past_returns=None,
                    past_volumes=None,
                    current_prices=None,
                )
            w = np.asarray(w_plus.values[:-1], dtype=float)
        except errors.PortfolioOptimizationError as exc:
            w, failed = qp.w0.copy(), type(exc).__name__
        seconds = time.perf_counter() - start
        if failed is not None:
            return Solution(w, failed, 0, seconds)
        problem = self.policy._problem  # cvxportfolio keeps its compiled cvxpy problem here
        stats = problem.solver_stats
        status = f"{stats.solver_name}: {problem.status}"
        return Solution(w, status, int(stats.num_iters or 0), seconds)

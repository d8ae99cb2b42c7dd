"""HiGHS: active-set QP and simplex LP solver; exact vertex answers, certified infeasibility."""

from __future__ import annotations

from typing import Any, ClassVar

import cvxpy as cp

from solvers.base import CvxpyAdapter
from solvers.tolerances import HIGHS_MAX_OBJECTIVE_ERROR

__all__ = ["HiGHSAdapter"]


class HiGHSAdapter(CvxpyAdapter):
    """HiGHS for QPs (no cones).

    Its active-set QP method ends on an exact active set, which first-order (OSQP) and
    interior-point (Clarabel) methods only approach; it also copes with feasible sets that
    have no interior. The engine uses it to polish cone problems on their tangent planes.
    """

    name = "HIGHS"
    package = "highspy"
    supports_socp = False
    certifies_infeasibility = True
    settings: ClassVar[dict[str, Any]] = {}
    max_objective_error: ClassVar[float] = HIGHS_MAX_OBJECTIVE_ERROR

    def doubt(self, problem: cp.Problem) -> str | None:
        """HiGHS's QP solver can report optimal with a large primal-dual objective error."""
        info = problem.solver_stats.extra_stats if problem.solver_stats else None
        error = getattr(info, "primal_dual_objective_error", None)
        if error is not None and error > self.max_objective_error:
            return f"reported optimal with primal-dual objective error {error:.3g}"
        return None

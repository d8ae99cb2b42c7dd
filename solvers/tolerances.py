"""The tolerances the solver adapters pass to their solvers.

A leaf module: `solvers` may not import `engine`, so these live here and `engine.tolerances`
re-exports them.

Where they sit in the service's hierarchy of tolerances, and why a solver's tolerance never
reaches a verdict, is documented once, in `engine.tolerances`.
"""

from __future__ import annotations

__all__ = [
    "HIGHS_MAX_OBJECTIVE_ERROR",
    "INTERIOR_POINT_REFINEMENT_TOLERANCE",
    "INTERIOR_POINT_TOLERANCE",
    "OSQP_TOLERANCE",
]

INTERIOR_POINT_TOLERANCE = 1e-8
"""Clarabel's and ECOS's gap (absolute and relative) and feasibility tolerances.

Solver-defined: absolute and relative in each solver's own sense, on an objective the
engine scales to order one. Tighter settings often end "almost solved" on cone problems
without a better answer; the engine checks every answer at `engine.tolerances.TOLERANCE`.
"""

INTERIOR_POINT_REFINEMENT_TOLERANCE = 1e-10
"""Clarabel's iterative refinement of each KKT solve stops once the residual is below this
times the right-hand side's norm (plus 1e-12); Clarabel's default is 1e-13.

Solver-defined, and no termination criterion: it decides how many refinement steps each
linear solve takes, not when the answer is optimal (that is `INTERIOR_POINT_TOLERANCE`,
on residuals computed from the data). On the risk-limited project problems it saves a
refinement step in most solves, 10-15% of the solve, with the same iterations and
answers (docs/performance-notes.md, "Risk cones: shared exposures", 2026-12-04).
"""

OSQP_TOLERANCE = 1e-9
"""OSQP's `eps_abs` and `eps_rel` (solver-defined absolute and relative residual bounds).

Loose settings leave hard limits violated by ~1e-4; with polishing, 1e-9 recovers the
exact solution on the identified active set.
"""

HIGHS_MAX_OBJECTIVE_ERROR = 1e-6
"""The largest primal-dual objective error (as HiGHS reports it, relative) for which an
"optimal" HiGHS QP answer is believed; above it the answer is doubted and the chain moves on.
"""

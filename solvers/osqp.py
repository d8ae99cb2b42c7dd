"""OSQP: first-order QP solver, warm-started; polished for exact active sets."""

from __future__ import annotations

from typing import Any, ClassVar

from solvers.base import CvxpyAdapter
from solvers.tolerances import OSQP_TOLERANCE

__all__ = ["OSQPAdapter"]


class OSQPAdapter(CvxpyAdapter):
    """OSQP with tight tolerances and polishing.

    Loose tolerances leave hard limits violated by ~1e-4, which is unusable for a compliance
    answer; polishing recovers the exact solution on the identified active set. OSQP's
    infeasibility verdicts are heuristics, so the chain confirms them with another solver.
    """

    name = "OSQP"
    package = "osqp"
    supports_socp = False
    certifies_infeasibility = False
    no_time_limit = 1e10  # OSQP's default; it refuses infinity and 0
    settings: ClassVar[dict[str, Any]] = {
        "eps_abs": OSQP_TOLERANCE,
        "eps_rel": OSQP_TOLERANCE,
        "polishing": True,
        "max_iter": 20000,
    }

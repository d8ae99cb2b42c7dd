"""Clarabel: interior-point conic solver (QP, SOCP); high accuracy, certified infeasibility."""

from __future__ import annotations

from typing import Any, ClassVar

from solvers.base import CvxpyAdapter
from solvers.tolerances import INTERIOR_POINT_TOLERANCE

__all__ = ["ClarabelAdapter"]


class ClarabelAdapter(CvxpyAdapter):
    """Clarabel at 1e-8 (on an objective scaled to order one).

    Tighter settings often end "almost solved" on cone problems without a better answer;
    the engine verifies every solution against the limits at 1e-9 anyway.
    """

    name = "CLARABEL"
    package = "clarabel"
    supports_socp = True
    certifies_infeasibility = True
    settings: ClassVar[dict[str, Any]] = {
        "tol_gap_abs": INTERIOR_POINT_TOLERANCE,
        "tol_gap_rel": INTERIOR_POINT_TOLERANCE,
        "tol_feas": INTERIOR_POINT_TOLERANCE,
        "max_iter": 200,
    }

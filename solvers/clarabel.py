"""Clarabel: interior-point conic solver (QP, SOCP); high accuracy, certified infeasibility."""

from __future__ import annotations

from typing import Any, ClassVar

from solvers.base import CvxpyAdapter

__all__ = ["ClarabelAdapter"]


class ClarabelAdapter(CvxpyAdapter):
    """Clarabel with tolerances tight enough for a 1e-9 compliance check."""

    name = "CLARABEL"
    package = "clarabel"
    supports_socp = True
    certifies_infeasibility = True
    settings: ClassVar[dict[str, Any]] = {
        "tol_gap_abs": 1e-10,
        "tol_gap_rel": 1e-10,
        "tol_feas": 1e-10,
        "max_iter": 200,
    }

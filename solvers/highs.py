"""HiGHS: active-set QP and simplex LP solver; exact vertex answers, certified infeasibility."""

from __future__ import annotations

from typing import Any, ClassVar

from solvers.base import CvxpyAdapter

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

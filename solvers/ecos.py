"""ECOS: interior-point SOCP solver, the conic fallback after Clarabel."""

from __future__ import annotations

from typing import Any, ClassVar

from solvers.base import CvxpyAdapter
from solvers.tolerances import INTERIOR_POINT_TOLERANCE

__all__ = ["ECOSAdapter"]


class ECOSAdapter(CvxpyAdapter):
    """ECOS with tight tolerances; handles the QP objective through its SOC form."""

    name = "ECOS"
    package = "ecos"
    supports_socp = True
    certifies_infeasibility = True
    time_limit_option = None  # ECOS has no wall-clock limit; the chain skips it when late
    settings: ClassVar[dict[str, Any]] = {
        "abstol": INTERIOR_POINT_TOLERANCE,
        "reltol": INTERIOR_POINT_TOLERANCE,
        "feastol": INTERIOR_POINT_TOLERANCE,
        "max_iters": 200,
    }

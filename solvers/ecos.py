"""ECOS: interior-point SOCP solver, the conic fallback after Clarabel."""

from __future__ import annotations

from typing import Any, ClassVar

from solvers.base import CvxpyAdapter

__all__ = ["ECOSAdapter"]


class ECOSAdapter(CvxpyAdapter):
    """ECOS with tight tolerances; handles the QP objective through its SOC form."""

    name = "ECOS"
    package = "ecos"
    supports_socp = True
    certifies_infeasibility = True
    time_limit_option = None  # ECOS has no wall-clock limit; the chain skips it when late
    settings: ClassVar[dict[str, Any]] = {
        "abstol": 1e-8,
        "reltol": 1e-8,
        "feastol": 1e-8,
        "max_iters": 200,
    }

"""Solver adapters behind one interface, and the fallback chain."""

from __future__ import annotations

from solvers.base import SolveOutcome, SolverAdapter, SolveStatus
from solvers.chain import ChainResult, SolverChain, default_chain
from solvers.clarabel import ClarabelAdapter
from solvers.direct import CLARABEL_DIRECT, ConicData, DirectClarabel, DirectSolution
from solvers.ecos import ECOSAdapter
from solvers.highs import HiGHSAdapter
from solvers.osqp import OSQPAdapter

__all__ = [
    "CLARABEL_DIRECT",
    "ChainResult",
    "ClarabelAdapter",
    "ConicData",
    "DirectClarabel",
    "DirectSolution",
    "ECOSAdapter",
    "HiGHSAdapter",
    "OSQPAdapter",
    "SolveOutcome",
    "SolveStatus",
    "SolverAdapter",
    "SolverChain",
    "default_chain",
]

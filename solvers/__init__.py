"""Solver adapters behind one interface, and the fallback chain."""

from __future__ import annotations

from solvers.base import SolveOutcome, SolverAdapter, SolveStatus
from solvers.chain import ChainResult, SolverChain, default_chain
from solvers.clarabel import ClarabelAdapter
from solvers.direct import (
    CLARABEL_DIRECT,
    OSQP_DIRECT,
    ConicData,
    DirectClarabel,
    DirectOSQP,
    DirectSolution,
    DirectSolver,
)
from solvers.ecos import ECOSAdapter
from solvers.highs import HiGHSAdapter
from solvers.osqp import OSQPAdapter

__all__ = [
    "CLARABEL_DIRECT",
    "OSQP_DIRECT",
    "ChainResult",
    "ClarabelAdapter",
    "ConicData",
    "DirectClarabel",
    "DirectOSQP",
    "DirectSolution",
    "DirectSolver",
    "ECOSAdapter",
    "HiGHSAdapter",
    "OSQPAdapter",
    "SolveOutcome",
    "SolveStatus",
    "SolverAdapter",
    "SolverChain",
    "default_chain",
]

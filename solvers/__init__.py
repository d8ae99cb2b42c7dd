"""Solver adapters behind one interface, and the fallback chain.

The adapters are loaded on first use (PEP 562): they import cvxpy (and with it scipy, and jax
where installed), seconds that a leaf such as `solvers.tolerances` (re-exported by
`engine.tolerances`) must not cost whoever imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.lazy import lazy_attributes
from solvers.banner import silence_banner

if TYPE_CHECKING:
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

# HiGHS prints a banner on standard output the first time it is built (`pes validate` writes
# JSON there): absorbed now, whichever solver module is loaded later.
silence_banner()

# The module each lazily loaded name comes from.
_LAZY = {
    "CLARABEL_DIRECT": "solvers.direct",
    "OSQP_DIRECT": "solvers.direct",
    "ChainResult": "solvers.chain",
    "ClarabelAdapter": "solvers.clarabel",
    "ConicData": "solvers.direct",
    "DirectClarabel": "solvers.direct",
    "DirectOSQP": "solvers.direct",
    "DirectSolution": "solvers.direct",
    "DirectSolver": "solvers.direct",
    "ECOSAdapter": "solvers.ecos",
    "HiGHSAdapter": "solvers.highs",
    "OSQPAdapter": "solvers.osqp",
    "SolveOutcome": "solvers.base",
    "SolveStatus": "solvers.base",
    "SolverAdapter": "solvers.base",
    "SolverChain": "solvers.chain",
    "default_chain": "solvers.chain",
}


# Defined for the interpreter only: a module `__getattr__` would make mypy accept any name
# here; it sees the lazy names through the TYPE_CHECKING imports above.
if not TYPE_CHECKING:
    __getattr__ = lazy_attributes("solvers", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""The domain core: portfolio arithmetic, policy compiler, checker and adjuster.

Subpackages follow the stages of a request: `resolve` -> `weights` -> `compile` -> `check`
-> `adjust` -> `report` (violations and advice from the check and the adjustment), with
`capacity` and `export` built on `adjust`; a stage imports only those before it
(`lint-imports` checks it). `engine.engine.PolicyEngine` runs them; errors, deadlines,
stage timing and the LRU cache are shared at the top. Exposes the engine, its errors and
the kind registry.

`PolicyEngine`, `CacheStats` and `REGISTRY` are loaded on first use (PEP 562): they pull in
the compiler and with it cvxpy (and scipy, and jax where installed), seconds of import time
that code which never compiles a policy (`pes --help`, the store, the resolver) need not pay.
The errors and `Deadline` are light and stay eager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.deadline import Deadline
from engine.errors import (
    DeadlineExceeded,
    EngineError,
    InputError,
    MissingDataError,
    NoApplicablePolicies,
    PolicyEvaluationError,
    PolicyResolutionError,
    RequestCancelled,
    SolverError,
    UnknownSymbolError,
)
from models.lazy import lazy_attributes

if TYPE_CHECKING:
    from engine.compile.kinds import REGISTRY
    from engine.engine import CacheStats, PolicyEngine

__all__ = [
    "REGISTRY",
    "CacheStats",
    "Deadline",
    "DeadlineExceeded",
    "EngineError",
    "InputError",
    "MissingDataError",
    "NoApplicablePolicies",
    "PolicyEvaluationError",
    "PolicyEngine",
    "PolicyResolutionError",
    "RequestCancelled",
    "SolverError",
    "UnknownSymbolError",
]

# The lazily loaded names and the module each comes from.
_LAZY = {
    "REGISTRY": "engine.compile.kinds",
    "CacheStats": "engine.engine",
    "PolicyEngine": "engine.engine",
}


# Defined for the interpreter only: a module `__getattr__` would make mypy accept any name
# here; it sees the lazy names through the TYPE_CHECKING imports above.
if not TYPE_CHECKING:
    __getattr__ = lazy_attributes("engine", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""The domain core: portfolio arithmetic, policy compiler, checker and adjuster.

Subpackages follow the stages of a request: `resolve` -> `weights` -> `compile` -> `check`
-> `adjust` -> `report` (violations and advice from the check and the adjustment), with
`capacity` and `export` built on `adjust`; a stage imports only those before it
(`lint-imports` checks it). `engine.engine.PolicyEngine` runs them; errors, deadlines,
stage timing and the LRU cache are shared at the top. Exposes the engine, its errors and
the kind registry.
"""

from __future__ import annotations

from engine.compile.kinds import REGISTRY
from engine.deadline import Deadline
from engine.engine import CacheStats, PolicyEngine
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

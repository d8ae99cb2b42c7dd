"""The domain core: portfolio arithmetic, policy compiler, checker and adjuster."""

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

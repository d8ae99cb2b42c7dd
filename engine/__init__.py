"""The domain core: portfolio arithmetic, policy compiler, checker and adjuster."""

from __future__ import annotations

from engine.errors import (
    EngineError,
    InputError,
    MissingDataError,
    NoApplicablePolicies,
    PolicyEvaluationError,
    PolicyResolutionError,
    SolverError,
    UnknownSymbolError,
)
from engine.kinds import REGISTRY
from engine.service import CacheStats, PolicyEngine

__all__ = [
    "REGISTRY",
    "CacheStats",
    "EngineError",
    "InputError",
    "MissingDataError",
    "NoApplicablePolicies",
    "PolicyEvaluationError",
    "PolicyEngine",
    "PolicyResolutionError",
    "SolverError",
    "UnknownSymbolError",
]

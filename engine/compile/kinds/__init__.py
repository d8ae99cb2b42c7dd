"""Constraint kinds, one small class each, registered by name (SPEC section 4).

Owns the `Kind` base class, the registry (`REGISTRY`, kind name -> instance) and every
kind: positions (`positions`), groups, exposures, cash, turnover and concentration
(`aggregates`), cash per currency and currency exposure (`currencies`), drift from the
target weights (`drift`), risk (`risk`), the runtime controls' trade risk and correlation
clusters (`controls`), regulatory rules (`regulatory`) and custom expressions
(`expression`); each class carries its math in its docstring and compiles a spec into row
sets. Exposes the registry and the base class. May import `engine.compile` (context, rows,
blocks, language), `engine.weights`, `engine.errors` and `models`.
"""

from __future__ import annotations

from engine.compile.kinds import (
    aggregates,
    controls,
    currencies,
    drift,
    expression,
    positions,
    regulatory,
    risk,
)
from engine.compile.kinds.base import REGISTRY, Kind

__all__ = [
    "REGISTRY",
    "Kind",
    "aggregates",
    "controls",
    "currencies",
    "drift",
    "expression",
    "positions",
    "regulatory",
    "risk",
]

"""Constraint kinds, one small class each, registered by name (SPEC section 4)."""

from __future__ import annotations

from engine.compile.kinds import exposures, expression, positions, regulatory, risk
from engine.compile.kinds.base import REGISTRY, Kind

__all__ = ["REGISTRY", "Kind", "exposures", "expression", "positions", "regulatory", "risk"]

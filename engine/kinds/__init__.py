"""Constraint kinds, one small class each, registered by name (SPEC section 4)."""

from __future__ import annotations

from engine.kinds import exposures, expression, positions, regulatory, risk
from engine.kinds.base import REGISTRY, Kind

__all__ = ["REGISTRY", "Kind", "exposures", "expression", "positions", "regulatory", "risk"]

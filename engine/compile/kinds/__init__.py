"""Constraint kinds, one small class each, registered by name (SPEC section 4)."""

from __future__ import annotations

from engine.compile.kinds import aggregates, expression, positions, regulatory, risk
from engine.compile.kinds.base import REGISTRY, Kind

__all__ = ["REGISTRY", "Kind", "aggregates", "expression", "positions", "regulatory", "risk"]

"""The custom-expression language: parser, DCP analysis, evaluation (docs/expressions.md)."""

from __future__ import annotations

from engine.language.curvature import analyze
from engine.language.expression import ExpressionError, parse
from engine.language.finite import NonFiniteError, check_finite
from engine.language.functions import FUNCTIONS
from engine.language.nodes import Constraint
from engine.language.policies import ExpressionInputError, check_policies, check_policy

__all__ = [
    "FUNCTIONS",
    "Constraint",
    "ExpressionError",
    "ExpressionInputError",
    "NonFiniteError",
    "analyze",
    "check_policies",
    "check_finite",
    "check_policy",
    "parse",
]

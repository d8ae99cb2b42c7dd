"""The custom-expression language: parser, DCP analysis, evaluation (docs/expressions.md)."""

from __future__ import annotations

from engine.compile.language.curvature import analyze
from engine.compile.language.expression import ExpressionError, parse
from engine.compile.language.finite import NonFiniteError, check_finite
from engine.compile.language.functions import FUNCTIONS
from engine.compile.language.nodes import Constraint
from engine.compile.language.policies import ExpressionInputError, check_policies, check_policy

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

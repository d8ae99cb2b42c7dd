"""The custom-expression language: parser, DCP analysis, evaluation (docs/expressions.md).

Owns the grammar and parser (`expression`), the syntax tree (`nodes`), convexity analysis
(`curvature`), the finiteness check of constants (`finite`), name binding against a
request (`bind`), evaluation to numbers and to cvxpy (`evaluate`, `functions`), the block an
expression compiles to (`block`) and the checks run when a policy is stored (`policies`).
Exposes the parser, the policy checks and their errors. May import `engine.compile`'s
rows and blocks, `engine.weights`, `engine.errors` and `models`.
"""

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

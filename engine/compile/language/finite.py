"""Finiteness of a policy's numbers, checked where a policy enters (store time).

The models refuse NaN and infinities in every numeric field, but an expression's numbers
are only text until it is parsed: `sum(w) <= 1e400` reads an infinite limit and
`sum(w) * 1e308 * 1e308 <= 1` multiplies the weights by an infinite coefficient, which no
validation can evaluate. `check_finite` refuses both, and re-checks every number of the
definition, so that what is stored can always be evaluated.

An expression's *scale* bounds how much it can magnify numbers of size one (weights,
attributes): numbers multiply it, sums add it, a division by a number divides it, and the
functions of the language (sums, norms, maxima, risk) are positively homogeneous, so they
add their arguments' scales. A scale that is not a finite float means some coefficient
of the compiled constraint overflows.
"""

from __future__ import annotations

import math
from typing import Any

from engine.compile.language.curvature import info
from engine.compile.language.expression import parse
from engine.compile.language.nodes import (
    Arith,
    AttributeTest,
    Call,
    Comparison,
    Index,
    Mask,
    Name,
    Negate,
    Node,
    Number,
)
from engine.errors import InputError
from models import Expression, PolicyDefinition

__all__ = ["NonFiniteError", "check_finite", "scale"]


class NonFiniteError(InputError):
    """A number of a policy is, or folds to, an infinity or NaN."""


def scale(node: Node) -> float:
    """How much `node` can magnify inputs of size one (inf or nan: it overflows).

    `node` must have passed the DCP analysis (`curvature.analyze`): a divisor is a number.
    """
    if isinstance(node, Number):
        return abs(node.value)
    if isinstance(node, Name):
        return 1.0
    if isinstance(node, Negate):
        return scale(node.operand)
    if isinstance(node, Index):
        return scale(node.base)
    if isinstance(node, Arith):
        return _arith_scale(node)
    if isinstance(node, Call):
        return math.fsum(scale(arg) for arg in node.args)
    return 0.0  # strings, lists and masks select symbols; they carry no magnitude


def _arith_scale(node: Arith) -> float:
    left, right = scale(node.left), scale(node.right)
    if node.op in ("+", "-"):
        return left + right
    if node.op == "*":
        return left * right
    divisor = info(node.right).number
    if not divisor:  # the analysis has refused a non-number or zero divisor
        return math.inf
    return left / abs(divisor)


def _masks(node: Node) -> list[AttributeTest]:
    """Every attribute test under `node` (inside `w[...]` selections)."""
    out = [node] if isinstance(node, AttributeTest) else []
    for child in vars(node).values():
        items = child if isinstance(child, tuple) else (child,)
        out += [t for item in items if isinstance(item, Node) for t in _masks(item)]
    return out


def _expression_problem(source: str) -> str | None:
    """Why the numbers of the (already analysed) expression `source` are unusable, or None."""
    tree = parse(source)
    sides = tree.operands if isinstance(tree, Comparison) else (tree,)
    for side in sides:
        if not isinstance(side, Mask) and not math.isfinite(scale(side)):
            return (
                f"{side.text} is not finite: its numbers combine to more than a float "
                "holds (about 1.8e308); use smaller coefficients or limits"
            )
    for test in _masks(tree):
        for value in test.values:
            if isinstance(value, float) and not math.isfinite(value):
                return f"{test.text} compares with a number too large for a float"
    return None


def _non_finite(value: Any, path: str) -> str | None:
    """Path of the first infinity or NaN in a dumped definition, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{k}]", item) for k, item in enumerate(value))
    else:
        return None
    for sub_path, item in items:
        found = _non_finite(item, sub_path)
        if found is not None:
            return found
    return None


def check_finite(policy: PolicyDefinition, *, prefix: str = "") -> None:
    """Raise `NonFiniteError` naming the policy and the field whose number is not finite.

    Expressions must have passed the DCP analysis first (`check_policy` does both).
    """
    where = f"policy {policy.policy_name!r}"
    found = _non_finite(policy.model_dump(mode="python"), "")
    if found is not None:
        raise NonFiniteError(f"{prefix}{found}", f"{where}: the number is not finite")
    for j, spec in enumerate(policy.rules.constraints):
        if isinstance(spec, Expression):
            problem = _expression_problem(spec.expr)
            if problem is not None:
                raise NonFiniteError(f"{prefix}rules.constraints[{j}].expr", f"{where}: {problem}")

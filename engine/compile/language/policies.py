"""Checking every custom expression of a policy when it is stored or sent inline.

The API calls `check_policy` before a policy is created, replaced or patched, `pes policies
apply` and `pes validate --policies` through the policy-file loader, and the engine calls
`check_policies` on a request's inline policies: a policy that cannot be compiled is
refused where it enters, with the path of the offending field.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.compile.language.curvature import analyze
from engine.compile.language.expression import ExpressionError
from engine.compile.language.finite import check_finite
from engine.errors import InputError
from models import Expression, PolicyDefinition

__all__ = ["ExpressionInputError", "check_policies", "check_policy"]


class ExpressionInputError(InputError):
    """A custom expression is malformed or not convex."""


def check_policy(policy: PolicyDefinition, *, prefix: str = "") -> None:
    """Raise an `InputError` naming the field if the policy cannot be compiled.

    `ExpressionInputError` names `<prefix>rules.constraints[j].expr` when an expression is
    malformed or not convex; `NonFiniteError` names the field whose number is, or folds to,
    an infinity or NaN (`engine.compile.language.finite`).
    """
    for j, spec in enumerate(policy.rules.constraints):
        if isinstance(spec, Expression):
            try:
                analyze(spec.expr)
            except ExpressionError as exc:
                raise ExpressionInputError(
                    f"{prefix}rules.constraints[{j}].expr", exc.message
                ) from None
    check_finite(policy, prefix=prefix)


def check_policies(policies: Sequence[PolicyDefinition], *, prefix: str = "policies") -> None:
    """`check_policy` on each, naming `<prefix>[k].rules.constraints[j].expr`."""
    for k, policy in enumerate(policies):
        check_policy(policy, prefix=f"{prefix}[{k}].")

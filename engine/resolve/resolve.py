"""Which policies apply to a request, with the limits its context chooses.

Inline or stored, enabled, in scope (with the portfolio hierarchy's inheritance and
overrides, engine.resolve.hierarchy), selected by `applicable_policies`, then the `when`
condition of each against the request's `context` (engine.resolve.conditions), then every
per-context limit replaced by the number the context chooses (engine.resolve.contextual). What
comes out is a list of plain policies: the compiler, the checker and the layout cache never
see a condition or a contextual number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.errors import PolicyResolutionError
from engine.resolve.conditions import policy_applies
from engine.resolve.contextual import resolve_limits
from engine.resolve.hierarchy import Lineage, resolve
from models import PolicyContext, PolicyDefinition, PolicyValidationRequest

__all__ = ["Resolution", "effective_policies", "resolve_policies"]


@dataclass(frozen=True)
class Resolution:
    """The policies to check (plain, by name) and how the context shaped them."""

    policies: list[PolicyDefinition]
    context: list[PolicyContext] = field(default_factory=list)


def _selected(
    request: PolicyValidationRequest,
    stored: Sequence[PolicyDefinition],
    lineage: Lineage | None,
) -> list[PolicyDefinition]:
    source = list(request.policies) if request.policies is not None else list(stored)
    origin = "policies" if request.policies is not None else "stored policies"
    by_name: dict[str, PolicyDefinition] = {}
    for k, policy in enumerate(source):
        if policy.policy_name in by_name:
            raise PolicyResolutionError(
                f"policies[{k}].policy_name", f"{policy.policy_name!r} appears twice in {origin}"
            )
        by_name[policy.policy_name] = policy

    portfolio = request.decision.portfolio_id
    chosen = resolve(list(by_name.values()), lineage or Lineage(portfolio)).policies()
    if request.applicable_policies:
        wanted = set(request.applicable_policies)
        for k, name in enumerate(request.applicable_policies):
            if name not in by_name:
                raise PolicyResolutionError(
                    f"applicable_policies[{k}]", f"no policy named {name!r} in the {origin}"
                )
        chosen = [p for p in chosen if p.policy_name in wanted]
    return sorted(chosen, key=lambda p: p.policy_name)


def resolve_policies(
    request: PolicyValidationRequest,
    stored: Sequence[PolicyDefinition],
    lineage: Lineage | None = None,
) -> Resolution:
    """The effective policies of `request`, resolved against its context.

    The request's inline `policies` replace the stored ones (a what-if run). Disabled
    policies and policies scoped to other portfolios are left out; `lineage` (the
    decision's portfolio and its ancestors; default: an unregistered portfolio) adds the
    policies scoped to ancestors and applies overrides (`engine.resolve.hierarchy`, which does not
    look at conditions); a non-empty `applicable_policies` narrows the set further and must
    name only known policies. A policy whose `when` does not hold is left out; every
    per-context limit of the others is replaced by the number the context chooses. Raises
    `PolicyResolutionError` when a condition or a limit needs a context key the request
    lacks (see docs/conditions.md).
    """
    policies: list[PolicyDefinition] = []
    notes: list[PolicyContext] = []
    for policy in _selected(request, stored, lineage):
        applies = policy_applies(policy, request.context)
        resolved = resolve_limits(policy, request.context) if applies else None
        if policy.when is not None or (resolved is not None and resolved.choices):
            notes.append(
                PolicyContext(
                    policy_name=policy.policy_name,
                    when=policy.when,
                    applies=applies,
                    limits=resolved.choices if resolved is not None else [],
                )
            )
        if resolved is not None:
            policies.append(resolved.policy)
    return Resolution(policies, notes)


def effective_policies(
    request: PolicyValidationRequest,
    stored: Sequence[PolicyDefinition],
    lineage: Lineage | None = None,
) -> list[PolicyDefinition]:
    """The plain policies to check, in a stable order (by name); see `resolve_policies`."""
    return resolve_policies(request, stored, lineage).policies

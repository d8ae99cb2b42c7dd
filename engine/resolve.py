"""Which policies apply to a request: inline or stored, enabled, in scope, selected."""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import PolicyResolutionError
from engine.hierarchy import Lineage, resolve
from models import PolicyDefinition, PolicyValidationRequest

__all__ = ["effective_policies"]


def effective_policies(
    request: PolicyValidationRequest,
    stored: Sequence[PolicyDefinition],
    lineage: Lineage | None = None,
) -> list[PolicyDefinition]:
    """The policies to check, in a stable order (by name).

    The request's inline `policies` replace the stored ones (a what-if run). Disabled
    policies and policies scoped to other portfolios are left out; `lineage` (the
    decision's portfolio and its ancestors; default: an unregistered portfolio) adds the
    policies scoped to ancestors and applies overrides (`engine.hierarchy`); a non-empty
    `applicable_policies` narrows the set further and must name only known policies.
    """
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
    for policy in chosen:
        if policy.when is not None:
            raise PolicyResolutionError(
                f"policies[{policy.policy_name}].when",
                "conditional policies (`when`) are not supported by this version; remove the "
                "condition or disable the policy",
            )
    return sorted(chosen, key=lambda p: p.policy_name)

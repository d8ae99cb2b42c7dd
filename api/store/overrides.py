"""Write-time checks of policy overrides against the stored policies.

The engine re-checks at resolution (inline policies, races); these checks refuse the
mistakes that can be seen when a policy is written, so they never reach a validation.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.store.errors import Conflict
from api.store.tables import portfolio_policies
from models import PolicyDefinition, PolicyType

__all__ = ["check_overrides"]


def check_overrides(conn: Connection, policy: PolicyDefinition) -> None:
    """Refuse (Conflict) a write that breaks an override relation with a stored policy.

    - `policy.overrides` names a stored policy that is not overridable (REGULATORY
      policies never are). A name not stored yet is allowed: policies of one apply may
      arrive in any order, and resolution refuses an override of a missing policy.
    - `policy` is made not overridable while stored policies override it.
    """
    stored = {
        row.policy_name: row.definition
        for row in conn.execute(
            sa.select(portfolio_policies.c.policy_name, portfolio_policies.c.definition)
        )
    }
    target = stored.get(policy.overrides) if policy.overrides is not None else None
    if target is not None and not target.get("overridable", False):
        reason = (
            "REGULATORY policies can never be overridden"
            if target.get("policy_type") == PolicyType.REGULATORY.value
            else f"{policy.overrides!r} is not overridable (set overridable: true on it first)"
        )
        raise Conflict(
            f"overrides: {policy.policy_name!r} cannot override {policy.overrides!r}: {reason}"
        )
    if not policy.overridable:
        overriders = sorted(
            name
            for name, definition in stored.items()
            if name != policy.policy_name and _overrides(definition) == policy.policy_name
        )
        if overriders:
            raise Conflict(
                f"overridable: {policy.policy_name!r} is overridden by "
                f"{', '.join(map(repr, overriders))}; keep overridable: true or remove their "
                "overrides first"
            )


def _overrides(definition: dict[str, Any]) -> str | None:
    target = definition.get("overrides")
    return target if isinstance(target, str) else None

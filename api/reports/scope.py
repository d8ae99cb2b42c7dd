"""Where a policy applies in the portfolio tree: each node, and from where it binds."""

from __future__ import annotations

from typing import Any

from api.store import StoredPortfolio
from engine.resolve.hierarchy import Lineage, resolve
from models import PolicyDefinition

__all__ = ["where_it_applies"]


def where_it_applies(
    name: str,
    current: PolicyDefinition | None,
    policies: list[PolicyDefinition],
    nodes: list[StoredPortfolio],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The portfolio tree, each node saying whether (and from where) the policy binds it.

    Also the ids the scope names that are not in the tree.
    """
    by_id = {n.node.portfolio_id: n.node for n in nodes}
    children: dict[str | None, list[str]] = {}
    for node in by_id.values():
        children.setdefault(node.parent_id, []).append(node.portfolio_id)

    def state(portfolio_id: str) -> str:
        chain, at = [], by_id.get(portfolio_id)
        while at is not None:
            chain.append(at)
            at = by_id.get(at.parent_id) if at.parent_id else None
        resolution = resolve(policies, Lineage(portfolio_id, tuple(chain)))
        for placement in resolution.applied:
            if placement.policy.policy_name == name:
                how = (
                    "here"
                    if placement.level == 0
                    else "firm-wide"
                    if placement.scoped_at == "*"
                    else f"inherited from {placement.scoped_at}"
                )
                return f"applies ({how})"
        for overridden in resolution.overridden:
            if overridden.policy.policy_name == name:
                return f"overridden by {', '.join(overridden.overridden_by)}"
        return "does not apply"

    def branch(parent: str | None) -> list[dict[str, Any]]:
        return [
            {"id": i, "name": by_id[i].name, "state": state(i), "children": branch(i)}
            for i in sorted(children.get(parent, []))
        ]

    scope = [] if current is None else current.scope.portfolios
    outside = sorted(p for p in scope if p != "*" and p not in by_id)
    return branch(None), outside

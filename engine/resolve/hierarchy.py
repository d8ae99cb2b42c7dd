"""Policy inheritance down the firm → fund → portfolio tree, and overrides.

A policy binds a portfolio when it is enabled and its scope names `"*"`, the portfolio, or
any ancestor of it. Every binding policy holds at once, so where a firm, a fund and a
portfolio each cap the same thing the strictest cap is the one that bites. The one
exception is an override: a policy P with ``overrides: Q`` replaces Q for the portfolios P
binds, provided Q is ``overridable`` (never true of a REGULATORY policy) and Q is scoped
strictly above P in the portfolio's chain (``"*"`` is the top).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from engine.errors import PolicyResolutionError
from models import (
    PolicyDefinition,
    PolicyType,
    PolicyValidationRequest,
    PortfolioBenchmark,
    PortfolioNode,
)

__all__ = [
    "FIRM_WIDE",
    "Lineage",
    "OverriddenPolicy",
    "Placement",
    "Resolution",
    "resolve",
    "with_default_benchmark",
]

FIRM_WIDE = "*"
"""The scope entry that binds every portfolio; it sits above every root."""


@dataclass(frozen=True)
class Lineage:
    """A portfolio and its ancestors, nearest first.

    `nodes` is empty for a portfolio that is not registered in the hierarchy: then only
    policies scoped to `"*"` or to the portfolio's own id bind it.
    """

    portfolio_id: str
    nodes: tuple[PortfolioNode, ...] = ()

    @classmethod
    def of(cls, portfolio_id: str, nodes: Sequence[PortfolioNode]) -> Lineage:
        """The lineage of `portfolio_id` from its chain (itself first, the root last)."""
        chain = tuple(nodes)
        if chain and chain[0].portfolio_id != portfolio_id:
            raise PolicyResolutionError(
                "decision.portfolio_id",
                f"the portfolio chain starts at {chain[0].portfolio_id!r}, not {portfolio_id!r}",
            )
        for child, parent in pairwise(chain):
            if child.parent_id != parent.portfolio_id:
                raise PolicyResolutionError(
                    "decision.portfolio_id",
                    f"broken portfolio chain: {child.portfolio_id!r} has parent "
                    f"{child.parent_id!r}, not {parent.portfolio_id!r}",
                )
        if chain and chain[-1].parent_id is not None:
            raise PolicyResolutionError(
                "decision.portfolio_id",
                f"incomplete portfolio chain: it ends at {chain[-1].portfolio_id!r}, whose "
                f"parent is {chain[-1].parent_id!r}",
            )
        return cls(portfolio_id, chain)

    @property
    def registered(self) -> bool:
        """True when the portfolio is a node of the hierarchy."""
        return bool(self.nodes)

    @property
    def ids(self) -> tuple[str, ...]:
        """Node ids from the portfolio up to its root (just the portfolio when unregistered)."""
        return tuple(n.portfolio_id for n in self.nodes) or (self.portfolio_id,)

    def anchor(self, policy: PolicyDefinition) -> tuple[str, int] | None:
        """Where `policy` binds this portfolio from: (node id or "*", level), or None.

        Level 0 is the portfolio itself, 1 its parent, ...; `"*"` is one above the root.
        The nearest scoped node wins when a scope names several nodes of the chain.
        """
        scoped = set(policy.scope.portfolios)
        for level, node_id in enumerate(self.ids):
            if node_id in scoped:
                return node_id, level
        if FIRM_WIDE in scoped:
            return FIRM_WIDE, len(self.ids)
        return None

    def benchmark(self) -> PortfolioBenchmark | None:
        """The nearest default benchmark up the chain, if any node declares one."""
        return next((n.benchmark for n in self.nodes if n.benchmark is not None), None)


@dataclass(frozen=True)
class Placement:
    """A policy in a portfolio's effective set, and where it comes from."""

    policy: PolicyDefinition
    scoped_at: str
    level: int
    overrides: str | None = None

    @property
    def inherited(self) -> bool:
        """True when the policy is scoped above the portfolio (an ancestor or `"*"`)."""
        return self.level > 0


@dataclass(frozen=True)
class OverriddenPolicy:
    """A policy that would bind the portfolio but is replaced by lower-scoped ones."""

    policy: PolicyDefinition
    scoped_at: str
    overridden_by: tuple[str, ...]


@dataclass(frozen=True)
class Resolution:
    """A portfolio's effective policies (by name) and the overridden ones."""

    lineage: Lineage
    applied: tuple[Placement, ...]
    overridden: tuple[OverriddenPolicy, ...]

    def policies(self) -> list[PolicyDefinition]:
        """The effective policies, by name."""
        return [p.policy for p in self.applied]


def resolve(policies: Sequence[PolicyDefinition], lineage: Lineage) -> Resolution:
    """Apply scope, inheritance and overrides for `lineage`'s portfolio.

    Raises `PolicyResolutionError` naming both policies when a binding policy overrides a
    policy that does not exist, is not overridable, or is not scoped strictly above it.
    An override by a disabled or out-of-scope policy does nothing; an override of a policy
    that does not bind this portfolio does nothing either.
    """
    by_name = {p.policy_name: p for p in policies}
    binding: dict[str, Placement] = {}
    for policy in by_name.values():
        where = lineage.anchor(policy) if policy.enabled else None
        if where is not None:
            binding[policy.policy_name] = Placement(policy, where[0], where[1])

    replaced: dict[str, list[str]] = {}
    for name, placement in binding.items():
        target = placement.policy.overrides
        if target is None:
            continue
        _check_override(placement, by_name.get(target), binding.get(target))
        if target in binding:
            replaced.setdefault(target, []).append(name)
            binding[name] = Placement(
                placement.policy, placement.scoped_at, placement.level, overrides=target
            )

    applied = tuple(binding[n] for n in sorted(binding) if n not in replaced)
    overridden = tuple(
        OverriddenPolicy(binding[n].policy, binding[n].scoped_at, tuple(sorted(replaced[n])))
        for n in sorted(replaced)
    )
    return Resolution(lineage, applied, overridden)


def _check_override(
    placement: Placement, target: PolicyDefinition | None, target_placement: Placement | None
) -> None:
    policy = placement.policy
    field = f"policies[{policy.policy_name}].overrides"
    if target is None:
        raise PolicyResolutionError(
            field, f"{policy.policy_name!r} overrides {policy.overrides!r}, which does not exist"
        )
    if not target.overridable:
        raise PolicyResolutionError(
            field,
            f"{policy.policy_name!r} cannot override {target.policy_name!r}: "
            + (
                "REGULATORY policies can never be overridden"
                if target.policy_type == PolicyType.REGULATORY
                else f"{target.policy_name!r} is not overridable"
            ),
        )
    if target_placement is not None and target_placement.level <= placement.level:
        raise PolicyResolutionError(
            field,
            f"{policy.policy_name!r} (scoped at {placement.scoped_at!r}) cannot override "
            f"{target.policy_name!r} (scoped at {target_placement.scoped_at!r}): an override "
            "must be scoped strictly below the policy it replaces",
        )


def with_default_benchmark(
    request: PolicyValidationRequest, lineage: Lineage
) -> PolicyValidationRequest:
    """`request` with the hierarchy's default benchmark when its state carries none.

    A benchmark in the request always wins; otherwise the nearest benchmark declared up
    the portfolio's chain is used. The request itself is not modified.
    """
    default = lineage.benchmark()
    if request.portfolio_state.benchmark is not None or default is None:
        return request
    state = request.portfolio_state.model_copy(update={"benchmark": dict(default.weights)})
    return request.model_copy(update={"portfolio_state": state})

"""On the client: each portfolio's effective policies, and the groups that share them.

Every portfolio is resolved once, through the same `prepare` as a request (scope, the
stored tree's inheritance and overrides, the global policy's risk mode and limits, the
tree's default benchmark), on a bare request (no positions, no trades) with the
portfolio's id. The effective set comes out plain; it is re-scoped to `"*"` (its `when`
and `overrides` already applied) so that a worker checks it without the tree or the
database. Portfolios with the same
effective set and benchmark form a `Group`; a group's universe is every symbol its
portfolios hold, plus its benchmark's names.

The batch screen (`screen_policies`): rows that measure a trade (turnover, trade limits,
trade risk, trading halts, `restricted` no_buy / no_sell / no_trade) are zero when nothing
is traded, so they are left out of it; every other row's value depends only on the
portfolio's weights, and a name at zero weight adds nothing to it, so a row the
single-request checker breaches over the held names is breached in the batch over the
group's universe too. Kinds whose rows depend on the universe itself (correlation
clusters, custom expressions) or on more of the state than weights (the currency kinds,
target drift) have no screen: every portfolio of such a group goes to the single-request
engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.resolve.global_policy import GlobalControls
from models import (
    Instrument,
    PolicyDefinition,
    PolicyScope,
    PolicyValidationRequest,
    PortfolioNode,
    RiskModel,
)

__all__ = ["Group", "PlanError", "plan_groups", "screen_policies"]

_TRADE_KINDS = frozenset({"turnover", "trade_limit", "trade_risk", "trading_halt"})
_TRADE_MODES = frozenset({"no_buy", "no_sell", "no_trade"})
_NO_SCREEN = frozenset({"correlation_cluster", "expression", "currency_exposure", "target_drift"})


class PlanError(Exception):
    """A portfolio's policies cannot be resolved (the message names it and the field)."""


@dataclass(frozen=True)
class Group:
    """Portfolios that share an effective policy set, benchmark and reference data."""

    key: str
    policies: tuple[PolicyDefinition, ...]
    """The effective set, plain and scoped to `"*"`."""
    screen: tuple[PolicyDefinition, ...] | None
    """The policies of the batch screen (None: no screen, every portfolio is re-checked)."""
    instruments: tuple[Instrument, ...]
    benchmark: dict[str, float] | None
    risk_model: RiskModel | None
    portfolios: list[str] = field(default_factory=list, compare=False)


def _bare_request(portfolio_id: str) -> PolicyValidationRequest:
    return PolicyValidationRequest.model_validate(
        {
            "decision": {"decision_id": "check-all", "portfolio_id": portfolio_id, "trades": []},
            "portfolio_state": {"portfolio_id": portfolio_id, "cash": 1.0, "positions": []},
            "mode": "validate",
        }
    )


def _plain(policy: PolicyDefinition) -> PolicyDefinition:
    return policy.model_copy(
        update={"scope": PolicyScope(portfolios=["*"]), "when": None, "overrides": None}
    )


def screen_policies(policies: Sequence[PolicyDefinition]) -> tuple[PolicyDefinition, ...] | None:
    """The policies the batch screen checks (trade rows left out); None: no screen."""
    out: list[PolicyDefinition] = []
    for policy in policies:
        kept = []
        for constraint in policy.rules.constraints:
            kind = constraint.kind
            if kind in _NO_SCREEN or (kind == "cash" and getattr(constraint, "by_currency", False)):
                return None
            if kind in _TRADE_KINDS or getattr(constraint, "mode", None) in _TRADE_MODES:
                continue
            kept.append(constraint)
        if kept:
            rules = policy.rules.model_copy(update={"constraints": kept})
            out.append(policy.model_copy(update={"rules": rules}))
    return tuple(out)


def _digest(policies: Sequence[PolicyDefinition], benchmark: Mapping[str, float] | None) -> str:
    text = json.dumps(
        {
            "policies": [p.model_dump(mode="json") for p in policies],
            "benchmark": None if benchmark is None else sorted(benchmark.items()),
        },
        sort_keys=True,
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def plan_groups(
    portfolios: Sequence[str],
    positions: Mapping[str, Mapping[str, float]],
    policies: Sequence[PolicyDefinition],
    instruments: Mapping[str, Instrument],
    *,
    lineages: Mapping[str, Sequence[PortfolioNode]] | None = None,
    controls: GlobalControls | None = None,
    risk_model: RiskModel | None = None,
    require_applicable: bool = True,
) -> list[Group]:
    """Resolve every portfolio's effective policies and group the portfolios by them.

    `lineages[p]` is `p`'s chain in the stored tree (absent: not registered). With
    `require_applicable`, a portfolio on which no enabled strict or advisory policy applies
    is refused (`PlanError`), as the service refuses its validation.
    """
    # Imported here: the compiler brings cvxpy, which the command line (importing this
    # module for `pes check-all`'s parser) need not load before a plan is made.
    from engine import InputError
    from engine.compile.layout import LayoutCache
    from engine.compile.prepared import prepare

    layouts = LayoutCache(1)
    groups: dict[str, Group] = {}
    for pid in portfolios:
        try:
            prepared = prepare(
                layouts,
                _bare_request(pid),
                policies,
                lineage=(lineages or {}).get(pid, ()),
                require_applicable=require_applicable,
                compile=False,
                controls=controls,
                gates=False,
            )
        except InputError as exc:
            raise PlanError(f"portfolio {pid!r}: {exc.field}: {exc.message}") from exc
        effective = [_plain(p) for p in prepared.policies]
        benchmark = prepared.request.portfolio_state.benchmark
        key = _digest(effective, benchmark)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(
                key=key,
                policies=tuple(effective),
                screen=screen_policies(effective),
                instruments=(),
                benchmark=None if benchmark is None else dict(benchmark),
                risk_model=risk_model,
            )
        group.portfolios.append(pid)
    out = []
    for group in groups.values():
        held = {s for pid in group.portfolios for s in positions[pid]}
        held |= {s for s in group.benchmark or {} if s in instruments}
        universe = tuple(instruments[s] for s in sorted(held))
        out.append(
            Group(
                key=group.key,
                policies=group.policies,
                screen=group.screen,
                instruments=universe,
                benchmark=group.benchmark,
                risk_model=group.risk_model,
                portfolios=group.portfolios,
            )
        )
    return out

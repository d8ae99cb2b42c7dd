"""Adjusting a decision with FX trades: keep them as proposed, else cancel them.

The adjustment moves security trades only. A decision's FX trades are constants of the
currency rows, and the adjuster's premise (not trading leaves every row at its pre-trade
value) does not hold with them in the decision. So the decision is adjusted twice at most,
each time as a request without FX trades:

1. **kept**: the FX trades already executed (the state's cash moved by them); the adjusted
   security trades plus the FX trades as proposed are re-checked against the original
   request's rows, and taken if compliant;
2. **cancelled**: the original state, the FX trades dropped; the adjusted decision then
   has no FX trades (scale_back can always cancel every trade, so one exists unless
   passive breaches must be cured).

Neither layout is cached: it would share a key with the request's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.compile.layout import Layout, build_layout
from engine.weights.portfolio import Snapshot, snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from models.portfolio import pair_currencies

__all__ = ["FxVariant", "fx_variants"]


@dataclass(frozen=True)
class FxVariant:
    """A request without FX trades to adjust, and whether the FX trades stay in the answer."""

    keeps_fx: bool
    request: PolicyValidationRequest
    layout: Layout


def _executed(request: PolicyValidationRequest, snap: Snapshot) -> PolicyValidationRequest:
    """The request with its FX trades done: cash moved at the spot cross rate."""
    state = request.portfolio_state
    cash = state.cash_by_currency()
    fx = snap.money.fx
    for trade in request.decision.fx_trades:
        bought, paid = pair_currencies(trade.pair)
        amount = trade.side.sign * trade.quantity
        cash[bought] = cash.get(bought, 0.0) + amount
        cash[paid] = cash.get(paid, 0.0) - amount * fx[bought] / fx[paid]
    return _without_fx(request, cash=cash)


def _without_fx(
    request: PolicyValidationRequest, *, cash: dict[str, float] | None = None
) -> PolicyValidationRequest:
    decision = request.decision.model_copy(update={"fx_trades": []})
    update: dict[str, object] = {"decision": decision}
    if cash is not None:
        update["portfolio_state"] = request.portfolio_state.model_copy(update={"cash": cash})
    return request.model_copy(update=update)


def fx_variants(
    request: PolicyValidationRequest, policies: Sequence[PolicyDefinition], snap: Snapshot
) -> Iterator[FxVariant]:
    """The requests to adjust, in the order tried (see the module's docstring).

    Each layout is built when its turn comes.
    """
    for keeps, variant in ((True, _executed(request, snap)), (False, _without_fx(request))):
        layout = build_layout(policies, variant, snapshot_of(variant))
        yield FxVariant(keeps_fx=keeps, request=variant, layout=layout)

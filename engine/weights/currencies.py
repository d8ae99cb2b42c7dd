"""Currencies of one request: rates, cash per currency, FX trades and hedges in base units.

Every amount the engine works with is in the portfolio's base currency: a price `p` in
currency c is worth `p x fx_c` of base, cash `m_c` in c is worth `m_c x fx_c`, and

    NAV = sum_c m_c fx_c + sum_i q_i p_i fx_ccy(i)

(docs/currencies.md). A single-currency request has fx = 1 everywhere and the arithmetic is
SPEC section 2's, number for number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.errors import InputError
from models import PolicyValidationRequest
from models.portfolio import pair_currencies

__all__ = ["Money", "money_of"]


@dataclass(frozen=True)
class Money:
    """The currencies of one request, every amount in base-currency units.

    `fx[c]` is units of base per unit of c (1 for the base). `cash[c]` is the cash held in c
    before the decision, `flows[c]` what the decision's FX trades add to it, `hedges[c]` the
    exposure the state's FX forwards add; `currencies[i]` is the currency of V's i-th name.
    """

    foreign: bool = False
    """True when some name of V is priced in a currency other than the base."""
    base: str = "USD"
    fx: dict[str, float] = field(default_factory=dict)
    cash: dict[str, float] = field(default_factory=dict)
    flows: dict[str, float] = field(default_factory=dict)
    hedges: dict[str, float] = field(default_factory=dict)
    currencies: tuple[str, ...] = ()

    def in_use(self) -> list[str]:
        """Every currency the request uses, base first, then alphabetically."""
        used = {*self.cash, *self.flows, *self.hedges, *self.currencies} - {self.base}
        return [self.base, *sorted(used)]

    def members(self, currency: str) -> list[int]:
        """Indices of V's names priced in `currency`."""
        return [i for i, c in enumerate(self.currencies) if c == currency]


class _Rates:
    """The state's rates, read with an error naming the field and the user of a currency."""

    def __init__(self, request: PolicyValidationRequest) -> None:
        state = request.portfolio_state
        self.base = state.base_currency
        self.given = state.fx_rates or {}
        self.used: dict[str, float] = {self.base: 1.0}
        own = self.given.get(self.base)
        if own is not None and own != 1.0:
            raise InputError(
                f"portfolio_state.fx_rates.{self.base}",
                f"the base currency {self.base} is worth 1 of itself, not {own:g}; leave it "
                "out or give 1",
            )

    def of(self, currency: str, user: str) -> float:
        """Units of base per unit of `currency`; `user` says what needs it, for the error."""
        rate = self.used.get(currency)
        if rate is None:
            given = self.given.get(currency)
            if given is None:
                raise InputError(
                    "portfolio_state.fx_rates",
                    f"no rate for {currency} (used by {user}); add fx_rates.{currency}: "
                    f"units of {self.base} per {currency}",
                )
            rate = self.used[currency] = given
        return rate


def money_of(
    request: PolicyValidationRequest, symbols: Sequence[str], listed: Sequence[str | None]
) -> Money:
    """The request's `Money` over V.

    `symbols` are priced in their instruments' `listed` currencies (None: the base).
    """
    state = request.portfolio_state
    rates = _Rates(request)
    base = rates.base
    # Every request passes here with hundreds of names: C-level scans, the per-name
    # tuple built only when some name is priced in another currency.
    codes = set(listed) - {None, base}
    currencies = tuple(c or base for c in listed) if codes else (base,) * len(listed)
    if codes:
        where = {inst.symbol: k for k, inst in enumerate(state.instruments)}
        for symbol, c in zip(symbols, currencies, strict=True):
            if c != base:
                rates.of(c, f"portfolio_state.instruments[{where[symbol]}] {symbol}")
    cash: dict[str, float] = {}
    for currency, amount in state.cash_by_currency().items():
        rate = rates.of(currency, f"portfolio_state.cash.{currency}")
        cash[currency] = amount if rate == 1.0 else amount * rate
    flows: dict[str, float] = {}
    for k, trade in enumerate(request.decision.fx_trades):
        bought, paid = pair_currencies(trade.pair)
        user = f"decision.fx_trades[{k}] {trade.pair}"
        value = trade.side.sign * trade.quantity * rates.of(bought, user)
        rates.of(paid, user)
        flows[bought] = flows.get(bought, 0.0) + value
        flows[paid] = flows.get(paid, 0.0) - value
    hedges: dict[str, float] = {}
    for k, forward in enumerate(state.fx_forwards or ()):
        bought, paid = pair_currencies(forward.pair)
        user = f"portfolio_state.fx_forwards[{k}] {forward.pair}"
        fx_bought, fx_paid = rates.of(bought, user), rates.of(paid, user)
        rate = forward.rate if forward.rate is not None else fx_bought / fx_paid
        sign = forward.side.sign
        hedges[bought] = hedges.get(bought, 0.0) + sign * forward.quantity * fx_bought
        hedges[paid] = hedges.get(paid, 0.0) - sign * forward.quantity * rate * fx_paid
    return Money(
        foreign=bool(codes),
        base=base,
        fx=dict(rates.used),
        cash=cash,
        flows=flows,
        hedges=hedges,
        currencies=currencies,
    )

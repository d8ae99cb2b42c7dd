"""Portfolio state, instruments, risk model and scenarios (SPEC section 3)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictStr,
    TypeAdapter,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from models.base import JsonInt, NonNegativeFloat, PositiveFloat, StrictModel, Symbol
from models.enums import Side

__all__ = [
    "MAX_INSTRUMENTS",
    "MAX_POSITIONS",
    "AttributeValue",
    "CovarianceMatrix",
    "CurrencyCode",
    "CurrencyPair",
    "MAX_FX_ENTRIES",
    "FxForward",
    "DataReference",
    "FactorRiskModel",
    "ReferenceId",
    "Instrument",
    "PortfolioState",
    "Position",
    "RiskModel",
    "ScenarioSet",
    "pair_currencies",
    "same_portfolio_id",
]

AttributeValue = StrictFloat | JsonInt | StrictStr | StrictBool
"""Value of a free-form instrument attribute (numbers for exposures, strings for groups)."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

ReferenceId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-:]*$",
        description="Letters, digits and `_ . - :`, starting with a letter or digit (it "
        "appears in URLs).",
    ),
]
"""Identifier of registered reference data (a universe or a risk model)."""

CurrencyCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="An ISO 4217 currency code: three capital letters (`USD`, `EUR`, `JPY`).",
    ),
]
"""A currency, by its ISO 4217 code."""

CurrencyPair = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{6}$",
        description="Two ISO 4217 codes run together, `EURUSD`: BUY buys the first "
        "currency (the quantity is in it) and pays in the second.",
    ),
]
"""A currency pair, base currency first (`EURUSD` is euros priced in dollars)."""


def _by_shape(value: Any, _handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a map as cash by currency, anything else as one amount.

    Errors then name the field as written (`cash`, `cash.JPY`), not every form of the union.
    """
    if isinstance(value, dict):
        return _CASH_MAP.validate_python(value)
    return _CASH_AMOUNT.validate_python(value)


_number_or_map = WrapValidator(_by_shape)


def _is_none(value: Any) -> bool:
    return value is None


def _is_usd(value: Any) -> bool:
    return bool(value == "USD")


# The fields added for currencies, sleeves and targets are left out of a dump at their
# defaults (`exclude_if`): a single-currency request serializes exactly as before, so its
# idempotency hash and every stored or logged form are unchanged.

MAX_FX_ENTRIES = 1_000
"""Currencies, hedges or FX trades in one request: far beyond the currencies in use."""


def pair_currencies(pair: str) -> tuple[str, str]:
    """The bought (first) and paid (second) currency of a pair such as `EURUSD`."""
    return pair[:3], pair[3:]


ReferenceVersion = Annotated[int, Field(ge=1, description="A stored version; absent = latest.")]


class DataReference(StrictModel):
    """A registered universe or risk model, by id and (optionally) version.

    Without `version` the latest version is used; the response's `reference_data` says
    which one that was.
    """

    id: ReferenceId
    version: ReferenceVersion | None = None


class Position(StrictModel):
    """A signed holding; short positions have negative quantity."""

    symbol: Symbol
    quantity: FiniteFloat
    strategy: str | None = Field(
        default=None,
        exclude_if=_is_none,
        min_length=1,
        max_length=100,
        description="The strategy sleeve the position belongs to (read by group limits "
        "with `attribute: strategy`).",
    )


class FxForward(StrictModel):
    """An FX forward held as a currency hedge.

    `quantity` of the pair's first currency bought (BUY) or sold (SELL) forward against
    the second at `rate`. It moves no cash and is not part of NAV (its mark-to-market
    belongs in `cash`); it counts in the currency exposure of both currencies when a
    `currency_exposure` constraint says `hedges: true`: BUY adds `quantity` of the first
    currency and takes `quantity x rate` of the second (SELL the opposite), each valued
    at `fx_rates`.
    """

    pair: CurrencyPair
    side: Side
    quantity: PositiveFloat
    rate: PositiveFloat | None = Field(
        default=None,
        description="Contract rate, units of the second currency per unit of the first; "
        "absent = the spot cross rate of `fx_rates`.",
    )

    @model_validator(mode="after")
    def _two_currencies(self) -> FxForward:
        bought, paid = pair_currencies(self.pair)
        if bought == paid:
            raise ValueError(f"pair {self.pair} names one currency twice")
        return self


class Instrument(StrictModel):
    """Reference data of one instrument; `price` is in the instrument's `currency`.

    Without a `currency` the instrument is priced in the portfolio's base currency. Its
    value in the base currency is `price x fx_rates[currency]`.
    """

    symbol: Symbol
    price: PositiveFloat = Field(
        description="Price per unit in the instrument's `currency` (the base currency when "
        "it has none)."
    )
    sector: str | None = None
    issuer: str | None = None
    country: str | None = None
    asset_class: str | None = None
    currency: str | None = Field(
        default=None,
        description="ISO 4217 code of the currency the instrument is priced and settled in; "
        "absent = the portfolio's base currency. A currency other than the base needs an "
        "entry in `fx_rates`.",
    )
    adv: NonNegativeFloat | None = Field(default=None, description="Average daily volume, shares.")
    lot_size: NonNegativeFloat = Field(
        default=1.0, description="Trade quantities are multiples of this; 0 = fractional."
    )
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _finite_attributes(self) -> Instrument:
        for key, value in self.attributes.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"attributes.{key} must be a finite number")
        return self

    def attribute(self, name: str) -> Any:
        """Value of a named field or free attribute, or None when the instrument lacks it."""
        if name in _INSTRUMENT_FIELDS:
            return getattr(self, name)
        return self.attributes.get(name)


_INSTRUMENT_FIELDS = frozenset(
    {"symbol", "price", "sector", "issuer", "country", "asset_class", "currency", "adv", "lot_size"}
)


class FactorRiskModel(StrictModel):
    """Annualized factor model: Sigma = B F B' + diag(specific_variance)."""

    factor_loadings: dict[Symbol, list[FiniteFloat]]
    factor_covariance: list[list[FiniteFloat]]
    specific_variance: dict[Symbol, NonNegativeFloat] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shapes(self) -> FactorRiskModel:
        k = len(self.factor_covariance)
        if k == 0:
            raise ValueError("factor_covariance must not be empty")
        for i, row in enumerate(self.factor_covariance):
            if len(row) != k:
                raise ValueError(f"factor_covariance[{i}] has {len(row)} entries, expected {k}")
        for symbol, loadings in self.factor_loadings.items():
            if len(loadings) != k:
                raise ValueError(
                    f"factor_loadings.{symbol} has {len(loadings)} entries, expected {k}"
                )
        return self


class CovarianceMatrix(StrictModel):
    """A full annualized covariance matrix over `symbols`."""

    symbols: list[Symbol]
    matrix: list[list[FiniteFloat]]

    @model_validator(mode="after")
    def _shapes(self) -> CovarianceMatrix:
        n = len(self.symbols)
        if len(set(self.symbols)) != n:
            raise ValueError("symbols must be unique")
        if len(self.matrix) != n:
            raise ValueError(f"matrix has {len(self.matrix)} rows, expected {n}")
        for i, row in enumerate(self.matrix):
            if len(row) != n:
                raise ValueError(f"matrix[{i}] has {len(row)} entries, expected {n}")
        return self


class RiskModel(StrictModel):
    """A factor model (the three factor fields), a full covariance, or a reference.

    The reference form, `{"id": ..., "version": ...}`, names a registered risk model; it is
    replaced by the registered data before the engine runs (see docs/reference-data.md).
    """

    factor_loadings: dict[Symbol, list[FiniteFloat]] | None = None
    factor_covariance: list[list[FiniteFloat]] | None = None
    specific_variance: dict[Symbol, NonNegativeFloat] | None = None
    covariance: CovarianceMatrix | None = None
    id: ReferenceId | None = Field(
        default=None, description="A registered risk model, instead of inline data."
    )
    version: ReferenceVersion | None = None

    @model_validator(mode="after")
    def _one_form(self) -> RiskModel:
        has_factor = self.factor_loadings is not None or self.factor_covariance is not None
        if self.id is not None:
            if has_factor or self.covariance is not None or self.specific_variance is not None:
                raise ValueError(
                    "give either a registered risk model's id or inline data, not both"
                )
            return self
        if self.version is not None:
            raise ValueError("version needs the id of a registered risk model")
        if has_factor and self.covariance is not None:
            raise ValueError("give either a factor model or a covariance, not both")
        if not has_factor and self.covariance is None:
            raise ValueError(
                "give factor_loadings + factor_covariance, or covariance, or the id of a "
                "registered risk model"
            )
        if has_factor:
            if self.factor_loadings is None or self.factor_covariance is None:
                raise ValueError("a factor model needs factor_loadings and factor_covariance")
            FactorRiskModel(
                factor_loadings=self.factor_loadings,
                factor_covariance=self.factor_covariance,
                specific_variance=self.specific_variance or {},
            )
        return self

    def reference(self) -> DataReference | None:
        """The registered risk model this names, or None for inline data."""
        return None if self.id is None else DataReference(id=self.id, version=self.version)

    def covered(self) -> set[str]:
        """Symbols the model describes."""
        if self.covariance is not None:
            return set(self.covariance.symbols)
        return set(self.factor_loadings or {})


class ScenarioSet(StrictModel):
    """Scenario returns: `returns[s][j]` is the return of `symbols[j]` in scenario s."""

    symbols: list[Symbol]
    returns: list[list[FiniteFloat]] = Field(min_length=1)

    @model_validator(mode="after")
    def _shapes(self) -> ScenarioSet:
        n = len(self.symbols)
        if len(set(self.symbols)) != n:
            raise ValueError("symbols must be unique")
        for s, row in enumerate(self.returns):
            if len(row) != n:
                raise ValueError(f"returns[{s}] has {len(row)} entries, expected {n}")
        return self


MAX_POSITIONS = 20_000
"""Positions of one portfolio state. Every held name is a variable of the adjustment, so
the bound keeps a request's work bounded (memory grows linearly in it; see docs/performance.md,
"Bounds"); larger books are validated in parts."""

MAX_INSTRUMENTS = 20_000
"""Instruments given inline in one portfolio state (a registered universe may hold more:
only the held and traded names enter the problem)."""


_CASH_AMOUNT: TypeAdapter[float] = TypeAdapter(FiniteFloat)
_CASH_MAP: TypeAdapter[dict[str, float]] = TypeAdapter(
    Annotated[dict[CurrencyCode, FiniteFloat], Field(max_length=MAX_FX_ENTRIES)]
)


class PortfolioState(StrictModel):
    """The portfolio as the Portfolio State Service reports it.

    `universe` names registered instruments; `instruments` given inline replace the
    universe's entries of the same symbols, and `prices` replace prices of either (see
    docs/reference-data.md).
    """

    portfolio_id: str = Field(min_length=1, max_length=200)
    base_currency: CurrencyCode = Field(
        default="USD",
        exclude_if=_is_usd,
        description="The currency NAV and every weight are measured in.",
    )
    cash: Annotated[FiniteFloat | dict[CurrencyCode, FiniteFloat], _number_or_map] = Field(
        description="Cash in the base currency (a number), or by currency (a map of ISO "
        "4217 code to amount in that currency; negative = overdraft). NAV = sum over "
        "currencies c of cash_c x fx_c + sum over positions of quantity x price x "
        "fx_(instrument currency); every weight is a base-currency value over NAV."
    )
    fx_rates: dict[CurrencyCode, PositiveFloat] | None = Field(
        default=None,
        exclude_if=_is_none,
        max_length=MAX_FX_ENTRIES,
        description='Units of the base currency per unit of each currency (`{"JPY": '
        "0.0061}` with base EUR: one yen is worth 0.0061 euro). Every currency in use other "
        "than the base needs one; the base currency's own rate, if given, must be 1.",
    )
    fx_snapshot: DataReference | None = Field(
        default=None,
        exclude_if=_is_none,
        description="A registered FX snapshot supplying `fx_rates` (instead of giving them "
        "inline); its base currency must be `base_currency`.",
    )
    fx_forwards: list[FxForward] | None = Field(
        default=None,
        exclude_if=_is_none,
        max_length=MAX_FX_ENTRIES,
        description="FX forwards held as hedges, counted by `currency_exposure` constraints "
        "with `hedges: true`.",
    )
    target_weights: dict[Symbol, FiniteFloat] | None = Field(
        default=None,
        exclude_if=_is_none,
        description="The model portfolio's weights (fractions of NAV), read by "
        "`target_drift` constraints and the analytics' drift; names absent have target 0.",
    )
    positions: list[Position] = Field(default_factory=list, max_length=MAX_POSITIONS)
    instruments: list[Instrument] = Field(default_factory=list, max_length=MAX_INSTRUMENTS)
    universe: DataReference | None = Field(
        default=None, description="A registered universe supplying the instruments."
    )
    prices: dict[Symbol, PositiveFloat] | None = Field(
        default=None,
        description="Current prices by symbol, replacing those of the universe or instruments.",
    )
    benchmark: dict[Symbol, FiniteFloat] | None = None
    risk_model: RiskModel | None = None
    scenarios: ScenarioSet | None = None
    as_of: str | None = None

    @field_validator("fx_snapshot")
    @classmethod
    def _fx_once(cls, ref: DataReference | None, info: ValidationInfo) -> DataReference | None:
        if ref is not None and info.data.get("fx_rates") is not None:
            raise ValueError("give fx_rates inline or name an fx_snapshot, not both")
        return ref

    def cash_by_currency(self) -> dict[str, float]:
        """Cash per currency (a plain number is cash in the base currency)."""
        if isinstance(self.cash, dict):
            return dict(self.cash)
        return {self.base_currency: self.cash}


def same_portfolio_id(portfolio_id: str | None, info: ValidationInfo) -> str | None:
    """Field validator body: an explicit `portfolio_id` must be `portfolio_state`'s own."""
    state = info.data.get("portfolio_state")
    if portfolio_id is not None and state is not None and portfolio_id != state.portfolio_id:
        raise ValueError(
            f"portfolio_id {portfolio_id!r} differs from portfolio_state.portfolio_id "
            f"{state.portfolio_id!r}"
        )
    return portfolio_id

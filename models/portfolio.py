"""Portfolio state, instruments, risk model and scenarios (SPEC section 3)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictStr,
    ValidationInfo,
    model_validator,
)

from models.base import JsonInt, NonNegativeFloat, PositiveFloat, StrictModel, Symbol

__all__ = [
    "MAX_INSTRUMENTS",
    "MAX_POSITIONS",
    "AttributeValue",
    "CovarianceMatrix",
    "DataReference",
    "FactorRiskModel",
    "ReferenceId",
    "Instrument",
    "PortfolioState",
    "Position",
    "RiskModel",
    "ScenarioSet",
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


class Instrument(StrictModel):
    """Reference data of one instrument; `price` is in the base currency."""

    symbol: Symbol
    price: PositiveFloat
    sector: str | None = None
    issuer: str | None = None
    country: str | None = None
    asset_class: str | None = None
    currency: str | None = None
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

    def at_price(self, price: float) -> Instrument:
        """A copy at `price`, which the caller has checked (positive, finite).

        What `model_copy(update={"price": price})` gives (nothing is validated again; an
        instrument has no extra fields and no private attributes), at about half its cost:
        a request by reference with `prices` reprices every instrument of its universe (500
        copies at n = 500, ~2 ms with `model_copy`, ~1 ms this way).
        """
        fields = self.__dict__.copy()
        fields["price"] = price
        copy = _new_instrument(type(self))
        _set(copy, "__dict__", fields)
        _set(copy, "__pydantic_fields_set__", self.__pydantic_fields_set__ | _PRICE)
        _set(copy, "__pydantic_extra__", None)
        _set(copy, "__pydantic_private__", None)
        return copy

    def attribute(self, name: str) -> Any:
        """Value of a named field or free attribute, or None when the instrument lacks it."""
        if name in _INSTRUMENT_FIELDS:
            return getattr(self, name)
        return self.attributes.get(name)


_new_instrument = object.__new__
_set = object.__setattr__
_PRICE = frozenset({"price"})

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


class PortfolioState(StrictModel):
    """The portfolio as the Portfolio State Service reports it.

    `universe` names registered instruments; `instruments` given inline replace the
    universe's entries of the same symbols, and `prices` replace prices of either (see
    docs/reference-data.md).
    """

    portfolio_id: str = Field(min_length=1, max_length=200)
    cash: FiniteFloat
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


def same_portfolio_id(portfolio_id: str | None, info: ValidationInfo) -> str | None:
    """Field validator body: an explicit `portfolio_id` must be `portfolio_state`'s own."""
    state = info.data.get("portfolio_state")
    if portfolio_id is not None and state is not None and portfolio_id != state.portfolio_id:
        raise ValueError(
            f"portfolio_id {portfolio_id!r} differs from portfolio_state.portfolio_id "
            f"{state.portfolio_id!r}"
        )
    return portfolio_id

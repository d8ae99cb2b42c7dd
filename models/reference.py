"""Registered reference data: universes of instruments and risk models, by id and version.

A request names them (`portfolio_state.universe`, `portfolio_state.risk_model.id`) instead
of carrying hundreds of instruments and factor loadings; see docs/reference-data.md.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from models.base import PositiveFloat, StrictModel
from models.portfolio import (
    MAX_FX_ENTRIES,
    CurrencyCode,
    DataReference,
    Instrument,
    ReferenceId,
    RiskModel,
    _is_none,
)

__all__ = ["FxSnapshot", "ReferenceDataUsed", "RiskModelDefinition", "Universe"]


class Universe(StrictModel):
    """A named list of instruments (the same `Instrument` as in a request's state)."""

    id: ReferenceId
    description: str = Field(default="", max_length=4000)
    instruments: list[Instrument] = Field(min_length=1)

    @field_validator("instruments")
    @classmethod
    def _unique_symbols(cls, instruments: list[Instrument]) -> list[Instrument]:
        seen: set[str] = set()
        for instrument in instruments:
            if instrument.symbol in seen:
                raise ValueError(f"{instrument.symbol} is listed twice")
            seen.add(instrument.symbol)
        return instruments


class RiskModelDefinition(StrictModel):
    """A named risk model: `risk_model` has the inline form of a request's risk model."""

    id: ReferenceId
    description: str = Field(default="", max_length=4000)
    risk_model: RiskModel

    @field_validator("risk_model")
    @classmethod
    def _inline(cls, model: RiskModel) -> RiskModel:
        if model.id is not None:
            raise ValueError("a registered risk model holds data, not a reference to another")
        return model


class FxSnapshot(StrictModel):
    """A named set of FX rates: the registered form of a state's inline `fx_rates`.

    `rates[c]` is how many units of `base_currency` one unit of `c` is worth; a request
    naming the snapshot must have that base currency.
    """

    id: ReferenceId
    description: str = Field(default="", max_length=4000)
    base_currency: CurrencyCode = Field(description="The currency the rates are quoted in.")
    rates: dict[CurrencyCode, PositiveFloat] = Field(
        min_length=1,
        max_length=MAX_FX_ENTRIES,
        description="Units of the base currency per unit of each currency.",
    )

    @model_validator(mode="after")
    def _base_rate(self) -> FxSnapshot:
        rate = self.rates.get(self.base_currency)
        if rate is not None and rate != 1.0:
            raise ValueError(
                f"rates.{self.base_currency}: the base currency's own rate must be 1, got {rate}"
            )
        return self


class ReferenceDataUsed(StrictModel):
    """The registered reference data a validation used, each with its resolved version."""

    universe: DataReference | None = None
    risk_model: DataReference | None = None
    fx_snapshot: DataReference | None = Field(default=None, exclude_if=_is_none)

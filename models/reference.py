"""Registered reference data: universes of instruments and risk models, by id and version.

A request names them (`portfolio_state.universe`, `portfolio_state.risk_model.id`) instead
of carrying hundreds of instruments and factor loadings; see docs/reference-data.md.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from models.base import StrictModel
from models.portfolio import DataReference, Instrument, ReferenceId, RiskModel

__all__ = ["ReferenceDataUsed", "RiskModelDefinition", "Universe"]


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


class ReferenceDataUsed(StrictModel):
    """The registered reference data a validation used, each with its resolved version."""

    universe: DataReference | None = None
    risk_model: DataReference | None = None

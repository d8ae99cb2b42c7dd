"""The portfolio hierarchy: firm, funds and portfolios as a tree of nodes."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from models.base import StrictModel, Symbol

__all__ = ["NodeId", "PortfolioBenchmark", "PortfolioNode"]

NodeId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-:]*$",
        description="Letters, digits and `_ . - :`, starting with a letter or digit (it "
        "appears in URLs; `*` is reserved for policy scopes).",
    ),
]
"""Identifier of a hierarchy node; the same value as a decision's `portfolio_id`."""


class PortfolioBenchmark(StrictModel):
    """A named benchmark and its weights, used when a request carries no benchmark."""

    name: str = Field(min_length=1, max_length=200)
    weights: dict[Symbol, Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=1)


class PortfolioNode(StrictModel):
    """One node of the firm → fund → portfolio tree.

    A node without `parent_id` is a root (the firm). Policies scoped to a node bind every
    node below it. `benchmark` is the default benchmark of the node and of the nodes below
    it that declare none: a validation whose `portfolio_state` has no benchmark uses the
    nearest one up the tree.
    """

    portfolio_id: NodeId
    name: str = Field(min_length=1, max_length=200)
    parent_id: NodeId | None = None
    description: str = Field(default="", max_length=4000)
    benchmark: PortfolioBenchmark | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "portfolio_id": "global-equity",
                    "name": "Global Equity",
                    "parent_id": "equity-fund",
                    "benchmark": {"name": "MSCI World", "weights": {"AAPL": 0.05, "MSFT": 0.04}},
                }
            ]
        }
    )

    @field_validator("parent_id")
    @classmethod
    def _not_its_own_parent(cls, parent_id: str | None, info: ValidationInfo) -> str | None:
        if parent_id is not None and parent_id == info.data.get("portfolio_id"):
            raise ValueError("a node cannot be its own parent")
        return parent_id

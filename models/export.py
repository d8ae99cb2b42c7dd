"""The constraint-set export: the request and the solver-neutral JSON form of a policy set.

An optimizer fetches the compiled constraints of a portfolio's policies once and optimizes
inside them. Every constraint is over the vector `x = [w, aux]`: the post-trade weights `w`
over `variables.symbols` (in that order) followed by the auxiliary variables listed in
`variables.auxiliary` (linearized form only). The meaning of every field is explained in
docs/constraint-export.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from models.base import StrictModel, Symbol, check_json_values
from models.enums import EnforcementLevel, PolicyType
from models.policy import PolicyDefinition
from models.portfolio import PortfolioState, same_portfolio_id

__all__ = [
    "Auxiliary",
    "ConicRows",
    "ConstraintSet",
    "ConstraintSetRequest",
    "ExportOptions",
    "FixedWeight",
    "LinearConstraints",
    "NamedBlock",
    "RowInfo",
    "SecondOrderCone",
    "SparseMatrix",
    "Variables",
]

DEFAULT_MARGIN = 1e-7
"""Default tightening of every limit (weight or risk units): room for solver error."""

ExportForm = Literal["linearized", "blocks"]


class ExportOptions(StrictModel):
    """What to export and in which form."""

    include_advisory: bool = Field(
        default=False,
        description="Also export advisory policies (strict ones always; monitor ones never).",
    )
    margin: float = Field(
        default=DEFAULT_MARGIN,
        ge=0,
        le=1e-3,
        description="Tighten every limit by this much (never past the pre-trade value), so a "
        "solution that breaks a bound by less than the margin still passes the service's "
        "1e-9 check.",
    )
    form: ExportForm = Field(
        default="linearized",
        description="linearized: absolute values, sum-largest and CVaR become linear rows over "
        "documented auxiliary variables; blocks: they come as named blocks with their data.",
    )
    cure_passive: bool = Field(
        default=False,
        description="Hold rows breached before trading to their limit (as validate's "
        "cure_passive); by default they may not get worse than pre-trade.",
    )


class ConstraintSetRequest(StrictModel):
    """A portfolio and its policies: which constraint set to export."""

    portfolio_state: PortfolioState
    portfolio_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Whose policies apply; defaults to portfolio_state.portfolio_id.",
    )
    universe: list[Symbol] = Field(
        default_factory=list,
        description="Symbols the optimizer may buy besides the held ones; each needs an "
        "instrument (with a price) in portfolio_state.",
    )
    applicable_policies: list[str] | None = None
    policies: list[PolicyDefinition] | None = Field(
        default=None, description="Inline policy set, used instead of the stored policies."
    )
    context: dict[str, Any] = Field(default_factory=dict)
    options: ExportOptions = Field(default_factory=ExportOptions)

    @field_validator("portfolio_id")
    @classmethod
    def _same_portfolio(cls, portfolio_id: str | None, info: ValidationInfo) -> str | None:
        return same_portfolio_id(portfolio_id, info)

    @field_validator("context")
    @classmethod
    def _finite_context(cls, context: dict[str, Any]) -> dict[str, Any]:
        check_json_values(context, "ConstraintSetRequest")
        return context

    @model_validator(mode="after")
    def _unique_universe(self) -> ConstraintSetRequest:
        seen: set[str] = set()
        for symbol in self.universe:
            if symbol in seen:
                raise ValueError(f"universe lists {symbol} twice")
            seen.add(symbol)
        return self


class SparseMatrix(StrictModel):
    """A matrix in coordinate form: entry `(row[e], col[e])` is `val[e]`; others are 0."""

    shape: tuple[int, int]
    row: list[int]
    col: list[int]
    val: list[float]


class RowInfo(StrictModel):
    """Where a row (or a cone, or a block row) comes from, and what it bounds."""

    policy_name: str
    policy_type: PolicyType
    enforcement_level: EnforcementLevel
    kind: str
    constraint_index: int
    violation_type: str
    subject: str | None
    role: Literal["limit", "auxiliary", "conic"] = Field(
        description="limit: the policy's bound; auxiliary: defines an auxiliary variable; "
        "conic: a row of a custom expression's conic form (the rows together are the bound)."
    )
    limit: float | None = Field(description="The policy's limit (limit rows).")
    pre_trade: float | None = Field(description="The row's value at the pre-trade weights.")
    passive: bool = Field(description="Breached before trading; bounded by its pre-trade value.")
    tightened: bool = Field(
        description="The bound was moved inward by the margin. False where that would cut "
        "off the pre-trade value (passive rows, no-buy names ...): meet those to 1e-9."
    )
    exact: bool = Field(description="False when the rows are a convex restriction of the rule.")
    encoding: str | None = None
    description: str = ""


class Auxiliary(StrictModel):
    """An auxiliary variable of the linearized form: `x[index]`."""

    name: str
    index: int
    lower: float | None = Field(description="Lower bound (0 for non-negative ones), or null.")
    upper: float | None = Field(default=None, description="Upper bound, or null (none).")


class Variables(StrictModel):
    """The decision vector `x = [w (symbols, in order), auxiliary (in order)]`."""

    symbols: list[str]
    w0: list[float] = Field(description="Pre-trade weights, in the order of `symbols`.")
    prices: list[float]
    auxiliary: list[Auxiliary] = Field(default_factory=list)
    count: int = Field(
        description="len(symbols) + len(auxiliary): the columns of linear.matrix (cone and "
        "block matrices are over the weights only)."
    )


class FixedWeight(StrictModel):
    """A weight no trade may move: set it exactly, do not leave it to the solver."""

    symbol: str
    index: int
    value: float
    policies: list[str]


class LinearConstraints(StrictModel):
    """`lower <= matrix @ x <= upper` row by row; a null bound is absent (infinite)."""

    matrix: SparseMatrix
    lower: list[float | None]
    upper: list[float | None]
    rows: list[RowInfo]


class SecondOrderCone(StrictModel):
    """`|| matrix @ x + offset ||_2 <= bound`: volatility, tracking error, parametric VaR.

    `scale` is the factor between the norm and the policy's measure (the VaR multiplier
    `z * sqrt(h / 252)`, 1 otherwise): `bound = (limit - margin) / scale`.
    """

    matrix: SparseMatrix
    offset: list[float]
    bound: float
    scale: float
    info: RowInfo


class NamedBlock(StrictModel):
    """A piecewise-linear block (form `blocks`), rows `value_r(w) <= upper[r]`.

    The one concave type (`capped_sum`) is bounded below instead: `value_r(w) >= lower[r]`.

    - `abs_sum`: `value_r = sum_j G[r, j] * |(A @ w + c)[j]| + k[r]` (gross exposure,
      turnover, gross group limits, no-holding / no-trade / trade limits).
    - `sum_largest_abs`: `value = sum of the top_k largest |w_i|` (concentration).
    - `cvar`: `value = CVaR_beta(-returns @ w)` over equally likely scenarios (rows of
      `returns`), that is `min_z z + sum_s max(-returns[s] @ w - z, 0) / ((1 - beta) S)`.
    - `capped_sum`: `value = a @ w + k[0] + sum_g min((G @ w)[g], cap[g])` (1940 Act
      diversified basket; bounded below).
    - `positive_part_sum`: `value = sum_g max((G @ w)[g] + c[g], 0)` (the UCITS 40%
      restriction).
    """

    type: Literal["abs_sum", "sum_largest_abs", "cvar", "capped_sum", "positive_part_sum"]
    upper: list[float] | None = None
    lower: list[float] | None = None
    rows: list[RowInfo]
    A: SparseMatrix | None = None
    c: list[float] | None = None
    G: SparseMatrix | None = None
    k: list[float] | None = None
    top_k: int | None = None
    returns: list[list[float]] | None = None
    beta: float | None = None
    a: list[float] | None = None
    cap: list[float] | None = None


class ConicRows(StrictModel):
    """Rows of a custom expression's conic form: `matrix @ x + offset` lies in the cone.

    Over the whole `x = [w, aux]` (`matrix` is `variables.count` wide). The second-order
    cone is `{(t, v): ||v||_2 <= t}`: the first entry bounds the norm of the others.
    """

    cone: Literal["second_order"] = "second_order"
    matrix: SparseMatrix
    offset: list[float]
    info: RowInfo


_EXAMPLE: dict[str, Any] = {
    "policy_revision": "6d19fcbdd6ea1b60b320559ba27e7b69a92ae83189f30f5234c8d7b2ccc42ecc",
    "portfolio_id": "global-equity",
    "policies": ["single-name-cap"],
    "enforcement_levels": ["strict"],
    "form": "linearized",
    "margin": 1e-07,
    "cure_passive": False,
    "nav": 5092500.0,
    "variables": {
        "symbols": ["AAPL", "MSFT", "XOM"],
        "w0": [0.18664702994599902, 0.32243495336278843, 0.0],
        "prices": [190.1, 410.5, 118.2],
        "auxiliary": [],
        "count": 3,
    },
    "fixed": [],
    "linear": {
        "matrix": {"shape": [3, 3], "row": [0, 1, 2], "col": [0, 1, 2], "val": [1.0, 1.0, 1.0]},
        "lower": [None, None, None],
        "upper": [0.18664702994599902, 0.32243495336278843, 0.0999999],
        "rows": [
            {
                "policy_name": "single-name-cap",
                "policy_type": "POSITION_LIMIT",
                "enforcement_level": "strict",
                "kind": "weight_bounds",
                "constraint_index": 0,
                "violation_type": "weight_bounds.max",
                "subject": "AAPL",
                "role": "limit",
                "limit": 0.1,
                "pre_trade": 0.18664702994599902,
                "passive": True,
                "tightened": False,
                "exact": True,
                "encoding": None,
                "description": "AAPL weight",
            },
            {
                "policy_name": "single-name-cap",
                "policy_type": "POSITION_LIMIT",
                "enforcement_level": "strict",
                "kind": "weight_bounds",
                "constraint_index": 0,
                "violation_type": "weight_bounds.max",
                "subject": "MSFT",
                "role": "limit",
                "limit": 0.1,
                "pre_trade": 0.32243495336278843,
                "passive": True,
                "tightened": False,
                "exact": True,
                "encoding": None,
                "description": "MSFT weight",
            },
            {
                "policy_name": "single-name-cap",
                "policy_type": "POSITION_LIMIT",
                "enforcement_level": "strict",
                "kind": "weight_bounds",
                "constraint_index": 0,
                "violation_type": "weight_bounds.max",
                "subject": "XOM",
                "role": "limit",
                "limit": 0.1,
                "pre_trade": 0.0,
                "passive": False,
                "tightened": True,
                "exact": True,
                "encoding": None,
                "description": "XOM weight",
            },
        ],
    },
    "cones": [],
    "conic": [],
    "blocks": [],
    "notes": [
        "Weights of instruments outside variables.symbols (not held, not in universe) are 0 "
        "and may not be traded by a decision built on this set.",
        "Weights are continuous; rounding the trades to lot sizes can move a row past its "
        "bound: validate the rounded decision (mode adjust returns a compliant one).",
        "Rows breached before trading are bounded by their pre-trade values: single-name-cap.",
    ],
}
"""A real export: two names held above a 10% cap (passive), one the optimizer may buy."""


class ConstraintSet(StrictModel):
    """The compiled constraints of a portfolio's policies, solver-neutral."""

    policy_revision: str = Field(
        description="sha256 of the exported policies' canonical JSON: equal revisions, equal "
        "policies (cache key together with the portfolio data)."
    )
    portfolio_id: str
    policies: list[str] = Field(description="The exported policies, by name.")
    enforcement_levels: list[EnforcementLevel]
    form: ExportForm
    margin: float
    cure_passive: bool
    nav: float
    variables: Variables
    fixed: list[FixedWeight]
    linear: LinearConstraints
    cones: list[SecondOrderCone]
    conic: list[ConicRows] = Field(
        default_factory=list,
        description="Second-order cone rows over x of custom expressions (see ConicRows).",
    )
    blocks: list[NamedBlock]
    notes: list[str]

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

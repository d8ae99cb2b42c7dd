"""The wire models are strict, and their errors name the field path of the offending input.

Paths are rendered with `api.field_messages.field_messages`, the same function the CLI (and the HTTP
edge) uses, so a test here pins what a caller actually reads. Discriminated constraint unions
keep the kind as a path element: ``rules.constraints[0].weight_bounds.max``.
"""

from __future__ import annotations

import copy
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.field_messages import describe_validation_error, field_messages
from engine import PolicyEngine
from models import (
    Constraint,
    PolicyDefinition,
    PolicyValidationRequest,
    PolicyValidationResponse,
    PortfolioState,
)
from tests.builders import instrument, policy, request

NAN = float("nan")
INF = float("inf")

RISK = {
    "factor_loadings": {
        "AAA": [1.2, 0.1],
        "BBB": [1.0, -0.2],
        "CCC": [0.8, 0.3],
        "DDD": [0.5, 0.0],
        "EEE": [0.9, 0.2],
    },
    "factor_covariance": [[0.04, 0.001], [0.001, 0.01]],
    "specific_variance": {"AAA": 0.01, "BBB": 0.02, "CCC": 0.01, "DDD": 0.015, "EEE": 0.01},
}
SCENARIOS = {
    "symbols": ["AAA", "BBB", "CCC", "DDD", "EEE"],
    "returns": [[-0.05, -0.04, 0.01, -0.02, 0.0], [0.02, 0.01, -0.03, 0.0, 0.01]],
}
BENCHMARK = {"AAA": 0.3, "CCC": 0.3, "EEE": 0.4}

# One valid example of every constraint kind.
EVERY_KIND: list[dict[str, Any]] = [
    {"kind": "trade_risk", "max": 0.01, "symbols": ["AAA"]},
    {"kind": "max_positions", "max": 5},
    {"kind": "trading_halt", "reason": "r", "violation_type": "strategy_not_allowed"},
    {"kind": "correlation_cluster", "min_correlation": 0.8, "max": 0.3, "min_size": 3},
    {"kind": "restricted", "mode": "no_buy", "all_except": ["AAA", "BBB"]},
    {
        "kind": "weight_bounds",
        "max": 0.25,
        "min": -0.05,
        "symbols": ["AAA", "BBB"],
        "per_symbol": {"AAA": {"max": 0.2}},
    },
    {
        "kind": "group_limit",
        "attribute": "sector",
        "max": 0.4,
        "per_group": {"Tech": {"max": 0.3}},
        "measure": "gross",
    },
    {"kind": "group_limit", "attribute": "sector", "min": -0.1, "max": 0.4, "active": True},
    {"kind": "gross_exposure", "max": 1.5},
    {"kind": "net_exposure", "min": 0.5, "max": 1.0},
    {"kind": "cash", "min": 0.02},
    {"kind": "cash", "by_currency": True, "per_currency": {"JPY": {"min": -0.05}}},
    {"kind": "currency_exposure", "max": 0.3, "per_currency": {"JPY": {"min": -0.1, "max": 0.2}}},
    {"kind": "currency_exposure", "total": True, "max": 0.5, "hedges": False},
    {"kind": "target_drift", "max": 0.02, "max_total": 0.1, "symbols": ["AAA"]},
    {"kind": "exposure", "attribute": "beta", "min": 0.3, "max": 1.1, "missing": {"default": 1.0}},
    {"kind": "concentration", "top_k": 3, "max": 0.6},
    {"kind": "turnover", "max": 0.2},
    {"kind": "trade_limit", "max_weight_change": 0.05, "max_adv_fraction": 0.1},
    {"kind": "restricted", "symbols": ["EEE"], "mode": "no_buy"},
    {"kind": "restricted", "where": {"country": ["RU"], "esg": [1, 2.5]}, "missing": "ignore"},
    {"kind": "allowed_universe", "where": {"country": ["US"]}},
    {"kind": "volatility", "max": 0.2},
    {"kind": "tracking_error", "max": 0.05},
    {"kind": "var", "confidence": 0.99, "horizon_days": 10, "max": 0.08},
    {"kind": "cvar", "confidence": 0.95, "max": 0.1},
    {
        "kind": "stress",
        "max_loss": 0.15,
        "scenarios": {
            "oil-crash": {"by": "sector", "shocks": {"Energy": -0.4}, "default": -0.05},
            "aaa-default": {"shocks": {"AAA": -1.0}},
        },
    },
    {"kind": "expression", "expr": 'sum(w[sector == "Energy"]) <= 0.08', "missing": "ignore"},
    {"kind": "ucits_5_10_40", "exempt": {"asset_class": ["government"]}},
    {"kind": "diversified_75_5_10", "voting_cap": None, "missing": "ignore"},
    {"kind": "names_rule_80", "where": {"country": ["US"]}, "min": 0.8},
    {"kind": "illiquid_limit", "attribute": "liquidity", "value": "illiquid", "max": 0.15},
    {"kind": "derivatives_var", "mode": "relative", "max_ratio": 2.5, "horizon_days": 20},
]


def _policy(*constraints: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A policy body without validating it (unlike `tests.builders.policy`)."""
    body: dict[str, Any] = {
        "policy_name": "p",
        "policy_type": "RISK_LIMIT",
        "rules": {"constraints": list(constraints)},
    }
    body.update(fields)
    return body


def _request_body() -> dict[str, Any]:
    """A valid request using every optional part of the portfolio state, as JSON data."""
    instruments = [
        instrument(s, attributes={"beta": 1.0, "esg": 5.5, "liquidity": "high"})
        for s in ("AAA", "BBB", "CCC", "DDD", "EEE")
    ]
    body = request(
        {"AAA": 200, "BBB": -100, "CCC": 300},
        [("AAA", "BUY", 10), ("DDD", "SELL", 5)],
        instruments=instruments,
        benchmark=BENCHMARK,
        risk_model=RISK,
        scenarios=SCENARIOS,
        context={"risk_mode": "NORMAL"},
        policies=[policy("cap", {"kind": "weight_bounds", "max": 0.35})],
        applicable_policies=["cap"],
    ).model_dump(mode="json")
    return body


def _set(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `data` with the item at `path` replaced (or added)."""
    out = copy.deepcopy(data)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def _errors(model: type[BaseModel], data: Any) -> list[tuple[str, str]]:
    """The (field path, message) pairs of validating `data`; fails if it validates."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return field_messages(info.value)


def _paths(model: type[BaseModel], data: Any) -> set[str]:
    return {path for path, _ in _errors(model, data)}


# --- non-finite numbers --------------------------------------------------------------------

REQUEST_NUMBERS: list[tuple[tuple[str | int, ...], str]] = [
    (("portfolio_state", "cash"), "portfolio_state.cash"),
    (("portfolio_state", "positions", 1, "quantity"), "portfolio_state.positions[1].quantity"),
    (("portfolio_state", "instruments", 2, "price"), "portfolio_state.instruments[2].price"),
    (("portfolio_state", "instruments", 0, "adv"), "portfolio_state.instruments[0].adv"),
    (("portfolio_state", "instruments", 0, "lot_size"), "portfolio_state.instruments[0].lot_size"),
    (("portfolio_state", "benchmark", "CCC"), "portfolio_state.benchmark.CCC"),
    (
        ("portfolio_state", "risk_model", "factor_loadings", "BBB", 1),
        "portfolio_state.risk_model.factor_loadings.BBB[1]",
    ),
    (
        ("portfolio_state", "risk_model", "factor_covariance", 1, 0),
        "portfolio_state.risk_model.factor_covariance[1][0]",
    ),
    (
        ("portfolio_state", "risk_model", "specific_variance", "DDD"),
        "portfolio_state.risk_model.specific_variance.DDD",
    ),
    (("portfolio_state", "scenarios", "returns", 1, 3), "portfolio_state.scenarios.returns[1][3]"),
    (("decision", "trades", 0, "quantity"), "decision.trades[0].quantity"),
]


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("where", "field"), REQUEST_NUMBERS, ids=[f for _, f in REQUEST_NUMBERS])
def test_non_finite_request_number_is_rejected_naming_the_field(
    where: tuple[str | int, ...], field: str, value: float
) -> None:
    errors = _errors(PolicyValidationRequest, _set(_request_body(), where, value))
    assert (field, "Input should be a finite number") in errors


def test_non_finite_full_covariance_entry_is_rejected() -> None:
    body = _set(
        _request_body(),
        ("portfolio_state", "risk_model"),
        {"covariance": {"symbols": ["AAA", "BBB"], "matrix": [[0.04, 0.01], [0.01, NAN]]}},
    )
    assert _paths(PolicyValidationRequest, body) == {
        "portfolio_state.risk_model.covariance.matrix[1][1]"
    }


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_non_finite_attribute_value_is_rejected_naming_the_attribute(value: float) -> None:
    body = _set(_request_body(), ("portfolio_state", "instruments", 3, "attributes", "esg"), value)
    errors = _errors(PolicyValidationRequest, body)
    prefix = "portfolio_state.instruments[3].attributes.esg"
    # The attribute is a union (number | string | bool): pydantic reports each member, but
    # every message is about this attribute and one says why the number is refused.
    assert errors and all(path.startswith(prefix) for path, _ in errors)
    assert any(msg == "Input should be a finite number" for _, msg in errors)


def _limit_cases() -> list[tuple[dict[str, Any], str]]:
    """(constraint with a non-finite number marked by the string "X", path of that number)."""
    return [
        ({"kind": "weight_bounds", "max": "X"}, "weight_bounds.max"),
        ({"kind": "weight_bounds", "min": "X"}, "weight_bounds.min"),
        (
            {"kind": "weight_bounds", "per_symbol": {"AAA": {"max": "X"}}},
            "weight_bounds.per_symbol.AAA.max",
        ),
        ({"kind": "group_limit", "attribute": "sector", "max": "X"}, "group_limit.max"),
        (
            {"kind": "group_limit", "attribute": "sector", "per_group": {"Tech": {"min": "X"}}},
            "group_limit.per_group.Tech.min",
        ),
        ({"kind": "gross_exposure", "max": "X"}, "gross_exposure.max"),
        ({"kind": "net_exposure", "min": "X"}, "net_exposure.min"),
        ({"kind": "cash", "min": "X"}, "cash.min"),
        ({"kind": "exposure", "attribute": "beta", "max": "X"}, "exposure.max"),
        ({"kind": "concentration", "top_k": 2, "max": "X"}, "concentration.max"),
        ({"kind": "turnover", "max": "X"}, "turnover.max"),
        ({"kind": "trade_limit", "max_weight_change": "X"}, "trade_limit.max_weight_change"),
        ({"kind": "trade_limit", "max_adv_fraction": "X"}, "trade_limit.max_adv_fraction"),
        ({"kind": "volatility", "max": "X"}, "volatility.max"),
        ({"kind": "tracking_error", "max": "X"}, "tracking_error.max"),
        ({"kind": "var", "confidence": "X", "max": 0.1}, "var.confidence"),
        ({"kind": "var", "confidence": 0.95, "horizon_days": "X", "max": 0.1}, "var.horizon_days"),
        ({"kind": "var", "confidence": 0.95, "max": "X"}, "var.max"),
        ({"kind": "cvar", "confidence": "X", "max": 0.1}, "cvar.confidence"),
        ({"kind": "cvar", "confidence": 0.95, "max": "X"}, "cvar.max"),
        (
            {"kind": "stress", "max_loss": "X", "scenarios": {"s": {"shocks": {"AAA": -0.1}}}},
            "stress.max_loss",
        ),
        (
            {"kind": "stress", "max_loss": 0.1, "scenarios": {"s": {"shocks": {"AAA": "X"}}}},
            "stress.scenarios.s.shocks.AAA",
        ),
        (
            {"kind": "stress", "max_loss": 0.1, "scenarios": {"s": {"shocks": {}, "default": "X"}}},
            "stress.scenarios.s.default",
        ),
    ]


def _fill(node: Any, value: float) -> Any:
    if node == "X":
        return value
    if isinstance(node, dict):
        return {k: _fill(v, value) for k, v in node.items()}
    return node


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    ("constraint", "field"), _limit_cases(), ids=[f for _, f in _limit_cases()]
)
def test_non_finite_limit_is_rejected_naming_the_field(
    constraint: dict[str, Any], field: str, value: float
) -> None:
    errors = _errors(PolicyDefinition, _policy(_fill(constraint, value)))
    assert (f"rules.constraints[0].{field}", "Input should be a finite number") in errors


@pytest.mark.parametrize("value", [NAN, INF])
@pytest.mark.parametrize("kind", ["restricted", "allowed_universe"])
def test_non_finite_where_value_is_rejected(kind: str, value: float) -> None:
    errors = _errors(PolicyDefinition, _policy({"kind": kind, "where": {"esg": ["low", value]}}))
    prefix = f"rules.constraints[0].{kind}.where.esg[1]"
    assert errors and all(path.startswith(prefix) for path, _ in errors)
    assert any(msg == "Input should be a finite number" for _, msg in errors)


def test_non_finite_missing_default_is_rejected() -> None:
    constraint = {"kind": "exposure", "attribute": "esg", "max": 7, "missing": {"default": NAN}}
    errors = _errors(PolicyDefinition, _policy(constraint))
    assert errors and all(p.startswith("rules.constraints[0].exposure.missing") for p, _ in errors)
    assert (
        "rules.constraints[0].exposure.missing.MissingDefault.default.float",
        "Input should be a finite number",
    ) in errors


def test_inline_policy_errors_are_nested_under_the_request_path() -> None:
    body = _request_body()
    body["policies"] = [
        _policy({"kind": "cash", "min": 0.01}, policy_name="ok"),
        _policy({"kind": "turnover", "max": NAN}, policy_name="bad"),
    ]
    assert _paths(PolicyValidationRequest, body) == {
        "policies[1].rules.constraints[0].turnover.max"
    }


# --- sign and range checks -----------------------------------------------------------------


@pytest.mark.parametrize("price", [0, 0.0, -1.0, -1e-12])
def test_non_positive_price_is_rejected(price: float) -> None:
    body = _set(_request_body(), ("portfolio_state", "instruments", 1, "price"), price)
    assert _errors(PolicyValidationRequest, body) == [
        ("portfolio_state.instruments[1].price", "Input should be greater than 0")
    ]


def test_missing_price_is_rejected() -> None:
    body = _request_body()
    del body["portfolio_state"]["instruments"][4]["price"]
    assert _errors(PolicyValidationRequest, body) == [
        ("portfolio_state.instruments[4].price", "Field required")
    ]


@pytest.mark.parametrize("quantity", [0, 0.0, -5, -0.5])
def test_zero_or_negative_trade_quantity_is_rejected(quantity: float) -> None:
    body = _set(_request_body(), ("decision", "trades", 1, "quantity"), quantity)
    assert _errors(PolicyValidationRequest, body) == [
        ("decision.trades[1].quantity", "Input should be greater than 0")
    ]


def test_short_position_and_negative_cash_are_valid_models() -> None:
    body = _set(_request_body(), ("portfolio_state", "cash"), -1_000.0)
    body = _set(body, ("portfolio_state", "positions", 0, "quantity"), -50)
    state = PolicyValidationRequest.model_validate(body).portfolio_state
    assert state.cash == -1_000.0 and state.positions[0].quantity == -50


def test_bad_side_is_rejected() -> None:
    body = _set(_request_body(), ("decision", "trades", 0, "side"), "HOLD")
    assert _paths(PolicyValidationRequest, body) == {"decision.trades[0].side"}


# --- unknown kinds and fields ----------------------------------------------------------------


def test_unknown_constraint_kind_is_rejected_naming_the_constraint() -> None:
    body = _policy({"kind": "cash", "min": 0.0}, {"kind": "leverage", "max": 2})
    [(path, message)] = _errors(PolicyDefinition, body)
    assert path == "rules.constraints[1]"
    assert "'leverage'" in message and "weight_bounds" in message


def test_constraint_without_kind_is_rejected() -> None:
    [(path, message)] = _errors(PolicyDefinition, _policy({"max": 0.1}))
    assert path == "rules.constraints[0]" and "kind" in message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            _policy({"kind": "weight_bounds", "max": 0.1, "maximum": 0.2}),
            "rules.constraints[0].weight_bounds.maximum",
        ),
        (
            _policy({"kind": "group_limit", "attribute": "sector", "max": 0.3, "per_sector": {}}),
            "rules.constraints[0].group_limit.per_sector",
        ),
        (
            _policy({"kind": "weight_bounds", "per_symbol": {"AAA": {"max": 0.1, "cap": 1}}}),
            "rules.constraints[0].weight_bounds.per_symbol.AAA.cap",
        ),
        (
            _policy(
                {
                    "kind": "stress",
                    "max_loss": 0.1,
                    "scenarios": {"s": {"shocks": {}, "probability": 0.5}},
                }
            ),
            "rules.constraints[0].stress.scenarios.s.probability",
        ),
        (
            {
                **_policy({"kind": "cash", "min": 0.0}),
                "rules": {"constraints": [{"kind": "cash", "min": 0.0}], "mode": "all"},
            },
            "rules.mode",
        ),
        (_policy({"kind": "cash", "min": 0.0}, priority=1), "priority"),
        (
            _policy({"kind": "cash", "min": 0.0}, scope={"portfolios": ["*"], "desks": []}),
            "scope.desks",
        ),
    ],
    ids=["rule", "rule-group", "per-symbol", "stress-scenario", "rules", "policy", "scope"],
)
def test_unknown_field_in_a_policy_is_rejected(body: dict[str, Any], field: str) -> None:
    assert _errors(PolicyDefinition, body) == [(field, "Extra inputs are not permitted")]


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("dry_run",), "dry_run"),
        (("decision", "urgency"), "decision.urgency"),
        (("decision", "trades", 0, "price"), "decision.trades[0].price"),
        (("portfolio_state", "nav"), "portfolio_state.nav"),
        (("portfolio_state", "positions", 0, "price"), "portfolio_state.positions[0].price"),
        (("portfolio_state", "instruments", 0, "esg"), "portfolio_state.instruments[0].esg"),
        (("portfolio_state", "risk_model", "half_life"), "portfolio_state.risk_model.half_life"),
        (("portfolio_state", "scenarios", "weights"), "portfolio_state.scenarios.weights"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_unknown_field_in_a_request_is_rejected(where: tuple[str | int, ...], field: str) -> None:
    body = _set(_request_body(), where, 1)
    assert _errors(PolicyValidationRequest, body) == [(field, "Extra inputs are not permitted")]


# --- cross-field rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "field"),
    [
        ({"kind": "weight_bounds", "min": 0.2, "max": 0.1}, "weight_bounds"),
        ({"kind": "group_limit", "attribute": "sector", "min": 0.5, "max": 0.4}, "group_limit"),
        ({"kind": "net_exposure", "min": 1.0, "max": 0.9}, "net_exposure"),
        ({"kind": "cash", "min": 0.1, "max": 0.05}, "cash"),
        ({"kind": "exposure", "attribute": "beta", "min": 1.2, "max": 1.1}, "exposure"),
        (
            {"kind": "weight_bounds", "per_symbol": {"BBB": {"min": 0.3, "max": 0.2}}},
            "weight_bounds.per_symbol.BBB",
        ),
        (
            {
                "kind": "group_limit",
                "attribute": "sector",
                "per_group": {"Energy": {"min": 0.3, "max": 0.2}},
            },
            "group_limit.per_group.Energy",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_min_above_max_is_rejected(constraint: dict[str, Any], field: str) -> None:
    [(path, message)] = _errors(PolicyDefinition, _policy(constraint))
    assert path == f"rules.constraints[0].{field}"
    assert "min" in message and "greater than max" in message


@pytest.mark.parametrize("kind", ["weight_bounds", "net_exposure", "cash"])
def test_min_equal_to_max_is_allowed(kind: str) -> None:
    PolicyDefinition.model_validate(_policy({"kind": kind, "min": 0.1, "max": 0.1}))


@pytest.mark.parametrize("kind", ["weight_bounds", "net_exposure", "cash"])
def test_a_bounded_kind_needs_some_bound(kind: str) -> None:
    [(path, message)] = _errors(PolicyDefinition, _policy({"kind": kind}))
    assert path == f"rules.constraints[0].{kind}" and "min, max or both" in message


@pytest.mark.parametrize(
    ("constraint", "field"),
    [
        (
            {
                "kind": "group_limit",
                "attribute": "sector",
                "min": 0.05,
                "max": 0.4,
                "measure": "gross",
            },
            "group_limit",
        ),
        (
            {
                "kind": "group_limit",
                "attribute": "sector",
                "max": 0.4,
                "measure": "gross",
                "per_group": {"Tech": {"min": 0.1}},
            },
            "group_limit",
        ),
    ],
    ids=["global-min", "per-group-min"],
)
def test_min_on_gross_group_limit_is_rejected_as_not_convex(
    constraint: dict[str, Any], field: str
) -> None:
    [(path, message)] = _errors(PolicyDefinition, _policy(constraint))
    assert path == f"rules.constraints[0].{field}"
    assert "not convex" in message and "gross" in message


def test_gross_group_limit_with_max_and_net_with_min_are_allowed() -> None:
    PolicyDefinition.model_validate(
        _policy(
            {"kind": "group_limit", "attribute": "sector", "max": 0.4, "measure": "gross"},
            {"kind": "group_limit", "attribute": "sector", "min": 0.05, "measure": "net"},
        )
    )


def test_trade_limit_needs_a_limit() -> None:
    [(path, message)] = _errors(
        PolicyDefinition, _policy({"kind": "trade_limit", "symbols": ["AAA"]})
    )
    assert path == "rules.constraints[0].trade_limit"
    assert "max_weight_change" in message and "max_adv_fraction" in message
    for limit in ("max_weight_change", "max_adv_fraction"):
        PolicyDefinition.model_validate(_policy({"kind": "trade_limit", limit: 0.1}))


ONE_SELECTOR = "exactly one of symbols, where or all_except"


@pytest.mark.parametrize("kind", ["restricted", "allowed_universe"])
@pytest.mark.parametrize(
    ("selector", "needle"),
    [
        ({}, ONE_SELECTOR),
        ({"symbols": ["AAA"], "where": {"sector": ["Tech"]}}, ONE_SELECTOR),
        ({"symbols": ["AAA"], "all_except": ["BBB"]}, ONE_SELECTOR),
        ({"where": {}}, "where must name at least one attribute"),
    ],
    ids=["neither", "both", "symbols-and-all-except", "empty-where"],
)
def test_selection_needs_exactly_one_selector(
    kind: str, selector: dict[str, Any], needle: str
) -> None:
    [(path, message)] = _errors(PolicyDefinition, _policy({"kind": kind, **selector}))
    assert path == f"rules.constraints[0].{kind}"
    assert needle in message


def test_restricted_with_one_selector_is_valid() -> None:
    PolicyDefinition.model_validate(
        _policy(
            {"kind": "restricted", "symbols": ["AAA"]},
            {"kind": "restricted", "where": {"sector": ["X"]}},
        )
    )


def test_decision_for_another_portfolio_is_rejected() -> None:
    body = _set(_request_body(), ("decision", "portfolio_id"), "other-fund")
    [(path, message)] = _errors(PolicyValidationRequest, body)
    assert path == "portfolio_state"
    assert "decision.portfolio_id 'other-fund'" in message
    assert "portfolio_id 'p-1'" in message
    with pytest.raises(ValidationError) as info:
        PolicyValidationRequest.model_validate(body)
    assert describe_validation_error(info.value, "request").startswith(
        "request.portfolio_state: Value error, portfolio_id"
    )


def test_non_finite_context_values_are_rejected() -> None:
    body = _request_body()
    body["context"] = {"market": {"vix": float("nan")}}
    [(path, message)] = _errors(PolicyValidationRequest, body)
    assert path == "context.market.vix"
    assert message == "Input should be a finite number"


# --- risk model and scenario shapes ------------------------------------------------------


def _state(**fields: Any) -> dict[str, Any]:
    return {"portfolio_id": "p-1", "cash": 1_000.0, **fields}


@pytest.mark.parametrize(
    ("risk_model", "field", "needle"),
    [
        (
            {
                "factor_loadings": {"AAA": [1.0, 0.5], "BBB": [1.0]},
                "factor_covariance": [[0.04, 0.0], [0.0, 0.01]],
            },
            "risk_model",
            "factor_loadings.BBB has 1 entries, expected 2",
        ),
        (
            {
                "factor_loadings": {"AAA": [1.0, 0.5, 0.1]},
                "factor_covariance": [[0.04, 0.0], [0.0, 0.01]],
            },
            "risk_model",
            "factor_loadings.AAA has 3 entries, expected 2",
        ),
        (
            {"factor_loadings": {"AAA": [1.0, 0.5]}, "factor_covariance": [[0.04, 0.0], [0.0]]},
            "risk_model",
            "factor_covariance[1] has 1 entries, expected 2",
        ),
        (
            {"factor_loadings": {"AAA": [1.0]}, "factor_covariance": [[0.04, 0.0]]},
            "risk_model",
            "factor_covariance[0] has 2 entries, expected 1",
        ),
        (
            {"factor_loadings": {"AAA": [1.0]}, "factor_covariance": []},
            "risk_model",
            "factor_covariance must not be empty",
        ),
        ({"factor_loadings": {"AAA": [1.0]}}, "risk_model", "factor_covariance"),
        (
            {"covariance": {"symbols": ["AAA", "BBB"], "matrix": [[0.04, 0.01]]}},
            "risk_model.covariance",
            "matrix has 1 rows, expected 2",
        ),
        (
            {"covariance": {"symbols": ["AAA", "BBB"], "matrix": [[0.04, 0.01], [0.01]]}},
            "risk_model.covariance",
            "matrix[1] has 1 entries, expected 2",
        ),
        (
            {"covariance": {"symbols": ["AAA", "AAA"], "matrix": [[1, 0], [0, 1]]}},
            "risk_model.covariance",
            "symbols must be unique",
        ),
        (
            {
                "covariance": {"symbols": ["AAA"], "matrix": [[0.04]]},
                "factor_loadings": {"AAA": [1.0]},
                "factor_covariance": [[0.04]],
            },
            "risk_model",
            "not both",
        ),
        ({}, "risk_model", "covariance"),
    ],
    ids=[
        "loadings-short",
        "loadings-long",
        "factor-cov-ragged",
        "factor-cov-wide",
        "factor-cov-empty",
        "factor-cov-absent",
        "cov-rows",
        "cov-ragged",
        "cov-duplicate",
        "both-forms",
        "no-form",
    ],
)
def test_risk_model_shape_errors_name_the_field(
    risk_model: dict[str, Any], field: str, needle: str
) -> None:
    [(path, message)] = _errors(PortfolioState, _state(risk_model=risk_model))
    assert path == field
    assert needle in message
    # Inside a request the same error is under portfolio_state.
    body = _set(_request_body(), ("portfolio_state", "risk_model"), risk_model)
    assert _paths(PolicyValidationRequest, body) == {f"portfolio_state.{field}"}


@pytest.mark.parametrize(
    ("scenarios", "needle"),
    [
        (
            {"symbols": ["AAA", "BBB"], "returns": [[0.1, 0.2], [0.1]]},
            "returns[1] has 1 entries, expected 2",
        ),
        ({"symbols": ["AAA"], "returns": [[0.1, 0.2]]}, "returns[0] has 2 entries, expected 1"),
        ({"symbols": ["AAA", "AAA"], "returns": [[0.1, 0.2]]}, "symbols must be unique"),
    ],
    ids=["short-row", "long-row", "duplicate-symbol"],
)
def test_scenario_shape_errors_name_the_field(scenarios: dict[str, Any], needle: str) -> None:
    [(path, message)] = _errors(PortfolioState, _state(scenarios=scenarios))
    assert path == "scenarios" and needle in message


def test_scenarios_need_a_row() -> None:
    [(path, _)] = _errors(PortfolioState, _state(scenarios={"symbols": ["AAA"], "returns": []}))
    assert path == "scenarios.returns"


# --- policy names ------------------------------------------------------------------------


def test_policy_name_longer_than_100_is_rejected() -> None:
    PolicyDefinition.model_validate(_policy({"kind": "cash", "min": 0.0}, policy_name="n" * 100))
    errors = _errors(PolicyDefinition, _policy({"kind": "cash", "min": 0.0}, policy_name="n" * 101))
    assert errors == [("policy_name", "String should have at most 100 characters")]


@pytest.mark.parametrize("name", ["", " leading-space", "-dash-first", "a/b", "tab\there"])
def test_malformed_policy_name_is_rejected(name: str) -> None:
    assert _paths(PolicyDefinition, _policy({"kind": "cash", "min": 0.0}, policy_name=name)) == {
        "policy_name"
    }


def test_policy_needs_a_constraint() -> None:
    assert _paths(PolicyDefinition, _policy()) == {"rules.constraints"}


# --- round trips ---------------------------------------------------------------------------


def test_examples_cover_every_constraint_kind() -> None:
    union = typing.get_args(typing.get_args(Constraint)[0])
    kinds = {typing.get_args(cls.model_fields["kind"].annotation)[0] for cls in union}
    assert {c["kind"] for c in EVERY_KIND} == kinds


@pytest.mark.parametrize("constraint", EVERY_KIND, ids=[c["kind"] for c in EVERY_KIND])
def test_policy_round_trips(constraint: dict[str, Any]) -> None:
    original = PolicyDefinition.model_validate(
        _policy(
            constraint,
            enforcement_level="advisory",
            severity="HIGH",
            description="d",
            scope={"portfolios": ["p-1", "p-2"]},
        )
    )
    dumped = original.model_dump(mode="json")
    again = PolicyDefinition.model_validate(dumped)
    assert again == original
    assert again.model_dump(mode="json") == dumped


def test_request_round_trips_with_every_optional_part() -> None:
    body = _request_body()
    body["policies"] = [_policy(c, policy_name=f"p{k}") for k, c in enumerate(EVERY_KIND)]
    body["applicable_policies"] = None
    body["decision"].update(strategy="momentum", confidence=0.8, created_at="2026-11-23T10:00:00Z")
    body.update(mode="validate", adjustment="project", cure_passive=True)
    original = PolicyValidationRequest.model_validate(body)
    again = PolicyValidationRequest.model_validate(original.model_dump(mode="json"))
    assert again == original
    assert again.decision.created_at == original.decision.created_at


def test_request_with_full_covariance_round_trips() -> None:
    body = _set(
        _request_body(),
        ("portfolio_state", "risk_model"),
        {"covariance": {"symbols": ["AAA", "BBB"], "matrix": [[0.04, 0.01], [0.01, 0.09]]}},
    )
    original = PolicyValidationRequest.model_validate(body)
    assert PolicyValidationRequest.model_validate(original.model_dump(mode="json")) == original


def test_minimal_request_round_trips_and_defaults() -> None:
    body = {
        "decision": {"decision_id": "d", "portfolio_id": "p"},
        "portfolio_state": {"portfolio_id": "p", "cash": 1.0},
    }
    original = PolicyValidationRequest.model_validate(body)
    assert original.mode.value == "adjust" and original.adjustment.value == "auto"
    assert original.policies is None and original.cure_passive is False
    assert PolicyValidationRequest.model_validate(original.model_dump(mode="json")) == original


def test_engine_response_round_trips() -> None:
    req = request(
        {"AAA": 200, "CCC": 300},
        [("AAA", "BUY", 300)],
        cash=50_000,
        policies=[policy("cap", {"kind": "weight_bounds", "max": 0.3})],
    )
    response = PolicyEngine().validate(req)
    assert not response.is_compliant and response.adjusted_decision is not None
    assert response.violations and response.violations[0].suggested_adjustment is not None
    again = PolicyValidationResponse.model_validate(response.model_dump(mode="json"))
    assert again == response
    assert PolicyValidationResponse.model_validate_json(response.model_dump_json()) == response


def test_response_rejects_score_outside_unit_interval() -> None:
    body = {
        "decision_id": "d",
        "is_compliant": True,
        "compliance_score": 1.5,
        "violations": [],
        "recommendations": [],
        "policies_checked": [],
    }
    assert _paths(PolicyValidationResponse, body) == {"compliance_score"}

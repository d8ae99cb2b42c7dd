"""Per-context limits: validation of the form, resolution, the engine's answers, the cache."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from engine import PolicyEngine, PolicyResolutionError
from engine.resolve.contextual import resolve_limits
from models import Bounds, PolicyDefinition, PolicyValidationResponse
from models import constraints as constraint_models
from models.contextual import ContextualValue, concrete
from tests.builders import policy, request
from tests.engine.compile.test_kinds import ALL_CASES, BASE, BENCH, RISK, SCENARIOS, TARGET

MODES = {"AGGRESSIVE": 0.12, "NORMAL": 0.10, "DEFENSIVE": 0.06}


def _by_mode(values: dict[str, float] = MODES, **extra: Any) -> dict[str, Any]:
    return {"by": "risk_mode", "values": dict(values), **extra}


# --- the model -----------------------------------------------------------------------------

NOT_LIMITS = {"horizon_days", "value", "min_correlation"}
"""Numeric parameters that stay plain numbers: they shape the measure (a horizon, the
correlation that forms a cluster) or select instruments (illiquid_limit's attribute value),
they are not limits."""


def _mentions(annotation: Any, target: type) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, target):
        return True
    return any(_mentions(arg, target) for arg in typing.get_args(annotation))


def _members(annotation: Any) -> list[Any]:
    """The members of a union (Annotated unwrapped), or the annotation itself."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _numeric_fields(model: type[BaseModel]) -> dict[str, Any]:
    """Fields that hold a number themselves (not numbers inside lists or mappings)."""
    return {
        name: info.annotation
        for name, info in model.model_fields.items()
        if float in _members(info.annotation)
    }


def test_every_numeric_limit_of_every_kind_accepts_the_contextual_form() -> None:
    union = typing.get_args(typing.get_args(constraint_models.Constraint)[0])
    checked = 0
    for model in [*union, Bounds]:
        for name, annotation in _numeric_fields(model).items():
            if name in NOT_LIMITS:
                continue
            assert _mentions(annotation, ContextualValue), f"{model.__name__}.{name}"
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("constraint", "loc"),
    [
        ({"kind": "gross_exposure", "max": _by_mode({"NORMAL": -0.1})}, "max.values.NORMAL"),
        ({"kind": "gross_exposure", "max": _by_mode(default=-1)}, "max.default"),
        ({"kind": "cvar", "confidence": _by_mode({"A": 1.5}), "max": 0.1}, "confidence.values.A"),
        ({"kind": "var", "confidence": _by_mode({"A": 0.4}), "max": 0.1}, "confidence.values.A"),
        ({"kind": "weight_bounds", "max": _by_mode({"A": float("nan")})}, "max.values.A"),
        ({"kind": "weight_bounds", "max": _by_mode({})}, "max.values"),
        ({"kind": "weight_bounds", "max": {"by": "mode"}}, "max.values"),
        ({"kind": "weight_bounds", "max": {**_by_mode(), "extra": 1}}, "max.extra"),
        ({"kind": "weight_bounds", "max": {**_by_mode(), "by": "risk mode"}}, "max.by"),
        ({"kind": "weight_bounds", "max": -0.1, "min": _by_mode()}, ""),
        (
            {"kind": "weight_bounds", "max": 0.5, "per_symbol": {"AAA": {"max": _by_mode({})}}},
            "per_symbol.AAA.max.values",
        ),
        ({"kind": "stress", "scenarios": {"s": {"shocks": {}}}, "max_loss": "x"}, "max_loss"),
    ],
)
def test_bad_contextual_values_name_the_field(constraint: dict[str, Any], loc: str) -> None:
    body = {"policy_name": "p", "policy_type": "RISK_LIMIT", "rules": {"constraints": [constraint]}}
    with pytest.raises(ValidationError) as caught:
        PolicyDefinition.model_validate(body)
    kind = constraint["kind"]
    paths = [".".join(str(p) for p in e["loc"]) for e in caught.value.errors(include_url=False)]
    assert f"rules.constraints.0.{kind}{'.' + loc if loc else ''}" in paths, paths


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (_by_mode({"A": 0.2, "B": 0.1}), _by_mode({"A": 0.3, "B": 0.05}), "when risk_mode is 'B'"),
        (_by_mode({"A": 0.2}, default=0.4), _by_mode({"A": 0.3}, default=0.35), "by default"),
        (_by_mode({"A": 0.2}), _by_mode({"B": 0.1}, default=0.15), "when risk_mode is 'A'"),
        (0.11, _by_mode(), "min 0.11 is greater than max 0.1 when risk_mode is 'NORMAL'"),
        (_by_mode(), 0.07, "min 0.12 is greater than max 0.07 when risk_mode is 'AGGRESSIVE'"),
        (0.3, 0.2, "min 0.3 is greater than max 0.2"),
    ],
)
def test_bounds_are_ordered_per_context_value(low: Any, high: Any, message: str) -> None:
    for model in (constraint_models.NetExposure, Bounds):
        with pytest.raises(ValidationError, match=message):
            model.model_validate({"min": low, "max": high})


def test_bounds_keyed_by_different_context_names_are_checked_once_chosen() -> None:
    cap = policy(
        "band",
        {
            "kind": "net_exposure",
            "min": _by_mode({"NORMAL": 0.5}),
            "max": {"by": "desk", "values": {"EQ": 0.4, "MACRO": 0.9}},
        },
    )
    parsed = PolicyDefinition.model_validate(cap)  # not comparable until the context is known
    assert resolve_limits(parsed, {"risk_mode": "NORMAL", "desk": "MACRO"}).policy
    with pytest.raises(PolicyResolutionError) as caught:
        resolve_limits(parsed, {"risk_mode": "NORMAL", "desk": "EQ"})
    assert caught.value.field == "policies[band].rules.constraints[0].net_exposure"
    assert "min 0.5 is greater than max 0.4" in caught.value.message
    assert "rules.constraints[0].max = 0.4" in caught.value.message


# --- resolution ----------------------------------------------------------------------------


def _cap_policy(limit: Any) -> PolicyDefinition:
    return PolicyDefinition.model_validate(policy("cap", {"kind": "weight_bounds", "max": limit}))


@pytest.mark.parametrize(("mode", "limit"), list(MODES.items()))
def test_the_context_value_chooses_the_limit(mode: str, limit: float) -> None:
    resolved = resolve_limits(_cap_policy(_by_mode(default=0.2)), {"risk_mode": mode})
    spec = resolved.policy.rules.constraints[0]
    assert isinstance(spec, constraint_models.WeightBounds)
    assert spec.max == limit and not isinstance(spec.max, ContextualValue)
    (choice,) = resolved.choices
    assert (choice.field, choice.by, choice.context_value) == (
        "rules.constraints[0].max",
        "risk_mode",
        mode,
    )
    assert (choice.value, choice.from_default) == (limit, False)


def test_default_covers_unlisted_values_and_a_missing_key() -> None:
    cap = _cap_policy(_by_mode(default=0.2))
    unlisted = resolve_limits(cap, {"risk_mode": "PANIC"})
    missing = resolve_limits(cap, {})
    for resolved, key in ((unlisted, "PANIC"), (missing, None)):
        spec = resolved.policy.rules.constraints[0]
        assert isinstance(spec, constraint_models.WeightBounds)
        assert spec.max == 0.2
        assert resolved.choices[0].from_default
        assert resolved.choices[0].context_value == key


@pytest.mark.parametrize(
    ("context", "needles"),
    [
        ({}, ["context.risk_mode", "lacks", "AGGRESSIVE, NORMAL, DEFENSIVE", "default"]),
        ({"risk_mode": "PANIC"}, ["context.risk_mode = 'PANIC'", "no default"]),
        ({"risk_mode": 0.5}, ["the number 0.5", "must be a text"]),
        ({"risk_mode": {"a": 1}}, ["an object"]),
        ({"risk": 1}, ["lacks"]),
    ],
)
def test_without_default_a_missing_or_unlisted_value_is_an_error(
    context: dict[str, Any], needles: list[str]
) -> None:
    with pytest.raises(PolicyResolutionError) as caught:
        resolve_limits(_cap_policy(_by_mode()), context)
    assert caught.value.field == "policies[cap].rules.constraints[0].max"
    assert caught.value.message.startswith("policy 'cap': rules.constraints[0].max")
    for needle in needles:
        assert needle in caught.value.message


def test_nested_context_names_and_non_text_keys() -> None:
    cap = _cap_policy({"by": "desk.tier", "values": {"1": 0.2, "2": 0.1, "true": 0.05}})
    for tier, limit in ((1, 0.2), ("2", 0.1), (True, 0.05)):
        spec = resolve_limits(cap, {"desk": {"tier": tier}}).policy.rules.constraints[0]
        assert isinstance(spec, constraint_models.WeightBounds)
        assert spec.max == limit
    with pytest.raises(
        PolicyResolutionError, match=r"context\.desk is the text 'x', not an object"
    ):
        resolve_limits(cap, {"desk": "x"})


def test_a_policy_without_contextual_limits_is_returned_as_it_is() -> None:
    plain = _cap_policy(0.1)
    assert resolve_limits(plain, {"risk_mode": "NORMAL"}).policy is plain


def test_concrete_refuses_an_unresolved_limit() -> None:
    cap = _cap_policy(_by_mode())
    spec = cap.rules.constraints[0]
    assert isinstance(spec, constraint_models.WeightBounds) and spec.max is not None
    with pytest.raises(TypeError, match="unresolved"):
        concrete(spec.max)


# --- through PolicyEngine.validate ---------------------------------------------------------

LIMIT_KEYS = {
    *("min", "max", "max_loss", "max_weight_change", "max_adv_fraction", "confidence"),
    *("single_max", "threshold", "aggregate_max", "basket_min", "issuer_cap", "voting_cap"),
    "max_ratio",
}


def _contextual(value: Any) -> Any:
    """Every limit in a constraint replaced by its per-context form choosing it under ON."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in LIMIT_KEYS and isinstance(item, int | float) and not isinstance(item, bool):
                other = 0.9 if key == "confidence" else item * 3 + 1
                out[key] = {"by": "regime", "values": {"ON": item, "OFF": other}}
            else:
                out[key] = _contextual(item)
        return out
    return value


def _answer(constraint: dict[str, Any], trades: Any, context: dict[str, Any]) -> Any:
    req = request(
        BASE,
        trades,
        cash=30_000,
        policies=[policy("p", constraint)],
        benchmark=BENCH,
        risk_model=RISK,
        scenarios=SCENARIOS,
        target_weights=TARGET,
        context=context,
        mode="validate",
    )
    return PolicyEngine().validate(req)


def _verdict(response: PolicyValidationResponse) -> Any:
    return response.is_compliant, [
        (v.violation_type, v.subject, v.breach, v.observed, v.limit) for v in response.violations
    ]


@pytest.mark.parametrize(
    ("constraint", "trades"),
    [pytest.param(c, t, id=i) for i, c, t, _ in ALL_CASES if _contextual(c) != c],
)
def test_every_kind_answers_as_with_the_number_the_context_chooses(
    constraint: dict[str, Any], trades: Any
) -> None:
    plain = _answer(constraint, trades, {"regime": "ON"})
    chosen = _answer(_contextual(constraint), trades, {"regime": "ON"})
    assert _verdict(chosen) == _verdict(plain)
    assert chosen.context_resolution[0].limits
    assert all(c.context_value == "ON" for c in chosen.context_resolution[0].limits)


def _cap_request(risk_mode: str | None, **fields: Any) -> Any:
    """NAV 110,000; AAA 50 held at 100 (4.55%), the decision buys 60: AAA at exactly 10%."""
    cap = policy("single-name-cap", {"kind": "weight_bounds", "max": _by_mode()})
    return request(
        {"AAA": 50, "BBB": 50},
        [("AAA", "BUY", 60)],
        cash=100_000.0,
        policies=[cap],
        context={} if risk_mode is None else {"risk_mode": risk_mode},
        **fields,
    )


def test_same_decision_complies_when_aggressive_and_breaches_when_defensive() -> None:
    engine = PolicyEngine()
    aggressive = engine.validate(_cap_request("AGGRESSIVE", mode="validate"))
    normal = engine.validate(_cap_request("NORMAL", mode="validate"))
    defensive = engine.validate(_cap_request("DEFENSIVE", mode="validate"))
    assert aggressive.is_compliant and aggressive.violations == []
    assert normal.is_compliant and normal.violations == []  # at the limit, not over it
    assert not defensive.is_compliant
    (violation,) = defensive.violations
    assert (violation.subject, violation.limit, violation.breach.value) == ("AAA", 0.06, "active")
    assert violation.observed == pytest.approx(0.10, abs=1e-12)
    assert "6.00%" in violation.description
    (note,) = defensive.context_resolution
    assert note.policy_name == "single-name-cap" and note.applies and note.when is None
    assert [(c.context_value, c.value) for c in note.limits] == [("DEFENSIVE", 0.06)]


def test_the_adjustment_respects_the_chosen_limit() -> None:
    response = PolicyEngine().validate(_cap_request("DEFENSIVE", adjustment="scale_back"))
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    (trade,) = adjusted.trades
    # AAA may reach 6% of NAV 110,000 = 6,600 at price 100: 66 shares, 50 held: buy 16.
    assert (trade.symbol, trade.side.value) == ("AAA", "BUY")
    assert trade.quantity == pytest.approx(16.0, abs=1e-6)
    assert (50 + trade.quantity) * 100 / 110_000 <= 0.06 + 1e-9


def test_the_layout_cache_keys_on_the_chosen_limits() -> None:
    engine = PolicyEngine()
    first = engine.validate(_cap_request("DEFENSIVE", mode="validate"))
    second = engine.validate(_cap_request("DEFENSIVE", mode="validate"))
    stats = engine.cache_stats()
    assert (stats.layout_misses, stats.layout_hits) == (1, 1)
    assert _verdict(first) == _verdict(second)
    aggressive = engine.validate(_cap_request("AGGRESSIVE", mode="validate"))
    stats = engine.cache_stats()
    assert (stats.layout_misses, stats.layout_hits) == (2, 1)
    assert aggressive.is_compliant
    again = engine.validate(_cap_request("DEFENSIVE", mode="validate"))
    assert engine.cache_stats().layout_hits == 2
    assert [v.limit for v in again.violations] == [0.06]


def test_a_missing_context_key_stops_validate() -> None:
    with pytest.raises(PolicyResolutionError) as caught:
        PolicyEngine().validate(_cap_request(None))
    assert caught.value.field == "policies[single-name-cap].rules.constraints[0].max"
    assert "context.risk_mode" in caught.value.message

"""The engine never approves what it did not check: rows that are not numbers are refused
naming their policy, and, when asked, a request on which nothing applies is refused."""

from __future__ import annotations

import warnings

import pytest

from engine import NoApplicablePolicies, PolicyEngine, PolicyEvaluationError
from models import PolicyDefinition
from tests.builders import instrument, policy, request

POSITIONS = {"AAA": 100.0, "BBB": 100.0, "CCC": 100.0}


def _expression(name: str, expr: str) -> PolicyDefinition:
    body = policy(name, {"kind": "expression", "expr": expr}, policy_type="INVESTMENT_MANDATE")
    return PolicyDefinition.model_validate(body)


def _with_beta(beta: float) -> list[dict[str, object]]:
    """Instruments of the default universe, AAA's beta replaced."""
    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    return [
        instrument(s, attributes={"beta": beta}) if s == "AAA" else instrument(s) for s in symbols
    ]


@pytest.mark.parametrize(
    ("expr", "shown"),
    [
        # sum(w * beta) is ~1e10: times 1e300 it overflows to inf.
        ("sum(w * beta) * 1e300 <= 1e301", "inf"),
        # inf - inf: NaN, which compares false with every limit (it would read "compliant").
        ("sum(w * beta) * 1e300 - sum(w * beta) * 1e300 <= 1", "nan"),
    ],
)
def test_a_row_that_is_not_a_number_is_refused_naming_its_policy(expr: str, shown: str) -> None:
    req = request(POSITIONS, [("BBB", "BUY", 1.0)], instruments=_with_beta(1e10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the refusal must not depend on warning filters
        with pytest.raises(PolicyEvaluationError) as caught:
            PolicyEngine().validate(req, [_expression("scaled", expr)])
    assert caught.value.policy_name == "scaled"
    assert caught.value.field == "policy 'scaled' rules.constraints[0] (expression)"
    assert shown in caught.value.message


def test_the_same_policy_on_ordinary_data_is_checked() -> None:
    req = request(POSITIONS, [("BBB", "BUY", 1.0)])
    response = PolicyEngine().validate(
        req, [_expression("scaled", "sum(w * beta) * 1e300 <= 1e301")]
    )
    assert response.policies_checked == ["scaled"]
    assert response.is_compliant


def _cap(**fields: object) -> PolicyDefinition:
    body = policy("cap", {"kind": "weight_bounds", "max": 0.05}, **fields)
    return PolicyDefinition.model_validate(body)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param([], id="none"),
        pytest.param([_cap(enforcement_level="monitor")], id="monitor-only"),
        pytest.param([_cap(enabled=False)], id="disabled"),
        pytest.param([_cap(scope={"portfolios": ["elsewhere"]})], id="out-of-scope"),
    ],
)
def test_nothing_applicable_is_refused_only_when_asked(stored: list[PolicyDefinition]) -> None:
    req = request(POSITIONS, [("AAA", "BUY", 500.0)])
    engine = PolicyEngine()
    with pytest.raises(NoApplicablePolicies) as caught:
        engine.validate(req, stored, require_applicable=True)
    assert caught.value.field == "decision.portfolio_id"
    assert "'p-1'" in caught.value.message
    # Not asked (a library caller's own choice): approved with what applied, as before.
    assert engine.validate(req, stored).is_compliant


def test_an_applicable_strict_policy_satisfies_the_requirement() -> None:
    req = request(POSITIONS, [("AAA", "BUY", 500.0)])
    response = PolicyEngine().validate(req, [_cap()], require_applicable=True)
    assert response.policies_checked == ["cap"]
    assert not response.is_compliant

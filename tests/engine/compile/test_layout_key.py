"""The layout cache key: equal for per-request numbers, different for anything else.

A cached layout is reused only when the key matches, so a key that misses a change would
serve stale rows. Each test changes one input a layout is built from and checks that the
key (and, where it matters, the verdict) follows.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import PolicyEngine
from engine.compile import layout
from engine.compile.layout import layout_key
from engine.resolve.references import ReferenceKey
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from tests.builders import instrument, policy, request

CAP = policy("name-cap", {"kind": "weight_bounds", "max": 0.25})
GROUP = policy(
    "tag-cap",
    {"kind": "group_limit", "attribute": "tag", "max": 0.6, "missing": "ignore"},
    policy_type="SECTOR_LIMIT",
)


def _request(**state: Any) -> PolicyValidationRequest:
    instruments = [instrument(s, attributes={"beta": 1.0, "tag": 1}) for s in ("AAA", "BBB", "CCC")]
    body = request(
        {"AAA": 200, "BBB": 200, "CCC": 200},
        [("AAA", "BUY", 100)],
        cash=40_000,
        instruments=instruments,
    ).model_dump(mode="json")
    body["mode"] = "validate"
    body["portfolio_state"].update(state)
    return PolicyValidationRequest.model_validate(body)


def _key(req: PolicyValidationRequest, policies: list[PolicyDefinition]) -> Any:
    return layout_key(effective_policies(req, policies), req, snapshot_of(req))


def _policies(*bodies: dict[str, Any]) -> list[PolicyDefinition]:
    return [PolicyDefinition.model_validate(b) for b in bodies]


def _with_instrument(k: int, **fields: Any) -> PolicyValidationRequest:
    instruments = _request().portfolio_state.model_dump(mode="json")["instruments"]
    instruments[k].update(fields)
    return _request(instruments=instruments)


def test_per_request_numbers_keep_the_key() -> None:
    policies = _policies(CAP)
    base = _request()
    instruments = base.portfolio_state.model_dump(mode="json")["instruments"]
    for item in instruments:
        item["price"] *= 1.01
        item["lot_size"] = 5
    moved = _request(
        instruments=instruments,
        cash=55_000,
        positions=[{"symbol": s, "quantity": 210} for s in ("AAA", "BBB", "CCC")],
        as_of="2026-11-23",
    )
    assert _key(moved, policies) == _key(base, policies)
    assert _key(_request(prices={"AAA": 120.0}), policies) == _key(base, policies)


@pytest.mark.parametrize(
    "changed",
    [
        {"sector": "Energy"},
        {"issuer": "Other Inc"},
        {"adv": 123.0},
        {"attributes": {"beta": 1.0, "tag": 2}},
        {"attributes": {"beta": 1.0, "tag": 1.0}},  # group "1.0", not "1"
        {"attributes": {"beta": 1.0, "tag": True}},
        {"attributes": {"beta": 1.0}},
        {"attributes": {"beta": 1.0, "tag": 1, "esg": 3.0}},
    ],
)
def test_reference_data_changes_the_key(changed: dict[str, Any]) -> None:
    policies = _policies(CAP)
    assert _key(_with_instrument(1, **changed), policies) != _key(_request(), policies)


def test_benchmark_and_risk_data_change_the_key() -> None:
    policies = _policies(CAP)
    plain = _key(_request(), policies)
    bench = _key(_request(benchmark={"AAA": 0.5, "BBB": 0.5}), policies)
    other = _key(_request(benchmark={"AAA": 0.4, "BBB": 0.6}), policies)
    scenarios = _key(
        _request(scenarios={"symbols": ["AAA", "BBB", "CCC"], "returns": [[0.1, 0.0, -0.1]]}),
        policies,
    )
    assert len({plain, bench, other, scenarios}) == 4


def test_a_changed_policy_never_reuses_a_stale_layout() -> None:
    engine = PolicyEngine()
    req = _request()
    policies = _policies(CAP)
    assert not engine.validate(req, policies).is_compliant

    # A copy with a looser limit: a new policy object.
    looser = [policies[0].model_copy(deep=True)]
    looser[0].rules.constraints[0].max = 0.9  # type: ignore[union-attr]
    assert engine.validate(req, looser).is_compliant

    # The same object changed in place: the key is the content, not the identity.
    policies[0].rules.constraints[0].max = 0.9  # type: ignore[union-attr]
    assert engine.validate(req, policies).is_compliant
    policies[0].rules.constraints[0].max = 0.25  # type: ignore[union-attr]
    assert not engine.validate(req, policies).is_compliant
    assert engine.cache_stats().layout_hits >= 1


def test_a_changed_group_value_regroups() -> None:
    engine = PolicyEngine()
    policies = _policies(GROUP)
    together = engine.validate(_request(), policies)
    # All three names in group 1: 70% of NAV after the buy > 60%, a breach of group "1".
    assert [v.subject for v in together.violations] == ["1"]
    apart = engine.validate(_with_instrument(0, attributes={"beta": 1.0, "tag": 2}), policies)
    # AAA alone in group 2 (30% after the buy), BBB + CCC in group 1 (40%).
    assert apart.violations == []
    again = engine.validate(_request(), policies)
    assert [v.subject for v in again.violations] == ["1"]
    assert engine.cache_stats().layout_misses == 2


def test_the_json_fallback_keys_the_same_content(monkeypatch: pytest.MonkeyPatch) -> None:
    def unpicklable(obj: object) -> bytes:
        raise TypeError("not picklable")

    monkeypatch.setattr(layout, "_pickled", unpicklable)
    policies = _policies(CAP)
    instruments = _request().portfolio_state.model_dump(mode="json")["instruments"]
    for item in instruments:
        item["price"] *= 1.01
    assert _key(_request(instruments=instruments), policies) == _key(_request(), policies)
    changed = _key(_with_instrument(1, attributes={"beta": 1.0, "tag": 2}), policies)
    assert changed != _key(_request(), policies)


def _registered_key(
    req: PolicyValidationRequest, universe: tuple[str, int] | None, inline: int = 0
) -> Any:
    reference = ReferenceKey(universe=universe, risk_model=None, inline=inline)
    effective = effective_policies(req, _policies(CAP))
    return layout_key(effective, req, snapshot_of(req), reference)


def test_a_registered_universe_is_keyed_by_its_version_not_its_content() -> None:
    base = _request()
    # Stored versions are immutable: the version stands for the universe's instruments, so
    # their content is not read (a different sector under the same version keeps the key).
    assert _registered_key(_with_instrument(1, sector="Energy"), ("core", 1)) == (
        _registered_key(base, ("core", 1))
    )
    assert _registered_key(base, ("core", 2)) != _registered_key(base, ("core", 1))
    assert _registered_key(base, ("other", 1)) != _registered_key(base, ("core", 1))
    assert _registered_key(base, ("core", 1)) != _key(base, _policies(CAP))
    # The first `inline` instruments were sent by the request itself: keyed by content.
    moved = _with_instrument(0, sector="Energy")
    assert _registered_key(moved, ("core", 1), inline=1) != _registered_key(
        base, ("core", 1), inline=1
    )
    assert _registered_key(base, ("core", 1), inline=1) != _registered_key(base, ("core", 1))


def test_a_registered_risk_model_is_keyed_by_its_version() -> None:
    policies = effective_policies(_request(), _policies(CAP))

    def keyed(req: PolicyValidationRequest, version: int) -> Any:
        reference = ReferenceKey(universe=None, risk_model=("risk", version), inline=3)
        return layout_key(policies, req, snapshot_of(req), reference)

    def with_risk(variance: float) -> PolicyValidationRequest:
        model = {
            "factor_loadings": {"AAA": [1.0], "BBB": [0.5], "CCC": [0.2]},
            "factor_covariance": [[0.04]],
            "specific_variance": dict.fromkeys(("AAA", "BBB", "CCC"), variance),
        }
        return _request(risk_model=model)

    assert keyed(with_risk(0.02), 1) == keyed(with_risk(0.03), 1)
    assert keyed(with_risk(0.02), 1) != keyed(with_risk(0.02), 2)
    # Without a reference the model's content is the key.
    assert _key(with_risk(0.02), _policies(CAP)) != _key(with_risk(0.03), _policies(CAP))


def _factor_model(**changed: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "factor_loadings": {"AAA": [1.0, 0.1], "BBB": [0.5, -0.2], "CCC": [0.2, 0.0]},
        "factor_covariance": [[0.04, 0.001], [0.001, 0.01]],
        "specific_variance": {"AAA": 0.02, "BBB": 0.03, "CCC": 0.01},
    }
    return model | changed


@pytest.mark.parametrize("pickled", [True, False])
def test_an_inline_factor_model_is_keyed_by_every_number(
    pickled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pickled:  # the JSON form keys the model as well

        def unpicklable(obj: object) -> bytes:
            raise TypeError("not picklable")

        monkeypatch.setattr(layout, "_pickled", unpicklable)
    policies = _policies(CAP)
    base = _key(_request(risk_model=_factor_model()), policies)
    assert _key(_request(risk_model=_factor_model()), policies) == base  # new objects
    loadings = {"AAA": [1.0, 0.1], "BBB": [0.5, -0.2], "CCC": [0.2, 1e-12]}
    covariance = [[0.04, 0.001], [0.001, 0.011]]
    changed = [
        _factor_model(factor_loadings=loadings),
        _factor_model(factor_covariance=covariance),
        _factor_model(specific_variance={"AAA": 0.02, "BBB": 0.03, "CCC": 0.02}),
    ]
    keys = {_key(_request(risk_model=model), policies) for model in changed}
    assert len(keys) == 3 and base not in keys
    assert _key(_request(), policies) != base  # no model at all

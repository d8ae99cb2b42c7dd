"""One prepare() for the front stages: validate, capacity and the export share it."""

from __future__ import annotations

from typing import Any

import pytest

from engine import PolicyEngine
from engine.compile.layout import LayoutCache
from engine.compile.prepared import Prepared, prepare
from engine.deadline import Deadline
from engine.errors import DeadlineExceeded, NoApplicablePolicies
from engine.export.constraints import export_constraints
from models import EnforcementLevel, PolicyDefinition, PolicyValidationRequest
from models.capacity import CapacityRequest
from models.export import ConstraintSetRequest
from tests.builders import instrument, policy, request

HELD = {"AAA": 100.0, "BBB": 50.0, "CCC": 80.0}


def _policies(*extra: dict[str, Any]) -> list[PolicyDefinition]:
    bodies = [
        policy("cap", {"kind": "weight_bounds", "max": 0.5}),
        policy("cash", {"kind": "cash", "min": 0.01}),
        *extra,
    ]
    return [PolicyDefinition.model_validate(b) for b in bodies]


def _validation(trades: list[tuple[str, str, float]] | None = None) -> PolicyValidationRequest:
    return request(HELD, trades or [], instruments=[instrument(s) for s in HELD])


def _state() -> dict[str, Any]:
    return _validation().portfolio_state.model_dump(mode="json", exclude_none=True)


# ------------------------------------------------------------------------- Prepared


def test_prepare_holds_the_front_stages() -> None:
    layouts = LayoutCache(4)
    prepared = prepare(layouts, _validation([("AAA", "BUY", 10)]), _policies())
    assert isinstance(prepared, Prepared)
    assert [p.policy_name for p in prepared.policies] == ["cap", "cash"]
    assert prepared.compiled == prepared.policies
    assert prepared.context == []
    assert prepared.snapshot.symbols == ("AAA", "BBB", "CCC")
    assert prepared.layout.snap is prepared.snapshot
    assert prepared.layout.policies == prepared.policies
    assert list(prepared.timer.ms) == ["resolve", "weights", "compile"]
    assert (layouts.hits, layouts.misses) == (0, 1)


def test_a_second_prepare_rebinds_the_cached_layout() -> None:
    layouts = LayoutCache(4)
    first = prepare(layouts, _validation([("AAA", "BUY", 10)]), _policies())
    second = prepare(layouts, _validation([("AAA", "BUY", 20)]), _policies())
    assert second.layout is first.layout
    assert second.layout.snap is second.snapshot
    assert (layouts.hits, layouts.misses) == (1, 1)


def test_levels_narrow_the_layout_not_the_effective_set() -> None:
    advisory = policy("soft", {"kind": "weight_bounds", "max": 0.3}, enforcement_level="advisory")
    levels = [EnforcementLevel.STRICT]
    prepared = prepare(LayoutCache(4), _validation(), _policies(advisory), levels=levels)
    assert [p.policy_name for p in prepared.policies] == ["cap", "cash", "soft"]
    assert [p.policy_name for p in prepared.compiled] == ["cap", "cash"]
    assert prepared.layout.policies == prepared.compiled


def test_compile_false_compiles_on_first_use() -> None:
    layouts = LayoutCache(4)
    prepared = prepare(layouts, _validation(), _policies(), compile=False)
    assert layouts.misses == 0 and "compile" not in prepared.timer.ms
    layout = prepared.layout
    assert layouts.misses == 1 and prepared.layout is layout
    assert "compile" in prepared.timer.ms


def test_layout_with_adds_symbols_to_the_universe() -> None:
    body = _validation().model_dump(mode="json", exclude_none=True)
    body["portfolio_state"]["instruments"].append(instrument("DDD"))
    prepared = prepare(LayoutCache(4), PolicyValidationRequest.model_validate(body), _policies())
    wider = prepared.layout_with(["DDD"])
    assert wider.snap.symbols == ("AAA", "BBB", "CCC", "DDD")
    assert prepared.layout.snap.symbols == ("AAA", "BBB", "CCC")


def test_require_applicable_refuses_a_monitor_only_set() -> None:
    monitor = PolicyDefinition.model_validate(
        policy("watch", {"kind": "cash", "min": 0.01}, enforcement_level="monitor")
    )
    with pytest.raises(NoApplicablePolicies) as refused:
        prepare(LayoutCache(4), _validation(), [monitor], require_applicable=True)
    assert refused.value.field == "decision.portfolio_id"
    assert "(1 policies considered, 1 monitor-only)" in refused.value.message


def test_a_passed_deadline_stops_before_the_resolve_stage() -> None:
    layouts = LayoutCache(4)
    now = [0.0]
    deadline = Deadline(1.0, clock=lambda: now[0])
    now[0] = 10.0
    with pytest.raises(DeadlineExceeded) as late:
        prepare(layouts, _validation(), _policies(), deadline=deadline)
    assert late.value.stage == "resolve"
    assert layouts.misses == 0


# ------------------------------------------------------- validate, capacity, export


def test_validate_capacity_and_export_share_the_layout_cache() -> None:
    engine = PolicyEngine()
    policies = _policies()
    engine.validate(_validation(), policies)
    stats = engine.cache_stats()
    assert (stats.layout_hits, stats.layout_misses) == (0, 1)

    capacity = CapacityRequest.model_validate({"portfolio_state": _state()})
    engine.capacity(capacity, policies)
    stats = engine.cache_stats()
    assert (stats.layout_hits, stats.layout_misses) == (1, 1)

    export = ConstraintSetRequest.model_validate({"portfolio_state": _state()})
    exported = engine.export(export, policies)
    stats = engine.cache_stats()
    assert (stats.layout_hits, stats.layout_misses) == (2, 1)
    assert exported == export_constraints(export, policies)


def test_the_export_through_the_cache_answers_like_a_fresh_one() -> None:
    engine = PolicyEngine()
    policies = _policies()
    body = {"portfolio_state": _state(), "universe": ["AAA", "BBB"]}
    first = ConstraintSetRequest.model_validate(body)
    body["portfolio_state"]["cash"] = 55_000.0
    body["portfolio_state"]["instruments"][0]["price"] = 120.0
    second = ConstraintSetRequest.model_validate(body)
    engine.export(first, policies)
    cached = engine.export(second, policies)
    assert engine.cache_stats().layout_hits == 1
    assert cached == export_constraints(second, policies)
    assert cached != export_constraints(first, policies)

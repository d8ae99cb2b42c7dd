"""A registered universe's arrays (engine.weights.universe) give the snapshot it would compute.

The snapshot of a request whose instruments are all a registered universe's reads the
universe's arrays (built once per stored version) instead of the instruments: every field
must come out exactly as from the instruments themselves, whatever the request holds,
trades, includes, prices and currencies.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import PolicyEngine
from engine.resolve.references import ReferenceKey, UniverseData, resolve_references
from engine.weights.portfolio import Snapshot, snapshot_of
from engine.weights.universe import UniverseArrays, UniverseCache
from models import Instrument, PolicyDefinition, PolicyValidationRequest
from tests.builders import instrument, policy
from tests.engine.resolve.test_references import DictSource
from tests.strategies import cases

KEY = ReferenceKey(universe=("u", 1), risk_model=None, inline=0)


def _same(first: Snapshot, second: Snapshot) -> None:
    for item in fields(Snapshot):
        a, b = getattr(first, item.name), getattr(second, item.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), item.name
        else:
            assert a == b, item.name


def _varied(request: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Some instruments in EUR, some current prices, one name neither held nor traded."""
    out = copy.deepcopy(request)
    state = out["portfolio_state"]
    instruments = state["instruments"]
    for item in instruments:
        if rng.random() < 0.3:
            item["currency"] = "EUR"
    state["fx_rates"] = {"EUR": 1.1}
    chosen = rng.choice(len(instruments), size=len(instruments) // 2, replace=False)
    state["prices"] = {
        instruments[k]["symbol"]: float(rng.uniform(5.0, 50.0)) for k in sorted(chosen)
    }
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), seed=st.integers(0, 2**16), vary=st.booleans())
def test_the_arrays_give_the_instruments_snapshot(
    case: tuple[dict[str, Any], list[dict[str, Any]]], seed: int, vary: bool
) -> None:
    body, _policies = case
    rng = np.random.default_rng(seed)
    if vary:
        body = _varied(body, rng)
    request = PolicyValidationRequest.model_validate(body)
    instruments = request.portfolio_state.instruments
    arrays = UniverseArrays.of(instruments)
    assert arrays is not None
    symbols = [i.symbol for i in instruments]
    include = tuple(rng.choice(symbols, size=min(2, len(symbols)), replace=False).tolist())
    for extra in ((), include):
        _same(
            snapshot_of(request, include=extra, universe=arrays),
            snapshot_of(request, include=extra),
        )


def test_a_universe_with_a_symbol_twice_has_no_arrays() -> None:
    twice = [Instrument.model_validate(instrument(s)) for s in ("AAA", "BBB", "AAA")]
    assert UniverseArrays.of(twice) is None
    assert UniverseArrays.of([]) is None


def test_the_cache_keeps_one_entry_per_stored_version_and_only_for_whole_universes() -> None:
    source = DictSource()
    listed = source.universes[("u", 1)].instruments
    cache = UniverseCache(max_entries=2)
    first = cache.arrays(KEY, listed)
    assert first is not None and cache.arrays(KEY, listed) is first
    # Instruments sent inline, or no universe: the instruments themselves are read.
    assert cache.arrays(ReferenceKey(("u", 1), None, inline=1), listed) is None
    assert cache.arrays(ReferenceKey(None, ("m", 1), inline=0), listed) is None
    assert cache.arrays(None, listed) is None
    # Instruments that are not the version's (a caller's mistake) are not matched.
    assert cache.arrays(KEY, listed[:-1]) is None
    assert cache.arrays(KEY, tuple(reversed(listed))) is None


def _answer(response: Any) -> dict[str, Any]:
    out: dict[str, Any] = response.model_dump(mode="json", exclude={"timings_ms"})
    for attempt in (out.get("adjusted_decision") or {}).get("solver_attempts") or []:
        attempt.pop("seconds")
    return out


def test_an_engine_answers_a_request_by_reference_as_inline() -> None:
    source = DictSource()
    source.universes[("u", 2)] = UniverseData(
        "u", 2, tuple(Instrument.model_validate(instrument(s, 50.0)) for s in "PQRST")
    )
    policies = [
        PolicyDefinition.model_validate(policy("cap", {"kind": "weight_bounds", "max": 0.3}))
    ]
    engine = PolicyEngine()
    for version in (1, 2, 1):
        symbols = [i.symbol for i in source.universes[("u", version)].instruments]
        body = {
            "decision": {
                "decision_id": f"d-{version}",
                "portfolio_id": "p-1",
                "trades": [{"symbol": symbols[1], "side": "BUY", "quantity": 30}],
            },
            "portfolio_state": {
                "portfolio_id": "p-1",
                "cash": 2000.0,
                "positions": [{"symbol": s, "quantity": 10} for s in symbols[::-1]],
                "universe": {"id": "u", "version": version},
                "prices": {symbols[0]: 120.0},
            },
        }
        request = PolicyValidationRequest.model_validate(body)
        resolution = resolve_references(request.portfolio_state, source)
        resolved = request.model_copy(update={"portfolio_state": resolution.state})
        by_reference = engine.validate(resolved, policies, reference=resolution.key)
        inline = PolicyEngine().validate(resolved, policies)
        assert _answer(by_reference) == _answer(inline)

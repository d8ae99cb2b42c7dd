"""The adjustment under `max_positions` by a mixed-integer program (engine.adjust.cardinality).

Hand-computed cases, a case where the stated restriction is strictly worse, the cases that
keep the restriction (a cone among the other rows, no time), and a property test against
brute force: every choice of open names solved as a QP (cvxpy, independent of the
engine's problems), the engine's answer at most the best of them and compliant when
re-validated.

Portfolio of the hand cases (NAV 100,000, every price 100, fractional lots): AAA 200, BBB
100, CCC 300, DDD 100 shares (weights 0.2, 0.1, 0.3, 0.1; four positions), cash 30,000.
"""

from __future__ import annotations

import itertools
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import PolicyEngine
from tests.builders import instrument, policy, request

BASE = {"AAA": 200, "BBB": 100, "CCC": 300, "DDD": 100}
SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
TOLERANCE = 1e-7


def _validate(
    limit: int,
    trades: list[tuple[str, str, float]],
    method: str,
    *extra: dict[str, Any],
    positions: dict[str, float] | None = None,
    **fields: Any,
) -> Any:
    positions = BASE if positions is None else positions
    req = request(
        positions,
        trades,
        cash=100_000 - 100 * sum(positions.values()),
        instruments=[instrument(s) for s in SYMBOLS],
        policies=[policy("positions", {"kind": "max_positions", "max": limit}), *extra],
        adjustment=method,
        **fields,
    )
    return PolicyEngine().validate(req)


def _trades(response: Any) -> dict[str, float]:
    sign = {"BUY": 1.0, "SELL": -1.0}
    return {t.symbol: sign[t.side] * t.quantity for t in response.adjusted_decision.trades}


def _encoding(response: Any) -> str:
    [encoding] = [e for e in response.adjusted_decision.encodings if e.kind == "max_positions"]
    return str(encoding.encoding)


def _stated_restriction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adjust with the stated restriction alone (the integer program switched off)."""
    monkeypatch.setattr("engine.adjust.cardinality.TIME_LIMIT_S", 0.0)


EEE_CAP = policy("eee-cap", {"kind": "weight_bounds", "per_symbol": {"EEE": {"max": 0.01}}})


@pytest.mark.parametrize("method", ["scale_back", "project"])
def test_the_integer_program_beats_the_largest_first_restriction(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Limit 5 leaves one new position. EEE (20%) is the larger but is capped at 1%: opening
    # it costs 0.19^2 + 0.1^2 (FFF left out) = 0.0461; opening FFF (10%) in full and leaving
    # EEE out costs 0.2^2 = 0.04, the optimum (closing a held name costs 0.1^2 at least).
    trades = [("EEE", "BUY", 200), ("FFF", "BUY", 100)]
    response = _validate(5, trades, method, EEE_CAP)
    adjusted = response.adjusted_decision
    assert adjusted.is_compliant
    assert _trades(response) == pytest.approx({"FFF": 100.0})
    assert adjusted.distance == pytest.approx(0.04, abs=TOLERANCE)
    encoding = _encoding(response)
    assert encoding.startswith("integer program: the closest decision over every choice")
    assert "new positions allowed: FFF" in encoding

    _stated_restriction(monkeypatch)
    stated = _validate(5, trades, method, EEE_CAP)
    assert _trades(stated) == pytest.approx({"EEE": 10.0})
    assert stated.adjusted_decision.distance == pytest.approx(0.0461, abs=TOLERANCE)
    assert _encoding(stated).startswith("restriction: at most 5 positions open")
    assert "the integer program was not used: no optimum proven within its time budget" in (
        _encoding(stated)
    )


def test_project_closes_a_small_held_name_to_open_a_large_new_one() -> None:
    # Four positions, limit 4; DDD is only 1%. Buying EEE (20%) needs a free slot: closing
    # DDD costs 0.01^2 = 1e-4, leaving EEE out 0.2^2 (the restriction's answer).
    positions = {**BASE, "DDD": 10}
    response = _validate(4, [("EEE", "BUY", 200)], "project", positions=positions)
    assert _trades(response) == pytest.approx({"EEE": 200.0, "DDD": -10.0})
    assert response.adjusted_decision.distance == pytest.approx(1e-4, abs=TOLERANCE)
    assert "to close completely: DDD" in _encoding(response)


def test_scale_back_cannot_close_an_untraded_name() -> None:
    # The same request under scale_back: only EEE's trade may shrink, so it goes.
    positions = {**BASE, "DDD": 10}
    response = _validate(4, [("EEE", "BUY", 200)], "scale_back", positions=positions)
    assert response.adjusted_decision.trades == []
    assert response.adjusted_decision.distance == pytest.approx(0.04, abs=TOLERANCE)
    assert _encoding(response).startswith("integer program")


def test_a_passive_breach_keeps_the_pre_trade_count_as_the_budget() -> None:
    # Four open, limit 3 (a passive breach): four may stay open, not five. Opening EEE
    # (20%) by closing DDD (5%) costs 0.0025 against 0.04 for leaving EEE out.
    positions = {**BASE, "DDD": 50}
    response = _validate(3, [("EEE", "BUY", 200)], "project", positions=positions)
    [violation] = response.violations
    assert violation.breach == "active"
    assert _trades(response) == pytest.approx({"EEE": 200.0, "DDD": -50.0})
    assert response.adjusted_decision.distance == pytest.approx(0.0025, abs=TOLERANCE)
    assert "at most 4 open positions" in _encoding(response)


def test_cure_passive_holds_the_count_to_the_limit() -> None:
    # Limit 3 with cure_passive: three may be open. Leaving EEE out and closing a 10% name
    # costs 0.04 + 0.01; opening EEE and closing both 10% names (BBB, DDD) costs 0.02.
    response = _validate(3, [("EEE", "BUY", 200)], "project", cure_passive=True)
    adjusted = response.adjusted_decision
    assert adjusted.is_compliant
    assert adjusted.distance == pytest.approx(0.02, abs=TOLERANCE)
    assert _trades(response)["EEE"] == pytest.approx(200.0)
    assert "at most 3 open positions" in _encoding(response)


def test_with_a_risk_cone_the_restriction_stays_and_says_why() -> None:
    risk_model = {
        "factor_loadings": {s: [1.0] for s in SYMBOLS},
        "factor_covariance": [[0.04]],
        "specific_variance": dict.fromkeys(SYMBOLS, 0.01),
    }
    volatility = policy("vol", {"kind": "volatility", "max": 0.5}, policy_type="RISK_LIMIT")
    trades = [("EEE", "BUY", 200), ("FFF", "BUY", 100)]
    response = _validate(5, trades, "project", EEE_CAP, volatility, risk_model=risk_model)
    adjusted = response.adjusted_decision
    assert adjusted.is_compliant
    encoding = _encoding(response)
    assert encoding.startswith("restriction: at most 5 positions open")
    assert "the integer program was not used: a row of another policy is a cone" in encoding
    assert _trades(response) == pytest.approx({"EEE": 10.0})


# -- against brute force ---------------------------------------------------------------------

NAMES = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
SECTOR = {"AAA": "Tech", "BBB": "Tech", "CCC": "Energy", "DDD": "Energy", "EEE": "Tech"}


@st.composite
def _cases(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 6))
    names = NAMES[:n]
    held = {s: float(draw(st.sampled_from([0, 0, 50, 100, 150]))) for s in names}
    trades: list[tuple[str, str, float]] = []
    for s in names:
        kind = draw(st.sampled_from(["none", "buy", "sell", "close"]))
        if kind == "buy":
            trades.append((s, "BUY", float(draw(st.sampled_from([20, 60, 120, 250])))))
        elif kind == "sell" and held[s] > 0:
            trades.append((s, "SELL", float(draw(st.sampled_from([20, held[s] / 2])))))
        elif kind == "close" and held[s] > 0:
            trades.append((s, "SELL", held[s]))
    if not trades:
        trades.append((names[0], "BUY", 80.0))
    return {
        "held": {s: q for s, q in held.items() if q > 0},
        "names": names,
        "trades": trades,
        "limit": draw(st.integers(1, n)),
        "cap": draw(st.sampled_from([0.12, 0.2, 0.35])),
        "sector_cap": draw(st.sampled_from([0.25, 0.4, 0.6])),
        "cash_min": draw(st.sampled_from([0.0, 0.3, 0.5])),
        "method": draw(st.sampled_from(["scale_back", "project"])),
    }


def _brute_force(case: dict[str, Any]) -> float:
    """The least distance over every choice of open names (a QP per choice)."""
    names = case["names"]
    n, nav = len(names), 100_000.0
    w0 = np.array([100.0 * case["held"].get(s, 0.0) / nav for s in names])
    change = {s: 0.0 for s in names}
    for s, side, q in case["trades"]:
        change[s] += (q if side == "BUY" else -q) * 100.0 / nav
    w_hat = w0 + np.array([change[s] for s in names])
    traded = np.array([change[s] != 0.0 for s in names])
    tech = np.array([SECTOR.get(s, "Other") == "Tech" for s in names], dtype=float)
    energy = np.array([SECTOR.get(s, "Other") == "Energy" for s in names], dtype=float)
    # Rows in passive breach may not get worse (SPEC section 6): bound = max(limit, pre).
    cap = np.maximum(case["cap"], w0)
    sector_bounds = [max(case["sector_cap"], float(g @ w0)) for g in (tech, energy)]
    cash_floor = min(case["cash_min"], 1.0 - float(w0.sum()))
    budget = max(case["limit"], int(np.count_nonzero(w0)))
    if case["method"] == "scale_back":
        lower, upper = np.minimum(w0, w_hat), np.maximum(w0, w_hat)
        movable = traded
    else:
        lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
        movable = (w0 != 0) | traded  # V: the names held or traded
    closable = movable & (lower <= 0.0) & (upper >= 0.0)
    always_open = int(np.count_nonzero(~closable & ((w0 != 0) | movable)))
    best = np.inf
    candidates = list(np.flatnonzero(closable))
    for size in range(len(candidates) + 1):
        for chosen in itertools.combinations(candidates, size):
            if always_open + size > budget:
                continue
            w = cp.Variable(n)
            shut = [i for i in candidates if i not in chosen]
            constraints = [
                w <= cap,
                tech @ w <= sector_bounds[0],
                energy @ w <= sector_bounds[1],
                1.0 - cp.sum(w) >= cash_floor,
            ]
            if shut:
                constraints.append(w[shut] == 0.0)
            fixed = np.flatnonzero(~movable)
            if len(fixed):
                constraints.append(w[fixed] == w0[fixed])
            if case["method"] == "scale_back":
                constraints += [w[movable] >= lower[movable], w[movable] <= upper[movable]]
            problem = cp.Problem(cp.Minimize(cp.sum_squares(w - w_hat)), constraints)
            problem.solve(solver=cp.CLARABEL)
            if problem.status == cp.OPTIMAL:
                best = min(best, float(problem.value))
    return best


@settings(max_examples=40, deadline=None)
@given(_cases())
def test_the_integer_program_matches_brute_force(case: dict[str, Any]) -> None:
    policies = [
        policy("positions", {"kind": "max_positions", "max": case["limit"]}),
        policy("caps", {"kind": "weight_bounds", "max": case["cap"]}),
        policy(
            "sectors", {"kind": "group_limit", "attribute": "sector", "max": case["sector_cap"]}
        ),
        policy("cash", {"kind": "cash", "min": case["cash_min"]}),
    ]
    instruments = [instrument(s, sector=SECTOR.get(s, "Other")) for s in case["names"]]
    held = case["held"]
    req = request(
        held,
        case["trades"],
        cash=100_000.0 - 100.0 * sum(held.values()),
        instruments=instruments,
        policies=policies,
        adjustment=case["method"],
    )
    engine = PolicyEngine()
    response = engine.validate(req)
    optimum = _brute_force(case)
    if response.is_compliant:
        assert optimum <= TOLERANCE
        return
    adjusted = response.adjusted_decision
    assert adjusted is not None, response.adjustment_error
    assert adjusted.is_compliant
    assert adjusted.distance <= optimum + TOLERANCE + 1e-6 * optimum
    assert _encoding(response).startswith("integer program")
    # The answer re-validated from scratch: compliant by the exact checker.
    body = req.model_dump(mode="json")
    body["decision"]["trades"] = [
        {"symbol": t.symbol, "side": t.side, "quantity": t.quantity} for t in adjusted.trades
    ]
    body["mode"] = "validate"
    again = PolicyEngine().validate(type(req).model_validate(body))
    assert again.is_compliant

"""The engine against the independent reference implementation of the specification.

Random cases (tests/strategies.py): 5-30 names, long-only and long/short, 2-6 policies of
every kind, with and without cure_passive, some with conflicting policies. For each:
verdict and the breached (policy, constraint, subject, active/passive) rows equal the
reference's; an adjusted decision is compliant by the reference checker at 1e-9 and keeps
scale_back's promises; reported conflicts are real.

Optimality is compared on every case that the engine solved, notes or not. The engine's
continuous optimum (`AttemptResult.continuous_distance`, before rounding to lots) equals
the optimum the reference finds with a second solver (Clarabel, direct model, high
accuracy) to 1e-6 relative (see `_noise` for tiny distances). With fractional lots the
returned distance equals it too; with whole lots the returned distance is never below it
and its root is within one lot per name of the optimum's root (`_lot_step`).

Cases the engine is known not to meet are not skipped: each is counted against its budget
in `LIMITS` (tests/known_limits.py), and the module fails past a budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from engine import InputError, PolicyEngine
from engine.adjust.adjuster import AttemptResult
from models import (
    AdjustmentMethod,
    PolicyDefinition,
    PolicyValidationRequest,
    PolicyValidationResponse,
)
from tests.known_limits import KnownLimits, Limit, counting
from tests.reference import spec
from tests.strategies import cases, random_case

ENGINE = PolicyEngine(cache_size=256)
REL = 1e-6  # the engine's and the reference's optimal distances agree to this, relative
INACCURATE_REL = 1e-3  # the same, where every solver called its answer inaccurate
LOT_STEPS = 1.0  # a whole-lot answer's distance from the optimum, in lots (see _lot_step)
ROW_TOLERANCE = 1e-9  # SPEC section 5: either optimum may break a row by this much
ATTEMPTS: dict[str, AttemptResult] = {}
"""What the engine's adjuster returned for each method it tried on the current case."""


def _recorded(attempt: Callable[..., AttemptResult]) -> Callable[..., AttemptResult]:
    def recording(layout: Any, method: AdjustmentMethod, **options: Any) -> AttemptResult:
        outcome = attempt(layout, method, **options)
        ATTEMPTS[method.value] = outcome
        return outcome

    return recording


ENGINE.adjuster.attempt = _recorded(ENGINE.adjuster.attempt)  # type: ignore[method-assign]

LIMITS = {
    "whole lots, cure_passive: no rounding found": Limit(
        budget=3,
        reason="with whole lots and passive breaches to cure, the feasible region can be "
        "thinner than a lot (or a knife edge no solver meets within 1e-9); the engine "
        "searches near the continuous optimum, not every lattice point, and then says so "
        "(adjustment_error) rather than answer",
    ),
    "inaccurate solve": Limit(
        budget=3,
        reason="no solver of the chain certified an optimum (cvar and risk rows on 30 "
        "names); the engine used an answer that passes the exact check and says so in "
        "notes; its distance is then compared at 1e-3, not 1e-6",
    ),
    "no continuous optimum": Limit(
        budget=2,
        reason="every solver's answer to the exact bounds broke a limit by more than the "
        "tolerance; the adjustment then comes from a tightened solve",
    ),
}


@pytest.fixture(scope="module")
def known_limits() -> Iterator[KnownLimits]:
    """The module's count of known limits, checked against `LIMITS` at its end."""
    yield from counting(LIMITS)


def _run(request: dict[str, Any], policies: list[dict[str, Any]]) -> PolicyValidationResponse:
    return ENGINE.validate(
        PolicyValidationRequest.model_validate(request),
        [PolicyDefinition.model_validate(p) for p in policies],
    )


def _signed(trades: list[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in trades:
        side = t["side"] if isinstance(t, dict) else t.side.value
        quantity = t["quantity"] if isinstance(t, dict) else t.quantity
        out[t["symbol"] if isinstance(t, dict) else t.symbol] = out.get(
            t["symbol"] if isinstance(t, dict) else t.symbol, 0.0
        ) + (quantity if side == "BUY" else -quantity)
    return out


def _adjusted_weights(
    request: dict[str, Any], response: PolicyValidationResponse
) -> dict[str, float]:
    assert response.adjusted_decision is not None
    symbols, _, _, nav = spec.weights(request)
    prices = {i["symbol"]: i["price"] for i in request["portfolio_state"]["instruments"]}
    held = {p["symbol"]: p["quantity"] for p in request["portfolio_state"]["positions"]}
    trades = _signed(response.adjusted_decision.trades)
    return {s: (held.get(s, 0.0) + trades.get(s, 0.0)) * prices[s] / nav for s in symbols}


def _fractional(request: dict[str, Any]) -> bool:
    return all(i.get("lot_size", 1) == 0 for i in request["portfolio_state"]["instruments"])


def _lot_step(request: dict[str, Any]) -> float:
    """The Euclidean length of one lot of every instrument in V, in weight units."""
    symbols, _, _, nav = spec.weights(request)
    instruments = request["portfolio_state"]["instruments"]
    lots = {i["symbol"]: float(i.get("lot_size", 1)) for i in instruments}
    prices = {i["symbol"]: i["price"] for i in request["portfolio_state"]["instruments"]}
    return float(np.sqrt(sum((lots[s] * prices[s] / nav) ** 2 for s in symbols)))


def _noise(request: dict[str, Any], optimum: float) -> float:
    """How far a distance moves when the weights move by `ROW_TOLERANCE` each.

    Both solvers stop within the row tolerance of the feasible set, not on it: moving the
    weights by `dw` moves the distance by about `2 ||w - w_hat|| ||dw||`, and `||dw||` is
    of the order of `sqrt(n) ROW_TOLERANCE`. That bounds the absolute error of the tiny
    distances whose relative error 1e-6 cannot be met.
    """
    n = len(spec.weights(request)[0])
    return 2.0 * np.sqrt(optimum * n) * ROW_TOLERANCE + 1e-15


def _optimum(request: dict[str, Any], policies: list[dict[str, Any]], method: str) -> float:
    optimum = spec.optimum(request, policies, method)
    assert optimum is not None, f"the engine solved {method}; the reference finds it infeasible"
    return optimum


def _compare_continuous(
    request: dict[str, Any],
    policies: list[dict[str, Any]],
    method: str,
    known_limits: KnownLimits,
) -> float:
    """The engine's continuous optimum of `method` against the reference's; the optimum."""
    outcome = ATTEMPTS[method]
    optimum = _optimum(request, policies, method)
    if outcome.continuous_distance is None:
        known_limits.accept("no continuous optimum")
        return optimum
    continuous, noise = outcome.continuous_distance, _noise(request, optimum)
    if continuous != pytest.approx(optimum, rel=REL, abs=noise):
        notes = outcome.notes + (outcome.adjustment.notes if outcome.adjustment else [])
        assert any("inaccurate" in note for note in notes), (continuous, optimum)
        known_limits.accept("inaccurate solve")
        assert continuous == pytest.approx(optimum, rel=INACCURATE_REL, abs=noise)
    return optimum


def check_case(
    request: dict[str, Any], policies: list[dict[str, Any]], known_limits: KnownLimits
) -> None:
    ATTEMPTS.clear()
    try:
        response = _run(request, policies)
    except InputError:
        with pytest.raises((ValueError, TypeError)):
            spec.verdict(request, policies)
        return
    ref = spec.verdict(request, policies)
    found = {
        (v.policy_name, v.violation_type, v.subject, v.breach.value) for v in response.violations
    }
    assert found == ref.breaches
    assert response.is_compliant == ref.is_compliant
    assert (response.compliance_score == 1.0) == (not found)
    if response.is_compliant:
        assert response.adjusted_decision is None and response.infeasible is None
        return
    if request.get("mode", "adjust") == "validate":
        assert response.adjusted_decision is None
        return
    cure = bool(request.get("cure_passive", False))
    if response.adjustment_error is not None:
        assert cure and not _fractional(request), response.adjustment_error
        assert response.adjusted_decision is None
        for method, outcome in ATTEMPTS.items():
            assert outcome.status != "adjusted"
            if outcome.status == "failed":
                _compare_continuous(request, policies, method, known_limits)
        known_limits.accept("whole lots, cure_passive: no rounding found")
        return
    if response.infeasible is not None:
        assert response.adjusted_decision is None
        assert cure, "without cure_passive, cancelling every trade is always compliant"
        method = "project" if request.get("adjustment", "auto") != "scale_back" else "scale_back"
        assert spec.optimum(request, policies, method) is None
        _check_conflict(request, policies, response.infeasible.conflicting_policies, method)
        return
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    w = _adjusted_weights(request, response)
    assert spec.verdict(request, policies, w_post=w).is_compliant
    proposed = _signed(request["decision"]["trades"])
    got = _signed(adjusted.trades)
    method = adjusted.method.value
    if method == "scale_back":
        for symbol, quantity in got.items():
            assert symbol in proposed
            assert quantity * proposed[symbol] > 0, "scale_back flipped a trade"
            assert abs(quantity) <= abs(proposed[symbol]) + 1e-9, "scale_back grew a trade"
    else:
        held = {p["symbol"] for p in request["portfolio_state"]["positions"] if p["quantity"]}
        assert set(got) <= set(proposed) | held, "project traded a new symbol"
        if request.get("adjustment", "auto") == "auto":
            assert ATTEMPTS["scale_back"].status == "infeasible"
            assert spec.optimum(request, policies, "scale_back") is None
    optimum = _compare_continuous(request, policies, method, known_limits)
    # The rounded answer is feasible for the continuous problem: never below its optimum.
    noise = _noise(request, optimum)
    assert adjusted.distance >= optimum * (1 - REL) - noise
    if _fractional(request):
        assert adjusted.distance == pytest.approx(optimum, rel=REL, abs=noise)
    else:
        # Rounding each name's trade to a neighbouring lot moves w by at most one lot per
        # name (`_lot_step`); by the triangle inequality the root distance then grows by at
        # most that much. Re-solves with tightened bounds and the integer search may move
        # farther, but the random cases have stayed within 0.4 of it.
        gap = np.sqrt(adjusted.distance) - np.sqrt(optimum)
        # (`noise` in the distance is noise / (2 sqrt(optimum)) in its root.)
        root_noise = noise / (2.0 * np.sqrt(optimum)) if optimum > 0 else np.sqrt(noise)
        assert gap <= LOT_STEPS * _lot_step(request) + root_noise


def _check_conflict(
    request: dict[str, Any], policies: list[dict[str, Any]], conflicting: list[str], method: str
) -> None:
    """The named policies conflict on their own, and dropping any one of them resolves it."""
    assert conflicting
    only = [p for p in policies if p["policy_name"] in conflicting]
    alone = dict(request, applicable_policies=None)
    assert spec.optimum(alone, only, method) is None
    for name in conflicting:
        rest = [p for p in only if p["policy_name"] != name]
        assert spec.optimum(alone, rest, method) is not None


@pytest.mark.parametrize("seed", range(120))
def test_random_cases_match_the_reference(seed: int, known_limits: KnownLimits) -> None:
    request, policies = random_case(np.random.default_rng(seed))
    check_case(request, policies, known_limits)


@pytest.mark.parametrize("seed", range(40))
def test_cure_passive_conflicts_match_the_reference(seed: int, known_limits: KnownLimits) -> None:
    request, policies = random_case(
        np.random.default_rng(10_000 + seed), cure_passive=True, conflict=True, strict_only=True
    )
    check_case(request, policies, known_limits)


@pytest.mark.parametrize("seed", range(30))
def test_lot_rounded_adjustments_stay_compliant(seed: int, known_limits: KnownLimits) -> None:
    request, policies = random_case(
        np.random.default_rng(20_000 + seed), lot_mode="mixed" if seed % 2 else "one"
    )
    check_case(request, policies, known_limits)


@pytest.mark.parametrize("method", ["scale_back", "project"])
@pytest.mark.parametrize("seed", range(15))
def test_explicit_methods_match_the_reference(
    seed: int, method: str, known_limits: KnownLimits
) -> None:
    request, policies = random_case(
        np.random.default_rng(30_000 + seed), adjustment=method, lot_mode="fractional"
    )
    check_case(request, policies, known_limits)


# Cases a 15,000-case sweep found failing, fixed since: degenerate feasible sets (weight bands
# of 1e-9 from tiny ADV limits, rows pinned at their pre-trade value), HiGHS "optimal"
# answers with a large objective error, sum_largest over every position, conflicts on which
# the reference's own solver stalled.
SWEEP_REGRESSIONS = [
    (100057, {"n_names": 30, "n_policies": 6}),
    (100105, {"lot_mode": "one"}),
    (100272, {"long_short": True}),
    (
        100292,
        {"kinds": ("volatility", "tracking_error", "var", "cvar", "stress"), "strict_only": True},
    ),
    (101349, {"n_names": 30, "n_policies": 6}),
    (100401, {"adjustment": "project"}),
    (100197, {"n_names": 30, "n_policies": 6}),
    (100254, {"n_names": 30, "n_policies": 6}),
    (100348, {"lot_mode": "one"}),
    (101524, {"long_short": True}),
    (100732, {"cure_passive": True, "conflict": True, "strict_only": True}),
    (100947, {"adjustment": "scale_back"}),
    # A VaR norm solved directly by Clarabel, whose relative gap was taken relative to its
    # objective less the constant S ||d||^2: 2.8e-6 off a distance of 4e-5 (the objective
    # now carries the constant, engine.adjust.conic).
    (219, {}),
]


@pytest.mark.parametrize(
    ("seed", "options"), SWEEP_REGRESSIONS, ids=[str(s) for s, _ in SWEEP_REGRESSIONS]
)
def test_sweep_regressions(seed: int, options: dict[str, Any], known_limits: KnownLimits) -> None:
    check_case(*random_case(np.random.default_rng(seed), **options), known_limits)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_hypothesis_cases_match_the_reference(
    case: tuple[dict[str, Any], list[dict[str, Any]]], known_limits: KnownLimits
) -> None:
    check_case(*case, known_limits)


def _tightened(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every strict limit moved 10% (plus 1e-4) toward more restrictive."""
    out = copy.deepcopy(policies)
    for policy in out:
        if policy.get("enforcement_level", "strict") != "strict":
            continue
        for c in policy["rules"]["constraints"]:
            lo, hi = c.get("min"), c.get("max")
            for key in ("max", "max_loss", "max_weight_change", "max_adv_fraction"):
                if isinstance(c.get(key), float | int):
                    step = 0.1 * abs(c[key]) + 1e-4
                    floor = (
                        None
                        if key in ("max", "max_loss")
                        and c["kind"]
                        in (
                            "weight_bounds",
                            "group_limit",
                            "net_exposure",
                            "cash",
                            "exposure",
                            "stress",
                        )
                        else 0.0
                    )
                    c[key] = c[key] - step if floor is None else max(floor, c[key] - step)
            if isinstance(lo, float | int):
                c["min"] = lo + 0.1 * abs(lo) + 1e-4
                if isinstance(c.get("max"), float | int) and c["min"] > c["max"]:
                    c["min"] = c["max"]
            if hi is not None and lo is not None and c["min"] > c["max"]:
                c["min"] = c["max"]
    return out


def _distance(request: dict[str, Any], policies: list[dict[str, Any]]) -> float:
    response = _run(request, policies)
    if response.infeasible is not None:
        return float("inf")
    if response.adjusted_decision is None:
        return 0.0
    return response.adjusted_decision.distance


@pytest.mark.parametrize("method", ["scale_back", "project"])
@pytest.mark.parametrize("seed", range(12))
def test_tightening_a_limit_never_decreases_the_distance(seed: int, method: str) -> None:
    request, policies = random_case(
        np.random.default_rng(40_000 + seed),
        adjustment=method,
        lot_mode="fractional",
        strict_only=True,
    )
    loose = _distance(request, policies)
    tight = _distance(request, _tightened(policies))
    assert tight >= loose * (1 - 1e-6) - 1e-10

"""The constraint-set export: its JSON form, its cvxpy form and the service's verdicts agree."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pytest

import engine.compile.layout
import engine.export.constraints
from engine import PolicyEngine
from engine.adjust.bounds import shifted, solve_bounds
from engine.compile.layout import build_layout
from engine.errors import MissingDataError, UnknownSymbolError
from engine.export.constraints import export_constraints, policy_revision
from engine.export.forms import cvxpy_constraints, max_violation, snap_fixed, trades_for
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from models.export import ConstraintSet, ConstraintSetRequest
from tests.builders import instrument, policy
from tests.strategies import KINDS, random_case

SOLVER = "SCS"
"""The optimizer's solver: not one of the engine's (OSQP, Clarabel, ECOS, HiGHS)."""


def _export_request(
    case: dict[str, Any], policies: list[dict[str, Any]], *, every: bool = True, **options: Any
) -> dict[str, Any]:
    """An export request over a generated case.

    Every instrument is tradable, or (`every=False`) only the names the case's decision
    trades, which leaves benchmark names outside the variables.
    """
    state = case["portfolio_state"]
    if every:
        universe = [i["symbol"] for i in state["instruments"]]
    else:
        universe = sorted({t["symbol"] for t in case["decision"]["trades"]})
    body: dict[str, Any] = {
        "portfolio_state": state,
        "policies": policies,
        "universe": universe,
        "options": {"cure_passive": case["cure_passive"], **options},
    }
    if "applicable_policies" in case:
        body["applicable_policies"] = case["applicable_policies"]
    return body


def _export(body: dict[str, Any]) -> ConstraintSet:
    return export_constraints(ConstraintSetRequest.model_validate(body))


def _case(seed: int, **options: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return random_case(np.random.default_rng(seed), scoping=False, conflict=False, **options)


def _objective(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A random mean-variance model: expected returns and a covariance."""
    mu = rng.normal(0.05, 0.1, n)
    B = rng.normal(size=(n, n)) * 0.1
    return mu, B @ B.T / n + 0.01 * np.eye(n)


# --------------------------------------------------------------- the forms agree


def _engine_projection(body: dict[str, Any], target: np.ndarray) -> np.ndarray:
    """The projection of `target` onto the set, built from the engine's own cvxpy blocks."""
    request = ConstraintSetRequest.model_validate(body)
    validation = engine.export.constraints._validation_request(request)
    policies = [
        p for p in effective_policies(validation, []) if p.enforcement_level.value == "strict"
    ]
    snap = snapshot_of(validation, include=request.universe)
    layout = build_layout(policies, validation, snap)
    delta = cp.Variable(snap.n)
    rows = []
    for k, rowset in enumerate(layout.rowsets):
        base = solve_bounds(layout, k, cure_passive=request.options.cure_passive)
        bound = shifted(layout, [k], [base], [np.full(len(base), request.options.margin)])[0]
        params = rowset.block.declare()
        rowset.block.fill(params, snap.w0)
        expr = rowset.block.expression(delta, params)
        rows.append(expr <= bound if rowset.sense == "le" else expr >= bound)
    objective = cp.Minimize(cp.sum_squares(snap.w0 + delta - target))
    cp.Problem(objective, rows).solve(solver="CLARABEL")
    assert delta.value is not None
    return np.asarray(snap.w0 + delta.value)


def _projection(constraints: ConstraintSet, target: np.ndarray) -> tuple[np.ndarray, Any]:
    w = cp.Variable(len(target))
    aux = (
        cp.Variable(len(constraints.variables.auxiliary))
        if constraints.variables.auxiliary
        else None
    )
    problem = cp.Problem(
        cp.Minimize(cp.sum_squares(w - target)), cvxpy_constraints(constraints, w, aux)
    )
    problem.solve(solver="CLARABEL")
    assert problem.status == cp.OPTIMAL, problem.status
    return np.asarray(w.value), None if aux is None else np.asarray(aux.value)


@pytest.mark.parametrize("kind", KINDS)
def test_json_cvxpy_and_engine_forms_give_the_same_projection(kind: str) -> None:
    seed = 40 + KINDS.index(kind)
    case, policies = _case(seed, kinds=(kind,), strict_only=True, cure_passive=False)
    body = _export_request(case, policies, every=bool(seed % 2))
    linear, blocks = (
        _export(body),
        _export({**body, "options": {**body["options"], "form": "blocks"}}),
    )
    assert linear.variables.symbols == blocks.variables.symbols
    rng = np.random.default_rng(seed)
    w0 = np.array(linear.variables.w0)
    target = w0 + rng.normal(0.0, 0.05, len(w0))
    truth = _engine_projection(body, target)
    for form in (linear, blocks):
        w, aux = _projection(form, target)
        np.testing.assert_allclose(w, truth, atol=2e-5)
        assert max_violation(form, w, aux) < 1e-6
    # The linearized rows hold the same point the closed-form blocks hold.
    assert max_violation(blocks, truth) < 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_blocks_form_measures_the_engine_rows(kind: str) -> None:
    """max_violation of the JSON (closed forms) equals the worst excess of the engine rows."""
    seed = 80 + KINDS.index(kind)
    case, policies = _case(seed, kinds=(kind,), strict_only=True, cure_passive=True)
    body = _export_request(case, policies, form="blocks", margin=0.0)
    constraints = _export(body)
    request = ConstraintSetRequest.model_validate(body)
    validation = engine.export.constraints._validation_request(request)
    snap = snapshot_of(validation, include=request.universe)
    layout = build_layout(effective_policies(validation, []), validation, snap)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        w = snap.w0 + rng.normal(0.0, 0.03, snap.n)
        worst = max(
            [0.0, *(float(rs.excess(rs.block.values(w)).max()) for rs in layout.rowsets if rs.rows)]
        )
        assert max_violation(constraints, w) == pytest.approx(worst, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_not_trading_is_inside_the_set(seed: int) -> None:
    """Without cure_passive the pre-trade portfolio is always feasible, margin or not."""
    case, policies = _case(seed, strict_only=True, cure_passive=False)
    for margin in (0.0, 1e-7, 1e-4):
        constraints = _export(_export_request(case, policies, form="blocks", margin=margin))
        assert max_violation(constraints, np.array(constraints.variables.w0)) <= 1e-15


# --------------------------------------------------------------- round trip


def _round_trip(
    case: dict[str, Any], policies: list[dict[str, Any]], seed: int, **options: Any
) -> tuple[str, Any]:
    """Maximize a mean-variance objective inside the export, then validate the result."""
    constraints = _export(_export_request(case, policies, every=bool(seed % 3), **options))
    n = len(constraints.variables.symbols)
    mu, sigma = _objective(np.random.default_rng(seed), n)
    w = cp.Variable(n)
    rows = cvxpy_constraints(constraints, w) or [cp.sum(w) <= 1e6]  # SCS needs one row
    problem = cp.Problem(cp.Maximize(mu @ w - 2.0 * cp.quad_form(w, sigma)), rows)
    problem.solve(solver=SOLVER, eps_abs=1e-10, eps_rel=1e-10, max_iters=100_000)
    if w.value is None:
        return str(problem.status), None
    trades = trades_for(constraints, w.value)
    request = {
        **case,
        "decision": {**case["decision"], "trades": [t.model_dump(mode="json") for t in trades]},
        "policies": policies,
        "mode": "validate",
    }
    response = PolicyEngine().validate(PolicyValidationRequest.model_validate(request))
    return str(problem.status), response


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_per_kind(kind: str) -> None:
    seed = KINDS.index(kind)
    case, policies = _case(seed, kinds=(kind,), n_policies=2, strict_only=True, cure_passive=False)
    status, response = _round_trip(case, policies, seed)
    assert status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE), status
    assert response.is_compliant, [v.description for v in response.violations]


@pytest.mark.parametrize("seed", range(100, 112))
def test_round_trip_mixed_cases_with_advisory(seed: int) -> None:
    case, policies = _case(seed, cure_passive=bool(seed % 2))
    status, response = _round_trip(case, policies, seed, include_advisory=True)
    if response is None:  # cure_passive sets can be empty; the engine must agree
        assert status == cp.INFEASIBLE
        case = {**case, "mode": "adjust", "adjustment": "project", "policies": policies}
        answer = PolicyEngine().validate(PolicyValidationRequest.model_validate(case))
        assert answer.adjusted_decision is None
        return
    assert response.is_compliant
    cure = case["cure_passive"]
    blocking = [
        v
        for v in response.violations
        if v.enforcement_level.value in ("strict", "advisory") and (cure or v.breach == "active")
    ]
    assert not blocking, [v.description for v in blocking]


# --------------------------------------------------------------- hand-written cases


def _request(policies: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "portfolio_state": {
            "portfolio_id": "p-1",
            "cash": 40_000.0,
            "positions": [{"symbol": "AAA", "quantity": 300}, {"symbol": "BBB", "quantity": 300}],
            "instruments": [instrument(s) for s in ("AAA", "BBB", "CCC", "DDD")],
        },
        "universe": ["CCC"],
        "policies": policies,
    }
    body.update(extra)
    return body


def test_variables_are_held_and_universe_names_in_symbol_order() -> None:
    constraints = _export(_request([policy("cap", {"kind": "weight_bounds", "max": 0.5})]))
    assert constraints.variables.symbols == ["AAA", "BBB", "CCC"]
    assert constraints.variables.w0 == pytest.approx([0.3, 0.3, 0.0])
    assert constraints.nav == pytest.approx(100_000.0)
    assert constraints.variables.count == 3


def test_margin_tightens_limits_but_not_past_pre_trade() -> None:
    body = _request(
        [policy("cap", {"kind": "weight_bounds", "max": 0.2})], options={"margin": 1e-4}
    )
    constraints = _export(body)
    by_subject = {r.subject: k for k, r in enumerate(constraints.linear.rows)}
    upper = constraints.linear.upper
    # AAA and BBB sit at 0.3 > 0.2 before trading: no worse than that (passive)
    assert upper[by_subject["AAA"]] == pytest.approx(0.3)
    assert constraints.linear.rows[by_subject["AAA"]].passive
    assert upper[by_subject["CCC"]] == pytest.approx(0.2 - 1e-4)
    tightened = {r.subject: r.tightened for r in constraints.linear.rows}
    assert tightened == {"AAA": False, "BBB": False, "CCC": True}
    cured = _export({**body, "options": {"margin": 1e-4, "cure_passive": True}})
    assert cured.linear.upper[by_subject["AAA"]] == pytest.approx(0.2 - 1e-4)


def test_zero_rows_fix_weights_exactly() -> None:
    body = _request(
        [
            policy("frozen", {"kind": "restricted", "symbols": ["AAA"], "mode": "no_trade"}),
            policy("banned", {"kind": "restricted", "symbols": ["CCC"], "mode": "no_holding"}),
        ]
    )
    constraints = _export(body)
    fixed = {f.symbol: (f.value, f.policies) for f in constraints.fixed}
    assert fixed == {"AAA": (pytest.approx(0.3), ["frozen"]), "CCC": (0.0, ["banned"])}
    w = np.array([0.3 + 1e-9, 0.25, 1e-9])
    assert snap_fixed(constraints, w).tolist() == pytest.approx([0.3, 0.25, 0.0], abs=0)
    trades = trades_for(constraints, w)
    assert [(t.symbol, t.side.value) for t in trades] == [("BBB", "SELL")]
    assert trades[0].quantity == pytest.approx(50.0)


def test_linearized_auxiliaries_are_named_and_ordered() -> None:
    body = _request(
        [
            policy("gross", {"kind": "gross_exposure", "max": 0.7}),
            policy("top", {"kind": "concentration", "top_k": 5, "max": 0.9}),
        ]
    )
    constraints = _export(body)
    names = [a.name for a in constraints.variables.auxiliary]
    assert names[:3] == [f"gross#0.gross_exposure.max.t[{s}]" for s in ("AAA", "BBB", "CCC")]
    assert names[3:] == ["top#0.concentration.max.s"] + [
        f"top#0.concentration.max.u[{s}]" for s in ("AAA", "BBB", "CCC")
    ]
    assert [a.index for a in constraints.variables.auxiliary] == list(range(3, 10))
    limits = [r for r in constraints.linear.rows if r.role == "limit"]
    assert [r.violation_type for r in limits] == ["gross_exposure.max", "concentration.max"]
    # top_k above |V|: the sum of every |w_i| (k = 3), as the engine evaluates it
    w = np.array([0.2, -0.2, 0.1])
    blocks = _export({**body, "options": {"form": "blocks"}})
    assert blocks.blocks[1].top_k == 3
    assert max_violation(blocks, w) == 0.0
    assert max_violation(blocks, 2.0 * w) == pytest.approx(1.0 - (0.7 - 1e-7), abs=1e-12)


def test_advisory_only_on_request_and_monitor_never() -> None:
    policies = [
        policy("hard", {"kind": "weight_bounds", "max": 0.5}),
        policy("soft", {"kind": "cash", "min": 0.1}, enforcement_level="advisory"),
        policy("watch", {"kind": "net_exposure", "max": 0.9}, enforcement_level="monitor"),
    ]
    assert _export(_request(policies)).policies == ["hard"]
    both = _export(_request(policies, options={"include_advisory": True}))
    assert both.policies == ["hard", "soft"]
    assert [lvl.value for lvl in both.enforcement_levels] == ["strict", "advisory"]
    assert any("watch" in note for note in both.notes)


def test_revision_depends_on_content_not_order() -> None:
    a = policy("a", {"kind": "weight_bounds", "max": 0.5})
    b = policy("b", {"kind": "cash", "min": 0.1})
    first, second = _export(_request([a, b])), _export(_request([b, a]))
    assert first.policy_revision == second.policy_revision
    changed = policy("a", {"kind": "weight_bounds", "max": 0.4})
    assert _export(_request([changed, b])).policy_revision != first.policy_revision
    definitions = [PolicyDefinition.model_validate(p) for p in (a, b)]
    assert first.policy_revision == policy_revision(definitions)


def test_restricted_rule_encoding_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.compile.layout.build_layout  # the export compiles through the layout cache

    def with_encoding(*args: Any) -> Any:
        layout = real(*args)
        layout.rowsets[0].encoding = "restriction: every issuer below 5%"
        return layout

    monkeypatch.setattr(engine.compile.layout, "build_layout", with_encoding)
    constraints = _export(_request([policy("cap", {"kind": "weight_bounds", "max": 0.5})]))
    assert {(r.exact, r.encoding) for r in constraints.linear.rows} == {
        (False, "restriction: every issuer below 5%")
    }


def test_risk_limits_become_cones_with_their_data() -> None:
    risk = {
        "covariance": {
            "symbols": ["AAA", "BBB", "CCC"],
            "matrix": np.diag([0.04, 0.09, 0.01]).tolist(),
        }
    }
    body = _request(
        [
            policy(
                "risk",
                {"kind": "volatility", "max": 0.2},
                {"kind": "var", "confidence": 0.99, "max": 0.05},
            )
        ]
    )
    body["portfolio_state"]["risk_model"] = risk
    constraints = _export(body)
    vol, var = constraints.cones
    assert (vol.scale, var.scale) == (1.0, pytest.approx(2.3263478740 / np.sqrt(252)))
    assert vol.bound == pytest.approx(0.2 - 1e-7)
    assert var.bound == pytest.approx((0.05 - 1e-7) / var.scale)
    w = np.array([0.3, 0.3, 0.0])  # vol = sqrt(0.09 * 0.04 + 0.09 * 0.09) = 0.1082
    matrix = np.zeros(vol.matrix.shape)
    matrix[vol.matrix.row, vol.matrix.col] = vol.matrix.val
    assert np.linalg.norm(matrix @ w + vol.offset) == pytest.approx(np.sqrt(0.0117))


def test_input_errors_name_the_field() -> None:
    body = _request([policy("cap", {"kind": "weight_bounds", "max": 0.5})], universe=["ZZZ"])
    with pytest.raises(UnknownSymbolError) as unknown:
        _export(body)
    assert unknown.value.field == "universe[0]"
    body = _request([policy("risk", {"kind": "volatility", "max": 0.2})])
    with pytest.raises(MissingDataError) as missing:
        _export(body)
    assert missing.value.field == "portfolio_state.risk_model"


def test_snapping_clips_weights_into_their_own_rows() -> None:
    body = _request(
        [
            policy("cap", {"kind": "weight_bounds", "max": 0.2}),
            policy("long", {"kind": "restricted", "symbols": ["BBB"], "mode": "no_short"}),
        ]
    )
    constraints = _export(body)
    w = np.array([0.3 + 1e-8, -1e-8, 0.2 + 1e-8])  # solver error on three bounds
    assert max_violation(constraints, w) > 1e-9
    snapped = snap_fixed(constraints, w)
    assert snapped.tolist() == pytest.approx([0.3, 1e-7, 0.2 - 1e-7], abs=1e-15)
    assert max_violation(constraints, snapped) == 0.0

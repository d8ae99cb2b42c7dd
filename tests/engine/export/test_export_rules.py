"""The export of the regulatory rules, custom expressions, the hierarchy and conditions.

Each round trip maximizes a mean-variance objective with SCS (not one of the engine's
solvers) inside the exported set, turns the optimum into trades and validates them: the
service must find no active breach of a strict policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
import pytest

import engine.export.constraints
from engine import PolicyEngine
from engine.adjust.bounds import shifted, solve_bounds
from engine.compile.layout import build_layout
from engine.errors import InputError, PolicyResolutionError
from engine.export.constraints import export_constraints
from engine.export.forms import cvxpy_constraints, max_violation, trades_for
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import snapshot_of
from models import PolicyValidationRequest, PolicyValidationResponse, PortfolioNode
from models.export import ConstraintSet, ConstraintSetRequest
from tests.builders import instrument, policy

NAV = 1_000_000.0


def regulatory(name: str, *constraints: dict[str, Any]) -> dict[str, Any]:
    return policy(name, *constraints, policy_type="REGULATORY")


def _fund(rng: np.random.Generator, *, above: int, n_issuers: int = 14) -> dict[str, Any]:
    """A long-only fund of `n_issuers` issuers (some with two lines), `above` of them held
    between 5% and 9.5% (above the UCITS threshold), the rest below 5%.

    Prices vary; some lines are illiquid, some are bonds (outside an equity names rule),
    every line has shares outstanding; a factor risk model and a benchmark cover them.
    """
    instruments, positions = [], []
    weights = np.concatenate(
        [rng.uniform(0.055, 0.095, above), rng.uniform(0.005, 0.045, n_issuers - above)]
    )
    if weights.sum() > 0.95:
        weights *= 0.95 / weights.sum()  # keep some cash; issuers above 5% may fall below
    for g, weight in enumerate(weights):
        lines = 2 if g % 4 == 1 else 1
        for line in range(lines):
            symbol = f"I{g:02d}{'AB'[line]}"
            price = float(rng.uniform(20.0, 400.0))
            instruments.append(
                instrument(
                    symbol,
                    price,
                    issuer=f"Issuer {g:02d}",
                    asset_class="bond" if g % 5 == 3 else "equity",
                    attributes={
                        "liquidity": "illiquid" if g % 6 == 2 else "highly_liquid",
                        "shares_outstanding": float(rng.uniform(2e3, 5e5)),
                        "beta": float(rng.uniform(0.6, 1.4)),
                    },
                )
            )
            positions.append({"symbol": symbol, "quantity": weight / lines * NAV / price})
    symbols = [i["symbol"] for i in instruments]
    invested = sum(p["quantity"] * i["price"] for p, i in zip(positions, instruments, strict=True))
    loadings = rng.normal(0.0, 0.3, (len(symbols), 2))
    return {
        "portfolio_id": "fund",
        "cash": NAV - invested,
        "positions": positions,
        "instruments": instruments,
        "benchmark": {s: 1.0 / len(symbols) for s in symbols},
        "risk_model": {
            "factor_loadings": {s: row.tolist() for s, row in zip(symbols, loadings, strict=True)},
            "factor_covariance": [[0.04, 0.0], [0.0, 0.02]],
            "specific_variance": {s: float(rng.uniform(0.01, 0.05)) for s in symbols},
        },
    }


def _export(state: dict[str, Any], policies: list[dict[str, Any]], **extra: Any) -> ConstraintSet:
    body = {"portfolio_state": state, "policies": policies, **extra}
    return export_constraints(ConstraintSetRequest.model_validate(body))


def _bonds(item: dict[str, Any]) -> bool:
    return bool(item.get("asset_class") == "bond")


def _illiquid(item: dict[str, Any]) -> bool:
    return bool(item["attributes"].get("liquidity") == "illiquid")


def _optimum(
    constraints: ConstraintSet,
    seed: int,
    state: dict[str, Any],
    favour: Callable[[dict[str, Any]], bool] = _bonds,
) -> np.ndarray:
    """A mean-variance optimum inside the set, found by SCS.

    Expected returns favour the instruments `favour` picks (bonds by default), so that
    the names rule (or the illiquid limit) binds too.
    """
    n = len(constraints.variables.symbols)
    rng = np.random.default_rng(seed)
    favoured = {i["symbol"] for i in state["instruments"] if favour(i)}
    mu = rng.normal(0.05, 0.1, n)
    mu += np.array([1.0 if s in favoured else 0.0 for s in constraints.variables.symbols])
    B = rng.normal(size=(n, n)) * 0.1
    sigma = B @ B.T / n + 0.01 * np.eye(n)
    w = cp.Variable(n)
    aux = (
        cp.Variable(len(constraints.variables.auxiliary))
        if constraints.variables.auxiliary
        else None
    )
    problem = cp.Problem(
        cp.Maximize(mu @ w - 2.0 * cp.quad_form(w, sigma)),
        cvxpy_constraints(constraints, w, aux),
    )
    problem.solve(solver="SCS", eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    assert problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE), problem.status
    assert w.value is not None
    values = None if aux is None else np.asarray(aux.value)
    assert max_violation(constraints, w.value, values) < 1e-6
    return np.asarray(w.value)


def _validate(
    constraints: ConstraintSet,
    state: dict[str, Any],
    policies: list[dict[str, Any]],
    w: np.ndarray,
    **extra: Any,
) -> PolicyValidationResponse:
    trades = [t.model_dump(mode="json") for t in trades_for(constraints, w)]
    request = {
        "decision": {"decision_id": "opt", "portfolio_id": state["portfolio_id"], "trades": trades},
        "portfolio_state": state,
        "policies": policies,
        "mode": "validate",
        **extra,
    }
    return PolicyEngine().validate(PolicyValidationRequest.model_validate(request))


def _assert_accepted(response: PolicyValidationResponse) -> None:
    assert response.is_compliant, [v.description for v in response.violations]
    active = [v for v in response.violations if v.breach.value == "active"]
    assert not active, [v.description for v in active]


UCITS = regulatory("ucits", {"kind": "ucits_5_10_40"})
DIVERSIFIED = regulatory("diversified", {"kind": "diversified_75_5_10", "basket_min": 0.75})
NAMES = regulatory(
    "names", {"kind": "names_rule_80", "where": {"asset_class": ["equity"]}, "min": 0.95}
)
ILLIQUID = regulatory("illiquid", {"kind": "illiquid_limit", "max": 0.02})
VAR = regulatory("var", {"kind": "derivatives_var", "max": 0.12, "horizon_days": 20})
VAR_RELATIVE = regulatory(
    "var-relative", {"kind": "derivatives_var", "mode": "relative", "max_ratio": 1.5}
)
EXPRESSIONS = policy(
    "custom",
    {"kind": "expression", "expr": 'sum(w[asset_class == "bond"]) <= 0.2'},
    {"kind": "expression", "expr": "0.9 <= sum(w * beta) <= 1.1"},
    {"kind": "expression", "expr": "risk(w - b) <= 0.06"},
    {"kind": "expression", "expr": "norm1(w - w0) + max(abs(w)) <= 0.6"},
    policy_type="INVESTMENT_MANDATE",
)
LONG_ONLY = policy(
    "long-only", {"kind": "weight_bounds", "min": 0.0}, {"kind": "gross_exposure", "max": 1.0}
)
SETS = {
    "ucits": [UCITS],
    "diversified": [DIVERSIFIED],
    "names": [NAMES],
    "illiquid": [ILLIQUID],
    "var": [VAR, VAR_RELATIVE],
    "expression": [EXPRESSIONS],
    "everything": [UCITS, DIVERSIFIED, NAMES, ILLIQUID, VAR, EXPRESSIONS],
}


CASES = [(name, above, "linearized") for name in SETS for above in (0, 5)] + [
    ("ucits", 7, "linearized"),  # issuers above 5% already weigh more than 40% (passive)
    ("ucits", 5, "blocks"),
    ("diversified", 5, "blocks"),
    ("everything", 7, "blocks"),
]


@pytest.mark.parametrize(("name", "above", "form"), CASES)
def test_round_trip_regulatory_and_expression_sets(name: str, above: int, form: str) -> None:
    seed = 7 * above + len(name)
    state = _fund(np.random.default_rng(seed), above=above)
    policies = SETS[name]
    constraints = _export(state, policies, universe=[], options={"form": form})
    favour = _illiquid if name == "illiquid" else _bonds
    w = _optimum(constraints, seed, state, favour)
    _assert_accepted(_validate(constraints, state, policies, w))
    # The policies shape the optimum: without them, the same objective breaches them.
    free = _export(state, [LONG_ONLY], universe=[], options={"form": form})
    unconstrained = _validate(free, state, policies, _optimum(free, seed, state, favour))
    assert [v for v in unconstrained.violations if v.breach.value == "active"]


# --------------------------------------------------------------- the forms agree


def _solver_projection(body: dict[str, Any], target: np.ndarray) -> np.ndarray:
    """The projection of `target` onto the set, from the engine's own cvxpy blocks.

    Built from the adjuster's layout (`for_solver`: the UCITS restriction in place of the
    exact aggregate), with the export's bounds.
    """
    request = ConstraintSetRequest.model_validate(body)
    validation = engine.export.constraints._validation_request(request)
    policies = effective_policies(validation, [])
    snap = snapshot_of(validation, include=request.universe)
    layout = build_layout(policies, validation, snap).for_solver()
    delta = cp.Variable(snap.n)
    rows = []
    for k, rowset in enumerate(layout.rowsets):
        base = solve_bounds(layout, k, cure_passive=False)
        bound = shifted(layout, [k], [base], [np.full(len(base), request.options.margin)])[0]
        params = rowset.block.declare()
        rowset.block.fill(params, snap.w0)
        expr = rowset.block.expression(delta, params)
        rows.append(expr <= bound if rowset.sense == "le" else expr >= bound)
    cp.Problem(cp.Minimize(cp.sum_squares(snap.w0 + delta - target)), rows).solve(solver="CLARABEL")
    assert delta.value is not None
    return np.asarray(snap.w0 + delta.value)


def _projection(constraints: ConstraintSet, target: np.ndarray) -> tuple[np.ndarray, Any]:
    w = cp.Variable(len(target))
    n_aux = len(constraints.variables.auxiliary)
    aux = cp.Variable(n_aux) if n_aux else None
    problem = cp.Problem(
        cp.Minimize(cp.sum_squares(w - target)), cvxpy_constraints(constraints, w, aux)
    )
    problem.solve(solver="CLARABEL")
    assert problem.status == cp.OPTIMAL, problem.status
    return np.asarray(w.value), None if aux is None else np.asarray(aux.value)


@pytest.mark.parametrize("name", ["ucits", "diversified", "expression", "everything"])
def test_json_and_engine_forms_give_the_same_projection(name: str) -> None:
    state = _fund(np.random.default_rng(3), above=5)
    body = {"portfolio_state": state, "policies": SETS[name]}
    linear = export_constraints(ConstraintSetRequest.model_validate(body))
    blocks = export_constraints(
        ConstraintSetRequest.model_validate({**body, "options": {"form": "blocks"}})
    )
    w0 = np.array(linear.variables.w0)
    target = w0 + np.random.default_rng(4).normal(0.0, 0.05, len(w0))
    truth = _solver_projection(body, target)
    assert np.abs(truth - target).max() > 1e-3, "the target lies outside the set"
    for form in (linear, blocks):
        w, aux = _projection(form, target)
        np.testing.assert_allclose(w, truth, atol=2e-5)
        assert max_violation(form, w, aux) < 1e-6


@pytest.mark.parametrize("name", ["ucits", "diversified"])
def test_named_piecewise_blocks_measure_the_engine_rows(name: str) -> None:
    """max_violation of the blocks form equals the worst excess of the adjuster's rows."""
    state = _fund(np.random.default_rng(5), above=5)
    body = {
        "portfolio_state": state,
        "policies": SETS[name],
        "options": {"form": "blocks", "margin": 0.0, "cure_passive": True},
    }
    constraints = export_constraints(ConstraintSetRequest.model_validate(body))
    assert {b.type for b in constraints.blocks} == (
        {"positive_part_sum"} if name == "ucits" else {"capped_sum"}
    )
    request = ConstraintSetRequest.model_validate(body)
    validation = engine.export.constraints._validation_request(request)
    snap = snapshot_of(validation)
    layout = build_layout(effective_policies(validation, []), validation, snap).for_solver()
    rng = np.random.default_rng(6)
    for _ in range(8):
        w = snap.w0 + rng.normal(0.0, 0.03, snap.n)
        worst = max(0.0, *(float(rs.excess(rs.block.values(w)).max()) for rs in layout.rowsets))
        assert max_violation(constraints, w) == pytest.approx(worst, abs=1e-12)


def _feasible_at(constraints: ConstraintSet, w: np.ndarray) -> bool:
    """Whether some auxiliaries make the fixed weights `w` satisfy the set."""
    n_aux = len(constraints.variables.auxiliary)
    aux = cp.Variable(n_aux)
    fixed = cp.Variable(len(w))
    rows = [*cvxpy_constraints(constraints, fixed, aux), fixed == w]
    problem = cp.Problem(cp.Minimize(0), rows)
    problem.solve(solver="CLARABEL")
    return bool(problem.status == cp.OPTIMAL)


def test_expression_conic_form_is_exact() -> None:
    """A weight vector is inside the canonical rows iff the expression holds there."""
    state = _fund(np.random.default_rng(8), above=3)
    loose = policy(
        "loose",
        {"kind": "expression", "expr": "norm1(w - w0) + max(abs(w)) <= 0.15"},
        {"kind": "expression", "expr": "risk(w - b) + 0.5 * norm2(w - w0) <= 0.3"},
        {"kind": "expression", "expr": "0.3 <= sum(w * beta) - 0.1 * sum(pos(w - w0))"},
        policy_type="INVESTMENT_MANDATE",
    )
    options = {"margin": 0.0, "cure_passive": True}  # every bound is the limit
    body = {"portfolio_state": state, "policies": [loose], "options": options}
    constraints = export_constraints(ConstraintSetRequest.model_validate(body))
    assert constraints.conic and all(r.info.kind == "expression" for r in constraints.conic)
    roles = {r.role for r in constraints.linear.rows}
    assert roles == {"conic"}
    request = ConstraintSetRequest.model_validate(body)
    validation = engine.export.constraints._validation_request(request)
    snap = snapshot_of(validation)
    layout = build_layout(effective_policies(validation, []), validation, snap)
    rng = np.random.default_rng(9)
    seen = set()
    for scale in [0.001, 0.003, 0.01, 0.03] * 4:
        w = snap.w0 + rng.normal(0.0, scale, snap.n)
        excess = max(float(rs.excess(rs.block.values(w)).max()) for rs in layout.rowsets)
        if abs(excess) < 1e-4:
            continue  # too close to call for a solver
        assert _feasible_at(constraints, w) == (excess < 0), excess
        seen.add(excess < 0)
    assert seen == {True, False}


# --------------------------------------------------------------- flags, context, hierarchy


def test_ucits_restriction_rows_are_flagged_with_their_encoding() -> None:
    state = _fund(np.random.default_rng(11), above=5)
    constraints = _export(state, [UCITS], universe=[])
    by_type: dict[str, set[tuple[bool, str | None]]] = {}
    for row in constraints.linear.rows:
        by_type.setdefault(row.violation_type, set()).add((row.exact, row.encoding))
    assert by_type["ucits_5_10_40.single"] == {(True, None)}
    ((exact, encoding),) = by_type["ucits_5_10_40.restriction"] | by_type["ucits_5_10_40.aggregate"]
    assert not exact and encoding is not None
    # The issuers held above 5% are the ones the restriction lets stay above it.
    held_above = ", ".join(f"Issuer {g:02d}" for g in range(5))
    assert encoding.startswith(f"restriction: issuers allowed above 5.00%: {held_above};")
    assert any(note.startswith("ucits: not convex") for note in constraints.notes)
    # Rows within the restriction: issuers outside it capped at the threshold.
    caps = {
        r.subject: upper
        for r, upper in zip(constraints.linear.rows, constraints.linear.upper, strict=True)
        if r.violation_type == "ucits_5_10_40.restriction"
    }
    assert caps["Issuer 00"] == pytest.approx(0.10 - 1e-7)
    assert caps["Issuer 13"] == pytest.approx(0.05 - 1e-7)


CONTEXTUAL = [
    policy(
        "name-cap",
        {
            "kind": "weight_bounds",
            "max": {"by": "risk_mode", "values": {"NORMAL": 0.1, "DEFENSIVE": 0.06}},
        },
    ),
    policy(
        "stressed-gross",
        {"kind": "gross_exposure", "max": 0.8},
        when='risk_mode == "DEFENSIVE"',
    ),
]


@pytest.mark.parametrize(("mode", "cap"), [("NORMAL", 0.1), ("DEFENSIVE", 0.06)])
def test_the_context_chooses_limits_and_policies(mode: str, cap: float) -> None:
    state = _fund(np.random.default_rng(12), above=0)
    context = {"risk_mode": mode}
    constraints = _export(state, CONTEXTUAL, universe=[], context=context)
    limits = {r.limit for r in constraints.linear.rows if r.violation_type == "weight_bounds.max"}
    assert limits == {cap}
    assert ("stressed-gross" in constraints.policies) == (mode == "DEFENSIVE")
    w = _optimum(constraints, 12, state)
    _assert_accepted(_validate(constraints, state, CONTEXTUAL, w, context=context))


def test_a_context_the_policies_need_is_required() -> None:
    state = _fund(np.random.default_rng(12), above=0)
    with pytest.raises(PolicyResolutionError) as missing:
        _export(state, CONTEXTUAL, universe=[])
    assert "risk_mode" in missing.value.message


def test_lineage_adds_inherited_policies_and_the_default_benchmark() -> None:
    state = {**_fund(np.random.default_rng(13), above=0), "portfolio_id": "pf-1"}
    del state["benchmark"]
    symbols = [i["symbol"] for i in state["instruments"]]
    lineage = [
        PortfolioNode(portfolio_id="pf-1", name="Portfolio 1", parent_id="fund-a"),
        PortfolioNode(
            portfolio_id="fund-a",
            name="Fund A",
            benchmark={"name": "equal", "weights": {s: 1.0 / len(symbols) for s in symbols}},
        ),
    ]
    te = policy(
        "fund-te", {"kind": "tracking_error", "max": 0.05}, scope={"portfolios": ["fund-a"]}
    )
    body = {"portfolio_state": state, "policies": [te]}
    request = ConstraintSetRequest.model_validate(body)
    assert export_constraints(request).policies == []  # not registered: nothing inherited
    constraints = export_constraints(request, lineage=lineage)
    assert constraints.policies == ["fund-te"]
    (cone,) = constraints.cones
    matrix = np.zeros(cone.matrix.shape)
    matrix[cone.matrix.row, cone.matrix.col] = cone.matrix.val
    # The ancestor's benchmark is what the cone measures against: zero tracking error at b.
    b = np.full(len(symbols), 1.0 / len(symbols))
    assert np.linalg.norm(matrix @ b + cone.offset) == pytest.approx(0.0, abs=1e-12)
    assert np.linalg.norm(matrix @ np.array(constraints.variables.w0) + cone.offset) > 0.01
    with pytest.raises(PolicyResolutionError):
        export_constraints(request, lineage=lineage[1:])  # a chain that does not start at pf-1


def test_inline_expressions_are_checked_before_export() -> None:
    state = _fund(np.random.default_rng(14), above=0)
    concave = policy("bad", {"kind": "expression", "expr": "norm2(w) >= 0.1"})
    body = {"portfolio_state": state, "policies": [concave]}
    with pytest.raises(InputError) as refused:
        export_constraints(ConstraintSetRequest.model_validate(body))
    assert refused.value.field.startswith("policies[0]")

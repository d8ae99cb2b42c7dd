"""The separable QP solver: the chain's optimum on random supported layouts, None otherwise.

Drawn layouts (`tests.strategies.separable_problems`, which shrink to few names and rows)
mix every supported row: one-name caps, group sums bounded above and below,
per-name absolute limits, turnover and per-group gross sums (two kinks on a name). Each is
solved three ways: the separable solver, and cvxpy with Clarabel and HiGHS on a problem
written here independently of the engine's compile. Its multipliers are checked by strong
duality: minimizing the Lagrangian at them gives back the optimal distance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any
from unittest import mock

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings

from benchmarks.cases import build_case
from engine import PolicyEngine
from engine.adjust.adjuster import SEPARABLE
from engine.adjust.separable import dual as dual_module
from engine.adjust.separable import newton, qp
from engine.adjust.separable.dual import Dual
from engine.adjust.separable.fold import Box, Coupling
from engine.adjust.separable.newton import arc_search, epsilon_active, point_at
from engine.adjust.separable.qp import solve_separable
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.conic_blocks import NormBlock
from models.typing import FloatArray
from solvers import CLARABEL_DIRECT, ClarabelAdapter, HiGHSAdapter
from tests.builders import request
from tests.engine.adjust.test_adjust import CAP
from tests.engine.compile.test_kinds import BASE
from tests.strategies import SeparableProblem, many_coupling_problems, separable_problems

SETTINGS = {"CLARABEL": ClarabelAdapter.settings, "HIGHS": HiGHSAdapter.settings}
"""The engine's own settings for its solvers."""


@dataclass
class _Rows:
    block: Block
    sense: str


@dataclass
class _Snap:
    w0: FloatArray


@dataclass
class _Layout:
    """What the solver reads of a layout: the pre-trade weights and the row sets."""

    snap: _Snap
    rowsets: list[_Rows]


@dataclass
class _Case:
    layout: _Layout
    bounds: list[FloatArray]
    d: FloatArray
    lower: FloatArray
    upper: FloatArray
    columns: list[int] | None


def _membership(groups: list[int], count: int) -> FloatArray:
    member = np.array(groups)
    return np.array([(member == g).astype(float) for g in range(count)])


def _case(problem: SeparableProblem) -> _Case:
    """The solver's input for a drawn problem (see `tests.strategies.SeparableProblem`)."""
    w0, d, n = problem.w0, problem.d, len(problem.w0)
    rowsets: list[_Rows] = []
    bounds: list[FloatArray] = []

    def add(block: Block, sense: str, bound: FloatArray) -> None:
        rowsets.append(_Rows(block, sense))
        bounds.append(bound)

    caps = AffineBlock(np.eye(n), np.zeros(n))
    add(caps, "le", caps.values(w0) + problem.cap_slack)
    floors = AffineBlock(sp.identity(n, format="csr"), np.zeros(n))
    add(floors, "ge", floors.values(w0) - problem.floor_slack)
    groups = AffineBlock(_membership(problem.groups, len(problem.group_slack)), np.zeros(1))
    groups.c = np.zeros(groups.rows)
    add(groups, "le", groups.values(w0) + problem.group_slack)
    net = AffineBlock(problem.net.reshape(1, n), np.array([0.1]))
    add(net, "ge", net.values(w0) - problem.net_slack)
    add(AbsSumBlock(np.eye(n), -w0), "le", problem.trade_limit)  # per-name trade limits
    if problem.turnover is not None:
        turnover = AbsSumBlock(sp.identity(n, format="csr"), -w0, np.ones((1, n)))
        add(turnover, "le", np.array([problem.turnover * np.abs(d).sum()]))
    if problem.gross is not None:
        G = _membership(problem.gross, len(problem.gross_slack))
        k = np.zeros(len(problem.gross_slack))
        k[0] = 0.01
        gross = AbsSumBlock(np.eye(n), np.zeros(n), G, k)
        add(gross, "le", gross.values(w0) + problem.gross_slack)
    if problem.columns is not None:
        d = d[problem.columns]
        lower, upper = np.minimum(d, 0.0), np.maximum(d, 0.0)
    else:
        lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
    return _Case(_Layout(_Snap(w0), rowsets), bounds, d, lower, upper, problem.columns)


def _row_expression(rows: _Rows, w: Any) -> Any:
    block = rows.block
    dense = sp.csr_matrix(block.A).toarray()
    if isinstance(block, AffineBlock):
        return dense @ w + block.c
    assert isinstance(block, AbsSumBlock)
    terms = cp.abs(dense @ w + block.c)
    summed = terms if block.G is None else np.asarray(block.G) @ terms
    return summed + (0.0 if block.k is None else block.k)


def _weights(case: _Case, z: Any) -> Any:
    """The post-trade weights as a cvxpy expression of the problem's variable."""
    n = len(case.layout.snap.w0)
    if case.columns is None:
        return case.layout.snap.w0 + z
    picks = sp.csr_matrix(
        (np.ones(len(case.columns)), (case.columns, range(len(case.columns)))),
        shape=(n, len(case.columns)),
    )
    return case.layout.snap.w0 + picks @ z


def _quietly(problem: cp.Problem, solver: str) -> None:
    # cvxpy's bound propagation multiplies a zero coefficient by a free variable's infinite
    # bound here and warns about the nan; the bounds are not used by the solve.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        problem.solve(solver=solver, **SETTINGS[solver])


def _chain_solve(case: _Case, solver: str) -> tuple[str, FloatArray | None]:
    z = cp.Variable(len(case.d))
    w = _weights(case, z)
    constraints = [z >= case.lower, z <= case.upper] if case.columns is not None else []
    for rows, bound in zip(case.layout.rowsets, case.bounds, strict=True):
        value = _row_expression(rows, w)
        constraints.append(value <= bound if rows.sense == "le" else value >= bound)
    problem = cp.Problem(cp.Minimize(1e4 * cp.sum_squares(z - case.d)), constraints)
    _quietly(problem, solver)
    return problem.status, None if z.value is None else np.asarray(z.value)


def _lagrangian_minimum(case: _Case, duals: list[FloatArray]) -> tuple[float, float]:
    """The dual function at `duals`, and the relative accuracy of the solver that found it.

    That is the minimum over the box of 1/2 ||z - d||^2 + sum_r y_r (row_r - bound_r).
    """
    z = cp.Variable(len(case.d))
    w = _weights(case, z)
    penalty = 0.0
    for rows, bound, y in zip(case.layout.rowsets, case.bounds, duals, strict=True):
        excess = _row_expression(rows, w) - bound
        penalty += y @ (excess if rows.sense == "le" else -excess)
    constraints = [z >= case.lower, z <= case.upper] if case.columns is not None else []
    objective = 0.5 * cp.sum_squares(z - case.d) + penalty
    # Scaled as the engine scales its objective, for Clarabel's absolute tolerances.
    problem = cp.Problem(cp.Minimize(1e4 * objective), constraints)
    try:
        _quietly(problem, "HIGHS")
        accuracy = 1e-9
    except cp.SolverError:
        _quietly(problem, "CLARABEL")
        accuracy = 1e-6
    return float(problem.value) / 1e4, accuracy


def _solve(case: _Case) -> Any:
    indices = list(range(len(case.layout.rowsets)))
    return solve_separable(
        case.layout,  # type: ignore[arg-type]  # the solver reads w0 and the row sets only
        indices,
        case.bounds,
        case.d,
        case.lower,
        case.upper,
        case.columns,
    )


def _excess(case: _Case, x: FloatArray) -> float:
    """How far the point `x` (the traded names' moves) is outside its rows, at most; 0 inside."""
    w = np.asarray(_weights(case, x))
    worst = 0.0
    for rows, bound in zip(case.layout.rowsets, case.bounds, strict=True):
        excess = rows.block.values(w) - bound
        worst = max(worst, float((excess if rows.sense == "le" else -excess).max()))
    return worst


def _assert_optimal(problem: SeparableProblem) -> None:
    """The separable answer is feasible, as close as Clarabel's and HiGHS's, with exact duals."""
    case = _case(problem)
    solution = _solve(case)
    assert solution is not None  # not trading is always feasible
    z = solution.z
    distance = 0.5 * float(np.sum((z - case.d) ** 2))
    w = np.asarray(_weights(case, z))
    for rows, bound in zip(case.layout.rowsets, case.bounds, strict=True):
        excess = rows.block.values(w) - bound
        assert (excess if rows.sense == "le" else -excess).max() <= 1e-12
    if case.columns is not None:
        assert (case.lower <= z).all() and (z <= case.upper).all()
    # Never a worse distance than either solver's. Clarabel stops within its tolerances
    # (its point may differ by ~1e-6 where the distance is flat, and be a little outside);
    # HiGHS ends on an active set, where its point is the same to rounding, though it can
    # stop short of the optimum.
    status, interior = _chain_solve(case, "CLARABEL")
    assert status == cp.OPTIMAL and interior is not None
    clarabel = 0.5 * float(np.sum((interior - case.d) ** 2))
    # A point outside the rows by e is at most about e from the feasible set, so its
    # distance can be lower by up to ||x - d|| * e: allowed, with a generous factor n.
    outside = np.linalg.norm(interior - case.d) * _excess(case, interior) * len(case.d)
    assert distance <= clarabel * (1 + 1e-7) + outside + 1e-15
    assert distance == pytest.approx(clarabel, rel=1e-6, abs=outside + 1e-12)
    try:
        status, exact = _chain_solve(case, "HIGHS")
    except cp.SolverError:  # HiGHS fails on a few of these problems; the chain moves on too
        exact = None
    # HiGHS has answered "optimal" with a point outside a row by 1e-4 (a 9-name problem
    # of 1e-4-sized slacks): such a point bounds nothing, and is not compared.
    if exact is not None and _excess(case, exact) <= 1e-9:
        highs = 0.5 * float(np.sum((exact - case.d) ** 2))
        assert distance <= highs * (1 + 1e-9) + 1e-15
        if distance >= highs * (1 - 1e-9):
            np.testing.assert_allclose(z, exact, atol=1e-7)
    # Strong duality: at the multipliers the Lagrangian's minimum is the optimal distance.
    assert all((y >= 0).all() for y in solution.duals)
    dual_value, accuracy = _lagrangian_minimum(case, solution.duals)
    assert dual_value == pytest.approx(distance, rel=accuracy, abs=1e-14)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=separable_problems())
def test_the_optimum_of_clarabel_and_highs_with_dual_multipliers(
    problem: SeparableProblem,
) -> None:
    _assert_optimal(problem)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=many_coupling_problems())
def test_many_coupling_groups(problem: SeparableProblem) -> None:
    # A gross limit per group over many groups: many coupling rows, multipliers that leave
    # zero and come back to it (the rows at their pre-trade value).
    _assert_optimal(problem)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=many_coupling_problems())
def test_many_coupling_groups_through_sparse_matrices(problem: SeparableProblem) -> None:
    # The drawn problems are small enough for dense matrices; large ones (thousands of
    # names or hundreds of rows) take the sparse path, forced here on the same problems.
    with mock.patch.object(dual_module, "DENSE_ENTRIES", 0):
        _assert_optimal(problem)


def test_rows_outside_its_kind_are_left_to_the_chain() -> None:
    n = 4
    w0 = np.full(n, 0.2)
    d = np.array([0.1, -0.1, 0.05, 0.0])
    free = np.full(n, np.inf)
    cone = NormBlock(sp.identity(n, format="csr"), np.zeros(n), 0.1 * np.eye(n), None)
    pair = AbsSumBlock(np.array([[1.0, -1.0, 0.0, 0.0]]), np.zeros(1))  # |w_0 - w_1|
    affine = AffineBlock(np.ones((1, n)), np.zeros(1))
    for block in (cone, pair):
        layout = _Layout(_Snap(w0), [_Rows(affine, "le"), _Rows(block, "le")])
        bounds = [np.array([1.0]), block.values(w0) + 0.01]
        case = _Case(layout, bounds, d, -free, free, None)
        assert _solve(case) is None
    # An absolute value bounded below is not convex: never solved here either.
    layout = _Layout(_Snap(w0), [_Rows(AbsSumBlock(np.eye(n), -w0), "ge")])
    assert _solve(_Case(layout, [np.zeros(n)], d, -free, free, None)) is None


@settings(max_examples=10, deadline=None)
@given(problem=separable_problems())
def test_an_infeasible_problem_gets_no_answer(problem: SeparableProblem) -> None:
    problem.columns = None  # the whole space: any weight may move
    case = _case(problem)
    n = len(case.layout.snap.w0)
    # Every weight at most 0.01 below its pre-trade value, yet their sum 0.1 above.
    caps = AffineBlock(np.eye(n), np.zeros(n))
    total = AffineBlock(np.ones((1, n)), np.zeros(1))
    case.layout.rowsets += [_Rows(caps, "le"), _Rows(total, "ge")]
    case.bounds += [case.layout.snap.w0 - 0.01, total.values(case.layout.snap.w0) + 0.1]
    assert _chain_solve(case, "CLARABEL")[0] == cp.INFEASIBLE
    assert _solve(case) is None


@pytest.fixture(scope="module")
def engines() -> tuple[PolicyEngine, PolicyEngine]:
    """One engine with the separable solver first, one with the solver chain alone."""
    alone = PolicyEngine()
    alone.adjuster.fast.separable = False
    return PolicyEngine(), alone


@pytest.mark.parametrize("adjustment", ["project", "scale_back"])
@pytest.mark.parametrize("policy_set", ["base", "twenty"])
def test_the_engine_answers_as_with_the_chain_alone(
    engines: tuple[PolicyEngine, PolicyEngine], policy_set: str, adjustment: str
) -> None:
    case = build_case(80)
    policies = case.policies[policy_set]
    fast, alone = engines
    answered, priced = [], 0
    for i in range(3):
        req = case.request(i, policy_set=policy_set, mode="adjust", adjustment=adjustment)
        ours, theirs = fast.validate(req, policies), alone.validate(req, policies)
        mine, chain = ours.adjusted_decision, theirs.adjusted_decision
        assert (mine is None) == (chain is None)
        if mine is None or chain is None:
            continue
        answered.append(mine.solver)
        assert mine.is_compliant == chain.is_compliant
        same_trades = [t.model_dump() for t in mine.trades] == [
            t.model_dump() for t in chain.trades
        ]
        assert same_trades or mine.distance == pytest.approx(chain.distance, rel=1e-9, abs=1e-12)
        # The same rows bind at the continuous optimum, at the same price.
        prices = {(b.policy_name, b.subject): b.shadow_price for b in chain.binding}
        for b in mine.binding:
            if abs(b.shadow_price) > 1e-6 and (b.policy_name, b.subject) in prices:
                assert b.shadow_price == pytest.approx(prices[b.policy_name, b.subject], rel=1e-3)
                priced += 1
    assert SEPARABLE in answered
    assert priced


def test_an_answer_the_check_rejects_goes_to_the_chain() -> None:
    engine = PolicyEngine()
    verify = engine.adjuster._verify
    rejected: list[str] = []

    def reject_the_first(*args: Any) -> str | None:
        if not rejected:
            rejected.append("first")
            return "rejected for the test"
        return verify(*args)

    engine.adjuster._verify = reject_the_first  # type: ignore[method-assign]
    body = request(BASE, [("AAA", "BUY", 100)], cash=30_000, policies=[CAP])
    adjusted = engine.validate(body).adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    attempts = [(a.solver, a.status) for a in adjusted.solver_attempts]
    # The next solver is Clarabel on the problem assembled directly (no cvxpy).
    assert attempts == [(SEPARABLE, "inaccurate"), (CLARABEL_DIRECT, "optimal")]
    assert adjusted.solver == CLARABEL_DIRECT


def _one_row_dual() -> Dual:
    """`min 1/2 ||z - (1, 1)||^2` s.t. `z_0 + z_1 <= 0`: at y = 0 the row is 2 over its bound."""
    free = np.full(2, np.inf)
    coupling = Coupling(
        aff_rows=[(0, np.array([0]))],
        aff_matrices=[sp.csr_matrix(np.array([[1.0, 1.0]]))],
        aff_bounds=[np.array([0.0])],
    )
    return Dual(np.array([1.0, 1.0]), Box(-free, free), coupling)


def test_a_row_near_zero_that_the_gradient_pushes_down_is_active() -> None:
    # Row 0's multiplier is barely positive and its gradient pushes it down: inside the
    # margin (the scaled residual, 0.2 from row 1), it takes a gradient step to zero instead
    # of a Newton step that ignores the bound. Row 1 rises; row 2 sits at zero, pushed down.
    y = np.array([1e-9, 0.5, 0.0])
    gradient = np.array([-1e-3, 0.2, -1.0])
    active = epsilon_active(y, gradient, np.ones(3))
    assert active.tolist() == [True, False, True]
    # At the maximizer the margin is 0: exactly the rows held at zero.
    assert epsilon_active(np.array([0.3, 0.0]), np.array([0.0, -1.0]), np.ones(2)).tolist() == [
        False,
        True,
    ]


def test_a_step_that_does_not_rise_is_rejected() -> None:
    dual = _one_row_dual()
    at = point_at(dual, np.zeros(1))
    gradient = at.values - dual.b
    assert gradient.tolist() == [2.0]
    newton = np.ones(1, dtype=bool)
    # Downhill, or held by the bound: no rise predicted, no step.
    assert arc_search(dual, at, gradient, np.array([-1.0]), newton) is None
    assert arc_search(dual, at, gradient, np.array([-1.0]), ~newton) is None
    # Uphill: the full step, to the optimum (y = 1, z = 0), where the dual has risen to 1.
    found = arc_search(dual, at, gradient, np.array([1.0]), newton)
    assert found is not None and found.q > at.q
    assert found.y.tolist() == [1.0] and found.z.tolist() == [0.0, 0.0]


def test_above_the_handover_work_the_chain_answers(
    engines: tuple[PolicyEngine, PolicyEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = build_case(80)
    req = case.request(0, policy_set="base", mode="adjust", adjustment="project")
    policies = case.policies["base"]
    fast, alone = engines
    assert fast.validate(req, policies).adjusted_decision.solver == SEPARABLE  # type: ignore[union-attr]
    monkeypatch.setattr(qp, "HANDOVER_WORK", 0.0)
    ours = fast.validate(req, policies).adjusted_decision
    chain = alone.validate(req, policies).adjusted_decision
    assert ours is not None and chain is not None
    assert [a.solver for a in ours.solver_attempts] == [a.solver for a in chain.solver_attempts]
    assert ours.distance == chain.distance


def test_when_the_solver_gives_up_the_chain_answers(
    engines: tuple[PolicyEngine, PolicyEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(newton, "MAX_ITERATIONS", 1)  # no certificate after one iteration
    case = build_case(80)
    fast, alone = engines
    for adjustment in ("project", "scale_back"):
        req = case.request(1, policy_set="twenty", mode="adjust", adjustment=adjustment)
        ours = fast.validate(req, case.policies["twenty"]).adjusted_decision
        chain = alone.validate(req, case.policies["twenty"]).adjusted_decision
        assert ours is not None and chain is not None
        assert ours.solver == chain.solver != SEPARABLE
        assert ours.distance == chain.distance

"""The direct solvers of assembled cone data: answers, statuses, resident solvers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from solvers import ConicData, DirectClarabel, DirectOSQP, SolveStatus


def _qp(target: tuple[float, float], cap: float = 0.5) -> ConicData:
    """min ||x - target||^2 with x_i <= cap, and x_0 + x_1 = 0.6 (a zero cone)."""
    P = sp.csc_matrix(2.0 * np.eye(2))
    q = -2.0 * np.asarray(target, dtype=float)
    A = sp.csc_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    b = np.array([0.6, cap, cap])
    return ConicData(P, q, A, b, [("zero", 1), ("nonneg", 2)])


@pytest.mark.parametrize("solver", [DirectClarabel(), DirectOSQP()], ids=lambda s: s.name)
def test_a_qp_is_solved_and_resolved_in_place(solver: DirectClarabel | DirectOSQP) -> None:
    for target, expected in (((0.7, 0.1), (0.5, 0.1)), ((0.1, 0.1), (0.3, 0.3))):
        solved = solver.solve(_qp(target), key="qp")
        assert solved.outcome.status is SolveStatus.OPTIMAL
        assert solved.x is not None and solved.z is not None
        np.testing.assert_allclose(solved.x, expected, atol=1e-7)
    # The cap on x_0 binds in the first case: its multiplier is 2 (x_0 - 0.7) + y = 0 ...
    first = solver.solve(_qp((0.7, 0.1)), key="qp")
    assert first.z is not None and first.z[1] > 0.1


def test_osqp_leaves_a_cone_to_the_chain() -> None:
    data = _qp((0.7, 0.1))
    data.cones = [("zero", 1), ("soc", 2)]
    solved = DirectOSQP().solve(data)
    assert solved.outcome.status is SolveStatus.ERROR and solved.x is None


def test_clarabel_reports_infeasibility() -> None:
    solved = DirectClarabel().solve(_qp((0.7, 0.1), cap=0.2))  # x_0 + x_1 = 0.6, each <= 0.2
    assert solved.outcome.status is SolveStatus.INFEASIBLE


def test_a_changed_pattern_sets_the_solver_up_again() -> None:
    solver = DirectClarabel()
    solver.solve(_qp((0.7, 0.1)), key="k")
    wider = _qp((0.7, 0.1))
    wider.A = sp.csc_matrix(np.array([[1.0, 1.0], [1.0, 0.5], [0.0, 1.0]]))
    solved = solver.solve(wider, key="k")
    assert solved.outcome.status is SolveStatus.OPTIMAL
    assert solved.x is not None
    assert solved.x[0] + 0.5 * solved.x[1] <= 0.5 + 1e-7


def _badly_scaled(seed: int, scale: float) -> ConicData:
    """A QP with a second-order cone whose data's magnitudes depend on `scale`."""
    rng = np.random.default_rng(seed)
    n = 6
    P = sp.csc_matrix(np.diag(rng.uniform(0.5, 2.0, n) * scale))
    q = rng.normal(size=n) * scale * 1e3
    rows = np.vstack([np.ones(n), np.eye(n), np.zeros(n), rng.normal(size=(n, n)) * scale])
    A = sp.csc_matrix(rows)
    b = np.concatenate([[1.0], np.full(n, 0.6), [2.0 * scale], np.zeros(n)])
    return ConicData(P, q, A, b, [("zero", 1), ("nonneg", n), ("soc", n + 1)])


def test_a_resident_solver_answers_as_a_fresh_one_whatever_it_solved_before() -> None:
    """The answer depends on the problem alone: not on the one that set the solver up.

    Clarabel scales the data when it builds a solver and scales updates the same way, so
    a resident solver built for other numbers answers (slightly) differently; a solve
    must give bit for bit the answer a fresh solver gives.
    """
    for seed in range(5):
        target = _badly_scaled(seed, 1.0)
        fresh = DirectClarabel().solve(target)
        assert fresh.outcome.status is SolveStatus.OPTIMAL and fresh.x is not None
        for before in (_badly_scaled(seed + 100, 1.0), _badly_scaled(seed, 30.0)):
            solver = DirectClarabel()
            solver.solve(before, key="k")
            again = solver.solve(target, key="k")
            assert again.x is not None
            np.testing.assert_array_equal(again.x, fresh.x)


@pytest.mark.parametrize("request_index", [19, 93])
def test_an_almost_solved_problem_is_retried_with_clarabels_regularization(
    request_index: int,
) -> None:
    # Requests 19 and 93 of the benchmark's case at n = 1000 (project, volatility and
    # tracking error): with the engine's light regularization Clarabel ends them "almost
    # solved"; the retry solves them, where the cvxpy chain took four or five times as long.
    from benchmarks.cases import build_case
    from engine import PolicyEngine
    from models import PolicyValidationRequest

    case = build_case(1000)
    body = case.body(
        request_index, policy_set="cones20", mode="adjust", adjustment="project", traded="varying"
    )
    request = PolicyValidationRequest.model_validate(body)

    def whole_problem() -> PolicyEngine:
        # The whole conic solve, as the benchmark's requests took it when this was found
        # (not the relaxation or a working set of names, engine/adjust/screening.py).
        engine = PolicyEngine()
        engine.adjuster.fast.relax_cones = False
        engine.adjuster.fast.screening = False
        return engine

    response = whole_problem().validate(request, case.policies["cones20"])
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    (attempt,) = adjusted.solver_attempts
    assert attempt.solver == DirectClarabel.name and attempt.status == "optimal"
    assert attempt.message == "AlmostSolved, then Solved with Clarabel's regularization"
    # The same request in a fresh engine: the same answer (the retry's solver is its own).
    again = whole_problem().validate(request, case.policies["cones20"]).adjusted_decision
    assert again is not None and again.trades == adjusted.trades

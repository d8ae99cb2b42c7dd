"""The peers solve the engine's baseline `project` QP; the by-reference check path is exact.

No test here asserts a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.baselines import ENGINE_OSQP_SETTINGS, ClarabelDirect, OSQPDirect
from benchmarks.cases import STYLE_FACTORS, build_case
from benchmarks.measure import RegisteredUniverse
from benchmarks.peer_cvxportfolio import CvxportfolioPeer
from benchmarks.peers import ProjectQPs
from engine import PolicyEngine
from engine.resolve.references import resolve_references
from models import PolicyValidationRequest

REQUESTS = 4


@pytest.fixture(scope="module")
def qps() -> ProjectQPs:
    return ProjectQPs(build_case(40))


def test_cvxportfolio_compiled_once_finds_the_conic_floors_answers(qps: ProjectQPs) -> None:
    floor = ClarabelDirect(qps[0])
    peer = CvxportfolioPeer([qps[i] for i in range(REQUESTS)], qps.symbols(), "CLARABEL")
    problem = peer.policy._problem
    for i in range(REQUESTS):
        expected = floor.solve(qps[i])
        got = peer.solve(i)
        assert peer.policy._problem is problem  # never recompiled
        assert got.status == "CLARABEL: optimal"
        assert qps[i].max_violation(got.w) < 1e-9
        np.testing.assert_allclose(got.w, expected.w, atol=1e-6)


def test_the_floors_agree_on_every_request(qps: ProjectQPs) -> None:
    conic = ClarabelDirect(qps[0])
    osqp = OSQPDirect(qps[0], ENGINE_OSQP_SETTINGS)
    for i in range(REQUESTS):
        a, b = conic.solve(qps[i]), osqp.solve(qps[i])
        assert a.status == "Solved" and b.status == "solved"
        assert qps[i].max_violation(a.w) < 1e-9 and qps[i].max_violation(b.w) < 1e-9
        assert qps[i].distance(a.w) == pytest.approx(qps[i].distance(b.w), rel=1e-6)


def test_the_default_solver_peer_reports_its_solver(qps: ProjectQPs) -> None:
    peer = CvxportfolioPeer([qps[0]], qps.symbols(), None)
    solution = peer.solve(0)
    assert solution.status.split(":")[0] in {"OSQP", "CLARABEL", "SCS", "ECOS"}
    assert qps[0].max_violation(solution.w) < 1e-4


def test_a_request_by_reference_gets_the_inline_answer() -> None:
    case = build_case(30)
    source = RegisteredUniverse(case)
    policies = case.policies["twenty"]
    engine = PolicyEngine()
    for i in range(3):
        body = case.body(i, policy_set="twenty", mode="validate", traded="varying")
        inline = engine.validate(PolicyValidationRequest.model_validate(body), policies)
        request = PolicyValidationRequest.model_validate(source.by_reference(body))
        assert request.portfolio_state.instruments == []
        resolution = resolve_references(request.portfolio_state, source)
        assert resolution.key is not None
        resolved = request.model_copy(update={"portfolio_state": resolution.state})
        answer = engine.validate(resolved, policies, reference=resolution.key)
        assert answer.is_compliant == inline.is_compliant
        assert answer.violations == inline.violations


def test_the_20_factor_model_has_a_factor_per_sector_and_the_styles() -> None:
    case = build_case(200)
    assert case.wide_model is not None
    assert case.wide_model.loadings.shape == (200, len(case.sectors) + len(STYLE_FACTORS))
    assert case.wide_model.loadings.shape[1] == 20
    body = case.body(0, policy_set="cones20", mode="adjust")
    row = next(iter(body["portfolio_state"]["risk_model"]["factor_loadings"].values()))
    assert len(row) == 20
    limits = {p.policy_name: p for p in case.policies["cones20"]}
    assert {"volatility-limit", "tracking-error-limit"} <= set(limits)

"""Holding the batch checker to the single-request checker on one request's universe."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.batch import BatchChecker, BatchResult
from engine.check.checker import check
from engine.compile.layout import LayoutCache
from engine.compile.prepared import Prepared, prepare
from engine.report import violations_of
from models import PolicyValidationRequest, Violation

Key = tuple[str, str, str | None, bool]


def batch_for(prepared: Prepared, backend: str) -> BatchChecker:
    """A batch checker over every instrument of the request, its effective policies, data."""
    request, snap = prepared.request, prepared.snapshot
    state = request.portfolio_state
    return BatchChecker(
        prepared.policies,
        state.instruments,
        benchmark=state.benchmark,
        risk_model=state.risk_model,
        scenarios=state.scenarios,
        nav=snap.nav,
        portfolio_id=request.decision.portfolio_id,
        context=request.context,
        backend=backend,  # type: ignore[arg-type]
    )


def single(prepared: Prepared, w: np.ndarray, *, cure_passive: bool) -> list[Violation]:
    """The single-request checker's violations at weights `w` (the request's pre-trade)."""
    result = check(prepared.layout, w, cure_passive=cure_passive)
    return violations_of(result, prepared.snapshot, None, cure_passive=cure_passive)


def keys(violations: list[Violation]) -> dict[Key, float]:
    """Each violation's (policy, type, subject, active) and its observed value."""
    return {
        (v.policy_name, v.violation_type, v.subject, v.breach.value == "active"): v.observed
        for v in violations
    }


def batch_keys(result: BatchResult, k: int) -> dict[Key, float]:
    """The same for the k-th vector of a batch."""
    return {
        (label.policy_name, label.violation_type, label.subject, active): observed
        for label, observed, active in result.breached_rows(k)
    }


def vectors(prepared: Prepared, rng: np.random.Generator, extra: int) -> np.ndarray:
    """The proposal, the pre-trade weights, and `extra` random points near and between them."""
    snap = prepared.snapshot
    w0, w_hat = snap.w0, snap.w_hat
    out = [w_hat, w0]
    for _ in range(extra):
        a = rng.uniform(-0.5, 1.5)
        out.append(w0 + a * (w_hat - w0) + rng.normal(0.0, 0.01, snap.n) * (rng.random() < 0.5))
    return np.array(out)


def assert_agrees(
    request: PolicyValidationRequest,
    policies: list[Any],
    *,
    seed: int = 0,
    extra: int = 6,
    backends: tuple[str, ...] = ("jax", "numpy"),
) -> list[BatchResult]:
    """Batch and single-request checks agree on every vector: breaches, values, verdicts.

    The single request's universe is extended to every instrument (`include`, as capacity
    and the export do), the batch's columns.
    """
    universe = [i.symbol for i in request.portfolio_state.instruments]
    prepared = prepare(LayoutCache(), request, policies, include=universe)
    W = vectors(prepared, np.random.default_rng(seed), extra)
    w0 = prepared.snapshot.w0
    cure = request.cure_passive
    results = []
    for name in backends:
        checker = batch_for(prepared, name)
        assert checker.symbols == prepared.snapshot.symbols
        result = checker.check(W, pre_trade=w0, cure_passive=cure)
        for k, w in enumerate(W):
            expected = single(prepared, w, cure_passive=cure)
            found = batch_keys(result, k)
            assert set(found) == set(keys(expected)), (name, k)
            for key, observed in keys(expected).items():
                assert abs(found[key] - observed) <= 1e-9, (name, k, key)
            strict_blocking = any(
                v.enforcement_level.value == "strict" and (cure or v.breach.value == "active")
                for v in expected
            )
            assert bool(result.is_compliant[k]) == (not strict_blocking), (name, k)
            assert result.violations(k) == expected
        results.append(result)
    if len(results) == 2:
        assert_same(*results)
    return results


def assert_same(a: BatchResult, b: BatchResult) -> None:
    """Two backends' answers: identical verdicts and breaches, values to float rounding."""
    assert np.array_equal(a.is_compliant, b.is_compliant)
    assert np.array_equal(a.breach_vector, b.breach_vector)
    assert np.array_equal(a.breach_row, b.breach_row)
    assert np.array_equal(a.active, b.active)
    assert np.allclose(a.observed, b.observed, rtol=0, atol=1e-12)

"""Cases shared by the tests that compare two roundings: kinds, layouts, continuous trades."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from benchmarks.cases import PolicySet, build_case
from engine.compile.layout import Layout, build_layout
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import Snapshot, snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray
from tests.strategies import random_case

__all__ = [
    "LINEAR_KINDS",
    "NORM_KINDS",
    "benchmark_layouts",
    "continuous_trades",
    "random_layout",
]

LINEAR_KINDS = (
    "weight_bounds",
    "group_limit",
    "cash",
    "turnover",
    "gross_exposure",
    "net_exposure",
    "exposure",
    "trade_limit",
)
"""Policy kinds whose rows the sweep and the row repair take as linear rows."""
NORM_KINDS = ("volatility", "tracking_error", "var")
"""Policy kinds whose rows they take as capped norms."""


def random_layout(seed: int) -> Layout:
    """The solver layout of a random case with linear rows and capped norms, mixed lots."""
    body, raw = random_case(
        np.random.default_rng(seed), kinds=LINEAR_KINDS + NORM_KINDS, lot_mode="mixed"
    )
    request = PolicyValidationRequest.model_validate(body)
    policies = [PolicyDefinition.model_validate(p) for p in raw]
    snap = snapshot_of(request)
    return build_layout(effective_policies(request, policies), request, snap).for_solver()


def benchmark_layouts(
    policy_set: PolicySet, count: int, n: int = 200
) -> Iterator[tuple[int, Snapshot, Layout]]:
    """(i, snapshot, solver layout) of the first `count` project requests, names varying."""
    case = build_case(n)
    for i in range(count):
        request = case.request(
            i, policy_set=policy_set, mode="adjust", adjustment="project", traded="varying"
        )
        snap = snapshot_of(request)
        yield i, snap, build_layout(case.policies[policy_set], request, snap).for_solver()


def continuous_trades(layout: Layout, rng: np.random.Generator, *, shrink_only: bool) -> FloatArray:
    """Random continuous trades around the request's, a few lots off (within them if shrinking)."""
    snap = layout.snap
    lots = np.where(snap.lots > 0, snap.lots, 1.0)
    t = snap.t * rng.uniform(0.2, 1.0, snap.n) + rng.uniform(-3, 3, snap.n) * lots
    if shrink_only:
        t = np.clip(np.abs(t), 0, np.abs(snap.t)) * np.sign(snap.t)
    return t

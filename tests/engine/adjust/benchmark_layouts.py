"""The benchmark's project requests as solver layouts, for tests that compare two roundings."""

from __future__ import annotations

from collections.abc import Iterator

from benchmarks.cases import PolicySet, build_case
from engine.compile.layout import Layout, build_layout
from engine.weights.portfolio import Snapshot, snapshot_of

__all__ = ["benchmark_layouts"]


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

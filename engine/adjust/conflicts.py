"""Which strict policies conflict, when no compliant decision exists.

An elastic solve (every row may be violated at a cost equal to the violation) points at the
rows a cure cannot satisfy together: the ones that need slack or price it (non-zero dual).
Their policies are then pruned by a deletion filter - drop a policy, and if the rest still
has no solution it was not needed - which leaves an irreducible conflicting set: removing
any one of its policies makes the problem feasible.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from engine.adjust.bounds import solve_bounds
from engine.adjust.problems import ProblemCache, fixed_rows_infeasible
from engine.compile.layout import Layout
from engine.deadline import NO_DEADLINE, Deadline
from engine.tolerances import CONFLICT_SUPPORT
from solvers import SolverChain, SolveStatus

__all__ = ["find_conflicts"]


def _policy_of(layout: Layout, k: int) -> str:
    provenance = layout.rowsets[k].provenance
    assert provenance is not None
    return provenance.policy_name


def find_conflicts(
    layout: Layout,
    *,
    space: Literal["scale_back", "project"],
    cure_passive: bool,
    cache: ProblemCache,
    chain: SolverChain,
    deadline: Deadline = NO_DEADLINE,
) -> list[str]:
    """An irreducible set of strict policies that cannot hold together in `space`.

    Raises `DeadlineExceeded` (or `RequestCancelled`) when `deadline` passes between
    solves: a set found in part would not be irreducible.
    """
    strict = layout.strict()

    def feasible(names: set[str]) -> bool:
        deadline.check("the conflict search")
        indices = [k for k in strict if _policy_of(layout, k) in names]
        if not indices:
            return True
        compiled = cache.get_problem(space, layout, indices)
        compiled.fill(
            layout, indices, [solve_bounds(layout, k, cure_passive=cure_passive) for k in indices]
        )
        result = fixed_rows_infeasible(compiled) or chain.solve(
            compiled.problem, needs_socp=compiled.needs_socp, time_left=deadline.time_left
        )
        # An undecided solve counts as feasible, which keeps the policy in the set.
        return result.status is not SolveStatus.INFEASIBLE

    candidates = {_policy_of(layout, k) for k in strict}
    support = (
        _elastic_support(
            layout, strict, cure_passive=cure_passive, cache=cache, chain=chain, deadline=deadline
        )
        if space == "project"
        else set()
    )
    if support and not feasible(support):
        candidates = support
    kept = sorted(candidates)
    for name in list(kept):
        trial = [n for n in kept if n != name]
        if not feasible(set(trial)):
            kept = trial
    return kept


def _elastic_support(
    layout: Layout,
    strict: list[int],
    *,
    cure_passive: bool,
    cache: ProblemCache,
    chain: SolverChain,
    deadline: Deadline,
) -> set[str]:
    """Policies whose rows need slack, or price it, in the elastic problem."""
    deadline.check("the conflict search")
    compiled = cache.get_problem("elastic", layout, strict)
    compiled.fill(
        layout, strict, [solve_bounds(layout, k, cure_passive=cure_passive) for k in strict]
    )
    result = chain.solve(
        compiled.problem, needs_socp=compiled.needs_socp, time_left=deadline.time_left
    )
    if not result.optimal:
        return set()
    support = set()
    for k, slack, row in zip(strict, compiled.slacks, compiled.row_constraints, strict=True):
        assert row is not None  # the elastic problem keeps every row
        used = np.atleast_1d(np.asarray(slack.value if slack.value is not None else 0.0))
        priced = np.atleast_1d(np.asarray(row.dual_value if row.dual_value is not None else 0.0))
        if (used > CONFLICT_SUPPORT).any() or (priced > CONFLICT_SUPPORT).any():
            support.add(_policy_of(layout, k))
    return support

"""The benchmark's paths: the engine's (this module) and the peers' (`benchmarks.peers`).

Every path runs requests `0, 1, 2, ...` of the same case, so all paths see the same
generated decisions. Requests are built (and validated by pydantic) before the clock
starts: the engine paths time `PolicyEngine.validate` alone, or, for a request naming a
registered universe, `resolve_references` (against an in-memory source holding the case's
universe, as the service's reference cache would) plus `validate` with the resolution's
key; the peers time their own build (naive cvxpy) or parameter update, and solve. The
loop, the time limit and the summaries are in `benchmarks.timing`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from benchmarks.cases import Case, Traded
from benchmarks.peers import PEER_PATHS, ProjectQPs, measure_peer
from benchmarks.policies import PolicySet
from benchmarks.timing import Budget, PathResult, Progress, loop, settle_heap, stderr_progress
from engine import PolicyEngine
from engine.resolve.references import (
    FxSnapshotData,
    ReferenceNotFound,
    RiskModelData,
    UniverseData,
    resolve_references,
)
from models import DataReference, PolicyValidationRequest

__all__ = [
    "DEFAULT_PATHS",
    "ENGINE_PATHS",
    "PATHS",
    "PEER_PATHS",
    "Budget",
    "EnginePath",
    "PathResult",
    "ProjectQPs",
    "RegisteredUniverse",
    "measure",
    "stderr_progress",
]


@dataclass(frozen=True)
class EnginePath:
    """An engine path: policy set, mode, adjustment method, which names are traded, and
    whether the request names a registered universe (resolved in process) or is inline."""

    name: str
    policy_set: PolicySet
    mode: str
    adjustment: str
    description: str
    traded: Traded = "varying"
    by_reference: bool = False


def _engine_paths(traded: Traded, suffix: str) -> tuple[EnginePath, ...]:
    names = "the same 20 names in every request" if traded == "fixed" else "20 names drawn anew"
    cones = "baseline + volatility + tracking error (20-factor model)"
    return (
        EnginePath(
            f"engine_check{suffix}",
            "twenty",
            "validate",
            "auto",
            f"engine, check only, 20 policies, universe by reference; {names}",
            traded,
            by_reference=True,
        ),
        EnginePath(
            f"engine_scale_back{suffix}",
            "base",
            "adjust",
            "scale_back",
            f"engine, adjust scale_back, baseline; {names}",
            traded,
        ),
        EnginePath(
            f"engine_project{suffix}",
            "base",
            "adjust",
            "project",
            f"engine, adjust project, baseline; {names}",
            traded,
        ),
        EnginePath(
            f"engine_scale_back_cones{suffix}",
            "cones20",
            "adjust",
            "scale_back",
            f"engine, adjust scale_back, {cones}; {names}",
            traded,
        ),
        EnginePath(
            f"engine_project_cones{suffix}",
            "cones20",
            "adjust",
            "project",
            f"engine, adjust project, {cones}; {names}",
            traded,
        ),
    )


ENGINE_PATHS = _engine_paths("varying", "") + _engine_paths("fixed", "_fixed")
"""The main table's paths (20 names drawn anew per request), then the fixed-set ones."""

PATHS: dict[str, str] = {p.name: p.description for p in ENGINE_PATHS} | PEER_PATHS
DEFAULT_PATHS = tuple(p for p in PATHS if p != "osqp_direct_tight")
"""What a run measures unless `--paths` says otherwise (`osqp_direct_tight` on request)."""


class RegisteredUniverse:
    """An in-memory `ReferenceSource` holding the case's universe (request 0's instruments).

    `by_reference(body)` turns a request body into the form that names the universe
    (`portfolio_state.universe`) and sends only the request's `prices`; the static fields
    of every instrument are the same in every request of a case, so they are registered
    once.
    """

    def __init__(self, case: Case) -> None:
        self.id = f"bench-{case.n}"
        first = PolicyValidationRequest.model_validate(
            case.body(0, policy_set="twenty", mode="validate")
        )
        self.data = UniverseData(self.id, 1, tuple(first.portfolio_state.instruments))

    def universe(self, ref: DataReference) -> UniverseData:
        if ref.id != self.id:
            raise ReferenceNotFound("id", f"no universe {ref.id!r}")
        if ref.version not in (None, self.data.version):
            raise ReferenceNotFound("version", f"no version {ref.version} of {ref.id!r}")
        return self.data

    def risk_model(self, ref: DataReference) -> RiskModelData:
        raise ReferenceNotFound("id", f"no risk model {ref.id!r} (none registered)")

    def fx_snapshot(self, ref: DataReference) -> FxSnapshotData:
        raise ReferenceNotFound("id", f"no FX snapshot {ref.id!r} (none registered)")

    def by_reference(self, body: dict[str, Any]) -> dict[str, Any]:
        state = body["portfolio_state"]
        instruments = state.pop("instruments")
        state["universe"] = {"id": self.id}
        state["prices"] = {inst["symbol"]: inst["price"] for inst in instruments}
        return body


def _engine(case: Case, path: EnginePath, budget: Budget, progress: Progress) -> PathResult:
    engine = PolicyEngine()
    source = RegisteredUniverse(case) if path.by_reference else None
    policies = case.policies[path.policy_set]
    result = PathResult(path.name, case.n)
    counts: Counter[str] = Counter()
    solvers: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    attempt_seconds: dict[str, float] = {}
    before = engine.cache_stats()

    def run_one(i: int, timed: bool) -> float | None:
        nonlocal before
        body = case.body(
            i,
            policy_set=path.policy_set,
            mode=path.mode,
            adjustment=path.adjustment,
            traded=path.traded,
        )
        if source is not None:
            body = source.by_reference(body)
        request = PolicyValidationRequest.model_validate(body)
        if timed and not result.samples_ms:
            before = engine.cache_stats()  # cache counters from the first timed request on
        settle_heap()
        start = time.perf_counter()
        if source is None:
            response = engine.validate(request, policies)
        else:
            resolution = resolve_references(request.portfolio_state, source)
            resolved = request.model_copy(update={"portfolio_state": resolution.state})
            references = 1000 * (time.perf_counter() - start)
            response = engine.validate(resolved, policies, reference=resolution.key)
        elapsed = 1000 * (time.perf_counter() - start)
        if not timed:
            return None
        result.samples_ms.append(elapsed)
        if source is not None:
            result.stages_ms.setdefault("references", []).append(references)
        for stage, ms in response.timings_ms.items():
            result.stages_ms.setdefault(stage, []).append(ms)
        counts["compliant" if response.is_compliant else "not_compliant"] += 1
        adjusted = response.adjusted_decision
        if adjusted is not None:
            counts["adjusted"] += 1
            counts["adjusted_compliant"] += int(adjusted.is_compliant)
            solvers[adjusted.solver] += 1
            for attempt in adjusted.solver_attempts:
                key = f"{attempt.solver}: {attempt.status}"
                attempts[key] += 1
                attempt_seconds[key] = attempt_seconds.get(key, 0.0) + attempt.seconds
        if response.adjustment_error is not None:
            counts["adjustment_errors"] += 1
        for v in response.violations:
            if v.violation_type in ("volatility.max", "tracking_error.max"):
                counts[f"proposals_breaching_{v.violation_type.split('.')[0]}"] += 1
        return elapsed

    loop(budget, run_one, f"n={case.n} {path.name}", progress)
    after = engine.cache_stats()
    result.extra = {
        "outcomes": dict(counts),
        "solvers": dict(solvers),
        "solver_attempts": {
            k: {"count": c, "mean_ms": round(1000 * attempt_seconds[k] / c, 3)}
            for k, c in attempts.items()
        },
        "cache": {
            "entries": after.entries,
            "warmup_hits": before.hits,
            "warmup_misses": before.misses,
            "hits": after.hits - before.hits,
            "misses": after.misses - before.misses,
        },
    }
    return result


def measure(
    case: Case, path: str, budget: Budget, progress: Progress, qps: ProjectQPs | None = None
) -> PathResult:
    """Time `path` on `case`; peers take their QPs from `qps` (shared between peers)."""
    for engine_path in ENGINE_PATHS:
        if engine_path.name == path:
            return _engine(case, engine_path, budget, progress)
    if path in PEER_PATHS:
        return measure_peer(path, qps or ProjectQPs(case), budget, progress)
    raise ValueError(f"unknown path {path!r}; known: {', '.join(PATHS)}")

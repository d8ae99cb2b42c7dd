"""Where one engine path spends its time: latency percentiles, stages, and a profile.

``python -m benchmarks.stages [--n 500] [--policy-set twenty] [--mode validate]
[--adjustment auto] [--requests 200] [--traded varying] [--vary-trades K] [--by-reference]
[--profile 25] [--solves]``

Times `PolicyEngine.validate` on the benchmark's cases exactly as `benchmarks.measure`
does (requests built before the clock, a few untimed warm-up requests, the heap settled
before each timed one: `benchmarks.timing.settle_heap`), then prints p50/p99/min, the
median of every stage of `timings_ms`, and with `--profile K` the K functions with the most
cumulative time under cProfile (a second pass: profiling slows every call, so its times are
only proportions);
with `--solves` the direct solves' iterations and seconds (the solver's own call).
With `--traded varying` each request draws its own 20 names (`benchmarks.cases`).
With `--vary-trades K` each request keeps K of the case's 20 trades, drawn at random (seeded
by the request), so consecutive decisions trade different sets of names, as in
production, instead of the same ones. With `--by-reference` each request names the case's
registered universe and sends its `prices` (the benchmark's `engine_check`): the timed part
is `resolve_references` plus `validate` with the resolution's key. A tool for finding what
to optimize; `python -m benchmarks` remains the benchmark.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar

import numpy as np

from benchmarks.cases import POLICY_SETS, Case, build_case
from benchmarks.measure import RegisteredUniverse
from benchmarks.timing import settle_heap
from engine import PolicyEngine
from engine.resolve.references import resolve_references
from models import PolicyDefinition, PolicyValidationRequest, PolicyValidationResponse
from solvers import (
    ConicData,
    DirectOSQP,
    DirectSolution,
    DirectSolver,
    SolveOutcome,
    SolverChain,
    default_chain,
)

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="universe size (default 500)")
    parser.add_argument("--policy-set", choices=list(POLICY_SETS), default="twenty")
    parser.add_argument("--mode", choices=["validate", "adjust"], default="validate")
    parser.add_argument("--adjustment", choices=["auto", "scale_back", "project"], default="auto")
    parser.add_argument(
        "--traded",
        choices=["fixed", "varying"],
        default="fixed",
        help="the same 20 names in every request (fixed, default) or drawn per request",
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests (200)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first (5)")
    parser.add_argument(
        "--vary-trades",
        type=int,
        default=0,
        metavar="K",
        help="keep K of the trades per request, drawn at random (default: all, always the same)",
    )
    parser.add_argument(
        "--by-reference",
        action="store_true",
        help="name the case's registered universe and send its prices, as engine_check does",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="K", help="print the top K functions"
    )
    parser.add_argument(
        "--direct",
        choices=["clarabel", "osqp", "none"],
        default="clarabel",
        help="the solver of the engine's directly assembled problems (default clarabel, the "
        "engine's own; osqp: OSQP warm-started from the previous answer; none: the cvxpy "
        "chain only)",
    )
    parser.add_argument(
        "--no-separable",
        action="store_true",
        help="skip the separable QP solver (to compare another solver on its problems)",
    )
    parser.add_argument(
        "--no-relaxation",
        action="store_true",
        help="with risk cones, skip the separable solve of the problem without them",
    )
    parser.add_argument(
        "--no-screening",
        action="store_true",
        help="solve project with cones over every name, not over a working set",
    )
    parser.add_argument(
        "--solves",
        action="store_true",
        help="also print the direct solves' iterations and seconds (timed requests only)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.n < 1 or args.requests < 1 or args.warmup < 0 or args.vary_trades < 0:
        print(
            "--n and --requests must be positive, --warmup and --vary-trades not negative",
            file=sys.stderr,
        )
        return 2
    case = build_case(args.n)
    if args.vary_trades > len(case.traded):
        print(f"--vary-trades: the case has {len(case.traded)} trades", file=sys.stderr)
        return 2
    policies = case.policies[args.policy_set]
    total = args.warmup + args.requests
    source = RegisteredUniverse(case) if args.by_reference else None
    requests = [_request(case, i, args, source) for i in range(total)]
    engine = _engine(args)
    answer = _answerer(engine, policies, source)
    for request in requests[: args.warmup]:
        answer(request)
    timed = requests[args.warmup :]
    recording = engine.adjuster.chain.direct
    if isinstance(recording, _Recording):
        recording.outcomes.clear()
    try:
        samples, stages = _time(answer, timed)
    finally:
        gc.unfreeze()
    print(
        f"n={args.n} {args.policy_set} {args.mode}/{args.adjustment}, {len(samples)} requests: "
        f"p50 {np.percentile(samples, 50):.3f} ms, p99 {np.percentile(samples, 99):.3f} ms, "
        f"min {np.min(samples):.3f} ms"
    )
    print("stages (median ms): " + ", ".join(f"{k} {np.median(v):.3f}" for k, v in stages.items()))
    if isinstance(recording, _Recording):
        print(recording.summary())
    if args.profile:
        print(_profile(answer, timed, args.profile))
    return 0


def _engine(args: argparse.Namespace) -> PolicyEngine:
    """The engine with the direct solver and separable solver the options ask for."""
    chain = default_chain()
    solvers: dict[str, DirectSolver | None] = {
        "clarabel": chain.direct,
        "osqp": DirectOSQP(),
        "none": None,
    }
    direct = solvers[args.direct]
    if args.solves and direct is not None:
        direct = _Recording(direct)
    engine = PolicyEngine(chain=SolverChain(qp=chain.qp, socp=chain.socp, direct=direct))
    engine.adjuster.fast.separable = not args.no_separable
    engine.adjuster.fast.relax_cones = not args.no_relaxation
    engine.adjuster.fast.screening = not args.no_screening
    return engine


class _Recording:
    """A direct solver that keeps every solve's outcome (`--solves`)."""

    name: ClassVar[str] = "recorded"
    """Unread: the outcomes carry the inner solver's name."""

    def __init__(self, inner: DirectSolver) -> None:
        self.inner = inner
        self.outcomes: list[SolveOutcome] = []

    def solve(
        self, data: ConicData, *, key: Hashable | None = None, time_limit: float | None = None
    ) -> DirectSolution:
        solved = self.inner.solve(data, key=key, time_limit=time_limit)
        self.outcomes.append(solved.outcome)
        return solved

    def summary(self) -> str:
        if not self.outcomes:
            return "direct solves: none"
        iterations = [o.iterations or 0 for o in self.outcomes]
        ms = [1000 * o.seconds for o in self.outcomes]
        per_iteration = sum(ms) / max(sum(iterations), 1)
        return (
            f"direct solves ({self.inner.name}): {len(ms)}, iterations median"
            f" {np.median(iterations):.0f} mean {np.mean(iterations):.1f},"
            f" ms median {np.median(ms):.1f} mean {np.mean(ms):.1f},"
            f" ms per iteration {per_iteration:.3f}"
        )


Answer = Callable[[PolicyValidationRequest], PolicyValidationResponse]


def _answerer(
    engine: PolicyEngine,
    policies: Sequence[PolicyDefinition],
    source: RegisteredUniverse | None,
) -> Answer:
    """What is timed per request: `validate`, after `resolve_references` when by reference."""
    if source is None:
        return lambda request: engine.validate(request, policies)

    def by_reference(request: PolicyValidationRequest) -> PolicyValidationResponse:
        resolution = resolve_references(request.portfolio_state, source)
        resolved = request.model_copy(update={"portfolio_state": resolution.state})
        return engine.validate(resolved, policies, reference=resolution.key)

    return by_reference


def _request(
    case: Case, i: int, args: argparse.Namespace, source: RegisteredUniverse | None
) -> PolicyValidationRequest:
    body = case.body(
        i,
        policy_set=args.policy_set,
        mode=args.mode,
        adjustment=args.adjustment,
        traded=args.traded,
    )
    if args.vary_trades:
        trades = body["decision"]["trades"]
        rng = np.random.default_rng((args.n, i))
        keep = sorted(rng.choice(len(trades), args.vary_trades, replace=False).tolist())
        body["decision"]["trades"] = [trades[k] for k in keep]
    if source is not None:
        body = source.by_reference(body)
    return PolicyValidationRequest.model_validate(body)


def _time(
    answer: Answer, requests: list[PolicyValidationRequest]
) -> tuple[list[float], dict[str, list[float]]]:
    samples: list[float] = []
    stages: dict[str, list[float]] = {}
    for request in requests:
        settle_heap()
        start = time.perf_counter()
        response = answer(request)
        samples.append(1000 * (time.perf_counter() - start))
        for stage, ms in response.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    return samples, stages


def _profile(answer: Answer, requests: list[PolicyValidationRequest], top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for request in requests:
        answer(request)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":
    sys.exit(main())

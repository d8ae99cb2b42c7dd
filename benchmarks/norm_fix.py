"""The risk-norm fix of a rounding: which answers it changes, and whether they are closer.

``python -m benchmarks.norm_fix [--n 500] [--policy-set cones] [--adjustment project]
[--requests 100]`` validates the benchmark's requests (names drawn anew per request) twice
each in one engine, with and without `engine.adjust.rounding.norm_fixup` among the
rounding passes, and prints every request whose adjusted trades differ (both distances,
and whether each answer is compliant) and a summary: changed, closer, farther, the worst
relative loss. Answers do not depend on the order of requests in a process, so the two
runs of a request are comparable. A tool for the change's note
(docs/performance-notes.md); the benchmark proper is `python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from benchmarks.cases import POLICY_SETS, build_case
from engine import PolicyEngine
from engine.adjust.rounding import passes
from models import AdjustedDecision, PolicyValidationRequest

__all__ = ["main"]

_FIX = "norm_fixup"
"""The name under which `engine.adjust.rounding.passes` calls the fix."""


@contextmanager
def _without_fix() -> Iterator[None]:
    """The rounding passes with the norm fix answering None (as if it were absent)."""
    kept = getattr(passes, _FIX)

    def absent(*_: Any, **__: Any) -> None:
        return None

    setattr(passes, _FIX, absent)
    try:
        yield
    finally:
        setattr(passes, _FIX, kept)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.norm_fix",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--n", type=int, default=500, help="universe size (default 500)")
    parser.add_argument("--policy-set", choices=POLICY_SETS, default="cones")
    parser.add_argument("--adjustment", choices=("project", "scale_back"), default="project")
    parser.add_argument("--requests", type=int, default=100, help="requests (default 100)")
    return parser


def _trades(decision: AdjustedDecision | None) -> list[Any] | None:
    return None if decision is None else [t.model_dump() for t in decision.trades]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.n < 1 or args.requests < 1:
        print("--n and --requests must be positive", file=sys.stderr)
        return 2
    case = build_case(args.n)
    policies = case.policies[args.policy_set]
    engine = PolicyEngine()
    changed = closer = farther = 0
    worst = 0.0
    for i in range(args.requests):
        body = case.body(
            i,
            policy_set=args.policy_set,
            mode="adjust",
            adjustment=args.adjustment,
            traded="varying",
        )
        request = PolicyValidationRequest.model_validate(body)
        with_fix = engine.validate(request, policies).adjusted_decision
        with _without_fix():
            without = engine.validate(request, policies).adjusted_decision
        if _trades(with_fix) == _trades(without):
            continue
        changed += 1
        if with_fix is None or without is None:
            print(
                f"request {i}: with the fix {with_fix is not None}, without {without is not None}"
            )
            continue
        loss = (with_fix.distance - without.distance) / without.distance
        closer += loss < 0
        farther += loss > 0
        worst = max(worst, loss)
        print(
            f"request {i}: distance {without.distance:.12g} without, {with_fix.distance:.12g}"
            f" with ({loss:+.3g} relative); compliant {without.is_compliant} /"
            f" {with_fix.is_compliant}"
        )
    print(
        f"n={args.n} {args.policy_set} {args.adjustment}, {args.requests} requests: changed"
        f" {changed}, closer {closer}, farther {farther} (worst {worst:+.3g} relative)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

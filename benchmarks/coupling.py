"""Many coupling rows: the separable QP solver against the solver chain on the same problems.

The separable solver (`engine.adjust.separable.qp`) maximizes a dual over the multipliers of
the rows that couple names. A gross `group_limit` over an attribute with hundreds of values
gives one such row per multi-name group. This benchmark draws random portfolios of that
shape and times both solvers on the engine's own adjustment problem:

- `n` names (default 2,000), each in one of 150-400 buckets (drawn per case), long and
  short positions; strict policies: a gross limit per bucket, a single-name cap and floor, a
  sector cap (net), a cash floor and a turnover limit;
- a decision of `--trades` trades that raise the gross of many buckets past their limit;
- optionally more bucket attributes with a gross limit each (`--layers`: each name in that
  many gross rows) and exposure limits on random loadings (`--exposures`: rows over every
  name, each breached by the decision), which make the normal matrix denser;
- the engine's exact-bounds problem of the chosen method (`project` by default) is built
  as the adjuster builds it (`PolicyEngine.prepare`, the compiled problem, `solve_bounds`);
  it is solved by `solve_separable` and by the engine's chain (Clarabel first), each
  `--repeat` times after one untimed solve (the first solve of a structure builds what
  later requests reuse: the fold's memo, cvxpy's canonicalization).

Reported: per case the coupling rows, the median time of each, whether the separable
solver answered and the relative gap of its objective `1/2 ||z - d||^2` to the chain's;
then p50/p99 of each over every solve, the failures (no answer) and the largest gap. With
`--engine` each request is also validated end to end by an engine with the separable solver
first and one with the chain alone, and both must give an adjusted decision. Everything is
seeded (`--seed`): the same arguments draw the same cases.

Run: ``python -m benchmarks.coupling --n 2000 --cases 6`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from engine import PolicyEngine
from engine.adjust.bounds import max_violation, solve_bounds
from engine.adjust.problems import CompiledProblem
from engine.adjust.separable.qp import solve_separable
from engine.compile.blocks import AbsSumBlock, AffineBlock
from engine.compile.layout import Layout
from engine.tolerances import TOLERANCE
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray

__all__ = ["CaseResult", "Shape", "coupling_case", "main", "measure"]

SEED = 13
NAV = 1_000_000_000.0
SECTORS = (
    "Information Technology",
    "Financials",
    "Health Care",
    "Energy",
    "Industrials",
    "Consumer Staples",
    "Utilities",
    "Materials",
    "Real Estate",
    "Communication Services",
    "Consumer Discretionary",
)
Space = Literal["project", "scale_back"]


def _policy(name: str, *constraints: dict[str, Any]) -> dict[str, Any]:
    return {
        "policy_name": name,
        "policy_type": "RISK_LIMIT",
        "enforcement_level": "strict",
        "rules": {"constraints": list(constraints)},
    }


@dataclass(frozen=True)
class Shape:
    """What the cases draw: names, bucket counts, trades, bucket layers and exposures."""

    n: int = 2000
    groups: tuple[int, int] = (150, 400)
    """The range of the number of buckets (per layer)."""
    trades: int = 300
    layers: int = 1
    """Bucket attributes, each with its own gross limit: each name is in `layers` rows."""
    exposures: int = 0
    """Numeric attributes with an exposure limit each: coupling rows over every name."""


def coupling_case(
    seed: int, shape: Shape = Shape()
) -> tuple[PolicyValidationRequest, list[PolicyDefinition], int]:
    """Case `seed`: a request, its strict policies and its number of buckets (all layers)."""
    n, groups, trades = shape.n, shape.groups, shape.trades
    rng = np.random.default_rng((SEED, seed, n))
    count = int(rng.integers(groups[0], groups[1] + 1))
    bucket = rng.integers(0, count, n)
    sector = rng.integers(0, len(SECTORS), n)
    prices = np.round(rng.uniform(5.0, 400.0, n), 2)
    # Long-short: ~75% long, gross about 1.4, net about 0.9; cash 4%.
    size = rng.lognormal(0.0, 0.6, n)
    sign = np.where(rng.random(n) < 0.75, 1.0, -1.0)
    raw = sign * size
    w0 = raw * 0.92 / raw.sum()
    quantities = np.round(w0 * NAV / prices)
    w0 = quantities * prices / NAV
    gross = np.bincount(bucket, weights=np.abs(w0), minlength=count)
    # Some buckets start above the limit (held to their pre-trade gross, a passive breach).
    limit = float(np.quantile(gross[gross > 0], rng.uniform(0.6, 0.95)))
    # Trades that add gross (buy long names, sell short names further) and some that
    # cross zero (sell a long position past flat), in many buckets.
    picked = rng.choice(n, size=min(trades, n), replace=False)
    scale = rng.uniform(0.3, 1.5, len(picked)) * limit / 6
    cross = rng.random(len(picked)) < 0.15
    trade_list = []
    w_hat = w0.copy()
    for i, s, flip in zip(picked, scale, cross, strict=True):
        side = "BUY" if (w0[i] > 0) != flip else "SELL"
        size = abs(w0[i]) + s if flip else s
        shares = max(1.0, float(np.round(size * NAV / prices[i])))
        trade_list.append({"symbol": f"S{i:05d}", "side": side, "quantity": shares})
        w_hat[i] += (1.0 if side == "BUY" else -1.0) * shares * prices[i] / NAV
    attributes: list[dict[str, Any]] = [{"bucket": f"B{int(b):03d}"} for b in bucket]
    policies = [
        _policy(
            "bucket-gross",
            {"kind": "group_limit", "attribute": "bucket", "measure": "gross", "max": limit},
        )
    ]
    counts = [count]
    for layer in range(1, shape.layers):
        more, more_limit = _layer(rng, w0, groups)
        counts.append(int(more.max()) + 1)
        for i in range(n):
            attributes[i][f"bucket{layer}"] = f"B{int(more[i]):03d}"
        policies.append(
            _policy(
                f"bucket{layer}-gross",
                {
                    "kind": "group_limit",
                    "attribute": f"bucket{layer}",
                    "measure": "gross",
                    "max": more_limit,
                },
            )
        )
    for r in range(shape.exposures):
        # A loading per name; the limit halfway between the pre- and post-trade exposure.
        x = np.round(rng.normal(0.0, 1.0, n), 4)
        for i in range(n):
            attributes[i][f"factor{r}"] = float(x[i])
        pre, post = float(x @ w0), float(x @ w_hat)
        bound = {"max": (pre + post) / 2} if post > pre else {"min": (pre + post) / 2}
        policies.append(
            _policy(f"factor{r}", {"kind": "exposure", "attribute": f"factor{r}", **bound})
        )
    instruments = [
        {
            "symbol": f"S{i:05d}",
            "price": float(prices[i]),
            "sector": SECTORS[int(sector[i])],
            "issuer": f"I{i:05d}",
            "country": "US",
            "asset_class": "equity",
            "currency": "USD",
            "lot_size": 1,
            "attributes": attributes[i],
        }
        for i in range(n)
    ]
    cap = float(np.abs(w0).max()) * 1.05
    body = {
        "decision": {
            "decision_id": f"coupling-{n}-{seed}",
            "portfolio_id": f"coupling-{n}",
            "trades": trade_list,
            "strategy": "benchmark",
        },
        "portfolio_state": {
            "portfolio_id": f"coupling-{n}",
            "cash": float(NAV - quantities @ prices),
            "positions": [
                {"symbol": f"S{i:05d}", "quantity": float(q)} for i, q in enumerate(quantities)
            ],
            "instruments": instruments,
        },
        "mode": "adjust",
        "adjustment": "project",
    }
    policies += [
        _policy("name-bounds", {"kind": "weight_bounds", "min": -cap, "max": cap}),
        _policy("sector-caps", {"kind": "group_limit", "attribute": "sector", "max": 0.2}),
        _policy("cash-floor", {"kind": "cash", "min": 0.01}),
        _policy("turnover", {"kind": "turnover", "max": float(rng.uniform(0.1, 0.6))}),
    ]
    return (
        PolicyValidationRequest.model_validate(body),
        [PolicyDefinition.model_validate(p) for p in policies],
        sum(counts),
    )


def _layer(rng: np.random.Generator, w0: FloatArray, groups: tuple[int, int]) -> tuple[Any, float]:
    """Another bucket attribute: each name's bucket, and a gross limit some buckets breach."""
    count = int(rng.integers(groups[0], groups[1] + 1))
    bucket = rng.integers(0, count, len(w0))
    gross = np.bincount(bucket, weights=np.abs(w0), minlength=count)
    return bucket, float(np.quantile(gross[gross > 0], rng.uniform(0.6, 0.95)))


@dataclass
class CaseResult:
    """One case: its size, both solvers' times (every repeat) and how they agree."""

    seed: int
    buckets: int
    coupling_rows: int
    work: float
    """`sum_i r_i^2`, `r_i` the coupling rows over name `i`: the normal matrix's products."""
    separable_s: list[float]
    chain_s: list[float]
    iterations: int | None
    """The separable solver's Newton iterations; None when it gave no answer."""
    chain_solver: str
    gap: float | None
    """(separable - chain) / chain of `1/2 ||z - d||^2`; None without both answers."""
    engine_answers: tuple[bool, bool] | None = None
    """Adjusted decision from the engine with the separable solver first, the chain alone."""

    @property
    def answered(self) -> bool:
        """Whether the separable solver gave an answer."""
        return self.iterations is not None


def _inputs(
    compiled: CompiledProblem,
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[int, ...] | None]:
    """`d`, the box and the columns as `Adjuster` passes them to the separable solver."""
    assert compiled.target is not None
    d = np.asarray(compiled.target, dtype=float)
    if compiled.space == "scale_back":
        assert compiled.lower is not None and compiled.upper is not None
        lower = np.asarray(compiled.lower, dtype=float)
        upper = np.asarray(compiled.upper, dtype=float)
        return d, lower, upper, compiled.traded
    return d, np.full(len(d), -np.inf), np.full(len(d), np.inf), None


def _coupling_rows(layout: Layout, strict: list[int]) -> tuple[int, float]:
    """Rows of the strict row sets over more than one name, and `sum_i r_i^2`.

    `r_i` counts the coupling rows over name `i` (every name moves in `project`, and the
    gross rows' terms are one per name), so the sum is the work of forming the separable
    solver's normal matrix `J J^T`.
    """
    rows, per_name = 0, np.zeros(layout.snap.n)
    for k in strict:
        block = layout.rowsets[k].block
        if isinstance(block, AbsSumBlock) and block.G is not None:
            matrix = sp.csr_matrix(block.G)
        elif isinstance(block, AffineBlock):
            matrix = sp.csr_matrix(block.A)
        else:
            continue
        matrix.eliminate_zeros()
        several = np.diff(matrix.indptr) > 1
        rows += int(several.sum())
        per_name += np.bincount(matrix[several].indices, minlength=layout.snap.n)
    return rows, float(per_name @ per_name)


def measure(
    engine: PolicyEngine,
    request: PolicyValidationRequest,
    policies: list[PolicyDefinition],
    *,
    space: Space,
    repeat: int,
    seed: int = 0,
    buckets: int = 0,
) -> CaseResult:
    """Both solvers on the request's exact-bounds problem of `space`, `repeat` times each."""
    layout = engine.prepare(request, policies).layout.for_solver()
    strict = layout.strict()
    compiled = engine.cache.get_problem(space, layout, strict)
    base = [solve_bounds(layout, k, cure_passive=request.cure_passive) for k in strict]
    compiled.fill(layout, strict, base, rows=False)
    d, lower, upper, columns = _inputs(compiled)
    separable_s, solution = [], None
    # The first solve of a structure builds what later requests reuse (the fold's memo, the
    # chain's canonicalized problem); each solver gets one untimed solve first.
    for _ in range(repeat + 1):
        started = time.perf_counter()
        solution = solve_separable(
            layout, strict, compiled.filled_bounds, d, lower, upper, columns,
            compiled.separable_memo,
        )  # fmt: skip
        separable_s.append(time.perf_counter() - started)
    separable_s = separable_s[1:]
    compiled.fill_rows(layout, strict)
    chain_s, chain_z, solver = [], None, "none"

    def verify() -> str | None:
        compiled.load_cvxpy_solution()  # the chain answers through the cvxpy form
        if compiled.solution is None:
            return "no solution"
        w = layout.snap.w0 + compiled.delta(layout.snap.n)
        worst = max_violation(layout, strict, base, w)
        return None if worst <= TOLERANCE else f"breaks a limit by {worst:.3g}"

    for _ in range(repeat + 1):
        started = time.perf_counter()
        result = engine.chain.solve(compiled.problem, needs_socp=compiled.needs_socp, verify=verify)
        chain_s.append(time.perf_counter() - started)
        if result.optimal and result.solver is not None:
            chain_z, solver = np.asarray(compiled.variable.value, dtype=float), result.solver
    chain_s = chain_s[1:]
    gap = None
    if solution is not None and chain_z is not None:
        ours = 0.5 * float(np.sum((solution.z - d) ** 2))
        theirs = 0.5 * float(np.sum((chain_z - d) ** 2))
        gap = (ours - theirs) / max(theirs, 1e-300)
    iterations = None if solution is None else solution.iterations
    rows, work = _coupling_rows(layout, strict)
    return CaseResult(seed, buckets, rows, work, separable_s, chain_s, iterations, solver, gap)


def _engine_answers(
    request: PolicyValidationRequest, policies: list[PolicyDefinition]
) -> tuple[bool, bool]:
    """Whether the engine answers with an adjusted decision, separable first and chain alone."""
    fast, alone = PolicyEngine(), PolicyEngine()
    alone.adjuster.fast.separable = False
    return tuple(  # type: ignore[return-value]
        e.validate(request, policies).adjusted_decision is not None for e in (fast, alone)
    )


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.coupling",
        description="The separable QP solver against the solver chain on problems with "
        "many coupling rows (a gross limit per bucket over hundreds of buckets).",
    )
    parser.add_argument("--n", type=int, default=2000, help="names per case (default 2000)")
    parser.add_argument("--cases", type=int, default=6, help="random cases (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="first case's seed (default 0)")
    parser.add_argument(
        "--groups", type=int, nargs=2, default=(150, 400), metavar=("MIN", "MAX"),
        help="range of the number of buckets (default 150 400)",
    )  # fmt: skip
    parser.add_argument("--trades", type=int, default=300, help="trades per decision")
    parser.add_argument(
        "--layers", type=int, default=1,
        help="bucket attributes, each with a gross limit (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--exposures", type=int, default=0,
        help="exposure limits on random loadings: rows over every name (default 0)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="solves per solver and case")
    parser.add_argument(
        "--adjustment", choices=("project", "scale_back"), default="project",
        help="the adjustment problem solved (default project)",
    )  # fmt: skip
    parser.add_argument(
        "--engine", action="store_true",
        help="also validate each request end to end, separable first and the chain alone",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every case's figures to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cases and print a table and a summary (exit 1 on a missing answer)."""
    args = _parser().parse_args(argv)
    engine = PolicyEngine()
    shape = Shape(args.n, tuple(args.groups), args.trades, args.layers, args.exposures)
    results: list[CaseResult] = []
    print(
        f"{'seed':>4} {'buckets':>7} {'coupling':>8} {'work':>8} {'separable':>10} {'iter':>4} "
        f"{'chain':>9} {'solver':>9} {'gap':>10}"
    )
    for seed in range(args.seed, args.seed + args.cases):
        request, policies, buckets = coupling_case(seed, shape)
        result = measure(
            engine,
            request,
            policies,
            space=args.adjustment,
            repeat=args.repeat,
            seed=seed,
            buckets=buckets,
        )
        if args.engine:
            result.engine_answers = _engine_answers(request, policies)
        results.append(result)
        gap = "-" if result.gap is None else f"{result.gap:+.2e}"
        print(
            f"{seed:>4} {buckets:>7} {result.coupling_rows:>8} {result.work:>8.2g} "
            f"{np.median(result.separable_s) * 1e3:>8.1f}ms "
            f"{result.iterations if result.answered else 'none':>4} "
            f"{np.median(result.chain_s) * 1e3:>7.1f}ms {result.chain_solver:>9} {gap:>10}"
            + ("" if result.engine_answers is None else f"  engine {result.engine_answers}")
        )
    separable = [s for r in results for s in r.separable_s]
    chain = [s for r in results for s in r.chain_s]
    failures = sum(not r.answered for r in results)
    gaps = [abs(r.gap) for r in results if r.gap is not None]
    print(
        f"separable p50 {_percentile(separable, 50) * 1e3:.1f} ms, "
        f"p99 {_percentile(separable, 99) * 1e3:.1f} ms; "
        f"chain p50 {_percentile(chain, 50) * 1e3:.1f} ms, "
        f"p99 {_percentile(chain, 99) * 1e3:.1f} ms; "
        f"separable without an answer: {failures} of {len(results)}; "
        f"largest |gap| {max(gaps, default=float('nan')):.2e}"
    )
    missing = [
        r.seed for r in results if r.engine_answers is not None and not all(r.engine_answers)
    ]
    if missing:
        print(f"no adjusted decision from the engine on seeds {missing}")
    if args.json is not None:
        rows = [asdict(r) | {"answered": r.answered} for r in results]
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

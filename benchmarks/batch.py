"""Batch-check throughput: `python -m benchmarks.batch [--quick] [--k K] [--chunk C]`.

Checks per second at n = 500 (the S&P 500 universe of `benchmarks.universe`) for two
policy sets: name caps, sector caps, cash and turnover (`caps`), and the same with a
factor-model volatility limit (`caps+vol`), each over two sets of weight vectors: around
the proposal, which breaches a limit in almost every vector (`breaching`), and the
pre-trade holdings moved by random price changes, which few do (`holdings`: what a
monitoring run sees). Measured in one run, on the same weight vectors: the batch checker
(`engine.batch`) on JAX and on NumPy, the single-request engine
(`PolicyEngine.validate`, one request per vector) and a plain NumPy loop (the same limits
hand-written, one vector at a time). Prints the table and writes it to
`benchmarks/results/batch.json`. No test asserts a time; `tests/benchmarks` runs `--quick`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cases import Case, build_case
from benchmarks.report import machine_info
from engine import PolicyEngine
from engine.batch import BatchChecker
from engine.batch.backend import jax_available
from engine.batch.checker import DEFAULT_CHUNK
from models import PolicyDefinition, PolicyValidationRequest

RESULTS = Path(__file__).with_name("results") / "batch.json"
NOISE = 0.0005
"""Standard deviation of the weight changes drawn around the proposal (weight units)."""
PRICE_MOVE = 0.03
"""Standard deviation of the relative price changes that move the holdings (`holdings`)."""


@dataclass(frozen=True)
class Setup:
    """One policy set over the case, and the request its single-request baseline checks."""

    name: str
    policies: list[PolicyDefinition]
    request: PolicyValidationRequest


def _setups(case: Case) -> list[Setup]:
    base = case.policies["base"]
    vol = [p for p in case.policies["cones"] if p.policy_name == "volatility-limit"]
    return [
        Setup("caps", base, case.request(0, policy_set="base", mode="validate")),
        Setup("caps+vol", base + vol, case.request(0, policy_set="cones", mode="validate")),
    ]


def _checker(setup: Setup, backend: str, chunk: int) -> BatchChecker:
    state = setup.request.portfolio_state
    return BatchChecker(
        setup.policies,
        state.instruments,
        benchmark=state.benchmark,
        risk_model=state.risk_model,
        portfolio_id=setup.request.decision.portfolio_id,
        backend=backend,  # type: ignore[arg-type]
        chunk_size=chunk,
    )


MIXES = ("breaching", "holdings")
"""Around the proposal (nearly every vector breaches), around the pre-trade holdings (few)."""


def _vectors(
    engine: PolicyEngine, setup: Setup, k: int, symbols: Sequence[str], mix: str = "breaching"
) -> Any:
    """w0, and K weight vectors around the proposal (`breaching`) or the pre-trade holdings
    (`holdings`), in the checker's column order."""
    snap = engine.prepare(setup.request, setup.policies).snapshot
    position = {s: i for i, s in enumerate(symbols)}
    cols = np.array([position[s] for s in snap.symbols])
    w0, w_hat = np.zeros(len(symbols)), np.zeros(len(symbols))
    w0[cols], w_hat[cols] = snap.w0, snap.w_hat
    rng = np.random.default_rng(500)
    if mix == "breaching":
        return w0, w_hat + rng.normal(0.0, NOISE, (k, len(symbols)))
    # The holdings after a price move r: each value grows by 1 + r, the cash does not.
    grown = w0 * (1.0 + rng.normal(0.0, PRICE_MOVE, (k, len(symbols))))
    nav = grown.sum(axis=1, keepdims=True) + (1.0 - w0.sum())
    return w0, grown / nav


def _progress(label: str, total: int) -> Callable[[int], None]:
    def show(done: int) -> None:
        width = 30
        filled = int(width * done / total)
        print(f"\r  {label:<22} [{'#' * filled}{'.' * (width - filled)}] {done:>9,}/{total:,}",
              end="" if done < total else "\n", file=sys.stderr, flush=True)  # fmt: skip

    return show


def _batch_rate(
    checker: BatchChecker, W: Any, w0: Any, label: str, show: bool
) -> tuple[float, Any]:
    checker.check(W[: min(len(W), checker.chunk_size)], pre_trade=w0)  # compile, warm up
    progress = _progress(label, len(W)) if show else None
    start = time.perf_counter()
    result = checker.check(W, pre_trade=w0, progress=progress)
    return len(W) / (time.perf_counter() - start), result


def _engine_rate(engine: PolicyEngine, setup: Setup, count: int) -> float:
    engine.validate(setup.request, setup.policies)
    start = time.perf_counter()
    for _ in range(count):
        engine.validate(setup.request, setup.policies)
    return count / (time.perf_counter() - start)


def _numpy_loop(case: Case, setup: Setup, checker: BatchChecker, W: Any, w0: Any) -> float:
    """The limits written by hand over one vector at a time: verdicts only."""
    limits = case.limits
    sectors = sorted({i.sector or "" for i in setup.request.portfolio_state.instruments})
    sector_of = {
        i.symbol: sectors.index(i.sector or "") for i in setup.request.portfolio_state.instruments
    }
    codes = np.array([sector_of[s] for s in checker.symbols])
    model = setup.request.portfolio_state.risk_model
    vol = next((p for p in setup.policies if p.policy_name == "volatility-limit"), None)
    X = F = d = None
    if vol is not None and model is not None and model.factor_loadings is not None:
        X = np.array([model.factor_loadings[s] for s in checker.symbols])
        F = np.linalg.cholesky(np.asarray(model.factor_covariance))
        d = np.sqrt(np.array([(model.specific_variance or {})[s] for s in checker.symbols]))
    vol_max = case.cone_limits[0]
    start = time.perf_counter()
    compliant = 0
    for w in W:
        ok = w.max() <= limits.name_max + 1e-9
        ok &= np.bincount(codes, w, len(sectors)).max() <= limits.sector_max + 1e-9
        ok &= 1.0 - w.sum() >= limits.cash_min - 1e-9
        ok &= np.abs(w - w0).sum() <= limits.turnover_max + 1e-9
        if X is not None and F is not None and d is not None:
            f = (w @ X) @ F
            ok &= np.sqrt(f @ f + ((d * w) ** 2).sum()) <= vol_max + 1e-9
        compliant += int(ok)
    return len(W) / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every setup; the results as written to the JSON file."""
    case = build_case(args.n)
    engine = PolicyEngine()
    backends = ["jax", "numpy"] if jax_available() else ["numpy"]
    rows = []
    for setup in _setups(case):
        numpy_checker = _checker(setup, "numpy", args.chunk)
        checkers = {
            name: numpy_checker if name == "numpy" else _checker(setup, name, args.chunk)
            for name in backends
        }
        for mix in MIXES:
            print(f"{setup.name} ({mix}): n = {args.n}, K = {args.k:,}", file=sys.stderr)
            w0, W = _vectors(engine, setup, args.k, numpy_checker.symbols, mix)
            row: dict[str, Any] = {"policies": setup.name, "vectors": mix}
            row |= {"n": args.n, "k": args.k}
            answers = {}
            for name, checker in checkers.items():
                label = f"batch ({name})"
                rate, result = _batch_rate(checker, W, w0, label, not args.no_progress)
                row[f"batch_{name}_per_s"] = rate
                answers[name] = result
                row["compliant_fraction"] = float(result.is_compliant.mean())
                row["breaching_fraction"] = float(len(np.unique(result.breach_vector)) / len(W))
                row["rechecked"] = len(result.rechecked)
                row["rows"] = len(result.labels)
            if len(answers) == 2:
                row["backends_agree"] = bool(
                    np.array_equal(answers["jax"].is_compliant, answers["numpy"].is_compliant)
                )
            row["numpy_loop_per_s"] = _numpy_loop(case, setup, numpy_checker, W[: args.loop], w0)
            row["single_request_per_s"] = _engine_rate(engine, setup, args.single)
            rows.append(row)
    return {
        "benchmark": "batch",
        "machine": machine_info(),
        "config": {"n": args.n, "k": args.k, "chunk": args.chunk, "quick": args.quick},
        "targets": {"caps": 200_000, "caps+vol": 20_000},
        "results": rows,
    }


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table (checks per second)."""
    lines = [
        "| policies | vectors (breaching) | K | batch (JAX) /s | batch (NumPy) /s "
        "| NumPy loop /s | single request /s | target /s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["results"]:
        jax_rate = row.get("batch_jax_per_s")
        mix = row.get("vectors", "breaching")
        share = row.get("breaching_fraction")
        mix += "" if share is None else f" ({share:.0%})"
        lines.append(
            f"| {row['policies']} | {mix} | {row['k']:,} | "
            f"{'-' if jax_rate is None else f'{jax_rate:,.0f}'} | "
            f"{row['batch_numpy_per_s']:,.0f} | {row['numpy_loop_per_s']:,.0f} | "
            f"{row['single_request_per_s']:,.0f} | {results['targets'][row['policies']]:,} |"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.batch", description=__doc__.split("\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="tiny K for a smoke run (K = 2,000)")
    p.add_argument("--n", type=int, default=500, help="universe size (default 500)")
    p.add_argument("--k", type=int, default=None, help="weight vectors (default 200,000)")
    p.add_argument(
        "--chunk", type=int, default=None, help="vectors per chunk (default: the checker's)"
    )
    p.add_argument("--loop", type=int, default=None, help="vectors for the NumPy loop baseline")
    p.add_argument("--single", type=int, default=None, help="requests for the engine baseline")
    p.add_argument("--output", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write the JSON."""
    args = parser().parse_args(argv)
    args.chunk = args.chunk or DEFAULT_CHUNK
    if args.k is None:
        args.k = 2_000 if args.quick else 200_000
    args.loop = args.loop or min(args.k, 2_000 if args.quick else 20_000)
    args.single = args.single or (5 if args.quick else 100)
    results = run(args)
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

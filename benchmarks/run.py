"""Run the benchmark: every path at every size, the HTTP load, then JSON, tables and plot.

``python -m benchmarks [--sizes 50,200,500,1000,2000] [--repeats 200] [--quick] [--no-http]``
(or ``pes bench ...``). At each size, the engine's paths (20 traded names drawn anew per
request, then the same 20 names in every request), then the peers on the same requests
(`benchmarks.peers`). Writes ``latest.json`` and ``latency.png`` to ``--output`` (default
``benchmarks/results``) and prints the Markdown tables on stdout; progress goes to stderr.
Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.cases import build_case
from benchmarks.markdown import markdown
from benchmarks.measure import DEFAULT_PATHS, PATHS, Budget, ProjectQPs, measure, stderr_progress
from benchmarks.report import evaluate_targets, machine_info, plot, ratios
from benchmarks.universe import real_names

__all__ = ["DEFAULT_SIZES", "main", "parser", "run"]

DEFAULT_SIZES = (50, 200, 500, 1000, 2000)
QUICK_SIZES = (50, 500)
REPEATS = 200
TIME_LIMIT = 20.0
QUICK_REPEATS = 30
QUICK_TIME_LIMIT = 5.0
RESULTS = Path(__file__).with_name("results")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sorted(set(sizes))


def _paths(text: str) -> list[str]:
    names = [x for x in text.replace(" ", "").split(",") if x]
    unknown = [x for x in names if x not in PATHS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown path(s) {unknown}; known: {', '.join(PATHS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared with `pes bench`)."""
    parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N,...",
        help=f"universe sizes (default {','.join(map(str, DEFAULT_SIZES))}; "
        f"--quick: {','.join(map(str, QUICK_SIZES))})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="R",
        help=f"timed requests per path and size (default {REPEATS})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {','.join(map(str, QUICK_SIZES))}, {QUICK_REPEATS} repeats, "
        f"{QUICK_TIME_LIMIT:g} s per path, 100 HTTP requests (a few minutes)",
    )
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP load run")
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="where latest.json and latency.png go (default benchmarks/results)",
    )


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks`."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Latency benchmark of the engine's check and adjust paths (traded names "
        "drawn anew per request, and a fixed set) against peers on the same problem "
        "(cvxportfolio with Clarabel and with its default solver, Clarabel and OSQP called "
        "directly, naive cvxpy), plus an HTTP load run. Writes latest.json and latency.png "
        "and prints the Markdown tables.",
    )
    add_arguments(p)
    p.add_argument("--warmup", type=int, default=3, help="untimed requests first (default 3)")
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="S",
        help=f"stop a path after S seconds once it has 5 samples (default {TIME_LIMIT:g}; "
        f"--quick {QUICK_TIME_LIMIT:g})",
    )
    p.add_argument(
        "--paths",
        type=_paths,
        metavar="P,P,...",
        help=f"only these paths (default: all but osqp_direct_tight; known: {', '.join(PATHS)})",
    )
    p.add_argument("--http-size", type=int, default=500, help="n of the HTTP run (default 500)")
    p.add_argument("--http-requests", type=int, help="HTTP requests (default 500; --quick 100)")
    p.add_argument(
        "--http-time-limit", type=float, default=60.0, help="HTTP run time limit (s, default 60)"
    )
    p.add_argument("--no-plot", action="store_true", help="do not write latency.png")
    return p


def _case_info(n: int) -> dict[str, Any]:
    case = build_case(n)
    real = min(n, len(real_names()))
    return {
        "real_names": real,
        "synthetic_names": n - real,
        "trades": len(case.traded),
        "cash_weight": round(
            case.cash / (case.cash + float(case.quantities @ [nm.price for nm in case.names])), 4
        ),
        "policies": {k: len(v) for k, v in case.policies.items()},
        "cone_limits": {"volatility": case.cone_limits[0], "tracking_error": case.cone_limits[1]},
        "cones20_limits": {
            "volatility": case.wide_cone_limits[0],
            "tracking_error": case.wide_cone_limits[1],
        },
        "factors": {
            "cones": int(case.loadings.shape[1]),
            "cones20": int(case.wide_model.loadings.shape[1]) if case.wide_model else 0,
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure and return the results document."""
    sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    time_limit = args.time_limit or (QUICK_TIME_LIMIT if args.quick else TIME_LIMIT)
    budget = Budget(repeats=repeats, warmup=args.warmup, time_limit=time_limit)
    selected = args.paths or list(DEFAULT_PATHS)
    machine = machine_info()  # before measuring: the commit whose code is imported now
    started = time.perf_counter()
    paths: dict[str, Any] = {p: {"description": PATHS[p], "results": {}} for p in selected}
    cases: dict[str, Any] = {}
    for n in sizes:
        case = build_case(n)
        cases[str(n)] = _case_info(n)
        qps = ProjectQPs(case)  # the peers' QPs, built once per size
        for path in selected:
            t0 = time.perf_counter()
            result = measure(case, path, budget, stderr_progress, qps)
            summary = result.summary()
            paths[path]["results"][str(n)] = summary
            print(
                f"\r[bench] n={n} {path}: {summary['count']} samples, p50 "
                f"{summary['p50_ms']:.3f} ms, p99 {summary['p99_ms']:.3f} ms "
                f"({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    http = None
    if not args.no_http:
        from benchmarks.http_load import run_http

        print(f"[bench] HTTP run at n={args.http_size} ...", file=sys.stderr, flush=True)
        http = run_http(
            build_case(args.http_size),
            requests=args.http_requests or (100 if args.quick else 500),
            time_limit=args.http_time_limit,
            progress=stderr_progress,
        )
        print(
            f"\r[bench] HTTP: {http['count']} requests, p50 {http['p50_ms']:.3f} ms, p99 "
            f"{http['p99_ms']:.3f} ms",
            file=sys.stderr,
            flush=True,
        )
    return {
        "schema": 2,
        "command": "python -m benchmarks " + " ".join(args.argv),
        "machine": machine,
        "config": {
            "sizes": sizes,
            "repeats": repeats,
            "warmup": args.warmup,
            "time_limit_s": time_limit,
            "min_samples": budget.min_samples,
            "gc_collect_before_each_request": True,
            "quick": args.quick,
            "http": not args.no_http,
        },
        "cases": cases,
        "paths": paths,
        "ratios": ratios(paths),
        "http": http,
        "targets": evaluate_targets(paths),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    results = run(args)
    output: Path = args.output or RESULTS
    output.mkdir(parents=True, exist_ok=True)
    (output / "latest.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    written = [str(output / "latest.json")]
    if not args.no_plot:
        if plot(results, output / "latency.png"):
            written.append(str(output / "latency.png"))
        else:
            print(
                "[bench] matplotlib is not installed: no plot (pip install -e '.[bench]')",
                file=sys.stderr,
            )
    print(markdown(results))
    print(f"[bench] wrote {', '.join(written)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

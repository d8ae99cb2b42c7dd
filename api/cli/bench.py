"""`pes bench`: run the latency benchmark (the `benchmarks` package, when installed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from api.cli.common import EXIT_BAD_INPUT

__all__ = ["add_parser"]


def _bench(args: argparse.Namespace) -> int:
    try:
        from benchmarks.run import main as run_benchmark
    except ImportError as exc:  # installed without the benchmarks package
        print(f"pes bench: the benchmarks are not available: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    argv = [] if args.sizes is None else ["--sizes", args.sizes]
    argv += [] if args.repeats is None else ["--repeats", str(args.repeats)]
    argv += [] if args.output is None else ["--output", str(args.output)]
    argv += ["--quick"] * args.quick + ["--no-http"] * args.no_http
    return run_benchmark(argv)


def add_parser(commands: Any) -> None:
    """Register `pes bench`."""
    bench = commands.add_parser(
        "bench",
        help="run the latency benchmark",
        description="Time the engine's check and adjust paths against naive cvxpy and OSQP "
        "called directly, at several universe sizes, plus an HTTP load run on loopback; "
        "write latest.json and latency.png and print a Markdown table (same as "
        "`python -m benchmarks`, which has more options). Takes up to half an hour on 2 "
        "cores; --quick a few minutes. The plot needs the `bench` extra.",
    )
    bench.add_argument("--sizes", metavar="N,N,...", help="universe sizes (default 50,...,2000)")
    bench.add_argument("--repeats", type=int, metavar="R", help="timed requests per path and size")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    bench.add_argument("--no-http", action="store_true", help="skip the HTTP load run")
    bench.add_argument(
        "--output", type=Path, metavar="DIR", help="output directory (default benchmarks/results)"
    )
    bench.set_defaults(handler=_bench)

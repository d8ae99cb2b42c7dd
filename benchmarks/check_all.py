"""Firm-wide check throughput: `python -m benchmarks.check_all [--portfolios P] [--names N]`.

Generates P random portfolios over the first N names of the S&P 500 universe of
`benchmarks.universe` (each holding every name, near-equal weights, 3% cash), of which a
fraction (`--breaching`; one run per fraction given) holds one name above the 10% name
cap, writes them as Parquet with the universe as a universe file, and runs `pes check-all`
on a LocalCluster of `--workers` processes with name caps, sector caps, a cash floor and a
turnover limit. Prints the figures and writes `benchmarks/results/check-all.json`:
portfolios per second for the run on the cluster (the summary's own clock: scatter, tasks,
gather) and for the whole command (reading the files, resolving the policies, starting the
cluster). No test asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from api.cli import main
from benchmarks.report import machine_info
from benchmarks.universe import universe

RESULTS = Path(__file__).with_name("results") / "check-all.json"

POLICIES: list[dict[str, Any]] = [
    {"policy_name": "single-name-cap", "policy_type": "POSITION_LIMIT",
     "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.10}]}},
    {"policy_name": "sector-caps", "policy_type": "SECTOR_LIMIT",
     "rules": {"constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.25}]}},
    {"policy_name": "cash-floor", "policy_type": "INVESTMENT_MANDATE",
     "rules": {"constraints": [{"kind": "cash", "min": 0.02}]}},
    {"policy_name": "turnover-cap", "policy_type": "RISK_LIMIT",
     "rules": {"constraints": [{"kind": "turnover", "max": 0.2}]}},
]  # fmt: skip


def _write_inputs(folder: Path, portfolios: int, names: int, breaching: float) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    chosen = universe(names)
    instruments = [
        {"symbol": n.symbol, "price": n.price, "sector": n.sector, "issuer": n.issuer}
        for n in chosen
    ]
    (folder / "universe.yaml").write_text(
        yaml.safe_dump({"id": "bench", "instruments": instruments}), encoding="utf-8"
    )
    (folder / "policies.yaml").write_text(yaml.safe_dump(POLICIES), encoding="utf-8")
    rng = np.random.default_rng(500)
    prices = np.array([n.price for n in chosen])
    nav = 10_000_000.0
    ids, symbols, quantities = [], [], []
    for k in range(portfolios):
        w = rng.dirichlet(np.full(names, 50.0)) * 0.97
        if rng.random() < breaching:
            w[int(rng.integers(names))] = 0.12
            w *= 0.97 / w.sum()
        pid = f"pf-{k:05d}"
        q = np.round(w * nav / prices)
        cash = nav - float(q @ prices)
        ids += [pid] * (names + 1)
        symbols += [n.symbol for n in chosen] + ["$CASH"]
        quantities += [*q.tolist(), cash]
    table = pa.table({"portfolio_id": ids, "symbol": symbols, "quantity": quantities})
    pq.write_table(table, folder / "positions.parquet")


def run(portfolios: int, names: int, breaching: float, workers: int) -> dict[str, Any]:
    """Run the check once; the figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_inputs(folder, portfolios, names, breaching)
        argv = [
            "check-all", str(folder / "positions.parquet"),
            "--universe-file", str(folder / "universe.yaml"),
            "--policies", str(folder / "policies.yaml"),
            "--output", str(folder / "breaches.parquet"),
            "--workers", str(workers), "--format", "json",
        ]  # fmt: skip
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            status = main(argv)
        total = time.perf_counter() - start
    if status not in (0, 1):
        raise SystemExit(f"pes check-all exited {status}")
    summary = json.loads(out.getvalue())
    return {
        "portfolios": portfolios,
        "names": names,
        "breaching_fraction": breaching,
        "workers": workers,
        "portfolios_in_breach": summary["portfolios_in_breach"],
        "screened_compliant": summary["screened_compliant"],
        "checked_by_single_request_engine": summary["checked_by_single_request_engine"],
        "partitions": summary["partitions"],
        "cluster_seconds": summary["seconds"],
        "cluster_portfolios_per_second": summary["portfolios_per_second"],
        "command_seconds": round(total, 3),
        "command_portfolios_per_second": round(portfolios / total, 1),
    }


def table(results: dict[str, Any]) -> str:
    """The Markdown table of a results file (docs/check-all.md holds it between markers)."""
    lines = [
        "| portfolios | names | in breach | screened compliant | single-request checks "
        "| on the cluster /s | whole command /s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['portfolios']:,} | {r['names']} | {r['portfolios_in_breach']:,} "
            f"| {r['screened_compliant']:,} | {r['checked_by_single_request_engine']:,} "
            f"| {r['cluster_portfolios_per_second']:,.0f} "
            f"| {r['command_portfolios_per_second']:,.0f} |"
        )
    return "\n".join(lines)


def main_benchmark(argv: list[str] | None = None) -> int:
    """Parse the options, run, print and save."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.check_all", description=__doc__)
    parser.add_argument("--portfolios", type=int, default=2000)
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument(
        "--breaching",
        type=float,
        nargs="+",
        default=[0.05, 0.5],
        help="fractions of the portfolios in breach, one run each (default 0.05 0.5)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="40 portfolios of 100 names")
    parser.add_argument("--no-save", action="store_true", help="do not write the results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.portfolios, args.names = 40, 100
    runs = [run(args.portfolios, args.names, b, args.workers) for b in args.breaching]
    print(json.dumps(runs, indent=2))
    print(table({"runs": runs}))
    if not args.no_save and not args.quick:
        RESULTS.write_text(
            json.dumps({"machine": machine_info(), "runs": runs}, indent=2) + "\n",
            encoding="utf-8",
        )
        print(f"written to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main_benchmark())

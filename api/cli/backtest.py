"""`pes backtest`: a history of portfolio states and decisions run under policy sets on Dask.

`pes backtest HISTORY --policies A [--policies B]` (docs/backtest.md): every portfolio's
days under each set, one Dask task per portfolio (`--scheduler`, `--workers`,
`--memory-limit`, as `pes check-all`), a progress bar on stderr; the summary on stdout
(`--format text|json`), the results as Parquet (`--out DIR`), the HTML report with its
plots (`--report FILE`). Exit 0 when it ran, 1 when some evaluation failed or the cluster
cannot be reached, 2 for bad input (naming file, row and column).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from api.backtest import HistoryError, PolicySet, load_history, run_backtest
from api.backtest.history import instruments_from_universe
from api.backtest.metrics import summarize, text_summary
from api.backtest.output import write_results
from api.cli.common import EXIT_BAD_INPUT
from api.cluster import ClusterOptions, add_cluster_options, dask_client
from api.files.policy_files import PolicyFileError, load_policies

__all__ = ["add_parser"]

log = logging.getLogger(__name__)


def _bad(message: str) -> int:
    for line in message.splitlines():
        print(f"pes backtest: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _sets(paths: list[str]) -> list[PolicySet]:
    sets: list[PolicySet] = []
    for text in paths:
        path = Path(text)
        try:
            policies = load_policies(path)
        except PolicyFileError as exc:
            raise HistoryError(f"--policies {exc}") from exc
        if not policies:
            raise HistoryError(f"--policies {path}: no policy definitions")
        name = path.stem if path.is_file() else path.name
        if any(s.name == name for s in sets):
            raise HistoryError(f"--policies {path}: a second set named {name!r} (rename one)")
        sets.append(PolicySet(name, tuple(policies)))
    return sets


def _backtest(args: argparse.Namespace) -> int:
    if args.report is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:  # pragma: no cover - part of the cluster extra
            return _bad(
                "--report needs matplotlib: pip install 'policy-enforcement-service[cluster]'"
            )
    if not args.verbose:  # Dask logs every worker's start and stop at INFO
        logging.getLogger("distributed").setLevel(logging.ERROR)
    started = time.monotonic()
    try:
        sets = _sets(args.policies)
        instruments = None
        if args.universe is not None:
            instruments = instruments_from_universe(Path(args.universe))
        history = load_history(Path(args.history), instruments=instruments)
    except HistoryError as exc:
        return _bad(str(exc))
    days = sum(len(p.days) for p in history.portfolios)
    log.info("history: %d portfolios, %d portfolio-days", len(history.portfolios), days)
    options = ClusterOptions.from_args(args)
    try:
        with dask_client(options) as client:
            results = run_backtest(history, sets, client=client, progress=not args.quiet)
    except RuntimeError as exc:  # Dask missing, or the scheduler unreachable
        print(f"pes backtest: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a task lost with its worker, or a bug: one line, not a trace
        log.debug("the back-test failed", exc_info=True)
        print(f"pes backtest: the run failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    summary: dict[str, Any] = summarize(results)
    if args.out is not None:
        for path in write_results(results, Path(args.out)):
            log.info("wrote %s", path)
    if args.report is not None:
        from api.backtest.report import html_report

        page = html_report(results, summary, history=str(args.history))
        Path(args.report).write_text(page, encoding="utf-8")
        log.info("wrote %s", args.report)
    if args.format == "json":
        print(json.dumps(summary, indent=2 if args.pretty else None))
    else:
        print(text_summary(summary))
    failed = sum(s["failed"] for s in summary["policy_sets"])
    print(
        f"back-test of {len(history.portfolios)} portfolios x {len(sets)} policy sets "
        f"in {time.monotonic() - started:.1f}s"
        + (f"; {failed} evaluations failed" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def add_parser(commands: Any) -> None:
    """Register `pes backtest`."""
    parser = commands.add_parser(
        "backtest",
        help="run a history of portfolio states and decisions under policy sets (Dask)",
        description="Back-test policy sets over a history (docs/backtest.md): per set and "
        "policy, breaches, time in breach, decisions blocked and the cost of compliance; "
        "a second set is compared with the first. Exit 0 when it ran, 1 when an "
        "evaluation failed, 2 for bad input.",
    )
    parser.add_argument(
        "history",
        metavar="HISTORY",
        help="directory with states.parquet, decisions.parquet (and instruments.parquet)",
    )
    parser.add_argument(
        "--policies",
        action="append",
        required=True,
        metavar="PATH",
        help="a policy file or directory: one set (named after it); give two to compare",
    )
    parser.add_argument(
        "--universe",
        metavar="PATH",
        help="a universe file (as pes universes apply reads) instead of instruments.parquet",
    )
    parser.add_argument("--format", choices=["text", "json"], default="text", help="summary")
    parser.add_argument("--pretty", action="store_true", help="indent the JSON")
    parser.add_argument("--out", metavar="DIR", help="write days/breaches/decisions.parquet")
    parser.add_argument("--report", metavar="FILE", help="write the HTML report with plots")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_cluster_options(parser)
    parser.set_defaults(handler=_backtest)

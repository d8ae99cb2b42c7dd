"""`pes check-all`: every portfolio of a positions file against its policies, on Dask.

Reads the positions (and cash), the instruments (`--universe-file`, `--universe` by id,
or prices in the positions file), the policies (`--policies PATH`, else the stored ones)
and, with `--database-url`, the stored tree and the global policy; resolves every
portfolio's effective policies here and checks the groups on a Dask cluster
(`api.check_all`, docs/check-all.md). Writes the breaches as Parquet (`--output`), prints
the summary; exit 0 when no portfolio is in breach, 1 when some is, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from api.check_all import InputFileError, PlanError, plan_groups, read_holdings, run_check_all
from api.check_all.inputs import CASH_SYMBOL
from api.check_all.run import CheckAllResult, write_breaches
from api.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_COMPLIANT,
    EXIT_NOT_COMPLIANT,
    Unavailable,
    open_store,
)
from api.cluster import ClusterOptions, add_cluster_options, dask_client, positive_int
from api.files.policy_files import PolicyFileError, load_policies
from api.files.reference_files import ReferenceFileError, load_reference_data
from api.references import ReferenceCache, StoreReferences
from api.store import Store
from engine.resolve.global_policy import GlobalControls
from engine.resolve.references import ReferenceNotFound
from models import DataReference, Instrument, PolicyDefinition, PortfolioNode, RiskModel, Universe

__all__ = ["add_parser"]

log = logging.getLogger("pes")


class _Bad(Exception):
    """Bad input: the command exits 2 with this one line."""


def _reference(text: str, option: str) -> DataReference:
    """`ID` or `ID@VERSION` as a DataReference."""
    ident, sep, version = text.partition("@")
    try:
        return DataReference.model_validate(
            {"id": ident, **({"version": int(version)} if sep else {})}
        )
    except (ValueError, ValidationError):
        raise _Bad(f"{option} {text!r}: expected ID or ID@VERSION") from None


def _universe(args: argparse.Namespace, store: Store | None) -> tuple[dict[str, Instrument], Any]:
    """The instruments by symbol and the risk model (registered, from a file, or none)."""
    instruments: dict[str, Instrument] = {}
    if args.universe_file is not None and args.universe is not None:
        raise _Bad("--universe-file and --universe: give one of them")
    if args.universe_file is not None:
        try:
            universes = load_reference_data(args.universe_file, Universe)
        except ReferenceFileError as exc:
            raise _Bad(str(exc)) from exc
        if len(universes) != 1:
            raise _Bad(f"--universe-file {args.universe_file}: holds {len(universes)} universes, "
                       "give a file with one")  # fmt: skip
        instruments = {i.symbol: i for i in universes[0].instruments}
    risk_model: RiskModel | None = None
    if args.universe is not None or args.risk_model is not None:
        if store is None:
            raise _Bad("--universe and --risk-model name registered data: pass --database-url")
        source = StoreReferences(store, ReferenceCache())
        if args.universe is not None:
            try:
                data = source.universe(_reference(args.universe, "--universe"))
            except ReferenceNotFound as exc:
                raise _Bad(f"--universe {args.universe}: {exc}") from exc
            instruments = {i.symbol: i for i in data.instruments}
        if args.risk_model is not None:
            try:
                risk_model = source.risk_model(_reference(args.risk_model, "--risk-model")).model
            except ReferenceNotFound as exc:
                raise _Bad(f"--risk-model {args.risk_model}: {exc}") from exc
    return instruments, risk_model


def _policies(args: argparse.Namespace, store: Store | None) -> list[PolicyDefinition]:
    if args.policies is not None:
        try:
            return load_policies(args.policies)
        except PolicyFileError as exc:
            raise _Bad(str(exc)) from exc
    if store is None:
        raise _Bad("no policies: pass --policies PATH, or --database-url URL for the stored ones")
    return [p.definition for p in store.policies.list()]


def _lineages(
    store: Store | None, holdings_rows: dict[str, tuple[str, int]], stored: bool
) -> tuple[dict[str, list[PortfolioNode]], GlobalControls | None]:
    """Each portfolio's chain in the stored tree, and the stored global policy."""
    if store is None:
        return {}, None
    known = set(store.portfolios.ids())
    lineages: dict[str, list[PortfolioNode]] = {}
    for pid, (where, row) in holdings_rows.items():
        if pid in known:
            lineages[pid] = list(store.portfolios.lineage(pid))
        elif stored and known:  # stored policies follow the tree: an unknown id would lose some
            raise _Bad(
                f"{where}: row {row}, column portfolio_id: {pid!r} is not in the registered "
                "portfolio tree (pes portfolios list)"
            )
    current = store.global_policy.current()
    return lineages, GlobalControls(current.policy, current.version)


def _prices(instruments: dict[str, Instrument], prices: dict[str, float]) -> None:
    """The positions file's prices over the instruments (a new symbol: a bare instrument)."""
    for symbol, price in prices.items():
        if symbol in instruments:
            instruments[symbol] = instruments[symbol].model_copy(update={"price": price})
        else:
            instruments[symbol] = Instrument(symbol=symbol, price=price)


def _check_all(args: argparse.Namespace) -> int:
    try:
        options = ClusterOptions.from_args(args)
        store = open_store(args) if args.database_url is not None else None
        try:
            policies = _policies(args, store)
            instruments, risk_model = _universe(args, store)
            holdings = read_holdings(
                args.positions,
                cash_path=args.cash,
                known_symbols=set(instruments) if instruments else None,
                cash_symbol=args.cash_symbol,
                require_cash=args.missing_cash == "error",
            )
            _prices(instruments, holdings.prices)
            lineages, controls = _lineages(store, holdings.rows, args.policies is None)
        except (SQLAlchemyError, ValidationError) as exc:
            raise Unavailable(f"cannot read the database: {exc.__class__.__name__}") from exc
        finally:
            if store is not None:
                store.engine.dispose()
        groups = plan_groups(
            holdings.portfolios,
            holdings.positions,
            policies,
            instruments,
            lineages=lineages,
            controls=controls,
            risk_model=risk_model,
            require_applicable=not args.approve_when_no_policy_applies,
        )
    except (_Bad, InputFileError, PlanError, Unavailable) as exc:
        return _bad(str(exc))
    if not args.verbose:
        _quiet_dask()
    try:
        with dask_client(options) as client:
            result = run_check_all(
                client,
                groups,
                holdings.positions,
                holdings.cash,
                partition_size=args.partition_size,
                backend=args.backend,
                progress=not args.no_progress,
            )
    except RuntimeError as exc:  # Dask missing, or the scheduler cannot be reached
        return _bad(str(exc))
    if result.errors:
        pid, problem = result.errors[0]
        more = f" (and {len(result.errors) - 1} more portfolios)" if len(result.errors) > 1 else ""
        where, row = holdings.rows[pid]
        return _bad(f"{where}: row {row}: portfolio {pid!r}: {problem}{more}")
    if args.output is not None:
        write_breaches(args.output, result.breaches)
    _print_summary(result, args)
    return EXIT_NOT_COMPLIANT if result.breaches else EXIT_COMPLIANT


def _quiet_dask() -> None:
    """Silence Dask's own logs unless `pes -v` asks for them.

    Dask logs every worker's start and stop (and a closed stream at exit) at INFO: standard
    error is kept for the progress bar and the problems.
    """
    try:
        import distributed  # noqa: F401  (its import sets up its loggers)
    except ImportError:  # pragma: no cover - dask_client says what to install
        return
    names = [n for n in logging.root.manager.loggerDict if n.startswith(("distributed", "tornado"))]
    for name in ("distributed", "tornado", *names):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _print_summary(result: CheckAllResult, args: argparse.Namespace) -> None:
    summary = result.summary()
    if args.output is not None:
        summary["output"] = str(args.output)
    if args.format == "json":
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{summary['portfolios_checked']} portfolios checked, "
        f"{summary['portfolios_in_breach']} in breach, {summary['breaches']} breaches "
        f"({result.seconds:.1f} s, {summary['groups']} policy groups, "
        f"{summary['partitions']} partitions)"
    )
    for name, counts in summary["breaches_by_policy"].items():
        print(f"  {name}: {counts['breaches']} breaches in {counts['portfolios']} portfolios")
    if args.output is not None:
        print(f"breaches written to {args.output}")


def _bad(message: str) -> int:
    print(f"pes check-all: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def add_parser(commands: Any) -> None:
    """Register `pes check-all`."""
    parser = commands.add_parser(
        "check-all",
        help="check every portfolio's holdings against its policies, on Dask",
        description="Check the current holdings of every portfolio in POSITIONS (Parquet or "
        "CSV: portfolio_id, symbol, quantity, optionally price) against its effective "
        "policies, as a validation of no trades would (docs/check-all.md). Exit status: 0 no "
        "portfolio in breach, 1 some in breach, 2 bad input (one line naming file, row and "
        "column) or an unreachable scheduler.",
    )
    parser.add_argument("positions", type=Path, metavar="POSITIONS")
    parser.add_argument(
        "--cash",
        type=Path,
        metavar="FILE",
        help=f"Parquet/CSV of portfolio_id, cash (default: {CASH_SYMBOL} rows of POSITIONS)",
    )
    parser.add_argument(
        "--cash-symbol",
        default=CASH_SYMBOL,
        metavar="SYMBOL",
        help=f"the symbol of cash rows in POSITIONS (default {CASH_SYMBOL})",
    )
    parser.add_argument(
        "--missing-cash",
        choices=["error", "zero"],
        default="error",
        help="a portfolio without cash: refused (default) or counted as 0",
    )
    parser.add_argument(
        "--policies",
        type=Path,
        metavar="PATH",
        help="YAML/JSON file or directory of policies (default: the stored policies, "
        "with --database-url)",
    )
    parser.add_argument(
        "--universe-file",
        type=Path,
        metavar="FILE",
        help="a universe file (as pes universes apply reads) giving the instruments",
    )
    parser.add_argument(
        "--universe", metavar="ID[@VERSION]", help="a registered universe (with --database-url)"
    )
    parser.add_argument(
        "--risk-model",
        metavar="ID[@VERSION]",
        help="a registered risk model for risk policies (with --database-url)",
    )
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the breaches (Parquet)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--partition-size",
        type=positive_int,
        default=200,
        metavar="N",
        help="portfolios per Dask task (default 200)",
    )
    parser.add_argument(
        "--backend",
        choices=["numpy", "jax", "auto"],
        default="numpy",
        help="the batch screen's backend (default numpy: no JIT per task shape)",
    )
    parser.add_argument(
        "--approve-when-no-policy-applies",
        action="store_true",
        help="check a portfolio no strict or advisory policy applies to (default: exit 2)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="the service's database: its stored policies (without --policies), portfolio "
        "tree and global policy are applied, and --universe / --risk-model are read from "
        "it; without it none of them is",
    )
    add_cluster_options(parser)
    parser.set_defaults(handler=_check_all)

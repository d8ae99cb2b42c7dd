"""`pes stress`: loss distribution, VaR/CVaR, worst scenarios, scenario rules (docs/stress.md)."""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from api.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_COMPLIANT,
    EXIT_NOT_COMPLIANT,
    Unavailable,
    open_store,
)
from api.field_messages import describe_validation_error
from api.files.policy_files import PolicyFileError, load_policies, read_documents
from api.references import NoReferences, ReferenceCache, StoreReferences
from engine import InputError
from engine.resolve.references import ReferenceSource
from models import PolicyDefinition
from models.stress import PortfolioStress, StressRequest, StressResponse

__all__ = ["add_parser"]

log = logging.getLogger("pes")


class _BadInput(Exception):
    """Input that makes the command exit with status 2."""


def _historical(path: Path) -> dict[str, Any]:
    """A returns CSV: a header `date,SYM1,SYM2,...`, then one row of returns per date."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise _BadInput(f"--scenarios: {path}: cannot read: {exc}") from exc
    if len(rows) < 2 or len(rows[0]) < 2:
        raise _BadInput(
            f"--scenarios: {path}: needs a header (date, then one column per symbol) and at "
            "least one row of returns"
        )
    symbols = [s.strip() for s in rows[0][1:]]
    labels: list[str] = []
    returns: list[list[float]] = []
    for r, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(symbols) + 1:
            raise _BadInput(
                f"--scenarios: {path}: line {r} has {len(row)} fields, expected {len(symbols) + 1}"
            )
        try:
            values = [float(x) for x in row[1:]]
        except ValueError as exc:
            raise _BadInput(f"--scenarios: {path}: line {r}: {exc}") from exc
        if not all(math.isfinite(v) for v in values):
            raise _BadInput(f"--scenarios: {path}: line {r}: returns must be finite numbers")
        labels.append(row[0])
        returns.append(values)
    return {"symbols": symbols, "returns": returns, "labels": labels}


def _shock(text: str) -> dict[str, Any]:
    """`factor=value[,factor=value...]`: one factor-shock scenario, named by the text."""
    factors: dict[str, float] = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        try:
            move = float(value)
        except ValueError:
            move = math.nan
        if not eq or not name.strip() or not math.isfinite(move):
            raise _BadInput(
                f"--shock {text!r}: expected FACTOR=RETURN[,FACTOR=RETURN...], e.g. market=-0.2"
            )
        factors[name.strip()] = move
    return {"name": text, "factors": factors}


def _levels(text: str) -> list[float]:
    try:
        levels = [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise _BadInput(f"--levels {text!r}: expected numbers like 0.95,0.99") from exc
    bad = [x for x in levels if not 0.0 < x < 1.0]
    if bad:
        raise _BadInput(f"--levels {text!r}: each level must lie strictly between 0 and 1")
    return levels


def _request(args: argparse.Namespace) -> StressRequest:
    try:
        data = read_documents(args.file)
    except PolicyFileError as exc:
        raise _BadInput(str(exc)) from exc
    if not isinstance(data, dict):
        raise _BadInput(f"{args.file}: expected a StressRequest object")
    if args.scenarios is not None:
        data["historical"] = _historical(args.scenarios)
    if args.shock:
        data["factor_shocks"] = [*data.get("factor_shocks", []), *map(_shock, args.shock)]
    if args.monte_carlo is not None or args.seed is not None or args.horizon_days is not None:
        mc = dict(data.get("monte_carlo") or {})
        if args.monte_carlo is not None:
            mc["scenarios"] = args.monte_carlo
        if args.seed is not None:
            mc["seed"] = args.seed
        if args.horizon_days is not None:
            mc["horizon_days"] = args.horizon_days
        data["monte_carlo"] = mc
    if args.levels is not None:
        data["levels"] = _levels(args.levels)
    if args.worst is not None:
        data["worst"] = args.worst
    if args.backend is not None:
        data["backend"] = args.backend
    try:
        return StressRequest.model_validate(data)
    except ValidationError as exc:
        lines = describe_validation_error(exc).splitlines()
        raise _BadInput("\n".join(f"{args.file}: {line}" for line in lines)) from exc


def _references(args: argparse.Namespace) -> ReferenceSource:
    """The registered reference data of --database-url, or a source that asks for it."""
    if args.database_url is None:
        return NoReferences("pass --database-url URL (the service's database) to look it up")
    return StoreReferences(open_store(args), ReferenceCache())


def _text_block(figures: PortfolioStress) -> list[str]:
    lines = [
        f"{figures.portfolio_id}  (NAV {figures.nav:,.2f})",
        f"  loss: mean {figures.loss.mean:+.4%}  std {figures.loss.std:.4%}  "
        f"worst {figures.loss.max:+.4%}",
    ]
    for risk in figures.risk:
        lines.append(
            f"  {risk.level:.2%}: VaR {risk.var:.4%} ({risk.var_amount:,.2f})  "
            f"CVaR {risk.cvar:.4%} ({risk.cvar_amount:,.2f})"
        )
    if figures.worst:
        lines.append("  worst: " + ", ".join(f"{w.label} {w.loss:+.4%}" for w in figures.worst))
    for rule in figures.rules:
        mark = "BREACH" if rule.breached else "ok"
        subject = f" [{rule.subject}]" if rule.subject else ""
        extra = (
            f" (scenario VaR {rule.scenario_value:.4%})" if rule.scenario_value is not None else ""
        )
        lines.append(
            f"  {mark:6} {rule.policy_name} {rule.violation_type}{subject}: "
            f"{rule.observed:.4%} vs limit {rule.limit:.4%}{extra}"
        )
    return lines


def _text(response: StressResponse) -> str:
    sources = ", ".join(f"{n} {k}" for k, n in response.sources.items() if n)
    lines = [f"{response.scenarios} scenarios ({sources}) on {response.backend}", ""]
    for figures in response.portfolios:
        lines += [*_text_block(figures), ""]
    lines += ["firm-wide (NAV-weighted):", *_text_block(response.firm)]
    return "\n".join(lines)


def _stress(args: argparse.Namespace) -> int:
    # Imported here: the stress run brings the batch checker and cvxpy, which `pes --help`
    # and the commands that solve nothing need not load.
    from engine.stress import names_stress_references, resolve_stress_references, run_stress

    policies: list[PolicyDefinition] = []
    try:
        if args.policies is not None:
            try:
                policies = load_policies(args.policies)
            except PolicyFileError as exc:
                raise _BadInput(f"--policies: {exc}") from exc
        request = _request(args)
        if names_stress_references(request):
            request = resolve_stress_references(request, _references(args))
        response = run_stress(request, policies)
    except _BadInput as exc:
        print(f"pes stress: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InputError as exc:
        print(f"pes stress: {args.file}: {exc.field}: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Unavailable as exc:
        print(f"pes stress: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SQLAlchemyError as exc:
        print(f"pes stress: {args.file}: cannot read reference data: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.format == "text":
        print(_text(response), flush=True)
    else:
        print(response.model_dump_json(indent=2, exclude_none=True), flush=True)
    breached = [
        r
        for figures in [*response.portfolios, response.firm]
        for r in figures.rules
        if r.breached and r.enforcement_level == "strict"
    ]
    log.info(
        "%d scenarios, %d portfolios, %d strict rule breach(es), %.1f ms",
        response.scenarios,
        len(response.portfolios),
        len(breached),
        response.timings_ms.get("total", 0.0),
    )
    return EXIT_NOT_COMPLIANT if breached else EXIT_COMPLIANT


def add_parser(commands: Any) -> None:
    """Register `pes stress`."""
    stress = commands.add_parser(
        "stress",
        help="stress tests and scenario VaR/CVaR of portfolios, per portfolio and firm-wide",
        description="Compute each portfolio's and the firm's (NAV-weighted) loss "
        "distribution under historical scenarios, factor shocks and Monte Carlo draws from "
        "the factor model: VaR and CVaR at the levels, the worst scenarios, and the "
        "policies' stress, var and cvar rules on them. FILE is a StressRequest (JSON or "
        "YAML); the options below add to or replace its fields. Exit status: 0 no strict "
        "rule breached, 1 some strict rule breached, 2 invalid input (the field named on "
        "stderr). See docs/stress.md.",
    )
    stress.add_argument("file", type=Path, metavar="FILE", help="a StressRequest, JSON or YAML")
    stress.add_argument(
        "--policies",
        type=Path,
        metavar="PATH",
        help="YAML/JSON file or directory of PolicyDefinitions whose stress/var/cvar rules "
        "are evaluated; the request's inline 'policies' replace them",
    )
    stress.add_argument(
        "--scenarios",
        type=Path,
        metavar="CSV",
        help="historical returns: header 'date,SYM1,SYM2,...', one row of returns per date",
    )
    stress.add_argument(
        "--shock",
        action="append",
        metavar="FACTOR=RETURN[,...]",
        help="a factor-shock scenario (repeatable), e.g. --shock market=-0.2",
    )
    stress.add_argument(
        "--monte-carlo", type=int, metavar="N", help="Monte Carlo scenarios (default 10000)"
    )
    stress.add_argument("--seed", type=int, metavar="S", help="Monte Carlo seed (default 0)")
    stress.add_argument(
        "--horizon-days", type=float, metavar="H", help="Monte Carlo horizon (default 1 day)"
    )
    stress.add_argument(
        "--levels", metavar="L1,L2", help="confidence levels, e.g. 0.95,0.99 (the default)"
    )
    stress.add_argument("--worst", type=int, metavar="N", help="worst scenarios to list")
    stress.add_argument(
        "--backend", choices=["auto", "jax", "numpy"], help="where the arithmetic runs"
    )
    stress.add_argument("--format", choices=["json", "text"], default="json")
    stress.add_argument(
        "--database-url",
        metavar="URL",
        help="the service's database, where a registered risk model (risk_model.id) or a "
        "state's universe named by the request is looked up; without it such requests are "
        "refused (exit 2)",
    )
    stress.set_defaults(handler=_stress)

"""`pes portfolios apply | list`: the firm -> fund -> portfolio hierarchy in the database."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store, print_counts
from api.files.portfolio_files import PortfolioFileError, load_portfolios
from api.store import Conflict, Invalid

__all__ = ["add_parser"]


def _portfolios_apply(args: argparse.Namespace) -> int:
    try:
        nodes = load_portfolios(args.path)
    except PortfolioFileError as exc:
        print(f"pes portfolios apply: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = open_store(args)
    try:
        results = store.portfolios.put_many(nodes, actor=args.actor)
    except (Invalid, Conflict) as exc:
        print(f"pes portfolios apply: nothing applied: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    counts = {"created": 0, "replaced": 0, "unchanged": 0}
    for outcome, stored in results:
        counts[outcome] += 1
        print(
            json.dumps(
                {
                    "portfolio_id": stored.node.portfolio_id,
                    "action": outcome,
                    "revision": stored.revision,
                }
            )
        )
    print_counts(counts, "portfolios", "were")
    return 0


def _portfolios_list(args: argparse.Namespace) -> int:
    for stored in open_store(args).portfolios.list():
        node = stored.node
        print(
            f"{node.portfolio_id}\t{node.parent_id or '-'}\t{node.name}\tr{stored.revision}\t"
            f"{node.benchmark.name if node.benchmark else '-'}"
        )
    return 0


def add_parser(commands: Any) -> None:
    """Register `pes portfolios` and its actions."""
    portfolios = commands.add_parser(
        "portfolios",
        help="the firm → fund → portfolio hierarchy: apply, list",
        description="Manage the portfolio hierarchy directly in the database. Policies "
        "scoped to a node bind every portfolio below it.",
    )
    actions = portfolios.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply = actions.add_parser(
        "apply",
        help="create or replace portfolio nodes from YAML/JSON files",
        description="Upsert every PortfolioNode in PATH (file or directory; one node or a "
        "list per file), parents before children, in one transaction: an unknown parent "
        "or a cycle applies nothing (exit 2). Prints one JSON line per node.",
    )
    apply.add_argument("path", type=Path, metavar="PATH")
    apply.add_argument("--actor", default="pes-cli", help="name recorded as updated_by")
    database_option(apply)
    apply.set_defaults(handler=_portfolios_apply)
    listing = actions.add_parser(
        "list",
        help="list the stored portfolio nodes",
        description="One line per node: id, parent (- for a root), name, revision, "
        "default benchmark (- for none).",
    )
    database_option(listing)
    listing.set_defaults(handler=_portfolios_list)

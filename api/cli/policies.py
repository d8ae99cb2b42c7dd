"""`pes policies apply | list | export`: policy as code, directly in the database."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store, print_counts
from api.cli.report import write_output
from api.files.policy_files import PolicyFileError, load_policies
from api.reports import policy_docs
from api.store import Invalid, NotFound
from api.store.diff import json_diff
from api.store.policies import reserved

__all__ = ["add_parser"]


def _policies_apply(args: argparse.Namespace) -> int:
    try:
        wanted = load_policies(args.path)
    except PolicyFileError as exc:
        print(f"pes policies apply: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        for policy in wanted:
            reserved(policy)
    except Invalid as exc:
        print(f"pes policies apply: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = open_store(args)
    actor = args.actor
    counts = {"created": 0, "replaced": 0, "unchanged": 0}
    for policy in wanted:
        if args.dry_run:
            try:
                current = store.policies.get(policy.policy_name).definition.model_dump(mode="json")
            except NotFound:
                current = None
            changes = json_diff(current, policy.model_dump(mode="json"))
            outcome = "create" if current is None else ("replace" if changes else "unchanged")
            print(
                json.dumps(
                    {
                        "policy_name": policy.policy_name,
                        "action": outcome,
                        "diff": changes if current is not None else [],
                    }
                )
            )
            counts["created" if current is None else "replaced" if changes else "unchanged"] += 1
            continue
        outcome, stored = store.policies.upsert(policy, actor=actor)
        counts[outcome] += 1
        print(
            json.dumps(
                {"policy_name": policy.policy_name, "action": outcome, "version": stored.version}
            )
        )
    print_counts(counts, "policies", "would be" if args.dry_run else "were")
    return 0


def _policies_list(args: argparse.Namespace) -> int:
    for stored in open_store(args).policies.list():
        p = stored.definition
        print(
            f"{p.policy_name}\tv{stored.version}\t{p.policy_type.value}\t"
            f"{p.enforcement_level.value}\t{'enabled' if p.enabled else 'disabled'}"
        )
    return 0


def _policies_export(args: argparse.Namespace) -> int:
    policies = [
        s.definition.model_dump(mode="json", exclude_none=True)
        for s in open_store(args).policies.list()
    ]
    if args.format == "json":
        print(json.dumps(policies, indent=2))
    else:
        print(yaml.safe_dump(policies, sort_keys=False), end="")
    return 0


def _policies_docs(args: argparse.Namespace) -> int:
    store = open_store(args)
    write_output(policy_docs(store.policies.list(), store.portfolios.list()), args.output)
    return 0


def add_parser(commands: Any) -> None:
    """Register `pes policies` and its actions."""
    policies = commands.add_parser(
        "policies",
        help="policy as code: apply, list, export, docs",
        description="Manage stored policies directly in the database.",
    )
    actions = policies.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply = actions.add_parser(
        "apply",
        help="create or replace policies from YAML/JSON files",
        description="Upsert every PolicyDefinition in PATH (file or directory); each change "
        "is a new audited version. --dry-run prints what would change, as JSON lines.",
    )
    apply.add_argument("path", type=Path, metavar="PATH")
    apply.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    apply.add_argument("--actor", default="pes-cli", help="name recorded in the audit trail")
    database_option(apply)
    apply.set_defaults(handler=_policies_apply)
    listing = actions.add_parser(
        "list",
        help="list stored policies",
        description="One line per policy: name, version, type, enforcement, state.",
    )
    database_option(listing)
    listing.set_defaults(handler=_policies_list)
    export = actions.add_parser(
        "export",
        help="print stored policies as YAML or JSON",
        description="Print every stored policy, ready for `pes policies apply`.",
    )
    export.add_argument("--format", choices=["yaml", "json"], default="yaml")
    database_option(export)
    export.set_defaults(handler=_policies_export)
    docs = actions.add_parser(
        "docs",
        help="every stored policy in plain words (Markdown)",
        description="Each policy in plain words: what it limits, when and where it applies "
        "in the portfolio tree, and its limits under each risk mode.",
    )
    docs.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    database_option(docs)
    docs.set_defaults(handler=_policies_docs)

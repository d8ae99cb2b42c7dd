"""`pes universes`, `pes risk-models`, `pes fx-snapshots`: register reference data, list it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.files.reference_files import ReferenceFileError, load_reference_data
from api.store import Conflict, ReferenceDataStore, Store
from models import FxSnapshot, RiskModelDefinition, Universe

__all__ = ["add_reference_commands"]

EXIT_BAD_INPUT = 2

OpenStore = Callable[[argparse.Namespace], Store]
AddDatabaseOption = Callable[[argparse.ArgumentParser], None]


def _apply(
    args: argparse.Namespace, *, command: str, model: type[Any], open_store: OpenStore
) -> int:
    try:
        definitions = load_reference_data(args.path, model)
    except ReferenceFileError as exc:
        print(f"pes {command} apply: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = _kind(open_store(args), model)
    counts = {"created": 0, "replaced": 0, "unchanged": 0}
    for definition in definitions:
        try:
            outcome, stored = store.put(definition, actor=args.actor)
        except Conflict as exc:
            print(f"pes {command} apply: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        counts[outcome] += 1
        line = {"id": definition.id, "action": outcome, "version": stored.info.version}
        print(json.dumps(line), flush=True)
    print(
        f"{counts['created']} created, {counts['replaced']} replaced (new versions), "
        f"{counts['unchanged']} unchanged",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace, *, model: type[Any], open_store: OpenStore) -> int:
    for info in _kind(open_store(args), model).list():
        symbols = info.changes.get("symbols", "?")
        print(f"{info.id}\tv{info.version}\t{symbols} symbols\t{info.created_at.isoformat()}")
    return 0


def _kind(store: Store, model: type[Any]) -> ReferenceDataStore[Any]:
    if model is Universe:
        return store.universes
    return store.fx_snapshots if model is FxSnapshot else store.risk_models


def add_reference_commands(
    commands: Any, *, open_store: OpenStore, database_option: AddDatabaseOption
) -> None:
    """Add `universes`, `risk-models` and `fx-snapshots` (`apply`, `list`) to the subparsers."""
    for command, model, noun, example in (
        ("universes", Universe, "universe", "id, description, instruments"),
        ("risk-models", RiskModelDefinition, "risk model", "id, description, risk_model"),
        ("fx-snapshots", FxSnapshot, "FX snapshot", "id, description, base_currency, rates"),
    ):
        parser = commands.add_parser(
            command,
            help=f"registered {noun}s that requests name by id: apply, list",
            description=f"Manage registered {noun}s directly in the database. Every change "
            "is a new immutable version; requests name one by id (and version). See "
            "docs/reference-data.md.",
        )
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        apply = actions.add_parser(
            "apply",
            help=f"register {noun}s from YAML/JSON files",
            description=f"Store every {noun} in PATH (a file holding one or a list of "
            f"objects with {example}, or a directory of such files) as a new version; "
            "content equal to the latest version changes nothing. Prints one JSON line "
            "per id: action (created | replaced | unchanged) and version. Invalid files "
            "apply nothing (exit 2).",
        )
        apply.add_argument("path", type=Path, metavar="PATH")
        apply.add_argument("--actor", default="pes-cli", help="name recorded with the version")
        database_option(apply)
        apply.set_defaults(
            handler=_bound(_apply, command=command, model=model, open_store=open_store)
        )
        listing = actions.add_parser(
            "list",
            help=f"list registered {noun}s",
            description="One line per id: latest version, number of symbols, time.",
        )
        database_option(listing)
        listing.set_defaults(handler=_bound(_list, model=model, open_store=open_store))


def _bound(function: Callable[..., int], **fixed: Any) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        return function(args, **fixed)

    return handler

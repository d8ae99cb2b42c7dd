"""`pes global show | set | reset`: the global policy, directly in the database.

`set` takes `KEY=VALUE` pairs (each VALUE read as JSON when it parses, as text otherwise:
`risk_mode=DEFENSIVE`, `max_positions=10`, `max_positions=null`,
`allowed_symbols='["AAPL","MSFT"]'`) or `--file F` (a JSON or YAML object), merged into
the current version as the service merges a PATCH (docs/global-policy.md). The result is
validated as a whole before anything is stored: a bad field exits 2 naming its path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store
from api.field_messages import field_messages
from api.store import Conflict, Invalid, PreconditionFailed, StoredGlobalPolicy
from api.store.global_policy import merged
from models import GlobalPolicy

__all__ = ["add_parser"]


class _BadPatch(Exception):
    """A patch that cannot be applied: one line per problem, each naming its field."""


def _show(stored: StoredGlobalPolicy, changed: bool | None = None) -> None:
    body: dict[str, Any] = {
        **stored.policy.model_dump(mode="json"),
        "version": stored.version,
        "updated_by": stored.updated_by,
    }
    if changed is not None:
        body["changed"] = changed
    print(json.dumps(body, indent=2))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _patch_of(args: argparse.Namespace) -> dict[str, Any]:
    if args.file is not None and args.pairs:
        raise _BadPatch("give KEY=VALUE pairs or --file, not both")
    if args.file is not None:
        try:
            data = yaml.safe_load(Path(args.file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise _BadPatch(f"{args.file}: cannot read: {exc}") from exc
        if not isinstance(data, dict):
            raise _BadPatch(f"{args.file}: must hold one object (field: value)")
        return data
    if not args.pairs:
        raise _BadPatch("nothing to set: give KEY=VALUE pairs or --file F")
    patch: dict[str, Any] = {}
    for pair in args.pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise _BadPatch(f"{pair!r}: expected KEY=VALUE")
        patch[key.strip()] = _value(text)
    return patch


def apply_patch(current: GlobalPolicy, patch: dict[str, Any]) -> GlobalPolicy:
    """`current` with the merge patch applied (as PATCH /api/policy does), or `_BadPatch`."""
    try:
        return merged(current, patch)
    except Invalid as exc:
        raise _BadPatch(str(exc)) from exc
    except ValidationError as exc:
        raise _BadPatch("\n".join(f"{f}: {m}" for f, m in field_messages(exc))) from exc


def _show_current(args: argparse.Namespace) -> int:
    _show(open_store(args).global_policy.current())
    return 0


def _set(args: argparse.Namespace) -> int:
    try:
        patch = _patch_of(args)
        # Checked against the model's defaults first, so a bad file exits 2 before the
        # database is opened; then applied for real to the stored version.
        apply_patch(GlobalPolicy(), patch)
    except _BadPatch as exc:
        return _bad(str(exc))
    store = open_store(args).global_policy
    expected = None if args.if_version is None else {args.if_version}
    try:
        changed, stored = store.change(
            lambda current: apply_patch(current, patch), actor=args.actor, expected=expected
        )
    except _BadPatch as exc:
        return _bad(str(exc))
    except (PreconditionFailed, Conflict) as exc:
        print(f"pes global set: {exc}", file=sys.stderr)
        return 1
    _show(stored, changed)
    return 0


def _reset(args: argparse.Namespace) -> int:
    store = open_store(args).global_policy
    expected = None if args.if_version is None else {args.if_version}
    try:
        changed, stored = store.reset(actor=args.actor, expected=expected)
    except (PreconditionFailed, Conflict) as exc:
        print(f"pes global reset: {exc}", file=sys.stderr)
        return 1
    _show(stored, changed)
    return 0


def _bad(message: str) -> int:
    for line in message.splitlines():
        print(f"pes global set: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def add_parser(commands: Any) -> None:
    """Register `pes global` and its actions."""
    parser = commands.add_parser(
        "global",
        help="the global policy (risk mode, gates, limits): show, set, reset",
        description="The platform's runtime controls, stored and versioned in the database "
        "(docs/global-policy.md). A store without one starts from the QT_* variables.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print the current global policy",
        description="Print the current version as JSON: its fields, version and author.",
    )
    database_option(show)
    show.set_defaults(handler=_show_current)
    setter = actions.add_parser(
        "set",
        help="change fields of the global policy (a new version)",
        description="Merge KEY=VALUE pairs (VALUE as JSON when it parses: "
        "max_positions=10, max_positions=null, allowed_symbols='[\"AAPL\"]', else as text: "
        "risk_mode=DEFENSIVE) or --file F (a JSON/YAML object) into the current version, as "
        "PATCH /api/policy does, and store the result as a new version. Invalid fields: "
        "exit 2 naming each, nothing stored; a version other than --if-version: exit 1.",
    )
    setter.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    setter.add_argument("--file", metavar="F", help="a JSON or YAML object to merge")
    _common(setter)
    setter.set_defaults(handler=_set)
    reset = actions.add_parser(
        "reset",
        help="back to the QT_* defaults (a new version)",
        description="Store the defaults of the QT_* environment variables as a new version.",
    )
    _common(reset)
    reset.set_defaults(handler=_reset)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", default="pes-cli", help="name recorded with the version")
    parser.add_argument(
        "--if-version",
        type=int,
        metavar="N",
        help="change only if version N is the current one (exit 1 otherwise)",
    )
    database_option(parser)

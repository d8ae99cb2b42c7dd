"""`pes escalations apply FILE | list`: the escalation rules, versioned in the database.

`apply` reads a YAML or JSON file (`rules: [...]`, or the list itself), validates it as a
whole (a bad field exits 2 naming its path, nothing stored) and stores it as the next
version, unless it equals the current one. `list` prints the current version's rules
(`--versions`: every version) as JSON (docs/violations.md#escalation).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store
from api.field_messages import field_messages
from api.store import StoredRules
from models import EscalationRules

__all__ = ["add_parser", "load_rules"]


class BadRules(Exception):
    """A rules file that cannot be applied: one line per problem."""


def load_rules(path: Path) -> EscalationRules:
    """The rule set in `path`, validated; BadRules naming each problem otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadRules(f"{path}: cannot read: {exc}") from exc
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise BadRules(f"{path}: must hold `rules:` (a list of rules) or the list itself")
    try:
        return EscalationRules.model_validate(data)
    except ValidationError as exc:
        raise BadRules("\n".join(f"{path}: {f}: {m}" for f, m in field_messages(exc))) from exc


def _shown(stored: StoredRules) -> dict[str, Any]:
    return {
        "version": stored.version,
        "actor": stored.actor,
        "changed_at": stored.changed_at.isoformat(),
        **stored.rules.model_dump(mode="json", exclude_defaults=True),
    }


def _apply(args: argparse.Namespace) -> int:
    try:
        rules = load_rules(Path(args.file))
    except BadRules as exc:
        for line in str(exc).splitlines():
            print(f"pes escalations apply: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    stored, changed = open_store(args).escalations.apply(
        rules, actor=args.actor, now=datetime.now(UTC)
    )
    print(json.dumps({**_shown(stored), "changed": changed}, indent=2))
    return 0


def _list(args: argparse.Namespace) -> int:
    store = open_store(args).escalations
    if args.versions:
        print(json.dumps([_shown(v) for v in store.versions()], indent=2))
        return 0
    current = store.current()
    if current is None:
        print("pes escalations list: no rules applied yet", file=sys.stderr)
        print(json.dumps({"version": None, "rules": []}, indent=2))
        return 0
    print(json.dumps(_shown(current), indent=2))
    return 0


def add_parser(commands: Any) -> None:
    """Register `pes escalations` and its actions."""
    parser = commands.add_parser(
        "escalations",
        help="the escalation rules: apply a file, list them",
        description="Escalation rules raise live violations to a level by severity, age, "
        "repeat count and portfolio tree node, and notify a broker subject and a webhook "
        "(docs/violations.md).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply = actions.add_parser(
        "apply",
        help="store a rules file as the next version",
        description="Validate FILE (YAML or JSON) and store it as the next version; "
        "invalid: exit 2 naming each field, nothing stored.",
    )
    apply.add_argument("file", metavar="FILE")
    apply.add_argument("--actor", default="pes-cli", help="name recorded with the version")
    database_option(apply)
    apply.set_defaults(handler=_apply)
    listing = actions.add_parser(
        "list",
        help="print the current rules as JSON",
        description="Print the current version's rules as JSON (--versions: every version).",
    )
    listing.add_argument("--versions", action="store_true", help="every version, oldest first")
    database_option(listing)
    listing.set_defaults(handler=_list)

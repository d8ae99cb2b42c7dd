"""`pes replay`: logged decisions run again under a candidate policy set, in the database.

The same replay as `POST /api/v1/replay` (docs/decision-log.md): filters `--since`,
`--until`, `--portfolio`, `--decision`, `--validation-id`; the candidate `--base
applied|stored|none`, `--as-of`, `--pin NAME=VERSION`, `--policies PATH` (a file or a
directory of policy files, as `pes policies apply` reads) and `--global
applied|current|N`. Prints the answer as JSON; exit 0 when no decision changed, 1 when
some did, 2 for bad input (more matching decisions than PES_REPLAY_MAX_DECISIONS included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store, settings
from api.decision_log import Replayer, engine_validator
from api.field_messages import field_messages
from api.files.policy_files import PolicyFileError, load_policies
from api.references import ReferenceCache, StoreReferences
from api.store import Invalid
from models.replay import ReplayRequest

__all__ = ["add_parser"]

_OPTIONS = {
    "since": "--since",
    "until": "--until",
    "portfolio_ids": "--portfolio",
    "decision_ids": "--decision",
    "validation_ids": "--validation-id",
    "candidate.base": "--base",
    "candidate.as_of": "--as-of",
    "candidate.versions": "--pin",
    "candidate.global_policy": "--global",
}


class _Bad(Exception):
    """Bad input: one line per problem."""


def _request(args: argparse.Namespace) -> ReplayRequest:
    candidate: dict[str, Any] = {"base": args.base}
    if args.as_of is not None:
        candidate["as_of"] = args.as_of
    pins: dict[str, Any] = {}
    for pin in args.pin:
        name, sep, version = pin.partition("=")
        if not sep or not name or not version.strip().isdigit():
            raise _Bad(f"--pin {pin!r}: expected NAME=VERSION (a positive whole number)")
        pins[name] = int(version)
    candidate["versions"] = pins
    if args.global_policy not in ("applied", "current"):
        if not args.global_policy.isdigit():
            raise _Bad(f"--global {args.global_policy!r}: applied, current or a version number")
        candidate["global_policy"] = int(args.global_policy)
    else:
        candidate["global_policy"] = args.global_policy
    if args.policies is not None:
        try:
            loaded = load_policies(Path(args.policies))
        except PolicyFileError as exc:
            raise _Bad(str(exc)) from exc
        candidate["policies"] = [p.model_dump(mode="json") for p in loaded]
    body: dict[str, Any] = {
        "portfolio_ids": args.portfolio,
        "decision_ids": args.decision,
        "validation_ids": args.validation_id,
        "candidate": candidate,
        "include_responses": args.responses,
    }
    for key in ("since", "until"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    try:
        return ReplayRequest.model_validate(body)
    except ValidationError as exc:
        raise _Bad("\n".join(f"{_option(f)}: {m}" for f, m in field_messages(exc))) from exc


def _option(field: str) -> str:
    for name, option in _OPTIONS.items():
        if field == name or field.startswith(name + ".") or field.startswith(name + "["):
            return option + field[len(name) :]
    return field


def _replay(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
    except _Bad as exc:
        return _bad(str(exc))
    # Imported here, as in every command: the engine brings the compiler and cvxpy, seconds
    # that `pes --help` and the commands that solve nothing need not pay.
    from engine import PolicyEngine

    config = settings(args)
    store = open_store(args)
    validate = engine_validator(
        PolicyEngine(),
        StoreReferences(store, ReferenceCache()),
        deadline_s=config.request_deadline_s,
        require_applicable=not config.approve_when_no_policy_applies,
    )
    try:
        answer = Replayer(store, validate, config.replay_max_decisions).run(request)
    except Invalid as exc:
        return _bad(f"{_option(exc.field)}: {exc.message}")
    print(json.dumps(answer.model_dump(mode="json"), indent=2 if args.pretty else None))
    summary = answer.summary
    changed = ", ".join(f"{n} {c.value}" for c, n in summary.by_change.items() if n)
    print(
        f"{summary.replayed} decisions replayed, {summary.changed} changed"
        + (f" ({changed})" if changed else ""),
        file=sys.stderr,
    )
    return 1 if summary.changed else 0


def _bad(message: str) -> int:
    for line in message.splitlines():
        print(f"pes replay: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def add_parser(commands: Any) -> None:
    """Register `pes replay`."""
    parser = commands.add_parser(
        "replay",
        help="run logged decisions again under a candidate policy set",
        description="Replay logged decisions (docs/decision-log.md) and print what changes "
        "for each: newly blocked, newly allowed, different violations or adjustment. Exit 0 "
        "when nothing changed, 1 when something did, 2 for bad input.",
    )
    parser.add_argument("--since", metavar="TIME", help="logged at or after (ISO 8601, with zone)")
    parser.add_argument("--until", metavar="TIME", help="logged before (ISO 8601, with zone)")
    parser.add_argument("--portfolio", action="append", default=[], metavar="ID")
    parser.add_argument("--decision", action="append", default=[], metavar="ID")
    parser.add_argument("--validation-id", action="append", default=[], type=int, metavar="N")
    parser.add_argument(
        "--base",
        choices=["applied", "stored", "none"],
        default="applied",
        help="the set to start from: each decision's applied versions (default), the stored "
        "policies (now, or at --as-of), or nothing",
    )
    parser.add_argument("--as-of", metavar="TIME", help="with --base stored: the policies then")
    parser.add_argument(
        "--pin", action="append", default=[], metavar="NAME=VERSION", help="a stored version"
    )
    parser.add_argument(
        "--policies", metavar="PATH", help="policy file or directory: replace or add by name"
    )
    parser.add_argument(
        "--global",
        dest="global_policy",
        default="applied",
        metavar="applied|current|N",
        help="the global policy: each decision's (default), the current one, or a version",
    )
    parser.add_argument("--responses", action="store_true", help="add each replayed response")
    parser.add_argument("--pretty", action="store_true", help="indent the JSON")
    database_option(parser)
    parser.set_defaults(handler=_replay)

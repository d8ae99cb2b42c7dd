"""`pes validate`: validate trading decisions given as JSON files."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from api.files.policy_files import PolicyFileError, load_policies
from api.logsafe import printable
from api.references import NoReferences, ReferenceCache, StoreReferences, reported, resolved
from engine import InputError
from engine.resolve.global_policy import GlobalControls
from engine.resolve.references import ReferenceSource
from models import PolicyDefinition, PolicyValidationRequest, PolicyValidationResponse

if TYPE_CHECKING:
    from engine import PolicyEngine

__all__ = ["add_parser"]

STDIN = Path("-")
"""The FILE that names standard input."""
log = logging.getLogger("pes")


class _BadInput(Exception):
    """Input that makes the command exit with status 2."""


def _label(path: Path) -> str:
    """How messages name a FILE argument."""
    return "<stdin>" if path == STDIN else str(path)


def _read_text(path: Path) -> str:
    """The text of `path`, or of standard input for ``-``."""
    if path == STDIN:
        return sys.stdin.buffer.read().decode("utf-8")
    return path.read_text(encoding="utf-8")


def _read_request(path: Path) -> PolicyValidationRequest:
    name = _label(path)
    try:
        text = _read_text(path)
    except OSError as exc:
        raise _BadInput(f"{name}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise _BadInput(f"{name}: cannot read: not UTF-8 text ({exc.reason})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadInput(f"{name}: not valid JSON: {exc}") from exc
    try:
        return PolicyValidationRequest.model_validate(data)
    except ValidationError as exc:
        lines = describe_validation_error(exc).splitlines()
        raise _BadInput("\n".join(f"{name}: {line}" for line in lines)) from exc


def _validate(args: argparse.Namespace) -> int:
    stored: list[PolicyDefinition] = []
    if args.policies is not None:
        try:
            stored = load_policies(args.policies)
        except PolicyFileError as exc:
            print(f"pes validate: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        references, controls = _from_database(args)
    except Unavailable as exc:
        print(f"pes validate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from engine import PolicyEngine  # the compiler and cvxpy, only when a request is checked

    engine = PolicyEngine()
    status = EXIT_COMPLIANT
    for path in args.files:
        name = _label(path)
        try:
            request = _read_request(path)
            if request.policies is None and args.policies is None:
                raise _BadInput(
                    f"{name}: no policies: pass --policies PATH or put 'policies' in the request"
                )
            # --policies plays the stored set: nothing applying is refused, as the service
            # does; a request's own inline policies are its author's choice.
            require = request.policies is None and not args.approve_when_no_policy_applies
            response = _validate_one(
                engine, request, stored, references, require=require, controls=controls
            )
        except SQLAlchemyError as exc:
            print(f"pes validate: {name}: cannot read reference data: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except _BadInput as exc:
            print(f"pes validate: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except InputError as exc:
            print(f"pes validate: {name}: {exc.field}: {exc.message}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except MemoryError:
            # A request too large for this machine: say so, never a traceback.
            print(
                f"pes validate: {path}: out of memory (a smaller universe or fewer policies "
                "may fit); the decision is NOT validated",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        print(response.model_dump_json(indent=2 if args.pretty else None), flush=True)
        log.info(
            "%s: %s, %d violation(s), %.2f ms",
            printable(name),
            "compliant" if response.is_compliant else "NOT compliant",
            len(response.violations),
            response.timings_ms.get("total", 0.0),
        )
        if not response.is_compliant:
            status = EXIT_NOT_COMPLIANT
    return status


def _from_database(
    args: argparse.Namespace,
) -> tuple[ReferenceSource, GlobalControls | None]:
    """The reference data and the global policy of the store named by --database-url.

    Without one: a source that says it needs one, and no global policy (there is none
    outside a database).
    """
    if args.database_url is None:
        missing = NoReferences("pass --database-url URL (the service's database) to look it up")
        return missing, None
    store = open_store(args)
    try:
        current = store.global_policy.current()
    except (SQLAlchemyError, ValidationError) as exc:
        raise Unavailable(f"cannot read the global policy: {exc.__class__.__name__}") from exc
    controls = GlobalControls(current.policy, current.version)
    return StoreReferences(store, ReferenceCache()), controls


def _validate_one(
    engine: PolicyEngine,
    request: PolicyValidationRequest,
    policies: list[PolicyDefinition],
    references: ReferenceSource,
    *,
    require: bool,
    controls: GlobalControls | None = None,
) -> PolicyValidationResponse:
    """Validate one request after merging the reference data it names (as the service does).

    `require` refuses a request on which no strict or advisory policy applies; `controls`
    is the stored global policy (with --database-url).
    """
    plain, resolution = resolved(request, references)
    with resolution.located():
        response = engine.validate(
            plain,
            policies,
            require_applicable=require,
            reference=resolution.key,
            controls=controls,
        )
    return reported(response, resolution)


def add_parser(commands: Any) -> None:
    """Register `pes validate`."""
    validate = commands.add_parser(
        "validate",
        help="validate trading decisions given as JSON files",
        description="Validate each FILE (a PolicyValidationRequest in JSON) and print one "
        "PolicyValidationResponse JSON per file, in order; FILE - reads standard input. "
        "Exit status: 0 all compliant, 1 some not compliant, 2 invalid input (message on "
        "stderr; files after the bad one are not validated), 141 standard output was closed "
        "early (as by `| head`; nothing more is printed).",
    )
    validate.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="a request file, or - for stdin"
    )
    validate.add_argument(
        "--policies",
        type=Path,
        metavar="PATH",
        help="YAML/JSON file or directory of PolicyDefinitions (one or a "
        "list per file); a request's inline 'policies' replace them",
    )
    validate.add_argument("--pretty", action="store_true", help="indent the JSON output")
    validate.add_argument(
        "--approve-when-no-policy-applies",
        action="store_true",
        help="answer compliant when no enabled strict or advisory policy of --policies "
        "applies to a request's portfolio (default: refused, exit 2)",
    )
    validate.add_argument(
        "--database-url",
        metavar="URL",
        help="the service's database: its global policy is applied (as the service "
        "applies it), and the registered universes and risk models that requests name "
        "(portfolio_state.universe, portfolio_state.risk_model.id) are looked up; without "
        "it there is no global policy and such requests are refused (exit 2)",
    )
    validate.set_defaults(handler=_validate)

"""The `pes` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from api.errors import describe_validation_error
from api.policy_files import PolicyFileError, load_policies
from engine import InputError, PolicyEngine
from models import PolicyDefinition, PolicyValidationRequest

__all__ = ["main"]

EXIT_COMPLIANT, EXIT_NOT_COMPLIANT, EXIT_BAD_INPUT = 0, 1, 2
log = logging.getLogger("pes")


class _BadInput(Exception):
    """Input that makes the command exit with status 2."""


def _read_request(path: Path) -> PolicyValidationRequest:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _BadInput(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise _BadInput(f"{path}: cannot read: not UTF-8 text ({exc.reason})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadInput(f"{path}: not valid JSON: {exc}") from exc
    try:
        return PolicyValidationRequest.model_validate(data)
    except ValidationError as exc:
        lines = describe_validation_error(exc).splitlines()
        raise _BadInput("\n".join(f"{path}: {line}" for line in lines)) from exc


def _validate(args: argparse.Namespace) -> int:
    stored: list[PolicyDefinition] = []
    if args.policies is not None:
        try:
            stored = load_policies(args.policies)
        except PolicyFileError as exc:
            print(f"pes validate: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    engine = PolicyEngine()
    status = EXIT_COMPLIANT
    for path in args.files:
        try:
            request = _read_request(path)
            if request.policies is None and args.policies is None:
                raise _BadInput(
                    f"{path}: no policies: pass --policies PATH or put 'policies' in the request"
                )
            response = engine.validate(request, stored)
        except _BadInput as exc:
            print(f"pes validate: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except InputError as exc:
            print(f"pes validate: {path}: {exc.field}: {exc.message}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(response.model_dump_json(indent=2 if args.pretty else None), flush=True)
        log.info(
            "%s: %s, %d violation(s), %.2f ms",
            path,
            "compliant" if response.is_compliant else "NOT compliant",
            len(response.violations),
            response.timings_ms.get("total", 0.0),
        )
        if not response.is_compliant:
            status = EXIT_NOT_COMPLIANT
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pes", description="Policy Enforcement Service: pre-trade compliance checks."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser(
        "validate",
        help="validate trading decisions given as JSON files",
        description="Validate each FILE (a PolicyValidationRequest in JSON) and print one "
        "PolicyValidationResponse JSON per file, in order. Exit status: 0 all compliant, "
        "1 some not compliant, 2 invalid input (message on stderr; files after the bad one "
        "are not validated).",
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument(
        "--policies",
        type=Path,
        metavar="PATH",
        help="YAML/JSON file or directory of PolicyDefinitions (one or a "
        "list per file); a request's inline 'policies' replace them",
    )
    validate.add_argument("--pretty", action="store_true", help="indent the JSON output")
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = args.handler
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())

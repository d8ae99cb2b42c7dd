"""`pes test`: run policy test files (requests paired with the verdicts they must get)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from api.cli.policy_tests import run_policy_tests

__all__ = ["add_parser"]


def _test(args: argparse.Namespace) -> int:
    return run_policy_tests(
        args.paths, keyword=args.keyword, verbose=args.show_cases, out=sys.stdout, err=sys.stderr
    )


def add_parser(commands: Any) -> None:
    """Register `pes test`."""
    test = commands.add_parser(
        "test",
        help="run policy tests: requests paired with the verdicts they must get",
        description="Run the policy test files at each PATH (a test file, or a directory "
        "searched recursively for *.tests.yaml / *.tests.yml) in-process against the "
        "engine; no database is needed. The format is described in docs/policy-tests.md. "
        "Exit status: 0 every case passed, 1 some case failed (the report shows expected "
        "against got), 2 a test file is unusable or nothing matched (message on stderr).",
    )
    test.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    test.add_argument(
        "-k",
        "--filter",
        dest="keyword",
        metavar="SUBSTRING",
        help="run only the cases whose FILE::NAME contains SUBSTRING",
    )
    test.add_argument(
        "--verbose",
        dest="show_cases",
        action="store_true",
        help="list every case with its time and the engine's stage timings",
    )
    test.set_defaults(handler=_test)

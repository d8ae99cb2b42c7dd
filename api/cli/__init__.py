"""The `pes` command line: one module per subcommand, each registering its parser.

Owns the entry point (`main`, the `pes` script and `python -m api.cli`) and the parser
assembly; each subcommand module (`validate`, `serve`, `policies`, `test`, `portfolios`,
`references` for `pes universes` and `pes risk-models`, `global_policy` for `pes global`,
`log`, `replay` and `analytics` for the decision log, `escalations`, `report`,
`stress`, `check_all` for `pes check-all`, `backtest`, `monitor`, `bench`) exposes
`add_parser` and its handler, and `common` holds what they share (exit statuses, settings,
the store). `policy_tests` is the runner of `pes test`. Exposes `main` only. May import
`models`, `engine` and the shared edges (`api.settings`, `api.store`, `api.files`,
`api.field_messages`, `api.references`, `api.logsafe`, `api.decision_log`, `api.backtest`,
`api.cluster`, `api.check_all`; `api.monitor` and `api.events` inside `pes monitor`, when it
runs); `api.http` only inside `pes serve`, when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from api.cli import (
    analytics,
    backtest,
    bench,
    check_all,
    escalations,
    global_policy,
    log,
    monitor,
    policies,
    portfolios,
    replay,
    report,
    serve,
    stress,
    test,
    validate,
)
from api.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_STDOUT_CLOSED,
    BadSettings,
    Unavailable,
    database_option,
    open_store,
)
from api.cli.references import add_reference_commands
from api.store import Invalid

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pes", description="Policy Enforcement Service: pre-trade compliance checks."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate.add_parser(commands)
    serve.add_parser(commands)
    policies.add_parser(commands)
    test.add_parser(commands)
    portfolios.add_parser(commands)
    global_policy.add_parser(commands)
    log.add_parser(commands)
    replay.add_parser(commands)
    analytics.add_parser(commands)
    escalations.add_parser(commands)
    report.add_parser(commands)
    stress.add_parser(commands)
    check_all.add_parser(commands)
    backtest.add_parser(commands)
    monitor.add_parser(commands)
    add_reference_commands(commands, open_store=open_store, database_option=database_option)
    bench.add_parser(commands)
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
    try:
        status = int(handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not at exit as an ignored exception
        return status
    except Unavailable as exc:
        print(f"pes {args.command}: {exc}", file=sys.stderr)
        return 1
    except (BadSettings, Invalid) as exc:  # Invalid: a QT_* default of the global policy
        print(f"pes {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return _stdout_closed()


def _stdout_closed() -> int:
    """The reader of standard output left: stop quietly (the Python docs' recipe).

    Output still buffered would fail again when the interpreter flushes it at exit, so
    standard output is pointed at the null device first.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_STDOUT_CLOSED

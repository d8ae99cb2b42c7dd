"""The `pes` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError

from api.cli.policy_tests import run_policy_tests
from api.cli.references import add_reference_commands
from api.errors import describe_validation_error
from api.files.policy_files import PolicyFileError, load_policies
from api.files.portfolio_files import PortfolioFileError, load_portfolios
from api.logsafe import printable
from api.references import NoReferences, ReferenceCache, StoreReferences
from api.settings import EventsBackend, Settings
from api.store import Conflict, Invalid, NotFound, Store
from api.store.diff import json_diff
from engine import InputError, PolicyEngine
from engine.resolve.references import ReferenceSource, resolve_references
from models import PolicyDefinition, PolicyValidationRequest, PolicyValidationResponse

__all__ = ["main"]

EXIT_COMPLIANT, EXIT_NOT_COMPLIANT, EXIT_BAD_INPUT = 0, 1, 2
EXIT_STDOUT_CLOSED = 141
"""The reader of standard output went away (`pes validate ... | head`): 128 + SIGPIPE, what
the shell reports for a program that signal ended, and distinct from every verdict."""
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
        references = _references(args)
    except _Unavailable as exc:
        print(f"pes validate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
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
            response = _validate_one(engine, request, stored, references, require=require)
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


def _references(args: argparse.Namespace) -> ReferenceSource:
    """The store named by --database-url, or a source that says it needs one."""
    if args.database_url is None:
        return NoReferences("pass --database-url URL (the service's database) to look it up")
    return StoreReferences(_open_store(args), ReferenceCache())


def _validate_one(
    engine: PolicyEngine,
    request: PolicyValidationRequest,
    policies: list[PolicyDefinition],
    references: ReferenceSource,
    *,
    require: bool,
) -> PolicyValidationResponse:
    """Validate one request after merging the reference data it names (as the service does).

    `require` refuses a request on which no strict or advisory policy applies.
    """
    resolution = resolve_references(request.portfolio_state, references)
    plain = request.model_copy(update={"portfolio_state": resolution.state})
    with resolution.located():
        response = engine.validate(plain, policies, require_applicable=require)
    if resolution.used is None:
        return response
    return response.model_copy(update={"reference_data": resolution.used})


class _BadSettings(Exception):
    """A setting (a `PES_*` variable or an option) has a value the service cannot use."""


def _settings(args: argparse.Namespace) -> Settings:
    """The settings from `PES_*` variables with the command's options on top.

    Raises
    ------
    _BadSettings
        One line naming each bad variable (or option) and what is wrong with it.
    """
    overrides = {
        key: value
        for key, value in {
            "database_url": getattr(args, "database_url", None),
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "events": getattr(args, "events", None),
            "insecure": getattr(args, "insecure", None) or None,
        }.items()
        if value is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_setting_problem(error, overrides) for error in exc.errors()]
        raise _BadSettings("; ".join(problems)) from None
    except SettingsError as exc:  # a dict or list variable that is not JSON
        field = next((f for f in Settings.model_fields if f'"{f}"' in str(exc)), None)
        where = f"PES_{field.upper()}" if field else "a PES_* variable"
        raise _BadSettings(f"{where}: not valid JSON") from None


def _setting_problem(error: ErrorDetails, overrides: dict[str, Any]) -> str:
    """`PES_PORT: Input should be a valid integer`, or `--port: ...` for an option.

    The value itself is never repeated: it may be an API key.
    """
    field = str(error["loc"][0]) if error["loc"] else ""
    if field in overrides:
        where = "--" + field.replace("_", "-")
    else:
        where = f"PES_{field.upper()}" if field else "settings"
    return f"{where}: {error['msg']}"


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)  # a bad PES_* value is reported before the slow imports
    import uvicorn

    from api.http.app import create_app

    problem = settings.bind_problem()
    if problem is not None:
        print(f"pes serve: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.getLogger().setLevel(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    return 0


class _Unavailable(Exception):
    """The database named by the settings cannot be opened."""


def _open_store(args: argparse.Namespace) -> Store:
    url = _settings(args).database_url
    try:
        return Store.open(url)
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise _Unavailable(f"cannot open the database: {reason}") from exc


def _policies_apply(args: argparse.Namespace) -> int:
    try:
        wanted = load_policies(args.path)
    except PolicyFileError as exc:
        print(f"pes policies apply: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = _open_store(args)
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
    _print_counts(counts, "policies", "would be" if args.dry_run else "were")
    return 0


def _print_counts(counts: dict[str, int], noun: str, verb: str) -> None:
    """The one-line summary of an apply, on stderr (stdout carries one JSON line a row)."""
    print(
        f"{counts['created']} {noun} {verb} created, {counts['replaced']} replaced, "
        f"{counts['unchanged']} unchanged",
        file=sys.stderr,
    )


def _policies_list(args: argparse.Namespace) -> int:
    for stored in _open_store(args).policies.list():
        p = stored.definition
        print(
            f"{p.policy_name}\tv{stored.version}\t{p.policy_type.value}\t"
            f"{p.enforcement_level.value}\t{'enabled' if p.enabled else 'disabled'}"
        )
    return 0


def _policies_export(args: argparse.Namespace) -> int:
    policies = [
        s.definition.model_dump(mode="json", exclude_none=True)
        for s in _open_store(args).policies.list()
    ]
    if args.format == "json":
        print(json.dumps(policies, indent=2))
    else:
        print(yaml.safe_dump(policies, sort_keys=False), end="")
    return 0


def _test(args: argparse.Namespace) -> int:
    return run_policy_tests(
        args.paths, keyword=args.keyword, verbose=args.show_cases, out=sys.stdout, err=sys.stderr
    )


def _portfolios_apply(args: argparse.Namespace) -> int:
    try:
        nodes = load_portfolios(args.path)
    except PortfolioFileError as exc:
        print(f"pes portfolios apply: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = _open_store(args)
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
    _print_counts(counts, "portfolios", "were")
    return 0


def _portfolios_list(args: argparse.Namespace) -> int:
    for stored in _open_store(args).portfolios.list():
        node = stored.node
        print(
            f"{node.portfolio_id}\t{node.parent_id or '-'}\t{node.name}\tr{stored.revision}\t"
            f"{node.benchmark.name if node.benchmark else '-'}"
        )
    return 0


def _bench(args: argparse.Namespace) -> int:
    try:
        from benchmarks.run import main as run_benchmark
    except ImportError as exc:  # installed without the benchmarks package
        print(f"pes bench: the benchmarks are not available: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    argv = [] if args.sizes is None else ["--sizes", args.sizes]
    argv += [] if args.repeats is None else ["--repeats", str(args.repeats)]
    argv += [] if args.output is None else ["--output", str(args.output)]
    argv += ["--quick"] * args.quick + ["--no-http"] * args.no_http
    return run_benchmark(argv)


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
        help="the service's database, to look up the registered universes and risk models "
        "that requests name (portfolio_state.universe, portfolio_state.risk_model.id); "
        "without it such requests are refused (exit 2)",
    )
    validate.set_defaults(handler=_validate)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP API (FastAPI on uvicorn). Settings also come from PES_* "
        "environment variables (PES_DATABASE_URL, PES_API_KEYS, PES_EVENTS, PES_NATS_URL ...). "
        "Migrations are applied at start-up.",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    _database_option(serve)
    serve.add_argument(
        "--events",
        choices=[e.value for e in EventsBackend],
        help="where validation events go (default log)",
    )
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback host without API keys"
    )
    serve.set_defaults(handler=_serve)

    policies = commands.add_parser(
        "policies",
        help="policy as code: apply, list, export",
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
    _database_option(apply)
    apply.set_defaults(handler=_policies_apply)
    listing = actions.add_parser(
        "list",
        help="list stored policies",
        description="One line per policy: name, version, type, enforcement, state.",
    )
    _database_option(listing)
    listing.set_defaults(handler=_policies_list)
    export = actions.add_parser(
        "export",
        help="print stored policies as YAML or JSON",
        description="Print every stored policy, ready for `pes policies apply`.",
    )
    export.add_argument("--format", choices=["yaml", "json"], default="yaml")
    _database_option(export)
    export.set_defaults(handler=_policies_export)

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

    _portfolio_commands(commands)
    add_reference_commands(commands, open_store=_open_store, database_option=_database_option)

    bench = commands.add_parser(
        "bench",
        help="run the latency benchmark",
        description="Time the engine's check and adjust paths against naive cvxpy and OSQP "
        "called directly, at several universe sizes, plus an HTTP load run on loopback; "
        "write latest.json and latency.png and print a Markdown table (same as "
        "`python -m benchmarks`, which has more options). Takes up to half an hour on 2 "
        "cores; --quick a few minutes. The plot needs the `bench` extra.",
    )
    bench.add_argument("--sizes", metavar="N,N,...", help="universe sizes (default 50,...,2000)")
    bench.add_argument("--repeats", type=int, metavar="R", help="timed requests per path and size")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    bench.add_argument("--no-http", action="store_true", help="skip the HTTP load run")
    bench.add_argument(
        "--output", type=Path, metavar="DIR", help="output directory (default benchmarks/results)"
    )
    bench.set_defaults(handler=_bench)
    return parser


def _portfolio_commands(commands: Any) -> None:
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
    _database_option(apply)
    apply.set_defaults(handler=_portfolios_apply)
    listing = actions.add_parser(
        "list",
        help="list the stored portfolio nodes",
        description="One line per node: id, parent (- for a root), name, revision, "
        "default benchmark (- for none).",
    )
    _database_option(listing)
    listing.set_defaults(handler=_portfolios_list)


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL (default: PES_DATABASE_URL or sqlite:///pes.db)",
    )


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
    except _Unavailable as exc:
        print(f"pes {args.command}: {exc}", file=sys.stderr)
        return 1
    except _BadSettings as exc:
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

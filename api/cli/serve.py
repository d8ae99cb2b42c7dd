"""`pes serve`: run the HTTP service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from api.cli.common import EXIT_BAD_INPUT, database_option, settings
from api.settings import EventsBackend
from api.store.global_policy import checked_defaults

__all__ = ["add_parser"]


def _serve(args: argparse.Namespace) -> int:
    config = settings(args)  # a bad PES_* value is reported before the slow imports
    checked_defaults()  # and a bad QT_* value (`Invalid`: exit 2, one line naming it)
    problem = config.bind_problem()  # and a refused bind address
    if problem is not None:
        print(f"pes serve: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    import uvicorn

    from api.http.app import create_app

    logging.getLogger().setLevel(config.log_level)
    if config.workers == 1:
        uvicorn.run(
            create_app(config),
            host=config.host,
            port=config.port,
            log_level=config.log_level.lower(),
            access_log=False,
        )
        return 0
    # Each worker process builds its own app from the environment: the options given on
    # the command line travel there as the PES_* variables they stand for.
    os.environ.update(_as_environment(args))
    uvicorn.run(
        "api.http.app:create_app",
        factory=True,
        workers=config.workers,
        host=config.host,
        port=config.port,
        log_level=config.log_level.lower(),
        access_log=False,
    )
    return 0


def _as_environment(args: argparse.Namespace) -> dict[str, str]:
    """The options of `pes serve` that were given, as the PES_* variables they override."""
    given = {
        "PES_DATABASE_URL": args.database_url,
        "PES_HOST": args.host,
        "PES_PORT": args.port,
        "PES_EVENTS": args.events,
        "PES_INSECURE": "true" if args.insecure else None,
        "PES_WORKERS": args.workers,
    }
    return {name: str(value) for name, value in given.items() if value is not None}


def add_parser(commands: Any) -> None:
    """Register `pes serve`."""
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP API (FastAPI on uvicorn). Settings also come from PES_* "
        "environment variables (PES_DATABASE_URL, PES_API_KEYS, PES_EVENTS, PES_NATS_URL ...). "
        "Migrations are applied at start-up.",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port (default 8000; 0: a free port, which the log names)"
    )
    database_option(serve)
    serve.add_argument(
        "--events",
        choices=[e.value for e in EventsBackend],
        help="where validation events go (default log)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes (default 1): each validates one request at a time; more "
        "workers share the database (PostgreSQL for several), see docs/http-service.md",
    )
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback host without API keys"
    )
    serve.set_defaults(handler=_serve)

"""What the `pes` subcommands share: exit statuses, settings, the store and its option."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError

from api.settings import Settings
from api.store import Store

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_COMPLIANT",
    "EXIT_NOT_COMPLIANT",
    "EXIT_STDOUT_CLOSED",
    "BadSettings",
    "Unavailable",
    "database_option",
    "open_store",
    "print_counts",
    "settings",
]

EXIT_COMPLIANT, EXIT_NOT_COMPLIANT, EXIT_BAD_INPUT = 0, 1, 2
EXIT_STDOUT_CLOSED = 141
"""The reader of standard output went away (`pes validate ... | head`): 128 + SIGPIPE, what
the shell reports for a program that signal ended, and distinct from every verdict."""


class BadSettings(Exception):
    """A setting (a `PES_*` variable or an option) has a value the service cannot use."""


def settings(args: argparse.Namespace) -> Settings:
    """The settings from `PES_*` variables with the command's options on top.

    Raises
    ------
    BadSettings
        One line naming each bad variable (or option) and what is wrong with it.
    """
    overrides = {
        key: value
        for key, value in {
            "database_url": getattr(args, "database_url", None),
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "workers": getattr(args, "workers", None),
            "events": getattr(args, "events", None),
            "insecure": getattr(args, "insecure", None) or None,
            "nats_url": getattr(args, "nats", None),
            "monitor_universe": getattr(args, "universe", None),
            "monitor_batch_max": getattr(args, "batch_max", None),
            "monitor_batch_ms": getattr(args, "batch_ms", None),
            "monitor_ack_wait_s": getattr(args, "ack_wait", None),
            "monitor_keep_updates_h": getattr(args, "keep_updates", None),
            "monitor_reload_s": getattr(args, "reload_s", None),
            "monitor_stream": getattr(args, "stream", None),
            "monitor_prefix": getattr(args, "prefix", None),
            "monitor_consumer": getattr(args, "consumer", None),
        }.items()
        if value is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_setting_problem(error, overrides) for error in exc.errors()]
        raise BadSettings("; ".join(problems)) from None
    except SettingsError as exc:  # a dict or list variable that is not JSON
        field = next((f for f in Settings.model_fields if f'"{f}"' in str(exc)), None)
        where = f"PES_{field.upper()}" if field else "a PES_* variable"
        raise BadSettings(f"{where}: not valid JSON") from None


_OPTIONS = {
    "nats_url": "--nats",
    "monitor_universe": "--universe",
    "monitor_batch_max": "--batch-max",
    "monitor_batch_ms": "--batch-ms",
    "monitor_ack_wait_s": "--ack-wait",
    "monitor_keep_updates_h": "--keep-updates",
    "monitor_reload_s": "--reload-s",
    "monitor_stream": "--stream",
    "monitor_prefix": "--prefix",
    "monitor_consumer": "--consumer",
}
"""Settings whose option is not named after the field."""


def _setting_problem(error: ErrorDetails, overrides: dict[str, Any]) -> str:
    """`PES_PORT: Input should be a valid integer`, or `--port: ...` for an option.

    The value itself is never repeated: it may be an API key.
    """
    field = str(error["loc"][0]) if error["loc"] else ""
    if field in overrides:
        where = _OPTIONS.get(field) or "--" + field.replace("_", "-")
    else:
        where = f"PES_{field.upper()}" if field else "settings"
    return f"{where}: {error['msg']}"


class Unavailable(Exception):
    """The database named by the settings cannot be opened."""


def open_store(args: argparse.Namespace) -> Store:
    """The store at the database URL of the settings and options.

    Raises
    ------
    Unavailable
        The database cannot be opened (the reason in one line).
    """
    url = settings(args).database_url
    try:
        return Store.open(url)
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise Unavailable(f"cannot open the database: {reason}") from exc


def print_counts(counts: dict[str, int], noun: str, verb: str) -> None:
    """The one-line summary of an apply, on stderr (stdout carries one JSON line a row)."""
    print(
        f"{counts['created']} {noun} {verb} created, {counts['replaced']} replaced, "
        f"{counts['unchanged']} unchanged",
        file=sys.stderr,
    )


def database_option(parser: argparse.ArgumentParser) -> None:
    """Add `--database-url` to a subcommand."""
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL (default: PES_DATABASE_URL or sqlite:///pes.db)",
    )

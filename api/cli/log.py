"""`pes log export | purge`: the decision log, directly in the database.

`export --out FILE.parquet` writes one row per logged validation (filters `--since`,
`--until`, `--portfolio`); `purge` deletes the entries older than `--older-than-days`
(default PES_DECISION_LOG_RETENTION_DAYS) and the request blobs no remaining entry
references; the validations themselves stay. See docs/decision-log.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store, settings
from api.decision_log.export import MissingDependency, export_parquet
from api.field_messages import field_messages
from api.store import LogFilter
from models.replay import AwareTime

__all__ = ["add_parser"]


class _Times(BaseModel):
    since: AwareTime | None = None
    until: AwareTime | None = None


def _export(args: argparse.Namespace) -> int:
    try:
        times = _Times(since=args.since, until=args.until)
    except ValidationError as exc:
        return _bad("export", "\n".join(f"--{f}: {m}" for f, m in field_messages(exc)))
    out = Path(args.out)
    if not out.parent.is_dir():
        return _bad("export", f"--out {args.out}: no such directory {out.parent}")
    where = LogFilter(since=times.since, until=times.until, portfolio_ids=tuple(args.portfolio))
    store = open_store(args)
    try:
        written = export_parquet(store.decision_log, where, out)
    except MissingDependency as exc:
        return _bad("export", str(exc))
    except OSError as exc:
        return _bad("export", f"--out {args.out}: {exc.strerror or exc}")
    print(f"{written} logged validations written to {out}", file=sys.stderr)
    return 0


def _purge(args: argparse.Namespace) -> int:
    days = args.older_than_days
    if days is None:
        days = settings(args).decision_log_retention_days
    if days is None:
        return _bad(
            "purge", "no retention: pass --older-than-days N or set PES_DECISION_LOG_RETENTION_DAYS"
        )
    if days < 1:
        return _bad("purge", f"--older-than-days {days}: must be at least 1")
    before = datetime.now(UTC) - timedelta(days=days)
    purged = open_store(args).decision_log.purge(before, dry_run=args.dry_run)
    body: dict[str, Any] = {
        "before": before.isoformat(),
        "entries": purged.entries,
        "blobs": purged.blobs,
        "blob_bytes": purged.bytes,
        "dry_run": purged.dry_run,
    }
    print(json.dumps(body))
    return 0


def _bad(action: str, message: str) -> int:
    for line in message.splitlines():
        print(f"pes log {action}: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def add_parser(commands: Any) -> None:
    """Register `pes log` and its actions."""
    parser = commands.add_parser(
        "log",
        help="the decision log: export as Parquet, purge past retention",
        description="Every stored validation's request and the policy versions applied "
        "(docs/decision-log.md).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write the log as Parquet, one row a validation")
    export.add_argument("--out", required=True, metavar="FILE.parquet")
    export.add_argument("--since", metavar="TIME", help="logged at or after (ISO 8601, with zone)")
    export.add_argument("--until", metavar="TIME", help="logged before (ISO 8601, with zone)")
    export.add_argument("--portfolio", action="append", default=[], metavar="ID")
    database_option(export)
    export.set_defaults(handler=_export)
    purge = actions.add_parser(
        "purge", help="delete entries past retention and the blobs nothing references"
    )
    purge.add_argument(
        "--older-than-days",
        type=int,
        metavar="N",
        help="default: PES_DECISION_LOG_RETENTION_DAYS",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    database_option(purge)
    purge.set_defaults(handler=_purge)

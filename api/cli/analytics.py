"""`pes analytics violations --by policy|portfolio|day | blocking`: counts over the store.

The same questions as `GET /api/v1/analytics/...` (docs/decision-log.md#analytics),
answered by DuckDB over the rows read from the database; one JSON object a line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel, ValidationError

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store
from api.decision_log import analytics
from api.decision_log.export import MissingDependency
from api.field_messages import field_messages
from models.replay import AwareTime

__all__ = ["add_parser"]


class _Window(BaseModel):
    since: AwareTime | None = None
    until: AwareTime | None = None


def _run(args: argparse.Namespace) -> int:
    try:
        window = _Window(since=args.since, until=args.until)
    except ValidationError as exc:
        return _bad("\n".join(f"--{f}: {m}" for f, m in field_messages(exc)))
    if window.since and window.until and window.since >= window.until:
        return _bad("--until: must be later than --since")
    if args.question == "blocking" and args.limit < 1:
        return _bad(f"--limit {args.limit}: must be at least 1")
    store = open_store(args)
    try:
        if args.question == "violations":
            rows = analytics.violations(store, args.by, since=window.since, until=window.until)
        else:
            rows = analytics.blocking(
                store, limit=args.limit, since=window.since, until=window.until
            )
    except MissingDependency as exc:
        return _bad(str(exc))
    for row in rows:
        print(json.dumps(row))
    return 0


def _bad(message: str) -> int:
    for line in message.splitlines():
        print(f"pes analytics: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def add_parser(commands: Any) -> None:
    """Register `pes analytics` and its questions."""
    parser = commands.add_parser(
        "analytics",
        help="violations per policy, portfolio or day; the most-blocking rules",
        description="Counts over the stored validations and violations "
        "(docs/decision-log.md#analytics).",
    )
    questions = parser.add_subparsers(dest="question", required=True, metavar="QUESTION")
    counted = questions.add_parser("violations", help="violations per policy, portfolio or day")
    counted.add_argument("--by", choices=["policy", "portfolio", "day"], required=True)
    ranked = questions.add_parser("blocking", help="the rules that blocked the most decisions")
    ranked.add_argument("--limit", type=int, default=10, metavar="N")
    for sub in (counted, ranked):
        sub.add_argument("--since", metavar="TIME", help="at or after (ISO 8601, with zone)")
        sub.add_argument("--until", metavar="TIME", help="before (ISO 8601, with zone)")
        database_option(sub)
        sub.set_defaults(handler=_run)

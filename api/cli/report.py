"""`pes report daily --date D`: one UTC day's compliance report as HTML or PDF.

Validations (by portfolio), violations opened by rule, escalations and resolutions of the
day, written to `--output FILE` or standard output (HTML only; a PDF needs a file)
(docs/cli.md).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from api.cli.common import EXIT_BAD_INPUT, database_option, open_store
from api.reports import daily_report
from api.reports.daily_pdf import PdfUnavailable, daily_report_pdf
from api.store.activity import day_activity

__all__ = ["add_parser", "write_output"]


def write_output(text: str, output: str | None) -> None:
    """`text` to the file `output`, or to standard output."""
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _daily(args: argparse.Namespace) -> int:
    try:
        day = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    except ValueError:
        print(f"pes report daily: --date {args.date!r}: expected YYYY-MM-DD", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.format == "pdf" and args.output is None:
        print("pes report daily: --format pdf needs --output FILE", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = open_store(args)
    activity = day_activity(store.engine, day)
    if args.format == "html":
        write_output(daily_report(activity), args.output)
        return 0
    try:
        document = daily_report_pdf(activity)
    except PdfUnavailable as exc:
        print(f"pes report daily: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    Path(args.output).write_bytes(document)
    return 0


def add_parser(commands: Any) -> None:
    """Register `pes report` and its reports."""
    parser = commands.add_parser(
        "report",
        help="reports from the database: daily",
        description="Reports written from the stored validations and violations.",
    )
    reports = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    daily = reports.add_parser(
        "daily",
        help="one day's validations, breaches by rule, escalations and resolutions",
        description="One UTC day as a self-contained HTML page, or a PDF document.",
    )
    daily.add_argument(
        "--format",
        choices=("html", "pdf"),
        default="html",
        help="html (default) or pdf (needs --output; the reports extra: fpdf2)",
    )
    daily.add_argument("--date", metavar="YYYY-MM-DD", help="the UTC day (default: today)")
    daily.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    database_option(daily)
    daily.set_defaults(handler=_daily)

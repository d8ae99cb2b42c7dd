"""`pes report daily --format pdf`: the daily report as a PDF (fpdf2, the `reports` extra).

The same sections and figures as the HTML page (`daily`), laid out as tables on A4
landscape. fpdf2's core fonts cover Latin-1 only: other characters in names and reasons
are replaced by "?" rather than failing the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from api.store.activity import DayActivity, DayTransition

__all__ = ["PdfUnavailable", "daily_report_pdf"]


class PdfUnavailable(RuntimeError):
    """fpdf2 is not installed (`pip install -e '.[reports]'`)."""


def _latin1(text: object) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def _table(pdf: Any, caption: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 7, _latin1(caption), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    with pdf.table(first_row_as_headings=True, text_align="LEFT") as table:
        for values in [header, *rows]:
            row = table.row()
            for value in values:
                row.cell(_latin1(value))
    pdf.ln(3)


def _transitions(items: Sequence[DayTransition], *, resolutions: bool) -> list[list[object]]:
    rows: list[list[object]] = []
    for t in items:
        what = f"#{t.violation_id}" + (f" ({t.subject})" if t.subject else "")
        common = [t.at.strftime("%H:%M:%S"), what, t.portfolio_id, t.policy_name]
        if resolutions:
            rows.append([*common, t.action, t.actor, t.reason or "", f"{t.open_hours:.1f}"])
        else:
            rows.append([*common, t.severity, t.level, t.reason or ""])
    return rows


def daily_report_pdf(
    activity: DayActivity, *, generated: datetime | None = None, compress: bool = True
) -> bytes:
    """The report of `activity` as a PDF document (`compress=False`: readable streams)."""
    try:
        from fpdf import FPDF
    except ImportError as exc:  # an optional extra
        raise PdfUnavailable("the PDF report needs fpdf2: pip install -e '.[reports]'") from exc
    a = activity
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_compression(compress)
    pdf.set_title(f"Compliance report {a.day.isoformat()}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(
        0, 10, f"Compliance report for {a.day.isoformat()} (UTC)", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", size=9)
    stamp = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    pdf.cell(0, 6, f"Generated {stamp}.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", size=10)
    plural = "" if a.validations == 1 else "s"
    pdf.cell(
        0,
        7,
        f"{a.validations} validation{plural}: {a.compliant} compliant, "
        f"{a.validations - a.compliant} not compliant.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    if a.by_portfolio:
        _table(pdf, "By portfolio", ["Portfolio", "Validations", "Not compliant"], a.by_portfolio)
    if a.breaches:
        _table(
            pdf,
            "Breaches by rule: violations opened, most first",
            ["Policy", "Rule", "Severity", "Opened"],
            a.breaches,
        )
    else:
        pdf.cell(0, 7, "No violation was opened.", new_x="LMARGIN", new_y="NEXT")
    if a.escalations:
        _table(
            pdf,
            f"Escalations ({len(a.escalations)})",
            ["When", "Violation", "Portfolio", "Policy", "Severity", "Level", "Why"],
            _transitions(a.escalations, resolutions=False),
        )
    else:
        pdf.cell(0, 7, "No violation was escalated.", new_x="LMARGIN", new_y="NEXT")
    if a.resolutions:
        median = _median([t.open_hours for t in a.resolutions])
        _table(
            pdf,
            f"Resolutions ({len(a.resolutions)} closed, median {median:.1f} h after opening)",
            ["When", "Violation", "Portfolio", "Policy", "How", "By", "Why", "Open for (h)"],
            _transitions(a.resolutions, resolutions=True),
        )
    else:
        pdf.cell(0, 7, "No violation was resolved or cured.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

"""The back-test's HTML report: one self-contained page, the plots embedded as PNG."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from api.backtest.figures import figures
from api.backtest.run import Results

__all__ = ["html_report"]

_env = Environment(
    loader=PackageLoader("api.backtest", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def html_report(
    results: Results,
    summary: dict[str, Any],
    *,
    history: str,
    generated: datetime | None = None,
) -> str:
    """The report of a back-test of `history` (its name, for the title) as an HTML page."""
    plots = {
        name: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        for name, png in figures(results, summary).items()
    }
    dates = sorted({d["date"] for d in results.days})
    return _env.get_template("backtest.html").render(
        s=summary,
        plots=plots,
        history=history,
        first=dates[0].isoformat() if dates else "",
        last=dates[-1].isoformat() if dates else "",
        generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
    )

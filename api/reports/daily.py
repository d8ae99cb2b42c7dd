"""`pes report daily`: one UTC day as a self-contained HTML page.

Validations, breaches by rule, escalations, resolutions; no script, no external asset.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from api.store.activity import DayActivity

__all__ = ["daily_report"]

_env = Environment(
    loader=PackageLoader("api.reports", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def daily_report(activity: DayActivity, *, generated: datetime | None = None) -> str:
    """The report of `activity` as an HTML document."""
    hours = sorted(t.open_hours for t in activity.resolutions)
    median = hours[len(hours) // 2] if hours else None
    return _env.get_template("daily.html").render(
        a=activity,
        generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        median_hours=median,
    )

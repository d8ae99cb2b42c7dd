"""Reports written from the store: the daily report (HTML, PDF), the policies in plain words.

Owns where a policy applies in the portfolio tree (`scope`, also used by the dashboard),
the daily report (`daily`; its PDF form, `daily_pdf`) and the policy documentation
(`policy_docs`). Exposes `daily_report`, `policy_docs` and `where_it_applies`. May import
`api.store`, `engine` (the hierarchy, the constraint kinds' registry) and `models`.
"""

from __future__ import annotations

from api.reports.daily import daily_report
from api.reports.policy_docs import policy_docs
from api.reports.scope import where_it_applies

__all__ = ["daily_report", "policy_docs", "where_it_applies"]

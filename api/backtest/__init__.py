"""The back-test: a history of portfolio states and decisions run under policy sets.

`history` reads and checks the history (Parquet: states, decisions, instruments); `run`
evaluates each portfolio's days under each policy set, one Dask task per portfolio
(`api.cluster`); `metrics` sums the results up per set and per policy and compares set A
with set B; `report` writes the HTML report with its plots (matplotlib). Exposes
`load_history`, `PolicySet`, `run_backtest`, `summarize`, `write_results` and
`html_report`. May import `models`, `engine`, `api.cluster`, `api.files` (policy and
universe files); never `api.http` or `api.cli`. pyarrow, Dask and matplotlib are imported
where they are used (the cluster extra).
"""

from __future__ import annotations

from api.backtest.history import History, HistoryError, load_history
from api.backtest.run import PolicySet, Results, run_backtest

__all__ = ["History", "HistoryError", "PolicySet", "Results", "load_history", "run_backtest"]

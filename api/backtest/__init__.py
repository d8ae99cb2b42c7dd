"""The back-test: a history of portfolio states and decisions run under policy sets.

`history` reads and checks the history (Parquet: states, decisions, instruments); `run`
evaluates each portfolio's days under each policy set, one Dask task per portfolio
(`api.cluster`); `metrics` sums the results up per set and per policy and compares set A
with set B; `output` writes the results as Parquet; `report` writes the HTML report with the
plots of `figures` (matplotlib). Exposes `load_history`, `History`, `HistoryError`,
`PolicySet`, `Results` and `run_backtest`; `metrics.summarize`, `output.write_results` and
`report.html_report` are imported from their modules (so matplotlib loads only for a
report). May import `models`, `engine`, `api.cluster`, `api.files` (policy and
universe files); never `api.http` or `api.cli`. pyarrow, Dask and matplotlib are imported
where they are used (the cluster extra).
"""

from __future__ import annotations

from api.backtest.history import History, HistoryError, load_history
from api.backtest.run import PolicySet, Results, run_backtest

__all__ = ["History", "HistoryError", "PolicySet", "Results", "load_history", "run_backtest"]

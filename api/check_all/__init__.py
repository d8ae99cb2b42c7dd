"""Firm-wide checks: every portfolio's current holdings against its effective policies.

Owns `pes check-all` below the command line ([check-all.md](../../docs/check-all.md)):
reading a positions file and its cash (`inputs`), resolving each portfolio's effective
policies on the client and grouping portfolios that share them (`plan`), the Dask task
that screens a group's portfolios with the batch checker and reports each breaching one
through the single-request engine (`tasks`), and the run, the Parquet of breaches and the
summary (`run`). Exposes `read_holdings`, `plan_groups`, `run_check_all` and their types.
May import `models`, `engine`, `api.cluster` and `api.files`; never the store (the command
line reads it and hands the policies, the tree and the global policy in), so workers
never need the database.
"""

from api.check_all.inputs import Holdings, InputFileError, read_holdings
from api.check_all.plan import Group, PlanError, plan_groups
from api.check_all.run import CheckAllResult, run_check_all
from api.check_all.tasks import Breach, ChunkResult, check_chunk

__all__ = [
    "Breach",
    "CheckAllResult",
    "ChunkResult",
    "Group",
    "Holdings",
    "InputFileError",
    "PlanError",
    "check_chunk",
    "plan_groups",
    "read_holdings",
    "run_check_all",
]

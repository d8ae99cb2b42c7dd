"""The decision log's uses: what a validation logs, replay, and the Parquet export.

`parts` splits a request into the named parts the log stores (content-addressed, in
`api.store.decision_log`) and joins them back; `replay` runs logged decisions under a
candidate policy set and `compare` says what changed; `export` writes the log as Parquet;
`analytics` counts violations and blocked decisions with DuckDB.
Shared by the HTTP service and the command line; may import `models`, `engine`,
`api.store`, `api.references` and `api.settings`, never `api.http` or `api.cli`.
"""

from __future__ import annotations

from api.decision_log.parts import logged_request, replay_inputs
from api.decision_log.replay import Replayer, Validate, engine_validator

__all__ = ["Replayer", "Validate", "engine_validator", "logged_request", "replay_inputs"]

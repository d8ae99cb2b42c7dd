"""The rows a monitor round writes for a breach: its violation and its outbox event.

A monitor violation has `source = "monitor"`, no validation, and the decision id
`monitor:<update id>` of the update that found it (`api.store.monitor`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from api.store.violations import new_violation_row

__all__ = ["ACTOR", "breach_event", "violation_row"]

ACTOR = "monitor"


def violation_row(
    violation: dict[str, Any], update_id: str, portfolio_id: str, now: datetime
) -> dict[str, Any]:
    """The `policy_violations` row of a breach the monitor opens."""
    # No validation and no decision behind it, so no suggested adjustment either.
    v = violation | {"suggested_adjustment": None}
    row = new_violation_row(v, None, f"monitor:{update_id}", portfolio_id, now)
    return row | {"source": ACTOR}


def breach_event(
    event_type: str,
    portfolio_id: str,
    update_id: str,
    violation_id: int,
    v: Any,
    status: str,
    now: datetime,
) -> dict[str, Any]:
    """The outbox row of a breach event."""
    event_id = str(uuid.uuid4())
    payload = {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": now.isoformat(),
        "portfolio_id": portfolio_id,
        "update_id": update_id,
        "violation": {
            "id": int(violation_id),
            "policy_name": v["policy_name"],
            "policy_type": v["policy_type"],
            "violation_type": v["violation_type"],
            "subject": v["subject"],
            "severity": v["severity"],
            "enforcement_level": v["enforcement_level"],
            "observed": v["observed"],
            "limit": v["limit"],
            "status": status,
        },
    }
    return {
        "event_id": event_id,
        "event_type": event_type,
        "payload": payload,
        "created_at": now,
        "attempts": 0,
    }

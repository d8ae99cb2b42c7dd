"""HTTP schemas and OpenAPI examples of registered universes, risk models and FX snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.store import ReferenceVersion
from models import FxSnapshot, RiskModelDefinition, Universe

__all__ = [
    "FX_SNAPSHOT_EXAMPLES",
    "FxSnapshotPublic",
    "REFERENCE_VALIDATE_EXAMPLE",
    "RISK_MODEL_EXAMPLES",
    "UNIVERSE_EXAMPLES",
    "ReferenceVersionPublic",
    "RiskModelPublic",
    "UniversePublic",
]


class ReferenceVersionPublic(BaseModel):
    """One stored version: who made it, when, and what changed against the one before."""

    id: str
    version: int
    digest: str = Field(description="SHA-256 of the content's canonical JSON.")
    created_at: datetime
    created_by: str
    changes: dict[str, Any] = Field(
        description="Counts (and up to 50 names) of symbols added, removed and changed, and "
        "the other fields that changed."
    )

    @classmethod
    def of(cls, info: ReferenceVersion) -> ReferenceVersionPublic:
        """The public form of a stored version's record."""
        return cls(
            id=info.id,
            version=info.version,
            digest=info.digest,
            created_at=info.created_at,
            created_by=info.created_by,
            changes=info.changes,
        )


class UniversePublic(BaseModel):
    """A stored version of a universe."""

    universe: Universe
    version: ReferenceVersionPublic


class RiskModelPublic(BaseModel):
    """A stored version of a risk model."""

    risk_model: RiskModelDefinition
    version: ReferenceVersionPublic


class FxSnapshotPublic(BaseModel):
    """A stored version of an FX snapshot."""

    fx_snapshot: FxSnapshot
    version: ReferenceVersionPublic


FX_SNAPSHOT_EXAMPLES: dict[str, Any] = {
    "fx_snapshot": {
        "summary": "EUR-based rates",
        "value": {
            "id": "eod-2026-11-20",
            "description": "End-of-day rates, 2026-11-20",
            "base_currency": "EUR",
            "rates": {"USD": 0.92, "GBP": 1.17, "JPY": 0.0062},
        },
    }
}


UNIVERSE_EXAMPLES: dict[str, Any] = {
    "universe": {
        "summary": "Three US large caps",
        "value": {
            "id": "us-large",
            "description": "US large caps, reference data as of 2026-11-20",
            "instruments": [
                {
                    "symbol": "AAPL",
                    "price": 190.1,
                    "sector": "Information Technology",
                    "issuer": "Apple Inc",
                    "attributes": {"beta": 1.2},
                },
                {
                    "symbol": "MSFT",
                    "price": 410.5,
                    "sector": "Information Technology",
                    "issuer": "Microsoft Corp",
                    "attributes": {"beta": 1.1},
                },
                {
                    "symbol": "JPM",
                    "price": 198.3,
                    "sector": "Financials",
                    "issuer": "JPMorgan Chase & Co",
                    "attributes": {"beta": 1.05},
                },
            ],
        },
    }
}

RISK_MODEL_EXAMPLES: dict[str, Any] = {
    "factor": {
        "summary": "A two-factor model (annualized)",
        "value": {
            "id": "us-2f",
            "description": "Market and value factors",
            "risk_model": {
                "factor_loadings": {"AAPL": [1.1, -0.2], "MSFT": [1.0, -0.1], "JPM": [1.0, 0.5]},
                "factor_covariance": [[0.04, 0.0], [0.0, 0.01]],
                "specific_variance": {"AAPL": 0.03, "MSFT": 0.025, "JPM": 0.02},
            },
        },
    }
}

REFERENCE_VALIDATE_EXAMPLE: dict[str, Any] = {
    "decision": {
        "decision_id": "dec-0002",
        "portfolio_id": "global-equity",
        "trades": [{"symbol": "AAPL", "side": "BUY", "quantity": 1200}],
    },
    "portfolio_state": {
        "portfolio_id": "global-equity",
        "cash": 2_500_000.0,
        "positions": [{"symbol": "AAPL", "quantity": 5000}, {"symbol": "MSFT", "quantity": 4000}],
        "universe": {"id": "us-large"},
        "prices": {"AAPL": 191.4, "MSFT": 409.8},
        "risk_model": {"id": "us-2f", "version": 1},
    },
    "mode": "adjust",
}
"""A validation naming registered data: latest universe, risk model version 1, fresh prices."""

"""HTTP schemas and OpenAPI examples of the global policy (docs/global-policy.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from api.store import GlobalPolicyVersion, StoredGlobalPolicy
from models import GlobalPolicy

__all__ = [
    "GLOBAL_PATCH_EXAMPLES",
    "AllowedSymbolsPublic",
    "GlobalPolicyMergePatch",
    "GlobalPolicyPublic",
    "GlobalPolicyStatus",
    "GlobalPolicyVersionPublic",
    "ModelVersionsPublic",
    "RiskModePublic",
]

_EXAMPLE: dict[str, Any] = {
    "risk_mode": "NORMAL",
    "allowed_strategies": ["momentum", "mean-reversion"],
    "allowed_symbols": [],
    "max_risk_per_trade": 0.01,
    "max_positions": 25,
    "global_min_confidence": 0.7,
    "require_confidence": True,
    "opp_rankings": {"AAPL": 0.82, "MSFT": 0.64},
    "model_versions": {"momentum-lstm": "2026.11.3"},
    "last_updated": "2026-12-03T08:00:00Z",
    "version": 4,
    "updated_by": "risk-desk (key:3f2a9c01d4)",
}

GLOBAL_PATCH_EXAMPLES: dict[str, Any] = {
    "defensive": {
        "summary": "Defensive mode, fewer positions",
        "value": {"risk_mode": "DEFENSIVE", "max_positions": 10},
    },
    "models": {
        "summary": "Record a model version (maps merge; null removes a key)",
        "value": {"model_versions": {"momentum-lstm": "2026.12.1"}},
    },
    "limits": {
        "summary": "Widen the per-trade risk limit (a limit set to null: no limit)",
        "value": {"max_risk_per_trade": 0.02, "allowed_symbols": ["AAPL", "MSFT", "JPM"]},
    },
}


class _Stamped(BaseModel):
    """Which stored version an answer comes from."""

    version: int = Field(description="The global policy's version; the ETag of GET /policy.")
    last_updated: datetime = Field(description="When that version was written.")
    updated_by: str = Field(description="Who wrote it (`environment` for version 1).")


def stamp(stored: StoredGlobalPolicy) -> dict[str, Any]:
    """The `version`, `last_updated` and `updated_by` of a stored version."""
    return {
        "version": stored.version,
        "last_updated": stored.last_updated,
        "updated_by": stored.updated_by,
    }


class GlobalPolicyPublic(GlobalPolicy):
    """The stored global policy: its fields, its version (also the `ETag`) and its author."""

    version: int = Field(description="Current version; the ETag is this number in quotes.")
    updated_by: str = Field(description="Who wrote this version (`environment` for version 1).")

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    @classmethod
    def of(cls, stored: StoredGlobalPolicy) -> GlobalPolicyPublic:
        """The public form of a stored version (valid when stored: not validated again)."""
        fields = {name: getattr(stored.policy, name) for name in GlobalPolicy.model_fields}
        return cls.model_construct(**fields, version=stored.version, updated_by=stored.updated_by)


class GlobalPolicyStatus(_Stamped):
    """What the global policy enforces now, in brief."""

    status: str = Field(default="ok", description="`ok`: the policy was read and is applied.")
    risk_mode: str
    change: str = Field(description="How the current version came about: initial | update | reset.")
    controls: list[str] = Field(
        description="The controls validation applies now: strategy_gate, confidence_gate, "
        "allowed_symbols, max_positions, max_risk_per_trade."
    )
    refresh_s: float = Field(
        description="Each worker applies a change made elsewhere within this many seconds."
    )


class RiskModePublic(_Stamped):
    """The stored risk mode."""

    risk_mode: str


class AllowedSymbolsPublic(_Stamped):
    """Symbols that may be bought (empty: any)."""

    allowed_symbols: list[str]


class ModelVersionsPublic(_Stamped):
    """Model name -> version, as the model-lifecycle service recorded them."""

    model_versions: dict[str, str]


class GlobalPolicyVersionPublic(BaseModel):
    """One version of the global policy: what changed, who changed it, when."""

    version: int
    change: str = Field(description="initial | update | reset")
    actor: str
    changed_at: datetime
    diff: list[dict[str, Any]] = Field(description="Changed fields: path, old, new.")
    global_policy: dict[str, Any] = Field(description="The whole policy of this version.")

    @classmethod
    def of(cls, version: GlobalPolicyVersion) -> GlobalPolicyVersionPublic:
        """The public form of a history entry."""
        return cls(
            version=version.version,
            change=version.change,
            actor=version.actor,
            changed_at=version.changed_at,
            diff=version.diff,
            global_policy=version.content,
        )


class GlobalPolicyMergePatch(RootModel[dict[str, Any]]):
    """A JSON merge patch (RFC 7396) of the global policy: the fields to change.

    Fields given replace the stored ones; a limit set to null means no limit; maps
    (`opp_rankings`, `model_versions`) merge key by key, a key set to null is removed;
    lists are replaced whole. The patched policy is validated as a whole (unknown fields,
    bad values: 422 naming the field, nothing stored). `last_updated` is set by the store.
    """

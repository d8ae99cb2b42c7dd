"""HTTP-only schemas (the domain models live in `models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models import PolicyDefinition

__all__ = [
    "ERROR_RESPONSES",
    "ErrorDetail",
    "ErrorResponse",
    "PolicyPublic",
    "PolicyVersionPublic",
    "ViolationPage",
    "ViolationPublic",
    "ViolationResolution",
]


class PolicyPublic(BaseModel):
    """A stored policy with its current version."""

    policy: PolicyDefinition
    version: int
    updated_at: datetime
    updated_by: str


class PolicyVersionPublic(BaseModel):
    """One audited change of a policy."""

    policy_name: str
    version: int
    change: str = Field(description="create | replace | patch | disable")
    actor: str
    changed_at: datetime
    diff: list[dict[str, Any]] = Field(description="Changed fields: path, old, new.")
    definition: dict[str, Any]


class ViolationPublic(BaseModel):
    """A recorded violation and its review state."""

    id: int
    decision_id: str
    portfolio_id: str
    created_at: datetime
    resolved: bool
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    violation: dict[str, Any]


class ViolationPage(BaseModel):
    """A page of violations."""

    total: int
    limit: int
    offset: int
    items: list[ViolationPublic]


class ViolationResolution(BaseModel):
    """Resolve (or reopen) a violation."""

    model_config = {"extra": "forbid"}

    resolved: bool = True
    note: str | None = Field(default=None, max_length=4000)


class ErrorDetail(BaseModel):
    """One problem with the request."""

    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every error response: a message and, for invalid input, the fields."""

    error: str
    message: str
    detail: list[ErrorDetail] = Field(default_factory=list)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or unknown API key"},
    403: {"model": ErrorResponse, "description": "the key's role may not do this"},
    422: {"model": ErrorResponse, "description": "invalid input; `detail` names each field"},
    503: {"model": ErrorResponse, "description": "the database cannot be reached"},
}
"""Error responses every API route may give, as the service sends them."""

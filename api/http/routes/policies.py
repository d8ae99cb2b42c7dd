"""Policies: list, create, replace, patch, disable and their audited versions.

Every route authenticates before it reads the body: the bodies are read by dependencies
declared after the caller (`api.http.json_body`), with pydantic's strict JSON parser, so an
unauthorized caller is refused unread and a string JSON cannot carry (a lone surrogate) is
a 422, never stored. Each answer carries the policy's version as its `ETag`; `If-Match` on
PUT, PATCH and DELETE makes the change conditional on that version (412 otherwise).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import ValidationError

from api.http.deps import Admin, Reader, ServicesDep
from api.http.examples import POLICY_EXAMPLE
from api.http.json_body import documented_body, json_body
from api.http.schemas import (
    ERROR_RESPONSES,
    ErrorResponse,
    PolicyPatch,
    PolicyPublic,
    PolicyVersionPublic,
)
from api.store import StoredPolicy
from api.store.diff import merge_patch
from api.store.policies import Revision
from engine.compile.language import check_policy
from models import PolicyDefinition, PolicyType

__all__ = ["PatchInvalid", "etag", "parse_if_match", "router"]

router = APIRouter(prefix="/api/v1/policies", tags=["policies"], responses=ERROR_RESPONSES)

_POLICY_EXAMPLES = {"cap": {"summary": "A position limit", "value": POLICY_EXAMPLE}}
_PATCH_EXAMPLES = {
    "disable": {"summary": "Make it advisory", "value": {"enforcement_level": "advisory"}}
}
_PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: {"model": ErrorResponse, "description": "If-Match names another version"}
}
_NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "name taken"}
}

PolicyBody = Annotated[PolicyDefinition, Depends(json_body(PolicyDefinition))]
IfMatch = Annotated[
    str | None,
    Header(
        description='Change only if the stored version is this ETag (`"3"`), else 412; '
        "`*` matches any version."
    ),
]

PatchBody = Annotated[PolicyPatch, Depends(json_body(PolicyPatch))]


_ETAG = re.compile(r'"([0-9]{1,18})"')
"""A version's entity tag (ASCII digits only, few enough for any int column)."""


def etag(version: int) -> str:
    """The strong entity tag of a policy version: the number in quotes."""
    return f'"{version}"'


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an `If-Match` header accepts; None when any version will do.

    Only strong tags of the form `"<version>"` can match (RFC 9110 compares If-Match
    strongly); anything else, a weak `W/"3"` included, matches no version, so the change
    is refused rather than made unconditionally.
    """
    if header is None or header.strip() == "*":
        return None
    tags = (_ETAG.fullmatch(tag.strip()) for tag in header.split(","))
    return frozenset(int(tag.group(1)) for tag in tags if tag is not None)


def _public(stored: StoredPolicy, response: Response | None = None) -> PolicyPublic:
    if response is not None:
        response.headers["ETag"] = etag(stored.version)
    return PolicyPublic.of(
        stored.definition,
        version=stored.version,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


@router.get("", response_model=list[PolicyPublic], summary="List policies")
def list_policies(
    services: ServicesDep,
    _caller: Reader,
    portfolio_id: Annotated[
        str | None,
        Query(description="Only the effective set of this portfolio (enabled, in scope)."),
    ] = None,
    policy_type: PolicyType | None = None,
    enabled: bool | None = None,
) -> list[PolicyPublic]:
    """Stored policies by name, optionally filtered: each a `PolicyDefinition` and its version."""
    stored = services.store.policies.list(
        portfolio_id=portfolio_id,
        policy_type=policy_type.value if policy_type else None,
        enabled=enabled,
    )
    return [_public(p) for p in stored]


@router.post(
    "",
    response_model=PolicyPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Create a policy",
    responses=_NAME_TAKEN,
    openapi_extra=documented_body(PolicyDefinition, _POLICY_EXAMPLES),
)
def create_policy(
    services: ServicesDep,
    caller: Admin,  # before the body: an unauthorized caller is refused unread
    policy: PolicyBody,
    response: Response,
) -> PolicyPublic:
    """Store a new policy as version 1 (409 if the name is taken, also under a race)."""
    check_policy(policy)
    return _public(services.store.policies.create(policy, actor=caller.name), response)


@router.get("/{name}", response_model=PolicyPublic, summary="Get a policy")
def get_policy(
    name: str, services: ServicesDep, _caller: Reader, response: Response
) -> PolicyPublic:
    """The policy and its current version (also the `ETag`)."""
    return _public(services.store.policies.get(name), response)


@router.put(
    "/{name}",
    response_model=PolicyPublic,
    summary="Replace a policy",
    responses=_PRECONDITION,
    openapi_extra=documented_body(PolicyDefinition, _POLICY_EXAMPLES),
)
def replace_policy(
    name: str,
    services: ServicesDep,
    caller: Admin,  # before the body
    policy: PolicyBody,
    response: Response,
    if_match: IfMatch = None,
) -> PolicyPublic:
    """Replace the whole definition (a new version)."""
    check_policy(policy)
    stored = services.store.policies.replace(
        name, policy, actor=caller.name, expected=parse_if_match(if_match)
    )
    return _public(stored, response)


def _patched(patch: dict[str, Any]) -> Revision:
    """The revision applying `patch` to the current definition (run under the row lock)."""

    def revise(current: PolicyDefinition) -> PolicyDefinition:
        merged = merge_patch(current.model_dump(mode="json"), patch)
        try:
            policy = PolicyDefinition.model_validate(merged)
        except ValidationError as exc:
            raise PatchInvalid(exc) from exc
        check_policy(policy)
        return policy

    return revise


@router.patch(
    "/{name}",
    response_model=PolicyPublic,
    summary="Patch a policy",
    responses=_PRECONDITION,
    openapi_extra=documented_body(PolicyPatch, _PATCH_EXAMPLES),
)
def patch_policy(
    name: str,
    services: ServicesDep,
    caller: Admin,  # before the body
    patch: PatchBody,
    response: Response,
    if_match: IfMatch = None,
) -> PolicyPublic:
    """Apply a JSON merge patch (RFC 7396) to the definition (a new version).

    The current definition is read, patched and written in one transaction holding its
    row lock: concurrent patches of different fields all land.
    """
    stored = services.store.policies.revise(
        name,
        _patched(patch.root),
        actor=caller.name,
        change="patch",
        expected=parse_if_match(if_match),
    )
    return _public(stored, response)


@router.delete(
    "/{name}", response_model=PolicyPublic, summary="Disable a policy", responses=_PRECONDITION
)
def disable_policy(
    name: str, services: ServicesDep, caller: Admin, response: Response, if_match: IfMatch = None
) -> PolicyPublic:
    """Disable the policy; it and its history stay stored."""
    stored = services.store.policies.revise(
        name,
        lambda current: current.model_copy(update={"enabled": False}),
        actor=caller.name,
        change="disable",
        expected=parse_if_match(if_match),
    )
    return _public(stored, response)


@router.get(
    "/{name}/versions",
    response_model=list[PolicyVersionPublic],
    summary="A policy's change history",
)
def policy_versions(name: str, services: ServicesDep, _caller: Reader) -> list[PolicyVersionPublic]:
    """Every version: who changed what, when."""
    return [
        PolicyVersionPublic(
            policy_name=v.policy_name,
            version=v.version,
            change=v.change,
            actor=v.actor,
            changed_at=v.changed_at,
            diff=v.diff,
            definition=v.definition,
        )
        for v in services.store.policies.versions(name)
    ]


class PatchInvalid(Exception):
    """A merge patch produced an invalid policy (reported as 422 with the fields)."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(str(error))
        self.error = error

"""Policies: list, create, replace, patch, disable and their audited versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status
from pydantic import ValidationError

from api.deps import Admin, Reader, ServicesDep
from api.examples import POLICY_EXAMPLE
from api.schemas import ERROR_RESPONSES, ErrorResponse, PolicyPublic, PolicyVersionPublic
from api.store import StoredPolicy
from api.store.diff import merge_patch
from engine.language import check_policy
from models import PolicyDefinition, PolicyType

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/policies", tags=["policies"], responses=ERROR_RESPONSES)
PolicyBody = Annotated[
    PolicyDefinition,
    Body(openapi_examples={"cap": {"summary": "A position limit", "value": POLICY_EXAMPLE}}),
]


def _public(stored: StoredPolicy) -> PolicyPublic:
    return PolicyPublic(
        policy=stored.definition,
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
    """Stored policies by name, optionally filtered."""
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
    responses={409: {"model": ErrorResponse, "description": "name taken"}},
)
def create_policy(policy: PolicyBody, services: ServicesDep, caller: Admin) -> PolicyPublic:
    """Store a new policy as version 1."""
    check_policy(policy)
    return _public(services.store.policies.create(policy, actor=caller.name))


@router.get("/{name}", response_model=PolicyPublic, summary="Get a policy")
def get_policy(name: str, services: ServicesDep, _caller: Reader) -> PolicyPublic:
    """The policy and its current version."""
    return _public(services.store.policies.get(name))


@router.put("/{name}", response_model=PolicyPublic, summary="Replace a policy")
def replace_policy(
    name: str, policy: PolicyBody, services: ServicesDep, caller: Admin
) -> PolicyPublic:
    """Replace the whole definition (a new version)."""
    check_policy(policy)
    return _public(services.store.policies.replace(name, policy, actor=caller.name))


@router.patch(
    "/{name}",
    response_model=PolicyPublic,
    summary="Patch a policy",
)
def patch_policy(
    name: str,
    patch: Annotated[
        dict[str, Any],
        Body(
            openapi_examples={
                "disable": {
                    "summary": "Make it advisory",
                    "value": {"enforcement_level": "advisory"},
                }
            }
        ),
    ],
    services: ServicesDep,
    caller: Admin,
) -> PolicyPublic:
    """Apply a JSON merge patch (RFC 7396) to the definition (a new version)."""
    current = services.store.policies.get(name)
    merged = merge_patch(current.definition.model_dump(mode="json"), patch)
    try:
        policy = PolicyDefinition.model_validate(merged)
    except ValidationError as exc:
        raise PatchInvalid(exc) from exc
    check_policy(policy)
    return _public(services.store.policies.replace(name, policy, actor=caller.name, change="patch"))


@router.delete("/{name}", response_model=PolicyPublic, summary="Disable a policy")
def disable_policy(name: str, services: ServicesDep, caller: Admin) -> PolicyPublic:
    """Disable the policy; it and its history stay stored."""
    current = services.store.policies.get(name).definition
    disabled = current.model_copy(update={"enabled": False})
    return _public(
        services.store.policies.replace(name, disabled, actor=caller.name, change="disable")
    )


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

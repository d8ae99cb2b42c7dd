"""API keys with roles: reader (GET), validator (POST validate), admin (changes)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from api.settings import Role, Settings

__all__ = ["Caller", "authenticate", "authorize", "caller_for_key"]


@dataclass(frozen=True)
class Caller:
    """Who is calling: a role and a name for the audit trail."""

    role: Role
    name: str


def _fingerprint(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:10]


def authenticate(request: Request, settings: Settings) -> Caller:
    """The caller of `request`, from `X-API-Key` or `Authorization: Bearer`.

    With no keys configured every caller is admin (the server then binds to loopback only).
    An `X-Actor` header names the person behind the key in the audit trail.
    """
    actor = request.headers.get("x-actor", "").strip()[:100]
    if not settings.api_keys:
        return Caller(Role.ADMIN, actor or "local")
    presented = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if presented is None and auth.lower().startswith("bearer "):
        presented = auth[7:].strip()
    if not presented:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key (X-API-Key header)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = caller_for_key(settings, presented, actor=actor)
    if caller is not None:
        return caller
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
    )


def caller_for_key(settings: Settings, presented: str, *, actor: str = "") -> Caller | None:
    """The caller an API key stands for (compared in constant time), or None when unknown."""
    for key, role in settings.api_keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            name = _fingerprint(key)
            return Caller(role, f"{actor} ({name})" if actor else name)
    return None


def authorize(caller: Caller, needed: Role) -> None:
    """Refuse (403) a caller whose role does not include `needed`."""
    if not caller.role.allows(needed):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {caller.role.value!r} may not do this; needs {needed.value!r}",
        )

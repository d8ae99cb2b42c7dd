"""Route dependencies as `Annotated` aliases, so a route's signature lists its needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.http.security import Caller, authenticate, authorize
from api.http.services import Services
from api.settings import Role

__all__ = ["Admin", "Reader", "ServicesDep", "Validator"]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _caller(needed: Role):  # type: ignore[no-untyped-def]
    def dependency(request: Request) -> Caller:
        caller = authenticate(request, _services(request).settings)
        authorize(caller, needed)
        return caller

    return dependency


ServicesDep = Annotated[Services, Depends(_services)]
Reader = Annotated[Caller, Depends(_caller(Role.READER))]
Validator = Annotated[Caller, Depends(_caller(Role.VALIDATOR))]
Admin = Annotated[Caller, Depends(_caller(Role.ADMIN))]

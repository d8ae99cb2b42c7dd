"""The dashboard's form posts: login, logout; acknowledge, resolve, reopen and bulk (admin).

Every post needs the CSRF token (docs/violations.md#the-dashboard).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.http.security import caller_for_key
from api.http.ui.pages import violation_view
from api.http.ui.render import login_redirect, page, redirect, require, services_of
from api.http.ui.session import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, csrf_matches, sign_session
from api.settings import Role
from api.store import Conflict, NotFound, StoredViolation

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
MAX_REASON = 4000


class _Form:
    """A url-encoded form body: first value of a field, or every value."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str) -> str:
        return self.fields.get(name, [""])[0]

    def all(self, name: str) -> list[str]:
        return self.fields.get(name, [])


async def _form(request: Request) -> _Form | None:
    """The form, or None when its CSRF token does not match the cookie's."""
    body = (await request.body()).decode("utf-8", errors="replace")
    form = _Form(parse_qs(body, keep_blank_values=True, max_num_fields=1000))
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        return None
    return form


def _csrf_refused(request: Request) -> Response:
    message = "The form had expired or did not come from this dashboard; reload it and retry."
    return page(request, "error.html", caller=None, status=403, message=message)


def _safe_next(target: str) -> str:
    """Only a dashboard path (never another site) as the page after login."""
    ok = target.startswith("/ui") and not target.startswith("//") and "\\" not in target
    return target if ok else "/ui/violations"


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key; on success store it in the signed session cookie."""
    form = await _form(request)
    if form is None:
        return _csrf_refused(request)
    settings = services_of(request).settings
    target = _safe_next(form.get("next"))
    caller = caller_for_key(settings, form.get("api_key").strip())
    if caller is None or not settings.api_keys:
        return page(
            request,
            "login.html",
            caller=None,
            status=401,
            next=target,
            error="That key is not valid." if settings.api_keys else "No keys are configured.",
        )
    response = redirect(target)
    response.set_cookie(
        SESSION_COOKIE,
        sign_session(settings, form.get("api_key").strip(), now=time.time()),
        max_age=int(settings.ui_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    if await _form(request) is None:
        return _csrf_refused(request)
    response = login_redirect("/ui/violations")
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


def _reason(form: _Form) -> str | None:
    return form.get("reason").strip()[:MAX_REASON] or None


@router.post("/violations/{violation_id}/{action}")
async def act(request: Request, violation_id: int, action: str) -> Response:
    """Acknowledge, resolve (a reason required) or reopen one violation."""
    caller = require(request, Role.ADMIN)
    form = await _form(request)
    if form is None:
        return _csrf_refused(request)
    violations = services_of(request).store.violations
    reason = _reason(form)
    moves: dict[str, Callable[[], StoredViolation]] = {
        "acknowledge": lambda: violations.acknowledge(
            violation_id, actor=caller.name, reason=reason
        ),
        "resolve": lambda: violations.resolve(violation_id, actor=caller.name, reason=reason),
        "reopen": lambda: violations.reopen(violation_id, actor=caller.name, reason=reason),
    }
    if action not in moves:
        return page(request, "error.html", caller=caller, status=404, message="No such action.")
    if action == "resolve" and reason is None:
        return await run_in_threadpool(
            violation_view,
            request,
            caller,
            violation_id,
            error="Resolving needs a reason.",
            status=422,
        )
    try:
        await run_in_threadpool(moves[action])
    except Conflict as exc:
        return await run_in_threadpool(
            violation_view, request, caller, violation_id, error=str(exc), status=409
        )
    except NotFound as exc:
        return page(request, "error.html", caller=caller, status=404, message=str(exc))
    return redirect(f"/ui/violations/{violation_id}")


@router.post("/violations/bulk")
async def bulk(request: Request) -> Response:
    """Acknowledge or resolve the checked violations; back to the list as it was filtered."""
    caller = require(request, Role.ADMIN)
    form = await _form(request)
    if form is None:
        return _csrf_refused(request)
    ids = [int(i) for i in form.all("ids") if i.isdigit() and 0 < int(i) < 2**31][:500]
    action = {"acknowledge": "acknowledged", "resolve": "resolved"}.get(form.get("action"))
    reason = _reason(form)
    back: dict[str, Any] = dict(parse_qs(form.get("back"), max_num_fields=20))
    if action is None or not ids or (action == "resolved" and reason is None):
        why = "Choose violations and an action" + (
            "; resolving needs a reason." if action == "resolved" else "."
        )
        return page(request, "error.html", caller=caller, status=422, message=why)
    outcome = await run_in_threadpool(
        services_of(request).store.violations.bulk,
        ids,
        action,
        actor=caller.name,
        reason=reason,
    )
    back |= {"changed": len(outcome.changed), "skipped": len(outcome.skipped)}
    return redirect("/ui/violations?" + urlencode(back, doseq=True))

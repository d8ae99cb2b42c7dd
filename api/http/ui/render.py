"""Templates, the page response and the dashboard's caller.

Every page is rendered here: the signed-in caller, whether they may change things, the
CSRF token (a `pes_csrf` cookie is set on the first page that needs one) and the security
headers (a content security policy that allows only this origin's stylesheet and forms).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from api.http.security import Caller, caller_for_key
from api.http.services import Services
from api.http.ui.session import CSRF_COOKIE, SESSION_COOKIE, new_csrf_token, session_key
from api.settings import Role

__all__ = [
    "Forbidden",
    "NeedsLogin",
    "caller_of",
    "login_redirect",
    "page",
    "redirect",
    "require",
    "services_of",
]

_env = Environment(
    loader=PackageLoader("api.http.ui", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class NeedsLogin(Exception):
    """No valid session: answered with a redirect to the login page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Forbidden(Exception):
    """The caller's role may not do this: answered with a 403 page."""

    def __init__(self, caller: Caller, needed: Role) -> None:
        super().__init__(needed.value)
        self.caller, self.needed = caller, needed


def services_of(request: Request) -> Services:
    """The app's long-lived parts."""
    services: Services = request.app.state.services
    return services


def caller_of(request: Request) -> Caller | None:
    """The signed-in caller, or None (every caller is admin when no keys are configured)."""
    settings = services_of(request).settings
    if not settings.api_keys:
        return Caller(Role.ADMIN, "local")
    cookie = request.cookies.get(SESSION_COOKIE)
    key = None if cookie is None else session_key(settings, cookie, now=time.time())
    return None if key is None else caller_for_key(settings, key)


def require(request: Request, needed: Role) -> Caller:
    """The caller, when signed in with a role that allows `needed`."""
    caller = caller_of(request)
    if caller is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NeedsLogin(target)
    if not caller.role.allows(needed):
        raise Forbidden(caller, needed)
    return caller


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def page(
    request: Request,
    template: str,
    *,
    caller: Caller | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """`template` rendered for `caller`, with the CSRF token and the security headers."""
    token = request.cookies.get(CSRF_COOKIE)
    fresh = token is None
    if token is None:
        token = new_csrf_token()
    html = _env.get_template(template).render(
        caller=caller,
        is_admin=caller is not None and caller.role.allows(Role.ADMIN),
        keys_configured=bool(services_of(request).settings.api_keys),
        csrf_token=token,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    if fresh:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/ui",
        )
    return response


def redirect(target: str) -> Response:
    """303 See Other to a path of the dashboard."""
    return RedirectResponse(target, status_code=303, headers=HEADERS)


def login_redirect(path: str) -> Response:
    """To the login page, coming back to `path` afterwards."""
    return redirect(f"/ui/login?next={quote(path, safe='')}")

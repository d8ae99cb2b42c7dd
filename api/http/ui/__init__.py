"""The compliance dashboard at /ui: server-rendered pages over the store.

Owns the pages (`pages`: violations with filters, one violation, one policy, trends), the
form posts (`actions`: login, logout, acknowledge, resolve, reopen, bulk), the session
cookie and CSRF tokens (`session`), the templates and their response (`render`) and the
inline SVG charts (`charts`). Templates and the stylesheet ship in the package: no script,
no CDN, works offline. Exposes `install_ui`. May import `api.http`'s security and
services, `api.store`, `api.settings`, `engine` (the hierarchy) and `models`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from api.http.ui import actions, pages
from api.http.ui.render import Forbidden, NeedsLogin, login_redirect, page

__all__ = ["install_ui"]


def install_ui(app: FastAPI) -> None:
    """Serve the dashboard's pages and posts on `app`."""
    app.include_router(pages.router)
    app.include_router(actions.router)

    @app.exception_handler(NeedsLogin)
    async def needs_login(request: Request, exc: NeedsLogin) -> Response:
        back = exc.path if request.method == "GET" else "/ui/violations"
        return login_redirect(back)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        message = (
            f"Your key's role ({exc.caller.role.value}) may not do this; "
            f"it needs {exc.needed.value}."
        )
        return page(request, "error.html", caller=exc.caller, status=403, message=message)

"""The one place errors become HTTP responses: always JSON, never a traceback.

The exception trees are drawn where they are defined (`engine.errors`, `api.store.errors`);
this is their mapping to statuses (the most specific handler wins)::

    422  RequestValidationError          invalid_request     (the body fails the models)
         engine InputError                invalid_input
         ├── NoApplicablePolicies         no_applicable_policies
         └── PolicyEvaluationError        policy_not_evaluable
         store Invalid                    invalid_input
         └── UnknownPortfolio             unknown_portfolio
         PatchInvalid (routes.policies)   invalid_policy
         sqlalchemy DataError             invalid_input       (a value the database refused)
    404  store NotFound                   not_found
    409  store Conflict                   conflict
    412  store PreconditionFailed         precondition_failed (with the current ETag)
    499  engine RequestCancelled          client_closed_request
    503  store Unavailable                unavailable
         engine DeadlineExceeded          deadline_exceeded
         MemoryError                      out_of_memory
         DBAPIError, pool TimeoutError    unavailable         (IntegrityError: 500)
    4xx  starlette HTTPException          its own status (unauthorized, forbidden, ...)
    500  anything else (engine SolverError included)  internal_error, logged
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from api.field_messages import field_messages
from api.http.routes.policies import PatchInvalid, etag
from api.store import (
    Conflict,
    Invalid,
    NotFound,
    PreconditionFailed,
    Unavailable,
    UnknownPortfolio,
)
from engine import (
    DeadlineExceeded,
    InputError,
    NoApplicablePolicies,
    PolicyEvaluationError,
    RequestCancelled,
)

__all__ = ["CLIENT_CLOSED_REQUEST", "install_error_handlers"]

log = logging.getLogger("pes.http")

CLIENT_CLOSED_REQUEST = 499
"""The status of a request its client abandoned (nginx's convention); nobody reads it."""


def _error(
    status_code: int,
    error: str,
    message: str,
    detail: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message, "detail": detail or []},
        status_code=status_code,
        headers=headers,
    )


def _request_fields(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:] if loc[0] == "body" else loc
        path = ""
        for part in loc:
            path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
        out.append({"field": path or "(body)", "message": str(err.get("msg", "invalid"))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers for every error the routes can raise."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_r: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _request_fields(exc)
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in detail[:3])
        return _error(422, "invalid_request", summary, detail)

    @app.exception_handler(InputError)
    async def invalid_input(_r: Request, exc: InputError) -> JSONResponse:
        detail = [{"field": f, "message": m} for f, m in field_messages(exc)]
        return _error(422, "invalid_input", f"{exc.field}: {exc.message}", detail)

    # The three refusals below are the fail-closed answers of a validation that could not
    # be checked; each has its own code so a caller can tell them from a malformed request.
    @app.exception_handler(NoApplicablePolicies)
    async def nothing_applies(_r: Request, exc: NoApplicablePolicies) -> JSONResponse:
        detail = [{"field": exc.field, "message": exc.message}]
        return _error(422, "no_applicable_policies", f"{exc.field}: {exc.message}", detail)

    @app.exception_handler(PolicyEvaluationError)
    async def policy_not_evaluable(_r: Request, exc: PolicyEvaluationError) -> JSONResponse:
        detail = [{"field": exc.field, "message": exc.message}]
        return _error(422, "policy_not_evaluable", f"{exc.field}: {exc.message}", detail)

    @app.exception_handler(UnknownPortfolio)
    async def unknown_portfolio(_r: Request, exc: UnknownPortfolio) -> JSONResponse:
        detail = [{"field": exc.field, "message": exc.message}]
        return _error(422, "unknown_portfolio", str(exc), detail)

    @app.exception_handler(PatchInvalid)
    async def invalid_patch(_r: Request, exc: PatchInvalid) -> JSONResponse:
        detail = [{"field": f, "message": m} for f, m in field_messages(exc.error)]
        return _error(422, "invalid_policy", "the patched policy is invalid", detail)

    @app.exception_handler(Invalid)
    async def invalid_reference(_r: Request, exc: Invalid) -> JSONResponse:
        detail = [{"field": exc.field, "message": exc.message}]
        return _error(422, "invalid_input", str(exc), detail)

    @app.exception_handler(NotFound)
    async def not_found(_r: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def conflict(_r: Request, exc: Conflict) -> JSONResponse:
        return _error(409, "conflict", str(exc))

    @app.exception_handler(PreconditionFailed)
    async def precondition_failed(_r: Request, exc: PreconditionFailed) -> JSONResponse:
        # The current ETag, so the caller can re-read and retry.
        current = etag(exc.current)
        detail = [{"field": "If-Match", "message": f"the stored version is {current}"}]
        return _error(412, "precondition_failed", str(exc), detail, headers={"ETag": current})

    @app.exception_handler(Unavailable)
    async def unavailable(_r: Request, exc: Unavailable) -> JSONResponse:
        return _error(503, "unavailable", f"{exc}; the decision is NOT validated")

    @app.exception_handler(DeadlineExceeded)
    async def deadline_exceeded(_r: Request, exc: DeadlineExceeded) -> JSONResponse:
        return _error(503, "deadline_exceeded", f"{exc}; the decision is NOT validated")

    @app.exception_handler(RequestCancelled)
    async def abandoned(_r: Request, exc: RequestCancelled) -> JSONResponse:
        return _error(CLIENT_CLOSED_REQUEST, "client_closed_request", str(exc))

    @app.exception_handler(MemoryError)
    async def out_of_memory(_r: Request, _exc: MemoryError) -> JSONResponse:
        # A request too large for the memory left: refuse it, keep serving the others.
        log.warning("a request ran out of memory")
        return _error(
            503,
            "out_of_memory",
            "the request needs more memory than the service can give it now (a smaller "
            "universe or fewer policies may fit); the decision is NOT validated",
        )

    @app.exception_handler(DataError)
    async def rejected_value(_r: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the models let through (a NUL character, a number
        # out of its range): bad input, not a server fault.
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        return _error(422, "invalid_input", f"a value cannot be stored: {reason}")

    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, exc: DBAPIError) -> JSONResponse:
        # Operational, interface and internal errors: the database is down, unreachable,
        # silent past its timeouts or broken; nothing was decided, so 503 (fail closed).
        if isinstance(exc, IntegrityError):  # a constraint the code should have checked
            return await unexpected(request, exc)
        log.error("database error: %s", exc.__class__.__name__)
        return _error(503, "unavailable", "the database cannot be reached")

    @app.exception_handler(PoolTimeout)
    async def database_busy(_r: Request, exc: PoolTimeout) -> JSONResponse:
        log.error("database error: no free connection (%s)", exc.__class__.__name__)
        return _error(503, "unavailable", "the database cannot be reached")

    @app.exception_handler(HTTPException)
    async def http_error(_r: Request, exc: HTTPException) -> JSONResponse:
        names = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            413: "payload_too_large",
        }
        return _error(
            exc.status_code,
            names.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            "internal_error",
            "unexpected error; it has been logged",
        )

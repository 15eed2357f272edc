"""One error hierarchy and one RFC 9457 `application/problem+json` rendering for every 4xx/5xx."""

import logging
import math
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://memsvc.dev/problems/"

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is: body/query/path and the field path.")
    msg: str = Field(description="What is wrong with that field.")
    type: str = Field(description="Machine-readable error kind.")


class Problem(BaseModel):
    """Body of every error answer (RFC 9457)."""

    type: str = Field(description="URI naming the kind of problem.")
    title: str = Field(description="Short, fixed summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong in this request.")
    errors: list[FieldError] | None = Field(default=None, description="Per-field errors, for validation.")


class ServiceError(Exception):
    """Base of all errors the service raises on purpose; each subclass is one HTTP status."""

    status = 500
    slug = "internal"
    title = "Internal server error"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Not allowed for this key"


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ServiceError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ServiceError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class Unprocessable(ServiceError):
    status, slug, title = 422, "validation", "Invalid request"


class TooManyRequests(ServiceError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: float, headers: Mapping[str, str] | None = None) -> None:
        # Whole seconds, rounded up: a client that waits exactly this long finds room in the window.
        super().__init__(detail, headers={**(headers or {}), "Retry-After": str(max(1, math.ceil(retry_after_s)))})


class ServiceUnavailable(ServiceError):
    status, slug, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 2, headers: Mapping[str, str] | None = None) -> None:
        # What is away (the database, a model) comes back by itself: tell clients when to try again.
        super().__init__(detail, headers={**(headers or {}), "Retry-After": str(retry_after_s)})


# Postgres refusing everyone for now (shutting down, crashed, starting up, connection-level failures).
_UNAVAILABLE_ERRORS = (
    psycopg.errors.AdminShutdown,
    psycopg.errors.CrashShutdown,
    psycopg.errors.CannotConnectNow,
    psycopg.errors.ConnectionException,
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is out of reach (restart, failover, network, no free connection) rather
    than that the request or the code is wrong: the same work succeeds once it is back, so it is a 503 to a client
    and a retry, never a dead letter, to a worker."""
    if isinstance(exc, DisconnectionError | PoolTimeout):
        return True
    driver_error: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        driver_error = exc.orig
    if isinstance(driver_error, _UNAVAILABLE_ERRORS):
        return True
    # libpq's own failures (refused, reset, server closed the connection) carry no SQLSTATE.
    return isinstance(driver_error, psycopg.OperationalError | psycopg.InterfaceError) and driver_error.sqlstate is None


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_responses(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry declaring a route's error answers."""
    # Every keyed route can answer 403 (the admin key on a tenant route, a tenant key on an admin route) and 429
    # (the key's rate limit): schemathesis found both served undeclared.
    kinds: tuple[type[ServiceError], ...] = (
        BadRequest,
        Unauthorized,
        Forbidden,
        PayloadTooLarge,
        Unprocessable,
        TooManyRequests,
        *errors,
    )
    statuses = {kind.status: kind.title for kind in kinds}
    return {
        status: {"model": Problem, "description": title, "content": {PROBLEM_MEDIA_TYPE: {}}}
        for status, title in sorted(statuses.items())
    }


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]


_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


def serve_problem_schemas_as_problem_json(openapi: dict[str, Any]) -> dict[str, Any]:
    """FastAPI files a response `model` under application/json; error answers are served as problem+json."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[:1] in ("4", "5") and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return openapi


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {**exc.headers, "WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
        return problem_response(exc.status, exc.slug, exc.title, exc.detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(
                400, "malformed-json", "Malformed JSON", "The request body is not valid JSON.", errors
            )
        summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return problem_response(422, "validation", "Invalid request", summary or "Invalid request.", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
        title = str(exc.detail) if exc.detail else "HTTP error"
        return problem_response(exc.status_code, slug, title, title, headers=exc.headers)

    @app.exception_handler(DataError)
    async def _data_error(_: Request, exc: DataError) -> JSONResponse:
        # Postgres refused a value the schemas let through (e.g. a NUL byte in a query parameter): bad input.
        log.info("database rejected a request value: %s", exc.orig)
        return problem_response(
            422, "validation", "Invalid request", "A value in the request cannot be stored or compared by the database."
        )

    @app.exception_handler(OperationalError)
    async def _operational_error(_: Request, exc: OperationalError) -> JSONResponse:
        # A statement cancelled by statement_timeout (SQLSTATE 57014) is overload, not a bug: the client may retry.
        if getattr(exc.orig, "sqlstate", None) == "57014":
            log.warning("database statement cancelled: %s", exc.orig)
            return _busy("A database statement took longer than the service allows; try again shortly.")
        return _database_error(exc)

    @app.exception_handler(InterfaceError)
    @app.exception_handler(DisconnectionError)
    async def _connection_error(_: Request, exc: InterfaceError | DisconnectionError) -> JSONResponse:
        return _database_error(exc)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(_: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("no free database connection: %s", exc)
        return _busy("Every database connection is busy; try again shortly.")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, "internal", "Internal server error", "An unexpected error occurred.")


BUSY_RETRY_AFTER_S = 1


def _database_error(exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        # Logged once per request without a traceback: an outage would otherwise bury the log in identical ones.
        log.warning("database unavailable: %s", getattr(exc, "orig", None) or exc)
        problem = ServiceUnavailable("The database is unavailable; try again shortly.")
        return problem_response(503, problem.slug, problem.title, problem.detail, headers=problem.headers)
    log.exception("database error", exc_info=exc)
    return problem_response(500, "internal", "Internal server error", "An unexpected error occurred.")


def _busy(detail: str) -> JSONResponse:
    return problem_response(
        503, "unavailable", "Service unavailable", detail, headers={"Retry-After": str(BUSY_RETRY_AFTER_S)}
    )

"""One error hierarchy and one RFC 9457 `application/problem+json` rendering for every 4xx/5xx."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
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

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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


class ServiceUnavailable(ServiceError):
    status, slug, title = 503, "unavailable", "Service unavailable"


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
    kinds: tuple[type[ServiceError], ...] = (BadRequest, Unauthorized, PayloadTooLarge, Unprocessable, *errors)
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
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
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

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, "internal", "Internal server error", "An unexpected error occurred.")

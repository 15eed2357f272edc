"""One exception per kind of failure, all subclasses of `MemsvcError`."""

from typing import Any

import httpx

from memsvc_client.models import FieldError, Job

REQUEST_ID_HEADER = "X-Request-ID"


class MemsvcError(Exception):
    """Base of every error this client raises."""


class ConnectionFailed(MemsvcError):
    """No answer from the service: it could not be reached, the connection dropped, or it timed out (after the
    retries the call allowed)."""


class JobTimeout(MemsvcError):
    """`jobs.wait` gave up before the job finished; `job` is its last known state."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} still {job.status} after {timeout:g} s")
        self.job = job


class APIError(MemsvcError):
    """The service answered with an error status. Carries the RFC 9457 problem fields (`title`, `detail`, `type`,
    and `errors` for field validation), the whole `body`, and `request_id` when the server or a proxy in front of
    it sent an X-Request-ID header."""

    def __init__(
        self,
        status: int,
        *,
        title: str,
        detail: str,
        type: str,
        errors: list[FieldError] | None,
        body: Any,
        request_id: str | None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors = errors
        self.body = body
        self.request_id = request_id


class BadRequest(APIError):
    """400: the request could not be read (e.g. malformed JSON)."""


class ValidationFailed(APIError):
    """422: a value was refused; `errors` says which field and why."""


class PayloadTooLarge(APIError):
    """413: the request body is over the service's size limit."""


class Unauthorized(APIError):
    """401: the API key is missing, unknown or revoked."""


class Forbidden(APIError):
    """403: the key may not do this (a tenant key on an admin route, or the admin key on a tenant route)."""


class NotFound(APIError):
    """404: no such memory, job, tenant or key (in this tenant)."""


class Conflict(APIError):
    """409: the request contradicts the service's state (a tenant name taken, an update duplicating another
    memory, reranking without a reranker, a fitted storage profile without enough data). Never retried: none of
    these goes away by trying again."""


class RateLimited(APIError):
    """429: too many requests (after the retries the call allowed)."""


class ServerError(APIError):
    """5xx: the service failed (after the retries the call allowed)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer whose body has been read."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    problem = body if isinstance(body, dict) else {}
    kind = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else APIError)
    raw_errors = problem.get("errors")
    return kind(
        response.status_code,
        title=str(problem.get("title") or response.reason_phrase),
        detail=str(problem.get("detail") or response.text[:500]),
        type=str(problem.get("type") or "about:blank"),
        errors=[FieldError.model_validate(e) for e in raw_errors] if isinstance(raw_errors, list) else None,
        body=body,
        request_id=response.headers.get(REQUEST_ID_HEADER),
    )

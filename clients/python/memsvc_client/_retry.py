"""When a failed call is tried again, and after how long.

A call is retried when it certainly did not take effect: the connection could not be opened, or the answer was
408 (the server stopped waiting for the request) or 429 (refused before any work). A replayable call (see
_routes) is also retried after anything else that left its outcome unknown: a dropped connection, a timeout
while waiting for the answer, a 5xx. 409 is never retried: every 409 this service sends is a lasting conflict
(a name taken, a duplicate, a missing reranker, a profile needing more data), not a transient one."""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from memsvc_client._routes import Route

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# A Retry-After longer than this is not waited for; the usual backoff applies instead.
MAX_RETRY_AFTER_S = 60.0

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_OUTCOME_UNKNOWN = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def retry_after_exception(route: Route, exc: httpx.TransportError) -> bool:
    if isinstance(exc, _NOT_SENT):
        return True
    return route.replayable and isinstance(exc, _OUTCOME_UNKNOWN)


def retry_after_status(route: Route, status: int) -> bool:
    if status in (408, 429):
        return True
    return route.replayable and status >= 500


def retry_delay(attempt: int, headers: httpx.Headers | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1`: the server's Retry-After when it gives a usable one,
    else exponential backoff with jitter (so that many clients failing together do not retry together)."""
    if headers is not None:
        asked = _parse_retry_after(headers.get("Retry-After"))
        if asked is not None and 0 <= asked <= MAX_RETRY_AFTER_S:
            return asked
    backoff = min(INITIAL_BACKOFF_S * 2.0**attempt, MAX_BACKOFF_S)
    return backoff * random.uniform(0.5, 1.0)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

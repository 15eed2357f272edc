"""Typed FastAPI dependencies: database session, tenant authentication, admin authentication."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from memsvc.core.db import bind_tenant
from memsvc.core.errors import Forbidden, TooManyRequests, Unauthorized
from memsvc.core.ratelimit import RateLimiter
from memsvc.core.security import same_secret
from memsvc.core.settings import Settings
from memsvc.tenants import repository as tenant_repo

_bearer = HTTPBearer(auto_error=False, description="A tenant API key, or the admin key for admin routes.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_settings_dep(request: Request) -> Settings:
    # async: FastAPI runs a sync dependency on a worker thread, a hop per request for an attribute read.
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_db(request: Request) -> Iterator[Session]:
    """A session for this request; the route commits, anything uncommitted is rolled back at the end, except
    that a route marked `ReadsOnly` ends its transaction with COMMIT once it has returned (see there)."""
    with request.app.state.session_factory() as session:
        yield session
        if getattr(request.state, "reads_only", False) and session.in_transaction():
            session.commit()


DbDep = Annotated[Session, Depends(get_db)]


async def _mark_reads_only(request: Request) -> None:
    request.state.reads_only = True


# For routes that only read: their transaction ends with COMMIT, not the rollback at close. Both end a transaction
# that wrote nothing the same way, but psycopg drops all of a connection's prepared statements on ROLLBACK, so
# reads that always ended that way had every statement parsed and planned again on every request (a search's
# seven: bench/results/compare-steps/prepared-statements/).
ReadsOnly = Depends(_mark_reads_only)


@dataclass(frozen=True)
class TenantContext:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    key_prefix: str  # public part of the key: names the actor in logs and the audit log
    rate_limit_per_minute: int | None  # the tenant's; None follows Settings


def _is_admin(credentials: HTTPAuthorizationCredentials, settings: Settings) -> bool:
    return bool(settings.admin_key) and same_secret(credentials.credentials, settings.admin_key or "")


def require_tenant(
    request: Request, response: Response, credentials: BearerDep, db: DbDep, settings: SettingsDep
) -> TenantContext:
    """Authenticate a tenant key, count the request against the key's rate limit (429 beyond it), and scope the
    request's session to that tenant (row-level security)."""
    if credentials is None:
        raise Unauthorized("Send `Authorization: Bearer <api key>`.")
    found = tenant_repo.authenticate(db, credentials.credentials)
    if found is None:
        if _is_admin(credentials, settings):
            raise Forbidden("The admin key manages tenants and keys; use a tenant API key for memory routes.")
        raise Unauthorized("The API key is unknown or revoked.")
    _check_rate_limit(request.app.state.rate_limiter, response, found.key_id, found.rate_limit_per_minute, settings)
    bind_tenant(db, found.tenant_id, applied=True)
    return TenantContext(
        tenant_id=found.tenant_id,
        key_id=found.key_id,
        key_prefix=found.prefix,
        rate_limit_per_minute=found.rate_limit_per_minute,
    )


def _check_rate_limit(
    limiter: RateLimiter, response: Response, key_id: uuid.UUID, tenant_limit: int | None, settings: Settings
) -> None:
    limit = tenant_limit if tenant_limit is not None else settings.rate_limit_per_minute
    if limit <= 0:
        return
    decision = limiter.hit(str(key_id), limit)
    headers = {"RateLimit-Limit": str(decision.limit), "RateLimit-Remaining": str(decision.remaining)}
    if not decision.allowed:
        raise TooManyRequests(
            f"This API key made {limit} requests in the last {settings.rate_limit_window_s:g} s, its limit; "
            "retry after the Retry-After seconds.",
            retry_after_s=decision.retry_after_s,
            headers=headers,
        )
    response.headers.update(headers)


def require_admin(credentials: BearerDep, db: DbDep, settings: SettingsDep) -> None:
    if credentials is None:
        raise Unauthorized("Send `Authorization: Bearer <admin key>`.")
    if _is_admin(credentials, settings):
        return
    if tenant_repo.find_active_key(db, credentials.credentials) is not None:
        raise Forbidden("This route needs the admin key; a tenant key cannot manage tenants or keys.")
    raise Unauthorized("The key is not the admin key.")


TenantDep = Annotated[TenantContext, Depends(require_tenant)]
AdminDep = Annotated[None, Depends(require_admin)]

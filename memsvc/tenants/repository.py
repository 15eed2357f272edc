"""SQL for tenants and API keys (tables outside row-level security: keys are read before a tenant is known)."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, bindparam, cast, func, literal_column, select, update
from sqlalchemy.orm import Session

from memsvc.core.db import TENANT_SETTING, Statements
from memsvc.core.security import hash_api_key
from memsvc.models import ApiKey, Tenant


@dataclass(frozen=True)
class AuthenticatedKey:
    key_id: uuid.UUID
    tenant_id: uuid.UUID
    prefix: str
    rate_limit_per_minute: int | None  # the tenant's; None follows the service default


def authenticate(db: Session, secret: str) -> AuthenticatedKey | None:
    """The active key with this secret, and what its tenant allows. The same round trip binds the transaction to
    the tenant for row-level security (set_config runs only for the matching row)."""
    parameters = {"key_hash": hash_api_key(secret)}
    row = _statements.execute(db, "authenticate", _authenticate_statement, parameters).first()
    return AuthenticatedKey(row[0], row[1], row[2], row[3]) if row else None


def _authenticate_statement() -> Select[Any]:
    bind = func.set_config(
        literal_column(f"'{TENANT_SETTING}'"), cast(ApiKey.tenant_id, String), literal_column("true")
    )
    return (
        select(ApiKey.id, ApiKey.tenant_id, ApiKey.prefix, Tenant.rate_limit_per_minute, bind)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))
    )


_statements = Statements()


def find_active_key(db: Session, secret: str) -> ApiKey | None:
    return db.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(secret), ApiKey.revoked_at.is_(None)))


def get_tenant(db: Session, tenant_id: uuid.UUID) -> Tenant | None:
    return db.get(Tenant, tenant_id)


def get_tenant_by_name(db: Session, name: str) -> Tenant | None:
    return db.scalar(select(Tenant).where(Tenant.name == name))


def list_tenants(db: Session) -> list[Tenant]:
    return list(db.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id)))


def add_tenant(db: Session, name: str, embedding_space_id: int | None, storage_profile: str | None) -> Tenant:
    tenant = Tenant(id=uuid.uuid4(), name=name, embedding_space_id=embedding_space_id, storage_profile=storage_profile)
    db.add(tenant)
    db.flush()
    db.refresh(tenant)
    return tenant


def add_key(db: Session, tenant_id: uuid.UUID, secret: str, prefix: str, name: str | None) -> ApiKey:
    key = ApiKey(id=uuid.uuid4(), tenant_id=tenant_id, name=name, prefix=prefix, key_hash=hash_api_key(secret))
    db.add(key)
    db.flush()
    db.refresh(key)
    return key


def revoke_key(db: Session, key_id: uuid.UUID) -> bool:
    result = db.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_key(db: Session, key_id: uuid.UUID) -> ApiKey | None:
    return db.get(ApiKey, key_id)


def list_keys(db: Session, tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(db.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)))


def set_rate_limit(db: Session, tenant_id: uuid.UUID, requests_per_minute: int | None) -> None:
    db.execute(update(Tenant).where(Tenant.id == tenant_id).values(rate_limit_per_minute=requests_per_minute))

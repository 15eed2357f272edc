"""Tenant and key management rules (no HTTP, no commits: the caller's boundary commits)."""

import uuid

from sqlalchemy.orm import Session

from memsvc.core.errors import Conflict, NotFound
from memsvc.core.security import new_api_key
from memsvc.models import Tenant
from memsvc.tenants import repository
from memsvc.tenants.schemas import KeyCreated


def create_tenant(db: Session, name: str, embedding_space_id: int | None = None) -> Tenant:
    """A new tenant, searching `embedding_space_id` (unset: the newest space, adopted at its first embedding)."""
    if repository.get_tenant_by_name(db, name) is not None:
        raise Conflict(f"A tenant named {name!r} already exists.")
    return repository.add_tenant(db, name, embedding_space_id)


def create_key(db: Session, tenant_id: uuid.UUID, name: str | None = None) -> KeyCreated:
    if repository.get_tenant(db, tenant_id) is None:
        raise NotFound(f"No tenant {tenant_id}.")
    secret, prefix = new_api_key()
    key = repository.add_key(db, tenant_id, secret, prefix, name)
    return KeyCreated(
        id=key.id, tenant_id=key.tenant_id, name=key.name, prefix=key.prefix, key=secret, created_at=key.created_at
    )


def revoke_key(db: Session, key_id: uuid.UUID) -> None:
    if not repository.key_exists(db, key_id):
        raise NotFound(f"No key {key_id}.")
    repository.revoke_key(db, key_id)

"""Tenant and key management rules (no HTTP, no commits: the caller's boundary commits)."""

import uuid

from sqlalchemy.orm import Session, sessionmaker

from memsvc.audit import service as audit
from memsvc.audit.service import ADMIN
from memsvc.core.errors import Conflict, NotFound
from memsvc.core.security import new_api_key
from memsvc.embeddings import service as embeddings
from memsvc.embeddings.profiles import catalog, compression, parse_profile
from memsvc.embeddings.service import ModelConfig, NotEnoughToFit
from memsvc.models import Tenant
from memsvc.search.schemas import SearchDefaults
from memsvc.tenants import repository
from memsvc.tenants.schemas import (
    KeyCreated,
    KeyList,
    KeyPublic,
    StorageProfileInfo,
    StorageProfileList,
    TenantRateLimit,
    TenantStorage,
)


def create_tenant(
    db: Session, name: str, embedding_space_id: int | None = None, storage_profile: str | None = None
) -> Tenant:
    """A new tenant, searching `embedding_space_id` (unset: the newest space, adopted at its first embedding)."""
    if repository.get_tenant_by_name(db, name) is not None:
        raise Conflict(f"A tenant named {name!r} already exists.")
    tenant = repository.add_tenant(db, name, embedding_space_id, storage_profile)
    target = {"name": name, "storage_profile": storage_profile}
    audit.record(db, ADMIN, "tenant.create", tenant_id=tenant.id, target=target, counts={"tenants": 1})
    return tenant


def starting_space(factory: sessionmaker[Session], profile_name: str, config: ModelConfig) -> int:
    """The space a new tenant on `profile_name` starts in; a fitted profile cannot be started on (no
    embeddings to fit it yet)."""
    profile = parse_profile(profile_name)
    if profile.needs_fit:
        raise NotEnoughToFit(
            f"storage profile {profile.name} is fitted on the tenant's own embeddings: create the tenant on a "
            "profile without PCA or int8, write memories, then change its profile"
        )
    with factory() as db:
        space_id = embeddings.register(db, config, profile)
        db.commit()
    return space_id


def profile_catalog(config: ModelConfig) -> StorageProfileList:
    return StorageProfileList(
        model_id=config.model_id,
        dim=config.dim,
        default=config.default_profile,
        data=[
            StorageProfileInfo(
                name=p.name,
                codec=p.codec,
                pca_percent=p.pca_percent,
                index=p.index_kind,
                oversample=p.oversample if p.rescored else None,
                bytes_per_memory=p.bytes_per_memory(config.dim),
                compression=round(compression(p, config.dim), 2),
                fitted=p.needs_fit,
            )
            for p in catalog()
        ],
    )


def storage_of(db: Session, tenant_id: uuid.UUID, config: ModelConfig) -> TenantStorage:
    _tenant_or_404(db, tenant_id)
    chosen, searching, moving_to = embeddings.profile_state(db, tenant_id)
    return TenantStorage(
        tenant_id=tenant_id,
        profile=chosen or config.default_profile,
        chosen=chosen is not None,
        searching=searching,
        moving_to=moving_to,
    )


def change_storage_profile(
    db: Session, factory: sessionmaker[Session], tenant_id: uuid.UUID, profile_name: str | None, config: ModelConfig
) -> TenantStorage:
    _tenant_or_404(db, tenant_id)
    db.rollback()  # the change runs in its own transactions
    chosen = parse_profile(profile_name) if profile_name is not None else None
    change = embeddings.choose_profile(factory, tenant_id, chosen, config)
    state = storage_of(db, tenant_id, config)
    # choose_profile commits the change in transactions of its own: this entry follows it in the caller's.
    target = {
        "profile": profile_name,
        "outcome": change.outcome,
        "job_id": str(change.job_id) if change.job_id else None,
    }
    audit.record(db, ADMIN, "tenant.storage_profile.set", tenant_id=tenant_id, target=target)
    return state.model_copy(update={"outcome": change.outcome, "job_id": change.job_id})


def search_defaults_of(db: Session, tenant_id: uuid.UUID) -> SearchDefaults:
    tenant = _tenant_or_404(db, tenant_id)
    return SearchDefaults.model_validate(tenant.search_defaults or {})


def set_search_defaults(db: Session, tenant_id: uuid.UUID, defaults: SearchDefaults) -> SearchDefaults:
    tenant = _tenant_or_404(db, tenant_id)
    tenant.search_defaults = defaults.model_dump(mode="json", exclude_none=True) or None
    target = {"search_defaults": tenant.search_defaults or {}}
    audit.record(db, ADMIN, "tenant.search_defaults.set", tenant_id=tenant_id, target=target)
    return SearchDefaults.model_validate(tenant.search_defaults or {})


def create_key(db: Session, tenant_id: uuid.UUID, name: str | None = None) -> KeyCreated:
    _tenant_or_404(db, tenant_id)
    secret, prefix = new_api_key()
    key = repository.add_key(db, tenant_id, secret, prefix, name)
    target = {"key_id": str(key.id), "prefix": key.prefix, "name": name}
    audit.record(db, ADMIN, "key.create", tenant_id=tenant_id, target=target, counts={"keys": 1})
    return KeyCreated(
        id=key.id, tenant_id=key.tenant_id, name=key.name, prefix=key.prefix, key=secret, created_at=key.created_at
    )


def revoke_key(db: Session, key_id: uuid.UUID) -> None:
    """Revoke the key (again: a no-op, still recorded, with `keys: 0`)."""
    key = repository.get_key(db, key_id)
    if key is None:
        raise NotFound(f"No key {key_id}.")
    revoked = repository.revoke_key(db, key_id)
    target = {"key_id": str(key_id), "prefix": key.prefix}
    audit.record(db, ADMIN, "key.revoke", tenant_id=key.tenant_id, target=target, counts={"keys": int(revoked)})


def list_keys(db: Session, tenant_id: uuid.UUID) -> KeyList:
    _tenant_or_404(db, tenant_id)
    keys = [KeyPublic.model_validate(k) for k in repository.list_keys(db, tenant_id)]
    return KeyList(data=keys, count=len(keys))


def rate_limit_of(db: Session, tenant_id: uuid.UUID) -> TenantRateLimit:
    tenant = _tenant_or_404(db, tenant_id)
    return TenantRateLimit(tenant_id=tenant_id, requests_per_minute=tenant.rate_limit_per_minute)


def set_rate_limit(db: Session, tenant_id: uuid.UUID, requests_per_minute: int | None) -> TenantRateLimit:
    """Set the requests per minute each of the tenant's keys may make (None: the service default). Takes
    effect from the next request: keys read it when they authenticate."""
    before = rate_limit_of(db, tenant_id)
    repository.set_rate_limit(db, tenant_id, requests_per_minute)
    target = {"requests_per_minute": requests_per_minute, "previous": before.requests_per_minute}
    audit.record(db, ADMIN, "tenant.rate_limit.set", tenant_id=tenant_id, target=target)
    return TenantRateLimit(tenant_id=tenant_id, requests_per_minute=requests_per_minute)


def _tenant_or_404(db: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = repository.get_tenant(db, tenant_id)
    if tenant is None:
        raise NotFound(f"No tenant {tenant_id}.")
    return tenant

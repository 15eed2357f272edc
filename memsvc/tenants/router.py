import uuid

from fastapi import APIRouter, Request, status

from memsvc.core.deps import AdminDep, DbDep
from memsvc.core.errors import Conflict, Forbidden, NotFound, problem_responses
from memsvc.embeddings.service import ModelConfig
from memsvc.jobs.dispatch import enqueue_after_commit
from memsvc.search.schemas import SearchDefaults
from memsvc.tenants import repository, service
from memsvc.tenants.schemas import (
    KeyCreate,
    KeyCreated,
    KeyList,
    RateLimitChoice,
    StorageProfileChoice,
    StorageProfileList,
    TenantCreate,
    TenantList,
    TenantPublic,
    TenantRateLimit,
    TenantStorage,
)

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post(
    "/tenants",
    status_code=status.HTTP_201_CREATED,
    operation_id="admin-create_tenant",
    responses=problem_responses(Forbidden, Conflict),
)
def create_tenant(body: TenantCreate, request: Request, db: DbDep, _: AdminDep) -> TenantPublic:
    """Create a tenant (admin key only), on the default storage profile or the one given."""
    space_id = request.app.state.embedding_space_id
    if body.storage_profile is not None:
        space_id = service.starting_space(request.app.state.session_factory, body.storage_profile, _config(request))
    tenant = service.create_tenant(db, body.name, embedding_space_id=space_id, storage_profile=body.storage_profile)
    db.commit()
    return TenantPublic.model_validate(tenant)


@router.get("/tenants", operation_id="admin-list_tenants", responses=problem_responses(Forbidden))
def list_tenants(db: DbDep, _: AdminDep) -> TenantList:
    """List tenants (admin key only)."""
    tenants = [TenantPublic.model_validate(t) for t in repository.list_tenants(db)]
    return TenantList(data=tenants, count=len(tenants))


@router.post(
    "/tenants/{tenant_id}/keys",
    status_code=status.HTTP_201_CREATED,
    operation_id="admin-create_key",
    responses=problem_responses(Forbidden, NotFound),
)
def create_key(tenant_id: uuid.UUID, db: DbDep, _: AdminDep, body: KeyCreate | None = None) -> KeyCreated:
    """Create an API key for a tenant; the secret is in this answer only."""
    created = service.create_key(db, tenant_id, body.name if body else None)
    db.commit()
    return created


@router.get(
    "/tenants/{tenant_id}/keys", operation_id="admin-list_keys", responses=problem_responses(Forbidden, NotFound)
)
def list_keys(tenant_id: uuid.UUID, db: DbDep, _: AdminDep) -> KeyList:
    """The tenant's API keys, active and revoked, oldest first: ids, labels and public prefixes, never secrets."""
    return service.list_keys(db, tenant_id)


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="admin-revoke_key",
    responses=problem_responses(Forbidden, NotFound),
)
def revoke_key(key_id: uuid.UUID, db: DbDep, _: AdminDep) -> None:
    """Revoke an API key; requests with it get 401 from now on."""
    service.revoke_key(db, key_id)
    db.commit()


@router.get("/storage-profiles", operation_id="admin-list_storage_profiles", responses=problem_responses(Forbidden))
def list_storage_profiles(request: Request, _: AdminDep) -> StorageProfileList:
    """The storage profiles offered for the configured embedding model, with their cost per memory."""
    return service.profile_catalog(_config(request))


@router.get(
    "/tenants/{tenant_id}/storage-profile",
    operation_id="admin-get_storage_profile",
    responses=problem_responses(Forbidden, NotFound),
)
def get_storage_profile(tenant_id: uuid.UUID, request: Request, db: DbDep, _: AdminDep) -> TenantStorage:
    """The tenant's storage profile, and whether its embeddings are being re-encoded into another."""
    return service.storage_of(db, tenant_id, _config(request))


@router.put(
    "/tenants/{tenant_id}/storage-profile",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="admin-set_storage_profile",
    responses=problem_responses(Forbidden, NotFound, Conflict),
)
def set_storage_profile(
    tenant_id: uuid.UUID, body: StorageProfileChoice, request: Request, db: DbDep, _: AdminDep
) -> TenantStorage:
    """Change how the tenant's embeddings are stored. Online: a worker re-encodes them in the background (from
    the stored vectors when those are lossless, else with the model) while search keeps answering from the
    current storage, then search switches. 409 for a fitted profile (PCA, int8) before the tenant has enough
    embedded memories to fit it."""
    changed = service.change_storage_profile(
        db, request.app.state.session_factory, tenant_id, body.profile, _config(request)
    )
    db.commit()  # the audit entry
    if changed.job_id is not None:
        enqueue_after_commit(request.app.state.dispatcher, tenant_id, changed.job_id, "reembed")
    return changed


@router.get(
    "/tenants/{tenant_id}/search-defaults",
    operation_id="admin-get_search_defaults",
    responses=problem_responses(Forbidden, NotFound),
)
def get_search_defaults(tenant_id: uuid.UUID, db: DbDep, _: AdminDep) -> SearchDefaults:
    """The search options the tenant's searches use when a request leaves them out (unset = built-in)."""
    return service.search_defaults_of(db, tenant_id)


@router.put(
    "/tenants/{tenant_id}/search-defaults",
    operation_id="admin-set_search_defaults",
    responses=problem_responses(Forbidden, NotFound),
)
def set_search_defaults(tenant_id: uuid.UUID, body: SearchDefaults, db: DbDep, _: AdminDep) -> SearchDefaults:
    """Replace the tenant's search defaults (fusion weights, mode, recency, min_score, diversity, rerank); a
    field left out goes back to the built-in default. Requests can still override each one."""
    saved = service.set_search_defaults(db, tenant_id, body)
    db.commit()
    return saved


@router.get(
    "/tenants/{tenant_id}/rate-limit",
    operation_id="admin-get_rate_limit",
    responses=problem_responses(Forbidden, NotFound),
)
def get_rate_limit(tenant_id: uuid.UUID, db: DbDep, _: AdminDep) -> TenantRateLimit:
    """Requests per minute each of the tenant's API keys may make (null: the service default)."""
    return service.rate_limit_of(db, tenant_id)


@router.put(
    "/tenants/{tenant_id}/rate-limit",
    operation_id="admin-set_rate_limit",
    responses=problem_responses(Forbidden, NotFound),
)
def set_rate_limit(tenant_id: uuid.UUID, body: RateLimitChoice, db: DbDep, _: AdminDep) -> TenantRateLimit:
    """Set the requests per minute each of the tenant's API keys may make (null: back to the service default);
    it applies from the next request."""
    saved = service.set_rate_limit(db, tenant_id, body.requests_per_minute)
    db.commit()
    return saved


def _config(request: Request) -> ModelConfig:
    config: ModelConfig = request.app.state.model_config()
    return config

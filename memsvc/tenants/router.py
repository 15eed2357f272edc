import uuid

from fastapi import APIRouter, Request, status

from memsvc.core.deps import AdminDep, DbDep
from memsvc.core.errors import Conflict, Forbidden, NotFound, problem_responses
from memsvc.tenants import repository, service
from memsvc.tenants.schemas import KeyCreate, KeyCreated, TenantCreate, TenantList, TenantPublic

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post(
    "/tenants",
    status_code=status.HTTP_201_CREATED,
    operation_id="admin-create_tenant",
    responses=problem_responses(Forbidden, Conflict),
)
def create_tenant(body: TenantCreate, request: Request, db: DbDep, _: AdminDep) -> TenantPublic:
    """Create a tenant (admin key only)."""
    tenant = service.create_tenant(db, body.name, embedding_space_id=request.app.state.embedding_space_id)
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

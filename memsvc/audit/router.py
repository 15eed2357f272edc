import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from memsvc.audit import service
from memsvc.audit.repository import AuditFilter
from memsvc.audit.schemas import AuditList
from memsvc.core.deps import AdminDep, DbDep
from memsvc.core.errors import Forbidden, problem_responses

router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/audit", operation_id="admin-list_audit", responses=problem_responses(Forbidden))
def list_audit(
    db: DbDep,
    _: AdminDep,
    tenant_id: Annotated[uuid.UUID | None, Query(description="Only entries about this tenant.")] = None,
    action: Annotated[str | None, Query(max_length=64, description="Only this action, e.g. memories.forget.")] = None,
    since: Annotated[datetime | None, Query(description="Only entries at or after this time.")] = None,
    until: Annotated[datetime | None, Query(description="Only entries before this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many entries.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> AuditList:
    """The audit log (admin key only), newest first: tenant and key changes, storage, search and rate-limit
    settings, and every deletion of memories, with who did it, the scope or ids it applied to and its counts."""
    where = AuditFilter(tenant_id=tenant_id, action=action, since=since, until=until)
    return service.list_entries(db, where, cursor=cursor, limit=limit)

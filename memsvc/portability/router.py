from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from memsvc.core.deps import DbDep, TenantDep
from memsvc.core.errors import problem_responses
from memsvc.jobs.dispatch import enqueue_after_commit
from memsvc.memories.repository import MemoryFilter
from memsvc.memories.router import ScopeQuery
from memsvc.memories.schemas import MemoryType
from memsvc.portability import service
from memsvc.portability.schemas import ImportReport

router = APIRouter(prefix="/v1", tags=["portability"])

NDJSON = "application/x-ndjson"


@router.get(
    "/export",
    operation_id="portability-export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {NDJSON: {}}, "description": "One ExportRecord JSON object per line."},
        **problem_responses(),
    },
)
def export(
    request: Request,
    tenant: TenantDep,
    user_id: ScopeQuery = None,
    agent_id: ScopeQuery = None,
    session_id: ScopeQuery = None,
    type: Annotated[list[MemoryType] | None, Query()] = None,
) -> StreamingResponse:
    """Stream the tenant's memories (optionally one scope) as NDJSON, oldest first."""
    where = MemoryFilter(
        tenant_id=tenant.tenant_id,
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        types=[t.value for t in type or []],
    )
    return StreamingResponse(service.export_lines(request.app.state.session_factory, where), media_type=NDJSON)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    operation_id="portability-import",
    responses=problem_responses(),
    openapi_extra={"requestBody": {"required": True, "content": {NDJSON: {"schema": {"type": "string"}}}}},
)
async def import_(request: Request, db: DbDep, tenant: TenantDep) -> ImportReport:
    """Restore an export (NDJSON body): ids, history, links and embeddings come back as they were."""
    body = await request.body()

    def restore() -> ImportReport:
        space = service.import_space(db, tenant.tenant_id)
        records = service.parse_lines(body, space)
        report = service.import_records(db, tenant.tenant_id, records, space)
        db.commit()
        enqueue_after_commit(request.app.state.dispatcher, tenant.tenant_id, report.job_id)
        return report

    return await run_in_threadpool(restore)

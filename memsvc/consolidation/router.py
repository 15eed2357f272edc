from fastapi import APIRouter, Request, status

from memsvc.consolidation import service
from memsvc.consolidation.schemas import ConsolidateAccepted, ConsolidateRequest
from memsvc.core.deps import DbDep, TenantDep
from memsvc.core.errors import Unprocessable, problem_responses
from memsvc.jobs.dispatch import enqueue_after_commit

router = APIRouter(prefix="/v1", tags=["consolidation"])


@router.post(
    "/consolidate",
    operation_id="consolidation-consolidate",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(Unprocessable),
)
def consolidate(body: ConsolidateRequest, request: Request, db: DbDep, tenant: TenantDep) -> ConsolidateAccepted:
    """Consolidate a scope's history (dialogue turns and events) into segment, session and profile summaries and
    facts, each linked to its evidence (`source_ids`; search with `expand: ["evidence"]`). Runs as a job;
    incremental (only history newer than the last run) and idempotent (the same history is never consolidated
    twice)."""
    scope = service.Scope(user_id=body.user_id, agent_id=body.agent_id, session_id=body.session_id)
    config = service.ConsolidationConfig.of(request.app.state.settings)
    job = service.request_consolidation(db, tenant.tenant_id, scope, body.backend, config)
    db.commit()
    enqueue_after_commit(request.app.state.dispatcher, tenant.tenant_id, job.id, "consolidate")
    return ConsolidateAccepted(job_id=job.id, backend=(job.params or {})["backend"])

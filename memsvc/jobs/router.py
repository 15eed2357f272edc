import uuid

from fastapi import APIRouter

from memsvc.core.deps import DbDep, TenantDep
from memsvc.core.errors import NotFound, problem_responses
from memsvc.jobs import service
from memsvc.jobs.schemas import JobPublic

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get("/jobs/{job_id}", operation_id="jobs-get", responses=problem_responses(NotFound))
def get_job(job_id: uuid.UUID, db: DbDep, tenant: TenantDep) -> JobPublic:
    """Progress of background work started by a write: queued, running, done or failed, with per-item counts."""
    return service.get_job(db, tenant.tenant_id, job_id)

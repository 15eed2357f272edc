import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from memsvc.core.deps import DbDep, ReadsOnly, TenantDep
from memsvc.core.errors import NotFound, problem_responses
from memsvc.jobs import service
from memsvc.jobs.schemas import JobKind, JobList, JobPublic, JobStatus

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get("/jobs", operation_id="jobs-list", responses=problem_responses(), dependencies=[ReadsOnly])
def list_jobs(
    db: DbDep,
    tenant: TenantDep,
    kind: Annotated[JobKind | None, Query(description="Only jobs of this kind.")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this stored state.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many jobs.")] = 20,
) -> JobList:
    """The tenant's recent background jobs, newest first: writes being embedded, model changes in progress."""
    return service.list_jobs(db, tenant.tenant_id, kind, status, limit)


@router.get("/jobs/{job_id}", operation_id="jobs-get", responses=problem_responses(NotFound), dependencies=[ReadsOnly])
def get_job(job_id: uuid.UUID, db: DbDep, tenant: TenantDep) -> JobPublic:
    """Progress of background work: queued, running, done or failed, with per-item counts."""
    return service.get_job(db, tenant.tenant_id, job_id)

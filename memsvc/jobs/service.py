"""Jobs: background work on memories, and the state a client polls."""

import uuid

from sqlalchemy.orm import Session

from memsvc.core.errors import NotFound
from memsvc.jobs import repository
from memsvc.jobs.schemas import ItemError, JobPublic, JobStatus

MAX_REPORTED_ERRORS = 100


def get_job(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> JobPublic:
    job = repository.get(db, tenant_id, job_id)
    if job is None:
        raise NotFound(f"No job {job_id}.")
    counts = repository.item_counts(db, tenant_id, job_id)
    if job.status == JobStatus.failed:
        status = JobStatus.failed
    elif counts["pending"] == 0:
        status = JobStatus.failed if counts["failed"] else JobStatus.done
    else:
        status = JobStatus(job.status)
    errors = [
        ItemError(memory_id=memory_id, error=error)
        for memory_id, error in repository.item_errors(db, tenant_id, job_id, MAX_REPORTED_ERRORS)
    ]
    return JobPublic(
        id=job.id,
        kind=job.kind,
        status=status,
        total=sum(counts.values()),
        pending=counts["pending"],
        done=counts["done"],
        failed=counts["failed"],
        attempts=job.attempts,
        error=job.error,
        errors=errors,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )

"""Jobs: background work on memories, and the state a client polls."""

import uuid

from sqlalchemy.orm import Session

from memsvc.core.errors import NotFound
from memsvc.embeddings import repository as embeddings
from memsvc.jobs import repository
from memsvc.jobs.schemas import EmbeddingSpacePublic, ItemError, JobKind, JobList, JobPublic, JobStatus
from memsvc.models import Job

MAX_REPORTED_ERRORS = 100


def get_job(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> JobPublic:
    job = repository.get(db, tenant_id, job_id)
    if job is None:
        raise NotFound(f"No job {job_id}.")
    return _public(db, job)


def list_jobs(db: Session, tenant_id: uuid.UUID, kind: JobKind | None, status: JobStatus | None, limit: int) -> JobList:
    """The tenant's most recent jobs, newest first. Status is filtered on the stored state, which an embed job
    whose memories were all processed may still show as running until its worker records the end."""
    found = repository.recent(db, tenant_id, kind.value if kind else None, status.value if status else None, limit)
    data = [_public(db, job) for job in found]
    return JobList(data=data, count=len(data))


def _public(db: Session, job: Job) -> JobPublic:
    if job.kind == JobKind.reembed:
        return _reembed_public(db, job)
    counts = repository.item_counts(db, job.tenant_id, job.id)
    if job.kind == JobKind.consolidate:
        status = JobStatus(job.status)  # its memories are written as it goes: only the worker knows the end
    elif job.status == JobStatus.failed:
        status = JobStatus.failed
    elif counts["pending"] == 0:
        status = JobStatus.failed if counts["failed"] else JobStatus.done
    else:
        status = JobStatus(job.status)
    errors = [
        ItemError(memory_id=memory_id, error=error)
        for memory_id, error in repository.item_errors(db, job.tenant_id, job.id, MAX_REPORTED_ERRORS)
    ]
    return _job_public(job, status, counts, errors, space=None)


def _reembed_public(db: Session, job: Job) -> JobPublic:
    """Progress of a model or storage change: the tenant's embedded memories, and how many have a vector in the
    new space."""
    space = embeddings.get_space(db, job.embedding_space_id) if job.embedding_space_id is not None else None
    status = JobStatus(job.status)
    total = embeddings.count_embedded_memories(db, job.tenant_id)
    done = min(total, embeddings.count_vectors(db, job.tenant_id, space.id)) if space else 0
    if status == JobStatus.done:
        done = total
    pending = total - done if status in (JobStatus.queued, JobStatus.running) else 0
    counts = {"pending": pending, "done": done, "failed": total - done - pending}
    public_space = (
        EmbeddingSpacePublic(model_id=space.model_id, dim=space.dim, storage=space.storage) if space else None
    )
    return _job_public(job, status, counts, errors=[], space=public_space)


def _job_public(
    job: Job, status: JobStatus, counts: dict[str, int], errors: list[ItemError], space: EmbeddingSpacePublic | None
) -> JobPublic:
    return JobPublic(
        id=job.id,
        kind=JobKind(job.kind),
        status=status,
        total=sum(counts.values()),
        pending=counts["pending"],
        done=counts["done"],
        failed=counts["failed"],
        attempts=job.attempts,
        error=job.error,
        errors=errors,
        embedding_space=space,
        params=job.params,
        result=job.result,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )

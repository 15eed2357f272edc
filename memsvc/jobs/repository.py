"""SQL for jobs and for the memories their embed jobs cover."""

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from memsvc.core.db import id_in
from memsvc.models import Job, Memory, PendingEmbedding


def add(
    db: Session,
    tenant_id: uuid.UUID,
    kind: str,
    embedding_space_id: int | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    job = Job(id=uuid.uuid4(), tenant_id=tenant_id, kind=kind, embedding_space_id=embedding_space_id, params=params)
    db.add(job)
    db.flush()
    return job


def get(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    return db.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id))


def item_counts(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, int]:
    """How many of an embed job's memories are pending, done (no longer queued) and failed."""
    queued = PendingEmbedding
    total, pending, failed = db.execute(
        select(
            func.count(),
            func.count(queued.memory_id).filter(queued.error.is_(None)),
            func.count(queued.memory_id).filter(queued.error.is_not(None)),
        )
        .select_from(Memory)
        .outerjoin(queued, queued.memory_id == Memory.id)
        .where(Memory.tenant_id == tenant_id, Memory.job_id == job_id)
    ).one()
    return {"pending": int(pending), "done": int(total - pending - failed), "failed": int(failed)}


def item_errors(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, limit: int) -> list[tuple[uuid.UUID, str]]:
    rows = db.execute(
        select(Memory.id, PendingEmbedding.error)
        .join(PendingEmbedding, PendingEmbedding.memory_id == Memory.id)
        .where(Memory.tenant_id == tenant_id, Memory.job_id == job_id, PendingEmbedding.error.is_not(None))
        .order_by(Memory.seq)
        .limit(limit)
    )
    return [(memory_id, error or "") for memory_id, error in rows]


def set_status(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, status: str, error: str | None = None) -> None:
    db.execute(
        update(Job)
        .where(Job.tenant_id == tenant_id, Job.id == job_id)
        .values(status=status, error=error, updated_at=func.now())
    )


def start_attempt(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    """Count one more attempt and mark the job running; None if the job no longer exists or was dead-lettered
    (a redelivered message must not revive it: it would be marked done over its failed memories)."""
    return db.scalar(
        update(Job)
        .where(Job.tenant_id == tenant_id, Job.id == job_id, Job.status != "failed")
        .values(attempts=Job.attempts + 1, status="running", updated_at=func.now())
        .returning(Job)
    )


def finish_if_nothing_pending(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    """Mark an embed job done if none of its memories is pending any more; tells whether it was. (A consolidation
    job also embeds what it writes, but it is done only when the whole run is: it says so itself.)"""
    pending = (
        select(Memory.id)
        .join(PendingEmbedding, PendingEmbedding.memory_id == Memory.id)
        .where(Memory.tenant_id == tenant_id, Memory.job_id == job_id, PendingEmbedding.error.is_(None))
    )
    result = db.execute(
        update(Job)
        .where(Job.tenant_id == tenant_id, Job.id == job_id, Job.kind == "embed", ~pending.exists())
        .values(status="done", error=None, updated_at=func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def queue_for_embedding(db: Session, tenant_id: uuid.UUID, memory_ids: list[uuid.UUID]) -> None:
    """Queue these memories for embedding; one queued before (failed, or pending under an older text) is queued
    afresh."""
    if not memory_ids:
        return
    rows = select(Memory.id, Memory.tenant_id, Memory.seq).where(
        Memory.tenant_id == tenant_id, id_in(Memory.id, memory_ids)
    )
    statement = insert(PendingEmbedding).from_select(["memory_id", "tenant_id", "seq"], rows)
    db.execute(
        statement.on_conflict_do_update(
            index_elements=[PendingEmbedding.memory_id], set_={"error": None, "queued_at": func.now()}
        )
    )


def claim_pending(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, limit: int) -> list[Memory]:
    """Lock up to `limit` pending memories (and their queue rows), this job's first, then other pending ones of
    the tenant so that many small writes share one model call. Rows another worker holds are skipped, not
    waited for."""
    return list(
        db.scalars(
            select(Memory)
            .join(PendingEmbedding, PendingEmbedding.memory_id == Memory.id)
            .where(PendingEmbedding.tenant_id == tenant_id, PendingEmbedding.error.is_(None))
            .order_by(case((Memory.job_id == job_id, 0), else_=1), PendingEmbedding.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def mark_embedded(db: Session, memories: list[Memory]) -> None:
    db.execute(delete(PendingEmbedding).where(id_in(PendingEmbedding.memory_id, [m.id for m in memories])))


def touch(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    db.execute(update(Job).where(Job.tenant_id == tenant_id, Job.id == job_id).values(updated_at=func.now()))


def fail_pending(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, error: str) -> None:
    ours = select(Memory.id).where(Memory.tenant_id == tenant_id, Memory.job_id == job_id)
    db.execute(
        update(PendingEmbedding)
        .where(PendingEmbedding.memory_id.in_(ours), PendingEmbedding.error.is_(None))
        .values(error=error)
    )


def stale_jobs(db: Session, older_than: timedelta) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(tenant, job, kind) of the jobs, across all tenants, with memories still pending after `older_than`, or
    (re-embedding, consolidation) still queued or running without progress for that long."""
    rows: Any = db.execute(text("SELECT tenant_id, job_id, kind FROM memsvc_stale_jobs(:age)"), {"age": older_than})
    return [(tenant_id, job_id, kind) for tenant_id, job_id, kind in rows]


def finish(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, result: dict[str, Any]) -> None:
    db.execute(
        update(Job)
        .where(Job.tenant_id == tenant_id, Job.id == job_id)
        .values(status="done", error=None, result=result, updated_at=func.now())
    )


def recent(db: Session, tenant_id: uuid.UUID, kind: str | None, status: str | None, limit: int) -> list[Job]:
    query = select(Job).where(Job.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    return list(db.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit)))


def delete_consolidations_within(
    db: Session, tenant_id: uuid.UUID, user_id: str | None, agent_id: str | None, session_id: str | None
) -> int:
    """Delete the consolidation jobs of every scope within the one named (their params name its user, agent and
    session), whatever their state: a forgotten scope leaves no job naming it, and a run still in progress
    finds its job gone and stops. Returns how many."""
    scope: Any = Job.params["scope"]
    named = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
    conditions = [scope[field].astext == value for field, value in named.items() if value is not None]
    result = db.execute(delete(Job).where(Job.tenant_id == tenant_id, Job.kind == "consolidate", *conditions))
    return int(result.rowcount)  # type: ignore[attr-defined]

"""Embedding work done in the background: the domain code behind the `embed` task, whatever runs it."""

import logging
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from memsvc.core.db import tenant_session
from memsvc.jobs import repository as jobs
from memsvc.memories.service import TextEmbedder, embedding_text

log = logging.getLogger(__name__)


def embed_job(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    load_embedder: Callable[[], TextEmbedder],
    batch_size: int,
) -> int:
    """Embed the job's pending memories, in batches that also take other pending memories of the tenant, so
    many small writes share one model call. Safe to run twice or concurrently: rows are claimed with SKIP LOCKED
    and an embedding overwrites its memory's column. Returns how many memories this call embedded."""
    with tenant_session(factory, tenant_id) as db:
        if jobs.get(db, tenant_id, job_id) is None:
            return 0  # the job's memories were forgotten
        jobs.count_attempt(db, tenant_id, job_id)
        db.commit()
    embedder = load_embedder()  # after counting the attempt: a model that fails to load is a failed attempt
    embedded = 0
    while True:
        with tenant_session(factory, tenant_id) as db:
            batch = jobs.claim_pending(db, tenant_id, job_id, batch_size)
            if not batch:
                break
            vectors = embedder.embed([embedding_text(m) for m in batch])
            jobs.store_embeddings(db, batch, vectors, embedder.model_id)
            db.commit()
            embedded += len(batch)
            if not any(m.job_id == job_id for m in batch):
                break  # ours are held by another worker; it finishes them
    with tenant_session(factory, tenant_id) as db:
        if not jobs.has_pending(db, tenant_id, job_id):
            jobs.set_status(db, tenant_id, job_id, "done")
            db.commit()
    log.info("job %s: embedded %d memories", job_id, embedded)
    return embedded


def fail_job(factory: sessionmaker[Session], tenant_id: uuid.UUID, job_id: uuid.UUID, error: str) -> None:
    """Dead-letter a job after its last retry: its pending memories are marked failed with the error."""
    with tenant_session(factory, tenant_id) as db:
        jobs.fail_pending(db, tenant_id, job_id, error)
        jobs.set_status(db, tenant_id, job_id, "failed", error=error)
        db.commit()
    log.error("job %s failed for good: %s", job_id, error)

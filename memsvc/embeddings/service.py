"""Embedding work done in the background, whatever runs it (Celery task or in-process worker):
- `embed` jobs embed newly written or changed memories, in every space the tenant uses;
- `reembed` jobs fill a newly configured space for all of a tenant's memories while search stays on the old
  one, then switch the tenant's search to it.
Both are safe to run twice or concurrently: rows are claimed with SKIP LOCKED and vectors are upserted by
(memory, space)."""

import logging
import time
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from memsvc.core.db import tenant_session
from memsvc.embeddings import repository
from memsvc.jobs import repository as jobs
from memsvc.memories.service import TextEmbedder, embedding_text
from memsvc.models import EmbeddingSpace

log = logging.getLogger(__name__)

EmbedderFor = Callable[[EmbeddingSpace], TextEmbedder]

RESCAN_PAUSE_S = 0.2


class NoEmbeddingSpace(RuntimeError):
    """No process has registered an embedding model yet; the job is retried."""


def adopt_configured_space(
    factory: sessionmaker[Session], model_id: str, model_path: str | None, dim: int
) -> tuple[int, list[tuple[uuid.UUID, uuid.UUID]]]:
    """Register this process's model configuration and point every tenant at it: tenants searching another
    space get a `reembed` job (returned as (tenant, job) pairs to enqueue after commit); search moves only when
    that job completes. Idempotent, and safe when API and workers start together."""
    with factory() as db:
        space_id = repository.register_space(db, model_id, model_path, dim)
        db.commit()
        tenants = repository.tenants_not_on(db, space_id)
    started: list[tuple[uuid.UUID, uuid.UUID]] = []
    for tenant_id in tenants:
        with tenant_session(factory, tenant_id) as db:
            if repository.set_target(db, tenant_id, space_id) == "reembed":
                job = jobs.add(db, tenant_id, kind="reembed", embedding_space_id=space_id)
                started.append((tenant_id, job.id))
            db.commit()
    if started:
        log.info("embedding model %s (%d-d): re-embedding %d tenant(s)", model_id, dim, len(started))
    return space_id, started


def run_job(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    embedder_for: EmbedderFor,
    batch_size: int,
) -> int:
    """Run an `embed` or `reembed` job; returns how many vectors this call wrote."""
    with tenant_session(factory, tenant_id) as db:
        job = jobs.get(db, tenant_id, job_id)
        if job is None:
            return 0  # its memories (or its tenant) were forgotten
        jobs.count_attempt(db, tenant_id, job_id)
        db.commit()
    if job.kind == "reembed" and job.embedding_space_id is not None:
        written = _reembed(factory, tenant_id, job_id, job.embedding_space_id, embedder_for, batch_size)
    else:
        written = _embed_pending(factory, tenant_id, job_id, embedder_for, batch_size)
    log.info("%s job %s: wrote %d vectors", job.kind, job_id, written)
    return written


def live_spaces(db: Session, tenant_id: uuid.UUID) -> list[EmbeddingSpace]:
    """The spaces a new vector of the tenant must exist in, search space first, read under the tenant's share lock
    (held until commit: the tenant cannot switch spaces while vectors for these are written)."""
    if repository.tenant_spaces(db, tenant_id)[0] is None:  # its first vectors go to the newest configured space
        newest = repository.newest_space_id(db)
        if newest is None:
            raise NoEmbeddingSpace("no embedding model has been registered yet; start the API or a worker")
        repository.adopt_space_if_unset(db, tenant_id, newest)
    search, target = repository.tenant_spaces(db, tenant_id, lock=True)
    spaces = [repository.get_space(db, space_id) for space_id in (search, target) if space_id is not None]
    return [space for space in spaces if space is not None]


def _embed_pending(
    factory: sessionmaker[Session], tenant_id: uuid.UUID, job_id: uuid.UUID, embedder_for: EmbedderFor, batch_size: int
) -> int:
    """Embed the job's pending memories, in batches that also take other pending memories of the tenant, so
    many small writes share one model call."""
    written = 0
    while True:
        with tenant_session(factory, tenant_id) as db:
            spaces = live_spaces(db, tenant_id)
            batch = jobs.claim_pending(db, tenant_id, job_id, batch_size)
            if not batch:
                break
            texts = [embedding_text(m) for m in batch]
            for space in spaces:
                vectors = embedder_for(space).embed(texts)
                repository.store_vectors(db, tenant_id, space.id, [m.id for m in batch], vectors)
            jobs.mark_embedded(db, batch)
            db.commit()
            written += len(batch)
            if not any(m.job_id == job_id for m in batch):
                break  # ours are held by another worker; it finishes them
    with tenant_session(factory, tenant_id) as db:
        if not jobs.has_pending(db, tenant_id, job_id):
            jobs.set_status(db, tenant_id, job_id, "done")
            db.commit()
    return written


def _reembed(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    space_id: int,
    embedder_for: EmbedderFor,
    batch_size: int,
) -> int:
    """Give every embedded memory of the tenant a vector in `space_id`, then switch the tenant's search to it
    and drop the old vectors. Memories written meanwhile get both vectors from their own embed jobs."""
    written = 0
    after_seq = 0
    while True:
        with tenant_session(factory, tenant_id) as db:
            search, target = repository.tenant_spaces(db, tenant_id, lock=True)
            if target != space_id:
                _finish_superseded(db, tenant_id, job_id, search == space_id)
                db.commit()
                return written
            batch = repository.claim_unembedded(db, tenant_id, space_id, after_seq, batch_size)
            if batch:
                space = repository.get_space(db, space_id)
                assert space is not None  # spaces are never deleted
                vectors = embedder_for(space).embed([embedding_text(m) for m in batch])
                repository.store_vectors(db, tenant_id, space_id, [m.id for m in batch], vectors)
                jobs.touch(db, tenant_id, job_id)  # progress: the sweeper leaves a job that moves alone
                db.commit()
                written += len(batch)
                after_seq = batch[-1].seq
                continue
        with tenant_session(factory, tenant_id) as db:
            if repository.switch_if_complete(db, tenant_id, space_id):
                jobs.set_status(db, tenant_id, job_id, "done")
                db.commit()
                break
            db.commit()
        after_seq = 0  # some rows were held by others while we passed: go round again
        time.sleep(RESCAN_PAUSE_S)
    with tenant_session(factory, tenant_id) as db:
        dropped = repository.delete_other_spaces(db, tenant_id, space_id)
        db.commit()
    log.info("tenant %s now searches space %d (%d old vectors dropped)", tenant_id, space_id, dropped)
    return written


def _finish_superseded(db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, switched: bool) -> None:
    if switched:  # a concurrent run of this job completed it
        jobs.set_status(db, tenant_id, job_id, "done")
    else:
        jobs.set_status(db, tenant_id, job_id, "failed", error="superseded: the embedding model changed again")


def fail_job(factory: sessionmaker[Session], tenant_id: uuid.UUID, job_id: uuid.UUID, error: str) -> None:
    """Dead-letter a job after its last retry. An embed job's pending memories are marked failed with the error;
    a failed re-embedding is abandoned, so the tenant keeps searching (and writing) on its current model."""
    with tenant_session(factory, tenant_id) as db:
        job = jobs.get(db, tenant_id, job_id)
        if job is None:
            return
        if job.kind == "reembed" and job.embedding_space_id is not None:
            repository.drop_target(db, tenant_id, job.embedding_space_id)
        else:
            jobs.fail_pending(db, tenant_id, job_id, error)
        jobs.set_status(db, tenant_id, job_id, "failed", error=error)
        db.commit()
    log.error("job %s failed for good: %s", job_id, error)

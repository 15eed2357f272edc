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
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from memsvc.core.db import tenant_session
from memsvc.embeddings import repository
from memsvc.jobs import repository as jobs
from memsvc.memories.service import TextEmbedder, embedding_text
from memsvc.models import EmbeddingSpace, Memory

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
    claim_size: int,
) -> int:
    """Run an `embed` or `reembed` job, taking up to `claim_size` memories per transaction (the model sorts them
    by length into its own batches); returns how many memories this call embedded."""
    with tenant_session(factory, tenant_id) as db:
        job = jobs.start_attempt(db, tenant_id, job_id)
        # A job whose memories were embedded along with an earlier job's costs one transaction.
        finished = job is not None and job.kind == "embed" and jobs.finish_if_nothing_pending(db, tenant_id, job_id)
        db.commit()
    if job is None or finished:
        return 0  # forgotten (with its memories or tenant), or nothing left to do
    if job.kind == "reembed" and job.embedding_space_id is not None:
        written = _reembed(factory, tenant_id, job_id, job.embedding_space_id, embedder_for, claim_size)
    else:
        written = _embed_pending(factory, tenant_id, job_id, embedder_for, claim_size)
    log.info("%s job %s: wrote %d vectors", job.kind, job_id, written)
    return written


def live_spaces(db: Session, tenant_id: uuid.UUID) -> list[EmbeddingSpace]:
    """The spaces a new vector of the tenant must exist in, search space first, read under the tenant's share lock
    (held until commit: the tenant cannot switch spaces while vectors for these are written)."""
    search, target = repository.tenant_spaces(db, tenant_id, lock=True)
    if search is None:  # its first vectors go to the newest configured space
        search = repository.newest_space_id(db)
        if search is None:
            raise NoEmbeddingSpace("no embedding model has been registered yet; start the API or a worker")
        repository.adopt_space_if_unset(db, tenant_id, search)
    return [_space(db, space_id) for space_id in (search, target) if space_id is not None]


# A space's model and dimension never change: read each once per process.
_known_spaces: dict[int, EmbeddingSpace] = {}


def _space(db: Session, space_id: int) -> EmbeddingSpace:
    space = _known_spaces.get(space_id)
    if space is None:
        space = repository.get_space(db, space_id)
        if space is None:
            raise LookupError(f"embedding space {space_id} does not exist")
        db.expunge(space)  # kept beyond this session, never expired by its rollback
        _known_spaces[space_id] = space
    return space


def _embed_pending(
    factory: sessionmaker[Session], tenant_id: uuid.UUID, job_id: uuid.UUID, embedder_for: EmbedderFor, claim_size: int
) -> int:
    """Embed the job's pending memories, in batches that also take other pending memories of the tenant, so
    many small writes share one model call. Pipelined: a batch's vectors are stored and committed (HNSW
    inserts, in Postgres) on a second thread while the model embeds the next batch, whose claim skips the rows
    still locked by the one being committed."""
    written = 0
    with ThreadPoolExecutor(1, thread_name_prefix="memsvc-store") as storer:
        storing: Future[None] | None = None
        try:
            while True:
                db = factory()
                db.info["tenant_id"] = tenant_id
                try:
                    spaces = live_spaces(db, tenant_id)
                    batch = jobs.claim_pending(db, tenant_id, job_id, claim_size)
                    texts = [embedding_text(m) for m in batch]
                    vectors = {space.id: embedder_for(space).embed(texts) for space in spaces} if batch else {}
                except BaseException:
                    db.close()
                    raise
                if storing is not None:
                    storing.result()  # the previous batch is committed (or its error raised) before the next
                written += len(batch)
                # Done when nothing was left, or when the rest of ours is held by another worker (it finishes them).
                last = not batch or not any(m.job_id == job_id for m in batch) or len(batch) < claim_size
                storing = storer.submit(_store_and_commit, db, tenant_id, job_id, batch, vectors, last)
                if last:
                    break
        finally:
            if storing is not None:
                storing.result()
    return written


def _store_and_commit(
    db: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    batch: list[Memory],
    vectors: dict[int, np.ndarray],
    last: bool,
) -> None:
    with db:
        for space_id, space_vectors in vectors.items():
            repository.store_vectors(db, tenant_id, space_id, [m.id for m in batch], space_vectors)
        if batch:
            jobs.mark_embedded(db, batch)
        if last:
            jobs.finish_if_nothing_pending(db, tenant_id, job_id)
        db.commit()


def _reembed(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    space_id: int,
    embedder_for: EmbedderFor,
    claim_size: int,
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
            batch = repository.claim_unembedded(db, tenant_id, space_id, after_seq, claim_size)
            if batch:
                vectors = embedder_for(_space(db, space_id)).embed([embedding_text(m) for m in batch])
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

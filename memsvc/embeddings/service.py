"""Embedding work done in the background, whatever runs it (Celery task or in-process worker):
- `embed` jobs embed newly written or changed memories, in every space the tenant uses;
- `reembed` jobs fill a new space (a new model, or a new storage profile) for all of a tenant's memories while
  search stays on the old one, then switch the tenant's search to it.
Both are safe to run twice or concurrently: rows are claimed with SKIP LOCKED and vectors are upserted by
(memory, space)."""

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from memsvc.core.db import tenant_session
from memsvc.core.errors import Conflict
from memsvc.core.settings import Settings, get_settings
from memsvc.embeddings import repository
from memsvc.embeddings.codecs import Pca
from memsvc.embeddings.encoding import Fit, FitNeeded, SpaceEncoding, fit
from memsvc.embeddings.profiles import StorageProfile, catalog, parse_profile
from memsvc.jobs import repository as jobs
from memsvc.memories.service import IndexingContext, TextEmbedder, indexing_texts
from memsvc.models import EmbeddingFit, EmbeddingSpace, Job, Memory

log = logging.getLogger(__name__)

EmbedderFor = Callable[[EmbeddingSpace], TextEmbedder]

RESCAN_PAUSE_S = 0.2


class NoEmbeddingSpace(RuntimeError):
    """No process has registered an embedding model yet; the job is retried."""


class NotEnoughToFit(Conflict):
    """A fitted profile (PCA, int8) needs more of the tenant's embeddings than it has."""


@dataclass(frozen=True)
class FitSampling:
    """How many of a tenant's embeddings a fitted profile samples, and the fewest it accepts."""

    size: int
    minimum: int

    @classmethod
    def of(cls, settings: Settings) -> "FitSampling":
        return cls(settings.profile_fit_sample, settings.profile_fit_min_sample)


@dataclass(frozen=True)
class ModelConfig:
    """The embedding model this deployment is configured with, and how fitted profiles sample."""

    model_id: str
    model_path: str | None
    dim: int
    default_profile: str
    sampling: FitSampling


def adopt_configured_space(
    factory: sessionmaker[Session], config: ModelConfig
) -> tuple[int, list[tuple[uuid.UUID, uuid.UUID]]]:
    """Register this process's model configuration, in the default storage profile and in every profile a
    tenant chose, and point every tenant at its own: tenants searching another space get a `reembed` job
    (returned as (tenant, job) pairs to enqueue after commit); search moves only when that job completes.
    Returns the default space (new tenants start on it). Idempotent, and safe when API and workers start
    together."""
    with factory() as db:
        default_space = register(db, config, parse_profile(config.default_profile))
        chosen = {name: register(db, config, parse_profile(name)) for name in repository.chosen_profiles(db) if name}
        db.commit()
        tenants = [(t, default_space) for t in repository.tenants_not_on(db, default_space, None)]
        for name, space_id in chosen.items():
            tenants += [(t, space_id) for t in repository.tenants_not_on(db, space_id, name)]
    started = [job for tenant_id, space_id in tenants if (job := move_tenant(factory, tenant_id, space_id))]
    if started:
        log.info("embedding model %s (%d-d): re-embedding %d tenant(s)", config.model_id, config.dim, len(started))
    return default_space, started


def register(db: Session, config: ModelConfig, profile: StorageProfile) -> int:
    return repository.register_space(db, config.model_id, config.model_path, config.dim, profile)


def move_tenant(
    factory: sessionmaker[Session], tenant_id: uuid.UUID, space_id: int
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """Point the tenant at `space_id`; returns (tenant, job) when that takes a `reembed` job (enqueue it)."""
    with tenant_session(factory, tenant_id) as db:
        job_id = _point_at(db, tenant_id, space_id)[1]
        db.commit()
    return (tenant_id, job_id) if job_id is not None else None


def _point_at(
    db: Session, tenant_id: uuid.UUID, space_id: int
) -> tuple[Literal["adopted", "reembed", "cancelled"] | None, uuid.UUID | None]:
    outcome = repository.set_target(db, tenant_id, space_id)
    job = jobs.add(db, tenant_id, kind="reembed", embedding_space_id=space_id) if outcome == "reembed" else None
    return outcome, job.id if job is not None else None


@dataclass(frozen=True)
class ProfileChange:
    outcome: Literal["adopted", "reencoding", "cancelled", "unchanged"]
    job_id: uuid.UUID | None


def choose_profile(
    factory: sessionmaker[Session], tenant_id: uuid.UUID, chosen: StorageProfile | None, config: ModelConfig
) -> ProfileChange:
    """Move the tenant to `chosen` (None: the service default). A tenant without vectors adopts it at once; one
    with vectors is re-encoded by a `reembed` job (enqueue it after commit) while search stays on its current
    storage. A fitted profile is refused (409) until the tenant has enough embedded memories to fit it."""
    profile = chosen or parse_profile(config.default_profile)
    with factory() as db:
        space_id = register(db, config, profile)  # its own transaction: the index build locks writes briefly
        db.commit()
    with tenant_session(factory, tenant_id) as db:
        needed = fit_needs(profile, config.dim, config.sampling)
        have = repository.count_embedded_memories(db, tenant_id) if needed else 0
        if have < needed:
            raise NotEnoughToFit(
                f"storage profile {profile.name} is fitted on the tenant's own embeddings and needs at least "
                f"{needed} embedded memories; this tenant has {have}"
            )
        repository.set_chosen_profile(db, tenant_id, profile.name if chosen else None)
        outcome, job_id = _point_at(db, tenant_id, space_id)
        db.commit()
    if outcome == "reembed":
        return ProfileChange("reencoding", job_id)
    return ProfileChange("unchanged" if outcome is None else outcome, None)


def profile_state(db: Session, tenant_id: uuid.UUID) -> tuple[str | None, str | None, str | None]:
    """(chosen profile, storage searched now, storage being moved to) of the tenant."""
    search, target = repository.tenant_spaces(db, tenant_id)
    return (
        repository.chosen_profile(db, tenant_id),
        space_of(db, search).storage if search is not None else None,
        space_of(db, target).storage if target is not None else None,
    )


def fit_free_storages() -> list[str]:
    return [p.storage for p in catalog() if not p.needs_fit]


def run_job(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    embedder_for: EmbedderFor,
    claim_size: int,
    sampling: FitSampling | None = None,
    indexing: IndexingContext | None = None,
) -> int:
    """Run an `embed` or `reembed` job, taking up to `claim_size` memories per transaction (the model sorts them
    by length into its own batches); returns how many memories this call embedded."""
    indexing = indexing or IndexingContext.of(get_settings())
    with tenant_session(factory, tenant_id) as db:
        job = jobs.start_attempt(db, tenant_id, job_id)
        # A job whose memories were embedded along with an earlier job's costs one transaction.
        finished = job is not None and job.kind == "embed" and jobs.finish_if_nothing_pending(db, tenant_id, job_id)
        db.commit()
    if job is None or finished:
        return 0  # forgotten (with its memories or tenant), or nothing left to do
    if job.kind == "reembed" and job.embedding_space_id is not None:
        sampling = sampling or FitSampling.of(get_settings())
        written = _reembed(
            factory, tenant_id, job, job.embedding_space_id, embedder_for, claim_size, sampling, indexing
        )
    else:
        written = embed_pending(factory, tenant_id, job_id, embedder_for, claim_size, indexing)
    log.info("%s job %s: wrote %d vectors", job.kind, job_id, written)
    return written


def live_spaces(db: Session, tenant_id: uuid.UUID) -> list[EmbeddingSpace]:
    """The spaces a new vector of the tenant must exist in, search space first, read under the tenant's share lock
    (held until commit: the tenant cannot switch spaces while vectors for these are written)."""
    search, target = repository.tenant_spaces(db, tenant_id, lock=True)
    if search is None:  # its first vectors go to the newest configured space a new tenant can start on
        search = repository.newest_space_id(db, fit_free_storages())
        if search is None:
            raise NoEmbeddingSpace("no embedding model has been registered yet; start the API or a worker")
        repository.adopt_space_if_unset(db, tenant_id, search)
    return [space_of(db, space_id) for space_id in (search, target) if space_id is not None]


# A space's model, dimension and storage never change: read each once per process (and database: ids are only
# unique within one).
_known_spaces: dict[tuple[str, int], EmbeddingSpace] = {}


def space_of(db: Session, space_id: int) -> EmbeddingSpace:
    key = (str(db.get_bind().engine.url), space_id)
    space = _known_spaces.get(key)
    if space is None:
        space = repository.get_space(db, space_id)
        if space is None:
            raise LookupError(f"embedding space {space_id} does not exist")
        db.expunge(space)  # kept beyond this session, never expired by its rollback
        _known_spaces[key] = space
    return space


def embed_pending(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    embedder_for: EmbedderFor,
    claim_size: int,
    indexing: IndexingContext,
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
                    batch = jobs.claim_pending(db, tenant_id, job_id, claim_size)
                    encoded = _encode_for_live_spaces(db, tenant_id, batch, embedder_for, indexing) if batch else []
                except BaseException:
                    db.close()
                    raise
                if storing is not None:
                    storing.result()  # the previous batch is committed (or its error raised) before the next
                written += len(batch)
                # Done when nothing was left, or when the rest of ours is held by another worker (it finishes them).
                last = not batch or not any(m.job_id == job_id for m in batch) or len(batch) < claim_size
                storing = storer.submit(_store_and_commit, db, tenant_id, job_id, batch, encoded, last)
                if last:
                    break
        finally:
            if storing is not None:
                storing.result()
    return written


Encoded = list[tuple[int, SpaceEncoding, list[Any]]]  # (space id, its encoding, one stored value per memory)


def _encode_for_live_spaces(
    db: Session, tenant_id: uuid.UUID, batch: list[Memory], embedder_for: EmbedderFor, indexing: IndexingContext
) -> Encoded:
    """The batch's vectors, encoded for every space the tenant lives in (one model call per model). A target
    space whose fit is not made yet is left to its re-embedding job, which fills every memory missing there."""
    texts = indexing_texts(db, tenant_id, batch, indexing)
    vectors: dict[tuple[str, int], np.ndarray] = {}
    encoded: Encoded = []
    for position, space in enumerate(live_spaces(db, tenant_id)):
        try:
            encoding = encoding_of(db, tenant_id, space)
        except FitNeeded:
            if position == 0:
                raise  # the search space always has its fit: something is broken, let the job retry and fail
            continue
        model = (space.model_id, space.dim)
        if model not in vectors:
            vectors[model] = embedder_for(space).embed(texts)
        encoded.append((space.id, encoding, encoding.encode(vectors[model])))
    return encoded


def _store_and_commit(
    db: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, batch: list[Memory], encoded: Encoded, last: bool
) -> None:
    with db:
        ids = [m.id for m in batch]
        for space_id, encoding, values in encoded:
            repository.store_vectors(db, tenant_id, space_id, ids, encoding.column, values)
        if batch:
            jobs.mark_embedded(db, batch)
        if last:
            jobs.finish_if_nothing_pending(db, tenant_id, job_id)
        db.commit()


def _reembed(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job: Job,
    space_id: int,
    embedder_for: EmbedderFor,
    claim_size: int,
    sampling: FitSampling,
    indexing: IndexingContext,
) -> int:
    """Give every embedded memory of the tenant a vector in `space_id` (a new model, or a new storage of the same
    model: then re-encoded from the stored vectors where those are lossless), then switch the tenant's search to
    it and drop the old vectors. Memories written meanwhile get both vectors from their own embed jobs."""
    job_id = job.id
    with tenant_session(factory, tenant_id) as db:
        _fit_if_stale(db, tenant_id, space_of(db, space_id), job.created_at, embedder_for, sampling, indexing)
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
                space = space_of(db, space_id)
                encoding = encoding_of(db, tenant_id, space)
                vectors = model_vectors(db, tenant_id, space, batch, embedder_for, indexing)
                ids = [m.id for m in batch]
                repository.store_vectors(db, tenant_id, space_id, ids, encoding.column, encoding.encode(vectors))
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


# Fits never change once stored (a refit is a new version): each is read once per process.
_known_fits: dict[tuple[uuid.UUID, int, int], Fit] = {}
_FITS_KEPT = 256


def encoding_of(db: Session, tenant_id: uuid.UUID, space: EmbeddingSpace) -> SpaceEncoding:
    """How the tenant's vectors are stored in `space`; FitNeeded when its storage needs a fit not made yet."""
    if not parse_profile(space.storage).needs_fit:
        return SpaceEncoding(space.storage, space.dim, None)
    version = repository.latest_fit_version(db, tenant_id, space.id)
    if version is None:
        raise FitNeeded(f"tenant has no fitted parameters for storage {space.storage}")
    key = (tenant_id, space.id, version)
    fitted = _known_fits.get(key)
    if fitted is None:
        row = repository.get_fit(db, tenant_id, space.id, version)
        assert row is not None  # fits are only added
        fitted = _fit_of_row(row, space.dim)
        if len(_known_fits) >= _FITS_KEPT:
            _known_fits.clear()
        _known_fits[key] = fitted
    return SpaceEncoding(space.storage, space.dim, fitted)


def _fit_of_row(row: EmbeddingFit, dim: int) -> Fit:
    pca = None
    if row.pca_mean is not None and row.pca_components is not None:
        pca = Pca.from_bytes(row.pca_mean, row.pca_components, dim, row.explained_variance or 0.0)
    scales = np.frombuffer(row.int8_scales, dtype="<f4").copy() if row.int8_scales is not None else None
    return Fit(version=row.version, sample_size=row.sample_size, pca=pca, int8_scales=scales)


def fit_needs(profile: StorageProfile, dim: int, sampling: FitSampling) -> int:
    """Fewest embedded memories a tenant needs for `profile` (0: it needs no fit)."""
    if not profile.needs_fit:
        return 0
    return max(sampling.minimum, profile.index_dim(dim) + 1 if profile.pca_percent else 0)


def _fit_if_stale(
    db: Session,
    tenant_id: uuid.UUID,
    space: EmbeddingSpace,
    moved_at: datetime,
    embedder_for: EmbedderFor,
    sampling: FitSampling,
    indexing: IndexingContext,
) -> None:
    """Fit the tenant's parameters for `space` anew unless a fit was made since the move began (by an earlier
    attempt of this job): a tenant coming back to a space is fitted on what it stores now. The vectors it left
    there under an older fit are dropped with it, so one space never mixes fits."""
    profile = parse_profile(space.storage)
    if not profile.needs_fit:
        return
    latest = repository.latest_fit_version(db, tenant_id, space.id)
    row = repository.get_fit(db, tenant_id, space.id, latest) if latest is not None else None
    if row is not None and row.created_at >= moved_at:
        return
    memories = repository.sample_memories(db, tenant_id, sampling.size)
    needed = fit_needs(profile, space.dim, sampling)
    if len(memories) < needed:
        raise NotEnoughToFit(
            f"storage {profile.storage} is fitted on the tenant's own embeddings and needs at least {needed} "
            f"embedded memories; the tenant has {len(memories)}"
        )
    fitted = fit(
        profile, space.dim, model_vectors(db, tenant_id, space, memories, embedder_for, indexing), (latest or 0) + 1
    )
    # Writers encode under the tenant's share lock: none is half-way through with the old fit once this is held.
    repository.tenant_spaces(db, tenant_id, lock=True, exclusive=True)
    mean, components = fitted.pca.to_bytes() if fitted.pca else (None, None)
    repository.add_fit(
        db,
        EmbeddingFit(
            tenant_id=tenant_id,
            space_id=space.id,
            version=fitted.version,
            sample_size=fitted.sample_size,
            pca_mean=mean,
            pca_components=components,
            explained_variance=fitted.pca.explained_variance if fitted.pca else None,
            int8_scales=fitted.int8_scales.astype("<f4").tobytes() if fitted.int8_scales is not None else None,
        ),
    )
    repository.delete_space_vectors(db, tenant_id, space.id)
    db.commit()
    log.info(
        "tenant %s: fitted %s (version %d) on %d embeddings", tenant_id, space.storage, fitted.version, len(memories)
    )


def model_vectors(
    db: Session,
    tenant_id: uuid.UUID,
    space: EmbeddingSpace,
    memories: list[Memory],
    embedder_for: EmbedderFor,
    indexing: IndexingContext,
) -> np.ndarray:
    """The vectors `space`'s model gives `memories`: decoded from the tenant's search space where that stores
    the same model's vectors losslessly (a storage change needs no model), embedded anew otherwise."""
    vectors = np.zeros((len(memories), space.dim), dtype=np.float32)
    missing = list(range(len(memories)))
    search_id = repository.tenant_spaces(db, tenant_id)[0]
    source = space_of(db, search_id) if search_id is not None and search_id != space.id else None
    if source is not None and (source.model_id, source.dim) == (space.model_id, space.dim):
        encoding = encoding_of(db, tenant_id, source)
        if encoding.lossless_source:
            stored = repository.stored_values(db, tenant_id, source.id, encoding.column, [m.id for m in memories])
            found = [i for i, m in enumerate(memories) if m.id in stored]
            if found:
                decoded = encoding.decode([stored[memories[i].id] for i in found])
                vectors[found] = decoded / np.maximum(np.linalg.norm(decoded, axis=1, keepdims=True), 1e-12)
            missing = [i for i, m in enumerate(memories) if m.id not in stored]
    if missing:
        texts = indexing_texts(db, tenant_id, [memories[i] for i in missing], indexing)
        vectors[missing] = embedder_for(space).embed(texts)
    return vectors


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

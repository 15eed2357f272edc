"""Getting jobs to a worker after the write has committed: Celery when a broker is configured, otherwise a
worker thread inside the API process (the embedded default). Both run the same domain code, and both are backed
by a sweeper, so work whose message was lost (broker down, process killed) is found in Postgres and done."""

import heapq
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from memsvc.consolidation import service as consolidation
from memsvc.consolidation.service import ConsolidationConfig, EmbeddingRun, start_due_consolidations
from memsvc.core.settings import Settings
from memsvc.embeddings import service as embeddings
from memsvc.jobs import repository as jobs
from memsvc.memories.service import IndexingContext

log = logging.getLogger(__name__)

EMBED_TASK = "memsvc.embed_job"
CONSOLIDATE_TASK = "memsvc.consolidate_job"
# Each job kind's Celery task and queue: model work of both kinds, but consolidation is long and may want its
# own (GPU) workers, so that it never holds up the embedding of new writes.
TASKS = {
    "embed": (EMBED_TASK, "embed"),
    "reembed": (EMBED_TASK, "embed"),
    "consolidate": (CONSOLIDATE_TASK, "consolidate"),
}


def lower_cpu_priority(nice: int) -> None:
    """Run the calling thread (and the model's compute threads it starts) at a lower CPU priority, so that on
    shared cores accepting writes and answering searches come before background embedding (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        log.info("could not lower the worker's CPU priority", exc_info=True)


class JobDispatcher(Protocol):
    def enqueue(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> None:
        """Hand a committed job to a worker; may raise if the broker is unreachable (the sweeper retries)."""
        ...


def enqueue_after_commit(
    dispatcher: JobDispatcher, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str = "embed"
) -> None:
    """Called once the write is durable. A broker failure does not fail the write: the job stays pending in
    Postgres and the sweeper enqueues it again."""
    try:
        dispatcher.enqueue(tenant_id, job_id, kind)
    except Exception:
        log.warning("could not enqueue job %s now; the sweeper will", job_id, exc_info=True)


def sweep(
    factory: sessionmaker[Session],
    older_than: timedelta,
    enqueue: Callable[[uuid.UUID, uuid.UUID, str], None],
    auto_consolidation: ConsolidationConfig | None = None,
) -> int:
    """Enqueue again every job left unfinished for `older_than` (memories still pending, or a long job that made no
    progress), and start the automatic consolidations that are due; returns how many jobs were enqueued."""
    with factory() as db:
        unfinished = jobs.stale_jobs(db, older_than)
    if auto_consolidation is not None:
        due = start_due_consolidations(factory, auto_consolidation)
        unfinished += [(tenant, job, "consolidate") for tenant, job in due]
    for tenant_id, job_id, kind in unfinished:
        try:
            enqueue(tenant_id, job_id, kind)
        except Exception:  # broker still down: the next sweep tries again
            log.warning("sweeper could not enqueue job %s", job_id, exc_info=True)
            break
    return len(unfinished)


def run_job(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    kind: str,
    embedder_for: embeddings.EmbedderFor,
    settings: Settings,
) -> None:
    """Run one job of any kind: what a worker thread or a Celery task does with a job id."""
    if kind == "consolidate":
        consolidation.run_job(
            factory,
            tenant_id,
            job_id,
            embedder_for,
            ConsolidationConfig.of(settings),
            EmbeddingRun(settings.embedding_claim_size, IndexingContext.of(settings)),
        )
        return
    embeddings.run_job(
        factory,
        tenant_id,
        job_id,
        embedder_for,
        settings.embedding_claim_size,
        embeddings.FitSampling.of(settings),
        IndexingContext.of(settings),
    )


class CeleryDispatcher:
    """Publishes job ids to the Celery broker (queue `embed` or `consolidate`) from a background thread, so a slow
    or unreachable broker never holds a request. A message that cannot be published is dropped: its job stays
    pending in Postgres and the worker's sweeper enqueues it again."""

    QUEUE_LIMIT = 10_000
    PAUSE_AFTER_FAILURE_S = 5.0

    def __init__(self, settings: Settings) -> None:
        from workers.app import make_celery

        self._app = make_celery(settings)
        self._outbox: queue.Queue[tuple[uuid.UUID, uuid.UUID, str]] = queue.Queue(self.QUEUE_LIMIT)
        self._broker_down_until = 0.0
        threading.Thread(target=self._publish_forever, name="memsvc-publisher", daemon=True).start()

    def enqueue(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> None:
        try:
            self._outbox.put_nowait((tenant_id, job_id, kind))
        except queue.Full:
            log.warning("publish backlog full; job %s is left to the sweeper", job_id)

    def publish(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> None:
        """Send now, in the caller's thread (the sweeper's): raises if the broker is unreachable."""
        task, task_queue = TASKS[kind]
        self._app.send_task(task, args=[str(tenant_id), str(job_id)], queue=task_queue, retry=False)

    def _publish_forever(self) -> None:
        while True:
            tenant_id, job_id, kind = self._outbox.get()
            if time.monotonic() < self._broker_down_until:
                continue  # broker known to be down: leave the job to the sweeper instead of waiting again
            try:
                self.publish(tenant_id, job_id, kind)
            except Exception as exc:
                self._broker_down_until = time.monotonic() + self.PAUSE_AFTER_FAILURE_S
                log.warning("broker unreachable (%s); job %s is left to the sweeper", exc, job_id)


class InProcessWorker:
    """A background thread that runs jobs in the API process, with retries and a sweeper loop."""

    def __init__(
        self, factory: sessionmaker[Session], embedder_for: embeddings.EmbedderFor, settings: Settings
    ) -> None:
        self._factory = factory
        self._embedder_for = embedder_for
        self._settings = settings
        # (when, seq, tenant, job, kind, retry)
        self._due: list[tuple[float, int, uuid.UUID, uuid.UUID, str, int]] = []
        self._seq = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="memsvc-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def enqueue(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> None:
        self._schedule(tenant_id, job_id, kind, retry=0, delay=0.0)

    def _schedule(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str, retry: int, delay: float) -> None:
        with self._wake:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._seq, tenant_id, job_id, kind, retry))
            self._wake.notify()

    def _run(self) -> None:
        lower_cpu_priority(self._settings.worker_nice)
        # Whatever a previous process left pending (crash, kill) is picked up at start.
        self._sweep(timedelta(0))
        next_sweep = time.monotonic() + self._settings.sweep_interval_s
        while True:
            item = self._next_due(next_sweep)
            if self._stopping:
                return
            if item is not None:
                _, _, tenant_id, job_id, kind, retry = item
                self._process(tenant_id, job_id, kind, retry)
            elif time.monotonic() >= next_sweep:
                self._sweep(timedelta(seconds=self._settings.sweep_after_s))
                next_sweep = time.monotonic() + self._settings.sweep_interval_s

    def _next_due(self, next_sweep: float) -> tuple[float, int, uuid.UUID, uuid.UUID, str, int] | None:
        """Wait for a due job (returned), the next sweep time or a stop (None)."""
        with self._wake:
            while not self._stopping:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    return heapq.heappop(self._due)
                if now >= next_sweep:
                    return None
                self._wake.wait(min(next_sweep, self._due[0][0]) - now if self._due else next_sweep - now)
            return None

    def _process(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str, retry: int) -> None:
        try:
            run_job(self._factory, tenant_id, job_id, kind, self._embedder_for, self._settings)
        except Exception as exc:
            if retry >= self._settings.job_max_retries:
                embeddings.fail_job(self._factory, tenant_id, job_id, f"{type(exc).__name__}: {exc}")
                return
            delay = self._settings.job_retry_backoff_s * 2**retry
            log.warning("job %s failed (retry %d in %.1f s): %s", job_id, retry + 1, delay, exc)
            self._schedule(tenant_id, job_id, kind, retry=retry + 1, delay=delay)

    def _sweep(self, older_than: timedelta) -> None:
        try:
            sweep(self._factory, older_than, self.enqueue, ConsolidationConfig.of(self._settings))
        except Exception:  # the database may be briefly away; the next sweep tries again
            log.warning("sweep failed", exc_info=True)

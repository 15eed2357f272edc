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

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from memsvc.consolidation import service as consolidation
from memsvc.consolidation.service import ConsolidationConfig, EmbeddingRun, start_due_consolidations
from memsvc.core.errors import database_unavailable
from memsvc.core.logging import job_context
from memsvc.core.metrics import record_job
from memsvc.core.request_id import current_request_id
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
QUEUES = tuple(dict.fromkeys(task_queue for _, task_queue in TASKS.values()))


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


class SweepBackoff:
    """When a sweeper last enqueued each job and how often. A job still pending after a backlog longer than
    `older_than` is not lost, only waiting: without this, every sweep would add one more message per such job, and
    the duplicates would lengthen the backlog they come from. A job is enqueued again after `older_than`, then after
    twice that, four times, ... (at most MAX_FACTOR times)."""

    MAX_FACTOR = 16

    def __init__(self) -> None:
        self._sent: dict[uuid.UUID, tuple[float, int]] = {}

    def due(self, job_id: uuid.UUID, older_than: timedelta, now: float) -> bool:
        sent = self._sent.get(job_id)
        wait = older_than.total_seconds() * min(2 ** sent[1], self.MAX_FACTOR) if sent else 0.0
        return sent is None or now - sent[0] >= wait

    def sent(self, job_id: uuid.UUID, now: float) -> None:
        self._sent[job_id] = (now, self._sent.get(job_id, (now, 0))[1] + 1)

    def keep_only(self, job_ids: set[uuid.UUID]) -> None:
        """Forget the jobs that are no longer unfinished."""
        self._sent = {job_id: sent for job_id, sent in self._sent.items() if job_id in job_ids}


def sweep(
    factory: sessionmaker[Session],
    older_than: timedelta,
    enqueue: Callable[[uuid.UUID, uuid.UUID, str], None],
    auto_consolidation: ConsolidationConfig | None = None,
    backoff: SweepBackoff | None = None,
) -> int:
    """Enqueue again every job left unfinished for `older_than` (memories still pending, or a long job that made no
    progress; with `backoff`, less and less often), and start the automatic consolidations that are due; returns
    how many jobs were enqueued."""
    with factory() as db:
        unfinished = jobs.stale_jobs(db, older_than)
    now = time.monotonic()
    if backoff is not None:
        backoff.keep_only({job_id for _, job_id, _ in unfinished})
        unfinished = [job for job in unfinished if backoff.due(job[1], older_than, now)]
    if auto_consolidation is not None:
        due = start_due_consolidations(factory, auto_consolidation)
        unfinished += [(tenant, job, "consolidate") for tenant, job in due]
    for tenant_id, job_id, kind in unfinished:
        try:
            enqueue(tenant_id, job_id, kind)
        except Exception:  # broker still down: the next sweep tries again
            log.warning("sweeper could not enqueue job %s", job_id, exc_info=True)
            break
        if backoff is not None:
            backoff.sent(job_id, now)
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
        self._broker_url = settings.broker_url or ""
        self._redis: Redis | None = None
        # (tenant, job, kind, id of the request that enqueued it)
        self._outbox: queue.Queue[tuple[uuid.UUID, uuid.UUID, str, str | None]] = queue.Queue(self.QUEUE_LIMIT)
        self._broker_down_until = 0.0
        threading.Thread(target=self._publish_forever, name="memsvc-publisher", daemon=True).start()

    def enqueue(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> None:
        try:
            self._outbox.put_nowait((tenant_id, job_id, kind, current_request_id.get()))
        except queue.Full:
            log.warning("publish backlog full; job %s is left to the sweeper", job_id)

    def publish(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str, request_id: str | None = None) -> None:
        """Send now, in the caller's thread (the sweeper's): raises if the broker is unreachable."""
        task, task_queue = TASKS[kind]
        self._app.send_task(
            task,
            args=[str(tenant_id), str(job_id)],
            kwargs={"kind": kind, "request_id": request_id},
            queue=task_queue,
            retry=False,
        )

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each Celery queue (not those a worker has taken); {} for a broker other than Redis."""
        if not self._broker_url.startswith(("redis://", "rediss://")):
            return {}
        if self._redis is None:
            self._redis = Redis.from_url(self._broker_url, socket_timeout=2, socket_connect_timeout=2)
        depths = {}
        for name in QUEUES:
            # kombu keeps a queue's messages of priority p > 0 in a list of their own, named with this separator.
            keys = [name, *(f"{name}\x06\x16{priority}" for priority in range(1, 10))]
            with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(key)
                depths[name] = sum(pipe.execute())
        return depths

    def _publish_forever(self) -> None:
        while True:
            tenant_id, job_id, kind, request_id = self._outbox.get()
            if time.monotonic() < self._broker_down_until:
                continue  # broker known to be down: leave the job to the sweeper instead of waiting again
            try:
                self.publish(tenant_id, job_id, kind, request_id)
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
        # (when, seq, tenant, job, kind, retry, id of the request that enqueued it)
        self._due: list[tuple[float, int, uuid.UUID, uuid.UUID, str, int, str | None]] = []
        self._seq = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="memsvc-jobs", daemon=True)
        self._backoff = SweepBackoff()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def enqueue(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str) -> None:
        self._schedule(tenant_id, job_id, kind, retry=0, delay=0.0, request_id=current_request_id.get())

    def queue_depths(self) -> dict[str, int]:
        """Jobs waiting in this process (retries waiting for their delay included), by the queue a Celery worker
        would take them from."""
        depths = dict.fromkeys(QUEUES, 0)
        with self._wake:
            for item in self._due:
                depths[TASKS[item[4]][1]] += 1
        return depths

    def _schedule(
        self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str, retry: int, delay: float, request_id: str | None
    ) -> None:
        with self._wake:
            self._seq += 1
            due = (time.monotonic() + delay, self._seq, tenant_id, job_id, kind, retry, request_id)
            heapq.heappush(self._due, due)
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
                _, _, tenant_id, job_id, kind, retry, request_id = item
                with job_context(tenant_id, job_id, kind, request_id):
                    self._process(tenant_id, job_id, kind, retry, request_id)
            elif time.monotonic() >= next_sweep:
                self._sweep(timedelta(seconds=self._settings.sweep_after_s))
                next_sweep = time.monotonic() + self._settings.sweep_interval_s

    def _next_due(self, next_sweep: float) -> tuple[float, int, uuid.UUID, uuid.UUID, str, int, str | None] | None:
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

    def _process(self, tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str, retry: int, request_id: str | None) -> None:
        try:
            run_job(self._factory, tenant_id, job_id, kind, self._embedder_for, self._settings)
        except Exception as exc:
            if retry >= self._settings.job_max_retries and database_unavailable(exc):
                # Not the job's fault: it stays pending in Postgres and a sweep runs it once the database is back.
                log.warning("job %s: database unavailable after %d retries; left to the sweeper", job_id, retry)
                return
            if retry >= self._settings.job_max_retries:
                record_job(kind, "failed")
                log.error("job %s failed after %d retries: %s", job_id, retry, exc)
                embeddings.fail_job(self._factory, tenant_id, job_id, f"{type(exc).__name__}: {exc}")
                return
            record_job(kind, "retried")
            delay = self._settings.job_retry_backoff_s * 2**retry
            log.warning("job %s failed (retry %d in %.1f s): %s", job_id, retry + 1, delay, exc)
            self._schedule(tenant_id, job_id, kind, retry=retry + 1, delay=delay, request_id=request_id)
            return
        record_job(kind, "done")
        log.info("job %s done", job_id)

    def _sweep(self, older_than: timedelta) -> None:
        try:
            sweep(self._factory, older_than, self.enqueue, ConsolidationConfig.of(self._settings), self._backoff)
        except Exception:  # the database may be briefly away; the next sweep tries again
            log.warning("sweep failed", exc_info=True)

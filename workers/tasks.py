"""Celery tasks: thin wrappers that take ids, load what they need once per process, and call domain code."""

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_ready
from sqlalchemy.orm import Session, sessionmaker

from memsvc.consolidation.service import ConsolidationConfig
from memsvc.core.db import make_engine, make_session_factory
from memsvc.core.embedded import resolve_database_url
from memsvc.core.errors import database_unavailable
from memsvc.core.logging import job_context
from memsvc.core.metrics import record_job
from memsvc.core.settings import get_settings
from memsvc.embeddings import service as embeddings
from memsvc.embeddings.embedder import get_embedder_pool
from memsvc.jobs.dispatch import (
    CONSOLIDATE_TASK,
    EMBED_TASK,
    CeleryDispatcher,
    SweepBackoff,
    lower_cpu_priority,
    run_job,
    sweep,
)
from workers.app import celery_app

log = logging.getLogger(__name__)


def new_session_factory() -> sessionmaker[Session]:
    """An engine acting as the non-owner role, so row-level security applies."""
    settings = get_settings()
    return make_session_factory(make_engine(resolve_database_url(settings), app_role=settings.app_role))


@lru_cache
def session_factory() -> sessionmaker[Session]:
    """The engine of a pool process, made on first use there. Never used in the main process: a pool process
    forked later would inherit its open connections and share their sockets with it."""
    return new_session_factory()


class JobTask(Task):
    """After the last retry, the job is marked failed with its error (visible at GET /v1/jobs/{id}). Each run's
    outcome is counted (memsvc_jobs_total)."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        record_job(self._kind(kwargs), "done")

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        record_job(self._kind(kwargs), "retried")

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        tenant_id, job_id = (uuid.UUID(a) for a in args[:2])
        if database_unavailable(exc):
            # Not the job's fault, and it could not be recorded anyway: its memories stay pending in Postgres and
            # the sweeper enqueues it again once the database is back.
            log.warning("job %s: database unavailable after the last retry; left to the sweeper", job_id)
            return
        record_job(self._kind(kwargs), "failed")
        embeddings.fail_job(session_factory(), tenant_id, job_id, f"{type(exc).__name__}: {exc}")

    def _kind(self, kwargs: Any) -> str:
        # A message from an API that predates the `kind` argument: the task's own kind.
        kind = (kwargs or {}).get("kind")
        return kind if isinstance(kind, str) else ("consolidate" if self.name == CONSOLIDATE_TASK else "embed")


def job_task(name: str, queue: str) -> Callable[[Callable[..., Any]], Any]:
    """The one decorator for memsvc tasks: naming, queue, late acks, exponential retry with jitter, dead-letter."""
    settings = get_settings()
    return celery_app.task(
        name=name,
        queue=queue,
        base=JobTask,
        acks_late=True,
        autoretry_for=(Exception,),
        max_retries=settings.job_max_retries,
        retry_backoff=settings.job_retry_backoff_s,
        retry_backoff_max=300,
        retry_jitter=True,
    )


@job_task(EMBED_TASK, queue="embed")
def embed_job(tenant_id: str, job_id: str, kind: str = "embed", request_id: str | None = None) -> None:
    """An embed or reembed job; `request_id`: of the request that enqueued it, for its log lines."""
    tenant, job = uuid.UUID(tenant_id), uuid.UUID(job_id)
    with job_context(tenant, job, kind, request_id):
        run_job(session_factory(), tenant, job, "embed", get_embedder_pool().for_space, get_settings())
        log.info("job %s done", job)


@job_task(CONSOLIDATE_TASK, queue="consolidate")
def consolidate_job(tenant_id: str, job_id: str, kind: str = "consolidate", request_id: str | None = None) -> None:
    tenant, job = uuid.UUID(tenant_id), uuid.UUID(job_id)
    with job_context(tenant, job, "consolidate", request_id):
        run_job(session_factory(), tenant, job, "consolidate", get_embedder_pool().for_space, get_settings())
        log.info("job %s done", job)


@worker_process_init.connect
def prepare_pool_process(**_: Any) -> None:
    """Pool processes do model work: on cores shared with the API, requests go first; and the configured model
    is loaded before the first task, not during it."""
    lower_cpu_priority(get_settings().worker_nice)
    try:
        get_embedder_pool().configured()
    except Exception:  # a model that cannot load fails each job visibly (retries, then dead-letter)
        log.exception("could not load the configured embedding model")


@worker_ready.connect
def start_sweeper(**_: Any) -> None:
    """A loop in the worker's main process that re-enqueues work left pending (lost message, broker outage)."""
    settings = get_settings()
    dispatcher = CeleryDispatcher(settings)
    stop = threading.Event()

    def loop() -> None:
        older_than = timedelta(seconds=settings.sweep_after_s)
        factory = new_session_factory()  # the main process's own engine, never the pool processes'
        backoff = SweepBackoff()
        while not stop.wait(settings.sweep_interval_s):
            try:
                sweep(factory, older_than, dispatcher.publish, ConsolidationConfig.of(settings), backoff)
            except Exception:
                log.warning("sweep failed", exc_info=True)

    threading.Thread(target=loop, name="memsvc-sweeper", daemon=True).start()

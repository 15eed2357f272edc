"""The Celery application: broker from MEMSVC_BROKER_URL, queues `embed` and `consolidate`, no result backend."""

from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu import Queue

from memsvc.core.logging import configure_logging
from memsvc.core.settings import Settings, get_settings

QUEUES = ("embed", "consolidate")


def make_celery(settings: Settings) -> Celery:
    app = Celery("memsvc", broker=settings.broker_url or "memory://", include=["workers.tasks"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="embed",
        # A task is acknowledged only when it has finished, and a worker killed mid-task hands it back:
        # with the row-level idempotency of the tasks, redelivery is always safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Model work: one message at a time per process. With late acks this also means a worker holds no
        # unstarted message: on SIGTERM (warm shutdown) it finishes the task it runs and leaves the rest queued.
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        worker_hijack_root_logger=False,
    )
    return app


celery_app = make_celery(get_settings())


@setup_logging.connect
def use_memsvc_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """memsvc's own log format in workers too (connecting here stops Celery from configuring logging itself)."""
    configure_logging(get_settings(), level=loglevel)

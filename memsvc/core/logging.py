"""Logging of every memsvc process (`serve`, `worker`, the CLI): the root logger, configured once, writes either
one JSON object per line (for log collectors) or plain text (for people). Each record carries the request id of
the request it belongs to and, inside a job, the job's id, tenant and kind, so one request's lines can be followed
from the API into the worker that ran its job."""

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from memsvc.core.request_id import current_request_id
from memsvc.core.settings import Settings


@dataclass(frozen=True)
class JobContext:
    job_id: str
    tenant_id: str
    kind: str


current_job: ContextVar[JobContext | None] = ContextVar("current_job", default=None)

# Attributes every LogRecord has; whatever else a record carries came from `extra=` and goes into the JSON object
# (but uvicorn's copy of each message with terminal colour codes).
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


@contextmanager
def job_context(tenant_id: uuid.UUID, job_id: uuid.UUID, kind: str, request_id: str | None) -> Iterator[None]:
    """While a job runs: its log lines name it, and carry the id of the request that enqueued it."""
    job_token = current_job.set(JobContext(str(job_id), str(tenant_id), kind))
    request_token = current_request_id.set(request_id)
    try:
        yield
    finally:
        current_request_id.reset(request_token)
        current_job.reset(job_token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id; job_id, tenant_id and kind inside a job;
    the `extra=` fields of the call (an access line's method, route, status, duration_ms); exc for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": current_request_id.get(),
        }
        job = current_job.get()
        if job is not None:
            entry.update(job_id=job.job_id, tenant_id=job.tenant_id, kind=job.kind)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["exc"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id] message`: the request id only when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id, job = current_request_id.get(), current_job.get()
        parts = ([f"request_id={request_id}"] if request_id else []) + ([f"job_id={job.job_id}"] if job else [])
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def chosen_format(settings: Settings) -> str:
    if settings.log_format is not None:
        return settings.log_format
    return "text" if sys.stderr.isatty() else "json"


def configure_logging(settings: Settings, level: str | int | None = None) -> None:
    """Point the root logger at stderr in the configured format and level (`level` overrides the setting), in
    place of any handler installed before; the loggers of uvicorn and Celery propagate to it."""
    # The process's real stderr: Celery's pool processes replace sys.stderr by a proxy that logs what is written
    # to it, and a handler writing there would feed the log back into itself (Celery drops such lines).
    handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen_format(settings) == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level or settings.log_level.upper())
    # Alembic announces each plugin it sets up at INFO on import; an operator needs its migrations, not that.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # The access line comes from memsvc's own middleware, with the route template and request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True

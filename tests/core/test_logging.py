"""Structured logs: one JSON object per line with the request id, an access line per request from memsvc's own
middleware, and the request id carried into the job the request enqueued, in-process and in a real Celery worker."""

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from memsvc.core.logging import JsonFormatter, TextFormatter, configure_logging, job_context
from memsvc.core.request_id import current_request_id
from memsvc.core.settings import Settings
from tests.conftest import TenantHandle, wait_for_job
from tests.workers.conftest import celery_client, start_worker, write  # noqa: F401 (fixtures)

LOGGING_REDIS_URL = "redis://127.0.0.1:6379/13"


class JsonLines(logging.Handler):
    """Formats each record as it is emitted (in the context of the request or job that logged it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def json_lines() -> Iterator[JsonLines]:
    handler = JsonLines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def broker_url() -> str:
    """A Redis database of these tests' own (the worker tests flush theirs)."""
    redis.Redis.from_url(LOGGING_REDIS_URL).flushdb()
    return LOGGING_REDIS_URL


def test_json_formatter_writes_one_object_with_the_request_and_job_it_belongs_to() -> None:
    record = logging.makeLogRecord(
        {"name": "memsvc.test", "levelno": logging.WARNING, "levelname": "WARNING", "msg": "took %d tries\nthen ok"}
    )
    record.args = (3,)
    tenant_id, job_id = uuid.uuid4(), uuid.uuid4()
    token = current_request_id.set("req-1")
    try:
        outside_job = json.loads(JsonFormatter().format(record))
        with job_context(tenant_id, job_id, "embed", "req-2"):
            line = JsonFormatter().format(record)
    finally:
        current_request_id.reset(token)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "memsvc.test"
    assert entry["message"] == "took 3 tries\nthen ok"
    assert entry["ts"].endswith("+00:00") and "T" in entry["ts"]
    assert (entry["request_id"], entry["job_id"], entry["tenant_id"], entry["kind"]) == (
        "req-2",
        str(job_id),
        str(tenant_id),
        "embed",
    )
    assert outside_job["request_id"] == "req-1" and "job_id" not in outside_job


def test_json_formatter_keeps_extra_fields_and_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("memsvc.x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    record.route = "/v1/memories"

    entry = json.loads(JsonFormatter().format(record))

    assert entry["route"] == "/v1/memories" and entry["request_id"] is None
    assert "ValueError: boom" in entry["exc"]


def test_text_format_names_the_request() -> None:
    record = logging.makeLogRecord({"name": "memsvc.t", "levelname": "INFO", "msg": "hello"})
    token = current_request_id.set("abc")
    try:
        line = TextFormatter().format(record)
    finally:
        current_request_id.reset(token)
    assert line.endswith("INFO memsvc.t [request_id=abc]: hello")


def test_configure_logging_replaces_the_root_handlers_with_one_in_the_chosen_format() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging(Settings(log_format="json", log_level="warning"))
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter) and root.level == logging.WARNING
        configure_logging(Settings(log_format="text"), level="debug")
        [handler] = root.handlers
        assert isinstance(handler.formatter, TextFormatter) and root.level == logging.DEBUG
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_a_request_writes_an_access_line_and_its_job_logs_with_its_request_id(
    client: TestClient, tenant: TenantHandle, json_lines: JsonLines
) -> None:
    request_id = "abc-" + uuid.uuid4().hex[:8]
    response = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "user_id": "u1", "content": "Hana collects stamps."}]},
        headers={**tenant.headers, "X-Request-ID": request_id},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    wait_for_job(client, tenant, job_id)

    entries = json_lines.objects()
    [access] = [e for e in entries if e["logger"] == "memsvc.access" and e["request_id"] == request_id]
    assert (access["method"], access["route"], access["status"]) == ("POST", "/v1/memories", 202)
    assert access["duration_ms"] > 0 and access["message"].startswith("POST /v1/memories 202 ")
    done = [e for e in entries if e.get("job_id") == job_id and e["message"] == f"job {job_id} done"]
    assert len(done) == 1
    assert (done[0]["request_id"], done[0]["tenant_id"], done[0]["kind"]) == (request_id, tenant.id, "embed")


@pytest.mark.slow
def test_a_job_run_by_a_celery_worker_logs_with_the_request_id_that_enqueued_it(
    celery_client: TestClient,  # noqa: F811
    start_worker,  # noqa: F811
    tenant: TenantHandle,
) -> None:
    worker = start_worker(MEMSVC_LOG_FORMAT="json")
    request_id = "abc-" + uuid.uuid4().hex[:8]
    response = celery_client.post(
        "/v1/memories",
        json={"memories": [{"type": "dialogue", "user_id": "u1", "session_id": "s1", "content": "Ivo: hi."}]},
        headers={**tenant.headers, "X-Request-ID": request_id},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    wait_for_job(celery_client, tenant, job_id, timeout=120)
    worker.stop()  # flushes its log

    entries = _json_objects(worker.log)
    job_lines = [e for e in entries if e.get("job_id") == job_id]
    assert job_lines, worker.log.read_text(errors="replace")[-3000:]
    done = [e for e in job_lines if e["message"] == f"job {job_id} done" and e["request_id"] == request_id]
    assert len(done) == 1 and done[0]["tenant_id"] == tenant.id and done[0]["kind"] == "embed"
    # On a loaded machine the sweeper may deliver the job again (found in Postgres: no request behind it).
    assert {e["request_id"] for e in job_lines} <= {request_id, None}
    assert any(" ready." in e["message"] for e in entries), "Celery's own lines are JSON too"


def _json_objects(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of a worker's output (Celery prints its banner as text)."""
    objects = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            objects.append(json.loads(line))
    return objects

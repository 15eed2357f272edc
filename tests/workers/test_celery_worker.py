"""The real thing: a `memsvc worker` process on a real Redis broker embeds what the API accepted, survives
a broker outage, a SIGKILL mid-batch and duplicate deliveries, and never stores a memory twice."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from memsvc.app import create_app
from memsvc.core.db import sqlalchemy_url
from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import Embedder
from memsvc.jobs.dispatch import EMBED_TASK
from tests.conftest import TenantHandle, wait_for_job
from workers.app import make_celery

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("MEMSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def broker_url() -> str:
    redis.Redis.from_url(REDIS_URL).flushdb()  # no messages left over from an earlier run
    return REDIS_URL


class WorkerProcess:
    def __init__(
        self, database_url: str, broker_url: str, log: Path, batch_size: int, extra_env: dict[str, str]
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
        env.update(
            MEMSVC_DATABASE_URL=database_url,
            MEMSVC_BROKER_URL=broker_url,
            MEMSVC_SWEEP_INTERVAL_S="1",
            MEMSVC_SWEEP_AFTER_S="3",
            MEMSVC_EMBEDDING_BATCH_SIZE=str(batch_size),
        )
        env.update(extra_env)
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "memsvc",
                    "worker",
                    "--concurrency",
                    "1",
                    "--hostname",
                    f"t{uuid.uuid4().hex}@%h",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while " ready." not in log.read_text(errors="replace"):
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)

    def pool_children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                for child in self.pool_children():
                    child.kill()
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_worker(database_url: str, broker_url: str, tmp_path: Path) -> Iterator:
    started: list[WorkerProcess] = []

    def start(batch_size: int = 64, **extra_env: str) -> WorkerProcess:
        log = tmp_path / f"worker{len(started)}.log"
        worker = WorkerProcess(database_url, broker_url, log, batch_size, extra_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _client(settings: Settings, database_url: str, embedder: Embedder, broker: str) -> TestClient:
    return TestClient(create_app(settings.model_copy(update={"broker_url": broker}), database_url, embedder=embedder))


@pytest.fixture
def celery_client(settings, database_url, embedder, broker_url) -> Iterator[TestClient]:
    with _client(settings, database_url, embedder, broker_url) as client:
        yield client


@pytest.fixture
def broker_down_client(settings, database_url, embedder) -> Iterator[TestClient]:
    with _client(settings, database_url, embedder, UNREACHABLE_BROKER) as client:
        yield client


def write(client: TestClient, tenant: TenantHandle, contents: list[str], user_id: str = "u1") -> dict:
    response = client.post(
        "/v1/memories",
        json={
            "memories": [{"type": "dialogue", "user_id": user_id, "session_id": "s1", "content": c} for c in contents]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def embedding_counts(database_url: str, tenant: TenantHandle) -> tuple[int, int, int]:
    """(memories, memories with an embedding, memories still pending) of the tenant, read as the owner."""
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), count(embedding), count(*) FILTER (WHERE embedding_status = 'pending') "
                "FROM memories WHERE tenant_id = :t"
            ),
            {"t": tenant.id},
        ).one()
    engine.dispose()
    return int(row[0]), int(row[1]), int(row[2])


def test_worker_process_embeds_what_the_api_accepted(celery_client, tenant, start_worker):
    start_worker()
    answer = write(celery_client, tenant, ["Alice: my sister's cat is called Miso.", "Bob: the boiler broke again."])

    job = wait_for_job(celery_client, tenant, answer["job_id"], timeout=120)

    assert (job["total"], job["done"]) == (2, 2)
    hits = celery_client.post(
        "/v1/search", json={"query": "what is the name of the cat", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert hits[0]["memory"]["id"] == answer["results"][0]["id"] and hits[0]["matched_by"] == "dense"


def test_writes_during_a_broker_outage_are_all_embedded_once_it_is_back(
    broker_down_client, tenant, start_worker, database_url
):
    answers = [
        write(broker_down_client, tenant, [f"turn {n}.{i} about topic {n * 10 + i}" for i in range(5)])
        for n in range(4)
    ]
    assert embedding_counts(database_url, tenant) == (20, 0, 20)

    start_worker()  # the broker is back: the worker's sweeper finds the pending work in Postgres

    for answer in answers:
        assert wait_for_job(broker_down_client, tenant, answer["job_id"], timeout=120)["done"] == 5
    assert embedding_counts(database_url, tenant) == (20, 20, 0)


def test_duplicate_delivery_of_a_task_stores_nothing_twice(
    broker_down_client, tenant, start_worker, settings, database_url
):
    answer = write(broker_down_client, tenant, [f"duplicate delivery turn {i}" for i in range(10)])
    producer = make_celery(settings.model_copy(update={"broker_url": REDIS_URL}))
    for _ in range(3):
        producer.send_task(EMBED_TASK, args=[tenant.id, answer["job_id"]], queue="embed")

    start_worker()

    job = wait_for_job(broker_down_client, tenant, answer["job_id"], timeout=120)
    assert (job["total"], job["done"], job["failed"]) == (10, 10, 0)
    assert embedding_counts(database_url, tenant) == (10, 10, 0)


def test_worker_killed_mid_batch_loses_nothing(broker_down_client, tenant, start_worker, database_url):
    answer = write(
        broker_down_client, tenant, [f"Long history turn {i}: the user said thing number {i}." for i in range(400)]
    )
    worker = start_worker(batch_size=8)

    deadline = time.monotonic() + 120
    while embedding_counts(database_url, tenant)[1] == 0:  # wait until the first batches are committed
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [child] = worker.pool_children()
    child.send_signal(signal.SIGKILL)
    killed_at = embedding_counts(database_url, tenant)

    job = wait_for_job(broker_down_client, tenant, answer["job_id"], timeout=240)

    assert 0 < killed_at[1] < 400, "the kill landed mid-job"
    assert (job["total"], job["done"], job["failed"]) == (400, 400, 0)
    assert embedding_counts(database_url, tenant) == (400, 400, 0)


def test_job_failing_after_its_last_retry_is_marked_failed_with_its_error(celery_client, tenant, start_worker):
    """A worker whose model cannot be loaded fails every attempt: the job ends as a visible dead letter."""
    start_worker(
        MEMSVC_EMBEDDING_MODEL_PATH="/nonexistent/model", MEMSVC_JOB_MAX_RETRIES="1", MEMSVC_JOB_RETRY_BACKOFF_S="0.1"
    )
    answer = write(celery_client, tenant, ["Judy's passport number ends in 42.", "Ken owes Judy ten euros."])

    deadline = time.monotonic() + 120
    while (job := celery_client.get(f"/v1/jobs/{answer['job_id']}", headers=tenant.headers).json())[
        "status"
    ] != "failed":
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.2)

    assert (job["total"], job["failed"], job["done"], job["pending"]) == (2, 2, 0, 0)
    assert "nonexistent" in job["error"] and job["attempts"] >= 2  # first try + retry (+ sweeper redeliveries)
    assert [e["memory_id"] for e in job["errors"]] == [r["id"] for r in answer["results"]]
    memory = celery_client.get(f"/v1/memories/{answer['results'][0]['id']}", headers=tenant.headers).json()
    assert memory["embedding_status"] == "failed"

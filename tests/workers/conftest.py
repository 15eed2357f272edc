"""Real `memsvc worker` processes on a real Redis broker, and API clients publishing to it."""

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
from tests.conftest import TenantHandle

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
            MEMSVC_EMBEDDING_CLAIM_SIZE=str(batch_size),
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


def owner_rows(database_url: str, sql: str, **params: object) -> list[tuple]:
    """Rows of `sql` read as the database owner (outside row-level security), to check what is really stored."""
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(text(sql), params)]
    engine.dispose()
    return rows


def embedding_counts(database_url: str, tenant: TenantHandle) -> tuple[int, int, int]:
    """(memories, stored vectors, memories still pending) of the tenant."""
    [row] = owner_rows(
        database_url,
        "SELECT count(*), (SELECT count(*) FROM memory_embeddings e WHERE e.tenant_id = :t), "
        "(SELECT count(*) FROM pending_embeddings p WHERE p.tenant_id = :t AND p.error IS NULL) "
        "FROM memories WHERE tenant_id = :t",
        t=tenant.id,
    )
    return int(row[0]), int(row[1]), int(row[2])

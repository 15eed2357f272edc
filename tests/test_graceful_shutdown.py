"""SIGTERM is a normal event (a deploy, a scale-down): `memsvc serve` finishes the requests in flight and commits
their writes, then exits 0; a `memsvc worker` finishes the task it runs and leaves unstarted ones on the queue."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memsvc.core.settings import Settings
from tests.conftest import ADMIN, ADMIN_KEY, wait_for_job
from tests.test_serve_e2e import _free_port
from tests.workers.conftest import (  # noqa: F401 (fixtures)
    broker_url,
    celery_client,
    embedding_counts,
    owner_rows,
    start_worker,
    write,
)

pytestmark = pytest.mark.slow

GRACE_S = Settings.model_fields["shutdown_grace_s"].default


class Server:
    """`memsvc serve` on the test database, as a deployment runs it (external Postgres, in-process worker)."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = tmp_path / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
        env.update(MEMSVC_DATABASE_URL=database_url, MEMSVC_ADMIN_KEY=ADMIN_KEY, MEMSVC_DATA_DIR=str(tmp_path))
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memsvc", "serve", "--port", self.url.rsplit(":", 1)[1]],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 180
        while True:
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    started = Server(database_url, tmp_path)
    yield started
    started.kill()


def test_sigterm_lets_the_request_in_flight_finish_and_commit(server, database_url):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        tenant = http.post("/v1/tenants", json={"name": f"shutdown-{os.getpid()}-{time.time_ns()}"}, headers=ADMIN)
        key = http.post(f"/v1/tenants/{tenant.json()['id']}/keys", json={}, headers=ADMIN).json()["key"]
    items = [{"type": "semantic", "user_id": "u1", "content": f"Fact {i} about the shutdown."} for i in range(300)]
    body = json.dumps({"memories": items}).encode()
    half_sent, terminated = threading.Event(), threading.Event()

    def upload() -> Iterator[bytes]:
        # Half the body, then the rest only once SIGTERM was sent: the request is certainly in flight.
        yield body[: len(body) // 2]
        half_sent.set()
        assert terminated.wait(60)
        yield body[len(body) // 2 :]

    answer: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            answer.append(
                http.post(
                    "/v1/memories",
                    content=upload(),
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
            )

    sender = threading.Thread(target=send)
    sender.start()
    assert half_sent.wait(60)
    time.sleep(0.5)  # let the server read the request's head, so the connection counts as in flight
    server.process.send_signal(signal.SIGTERM)
    terminated.set()
    sender.join(60)

    assert server.process.wait(timeout=GRACE_S) == 0, server.log.read_text()
    [response] = answer
    assert response.status_code == 202, response.text
    ids = [r["id"] for r in response.json()["results"]]
    assert len(ids) == 300 and response.json()["created"] == 300
    [(stored,)] = owner_rows(
        database_url, "SELECT count(*) FROM memories WHERE id = ANY(CAST(:ids AS uuid[]))", ids=ids
    )
    assert stored == 300, "everything the answer acknowledged is stored"


def test_sigterm_lets_a_worker_finish_its_task_and_leaves_the_rest_queued(
    celery_client,  # noqa: F811 (the fixture)
    tenant,
    start_worker,  # noqa: F811 (the fixture)
    database_url,
):
    worker = start_worker(batch_size=8)
    running = write(celery_client, tenant, [f"Long history turn {i}: the user said thing {i}." for i in range(200)])
    deadline = time.monotonic() + 300  # the first task loads the model: slow on busy shared cores
    while embedding_counts(database_url, tenant)[1] == 0:  # the task is running: its first batches are committed
        assert time.monotonic() < deadline
        time.sleep(0.05)
    queued = write(celery_client, tenant, [f"Later turn {i}" for i in range(20)], user_id="u2")

    worker.process.send_signal(signal.SIGTERM)
    exit_code = worker.process.wait(timeout=60)
    at_exit = embedding_counts(database_url, tenant)

    assert exit_code == 0, worker.log.read_text(errors="replace")
    assert "warm shutdown" in worker.log.read_text(errors="replace").lower()
    assert at_exit[1] >= 200, "the task in progress was finished before the worker exited"

    start_worker(batch_size=8)  # the next worker takes what the stopped one left on the queue
    first, second = (wait_for_job(celery_client, tenant, a["job_id"], timeout=120) for a in (running, queued))
    assert (first["total"], first["done"], first["failed"]) == (200, 200, 0)
    assert (second["total"], second["done"], second["failed"]) == (20, 20, 0)
    assert embedding_counts(database_url, tenant) == (220, 220, 0), "nothing stored twice"

"""What happens to a model change that does not complete: going back to the old model before it ran, or a
re-embedding that fails for good. Either way the tenant keeps searching (and writing) on the model it had."""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from memsvc.app import create_app
from memsvc.core.migrate import upgrade_to_head
from memsvc.core.settings import Settings
from memsvc.embeddings import service as embeddings
from tests.conftest import TenantHandle, _fresh_database, add_memories, create_tenant, wait_for_job

NEW_MODEL = "all-MiniLM-L6-v2-128d"
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"  # jobs are accepted but no worker runs them


@dataclass
class PendingChange:
    old: Settings
    new: Settings
    tenant: TenantHandle
    memory_id: str
    job_id: str


@pytest.fixture
def pending_change(pg_server_url, settings, embedder) -> Iterator[PendingChange]:
    """A tenant with an embedded memory on the default model, then an API started with a 128-d configuration:
    its re-embedding job is queued, and nothing runs it."""
    database_url = _fresh_database(pg_server_url)
    upgrade_to_head(database_url)
    old = settings.model_copy(update={"database_url": database_url})
    with TestClient(create_app(old, database_url, embedder=embedder)) as client:
        tenant = create_tenant(client)
        [memory_id] = add_memories(client, tenant, {"content": "Quentin's flat is on the fourth floor."})
    new = old.model_copy(
        update={"embedding_model_id": NEW_MODEL, "embedding_dim": 128, "broker_url": UNREACHABLE_BROKER}
    )
    with TestClient(create_app(new, database_url)) as client:
        [job] = client.get("/v1/jobs", params={"kind": "reembed"}, headers=tenant.headers).json()["data"]
        assert job["status"] == "queued" and job["embedding_space"] == {
            "model_id": NEW_MODEL,
            "dim": 128,
            "storage": "fp8-e4m3",
        }
    yield PendingChange(old, new, tenant, memory_id, job["id"])


def search_hit(client: TestClient, tenant: TenantHandle) -> dict:
    response = client.post(
        "/v1/search", json={"query": "which floor is the flat on", "user_id": "u1"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["hits"][0])


def test_going_back_to_the_old_model_before_the_change_ran_cancels_it(pending_change, embedder):
    change = pending_change
    database_url = str(change.old.database_url)
    with TestClient(create_app(change.old, database_url, embedder=embedder)) as client:
        # The in-process worker's first sweep finds the queued job and runs it: it is superseded.
        deadline = time.monotonic() + 60
        while (job := client.get(f"/v1/jobs/{change.job_id}", headers=change.tenant.headers).json())["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["status"] == "failed" and "superseded" in job["error"]
        hit = search_hit(client, change.tenant)
        assert hit["memory"]["id"] == change.memory_id and hit["memory"]["embedding_model"] == "all-MiniLM-L6-v2"


def test_a_reembedding_that_fails_for_good_leaves_the_tenant_on_its_model(pending_change):
    change = pending_change
    database_url = str(change.old.database_url)
    with TestClient(create_app(change.new, database_url)) as client:
        # What the worker does after the job's last retry (Celery's on_failure, the in-process worker's retries).
        factory = client.app.state.session_factory
        embeddings.fail_job(factory, uuid.UUID(change.tenant.id), uuid.UUID(change.job_id), "RuntimeError: boom")

        job = client.get(f"/v1/jobs/{change.job_id}", headers=change.tenant.headers).json()
        assert job["status"] == "failed" and job["error"] == "RuntimeError: boom"
        hit = search_hit(client, change.tenant)
        assert hit["memory"]["id"] == change.memory_id and hit["memory"]["embedding_model"] == "all-MiniLM-L6-v2"
        # Writes are embedded (by a worker run here in-line) into the old space only: the change is abandoned.
        answer = client.post(
            "/v1/memories",
            json={"memories": [{"type": "semantic", "user_id": "u1", "content": "Rosa plays the cello."}]},
            headers=change.tenant.headers,
        ).json()
        embeddings.run_job(
            factory, uuid.UUID(change.tenant.id), uuid.UUID(answer["job_id"]), client.app.state.embedders.for_space, 64
        )
        written = wait_for_job(client, change.tenant, answer["job_id"])
        assert written["done"] == 1
        listed = client.get(f"/v1/memories/{answer['results'][0]['id']}", headers=change.tenant.headers).json()
        assert listed["embedding_model"] == "all-MiniLM-L6-v2"

"""Writes answer at once and are embedded in the background; jobs report progress; nothing is ever invisible."""

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from memsvc.app import create_app
from memsvc.core.db import sqlalchemy_url
from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import Embedder
from tests.conftest import TenantHandle, add_memories, assert_problem, wait_for_job

# Nothing listens on port 1: every publish to this broker fails at once, as in a broker outage.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def broker_down_client(settings: Settings, database_url: str, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"broker_url": UNREACHABLE_BROKER}), database_url, embedder=embedder)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def write(client: TestClient, tenant: TenantHandle, *contents: str) -> dict:
    response = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "user_id": "u1", "content": c} for c in contents]},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_write_is_accepted_with_a_job_that_reports_every_item_done(client, tenant):
    answer = write(
        client, tenant, "Alice is allergic to peanuts.", "Bob plays the cello.", "Alice is allergic to peanuts."
    )

    job = wait_for_job(client, tenant, answer["job_id"])

    assert answer["created"] == 2 and answer["duplicates"] == 1
    assert job["kind"] == "embed"
    assert (job["total"], job["done"], job["pending"], job["failed"]) == (2, 2, 0, 0)
    assert job["errors"] == [] and job["attempts"] >= 1
    for result in answer["results"]:
        memory = client.get(f"/v1/memories/{result['id']}", headers=tenant.headers).json()
        assert memory["embedding_status"] == "done" and memory["embedding_model"] == "all-MiniLM-L6-v2"
        assert memory["job_id"] == answer["job_id"]


def test_embedding_leaves_the_memory_row_as_written(broker_down_client, tenant, settings, database_url, embedder):
    """The worker's progress lives in the embedding queue: the memory row itself is never rewritten (an update of
    it would add an entry to every index of the table), and the queue is empty once the job is done."""
    engine = create_engine(sqlalchemy_url(database_url))
    rows = text(
        "SELECT m.id::text, m.xmin::text, p.memory_id IS NOT NULL FROM memories m "
        "LEFT JOIN pending_embeddings p ON p.memory_id = m.id WHERE m.tenant_id = :t"
    )
    # With the broker down nothing embeds them until a worker sweeps: the rows as written can be read first.
    answer = write(broker_down_client, tenant, "Frank repairs old clocks.", "Grace swims every morning.")
    with engine.connect() as conn:
        written = list(conn.execute(rows, {"t": tenant.id}))
    with TestClient(create_app(settings, database_url, embedder=embedder)) as restarted:
        job = wait_for_job(restarted, tenant, answer["job_id"])
    with engine.connect() as conn:
        after = list(conn.execute(rows, {"t": tenant.id}))
    engine.dispose()

    assert job["done"] == 2 and len(written) == 2 and all(queued for _, _, queued in written)
    assert {(memory_id, xmin) for memory_id, xmin, _ in after} == {(memory_id, xmin) for memory_id, xmin, _ in written}
    assert not any(queued for _, _, queued in after)


def test_job_of_another_tenant_or_unknown_is_404(client, tenant, other_tenant):
    answer = write(client, tenant, "Carol keeps bees on her roof.")

    theirs = client.get(f"/v1/jobs/{answer['job_id']}", headers=other_tenant.headers)
    unknown = client.get(f"/v1/jobs/{uuid.uuid4()}", headers=tenant.headers)

    assert assert_problem(theirs, 404)["title"] == assert_problem(unknown, 404)["title"]
    assert_problem(client.get("/v1/jobs/not-a-uuid", headers=tenant.headers), 422)


def test_patched_text_is_embedded_again_in_the_background(client, tenant):
    [memory_id] = add_memories(client, tenant, {"content": "The team meets on Mondays."})

    patched = client.patch(
        f"/v1/memories/{memory_id}", json={"content": "The team meets on Thursdays at noon."}, headers=tenant.headers
    )

    assert patched.status_code == 200, patched.text
    assert patched.json()["embedding_status"] == "pending" and patched.json()["version"] == 2
    wait_for_job(client, tenant, patched.json()["job_id"])
    hits = client.post(
        "/v1/search", json={"query": "which weekday is the team meeting", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert hits[0]["memory"]["id"] == memory_id and hits[0]["matched_by"][0] == "dense"
    assert hits[0]["memory"]["content"] == "The team meets on Thursdays at noon."


def test_broker_outage_accepts_writes_that_stay_readable_and_findable(broker_down_client, tenant):
    answer = write(broker_down_client, tenant, "Dana's flight to Oslo leaves from gate B12.", "Eve sings in a choir.")

    job = broker_down_client.get(f"/v1/jobs/{answer['job_id']}", headers=tenant.headers).json()
    assert job["status"] == "queued" and (job["total"], job["pending"], job["done"]) == (2, 2, 0)
    listed = broker_down_client.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers).json()
    assert {m["embedding_status"] for m in listed["data"]} == {"pending"} and listed["count"] == 2
    hits = broker_down_client.post(
        "/v1/search", json={"query": "Oslo flight gate", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert [h["memory"]["id"] for h in hits] == [answer["results"][0]["id"]]
    assert hits[0]["matched_by"] == ["lexical"] and hits[0]["memory"]["embedding_status"] == "pending"
    assert 0 < hits[0]["score"] < 1


def test_work_left_pending_is_finished_by_the_next_in_process_worker(
    broker_down_client, client, tenant, settings, database_url, embedder
):
    """The embedded default recovers what a broker outage or a crash left pending: its worker sweeps at start."""
    answer = write(broker_down_client, tenant, "Frank's locker code is 4471.", "Grace adopted a greyhound.")

    # A new service process over the same database: its in-process worker starts with a sweep.
    with TestClient(create_app(settings, database_url, embedder=embedder)) as restarted:
        job = wait_for_job(restarted, tenant, answer["job_id"])

    assert (job["total"], job["done"], job["pending"]) == (2, 2, 0)
    hits = client.post(
        "/v1/search", json={"query": "what dog breed did Grace get", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert hits[0]["memory"]["id"] == answer["results"][1]["id"] and hits[0]["matched_by"][0] == "dense"


def test_running_a_job_twice_embeds_each_memory_once(client, tenant, embedder):
    from memsvc.embeddings.service import run_job

    answer = write(client, tenant, "Heidi collects vintage cameras.", "Ivan is learning Portuguese.")
    wait_for_job(client, tenant, answer["job_id"])
    factory = client.app.state.session_factory

    again = run_job(factory, uuid.UUID(tenant.id), uuid.UUID(answer["job_id"]), lambda _: embedder, claim_size=8)

    assert again == 0  # nothing was pending any more: a redelivery changes nothing
    listed = client.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers).json()
    assert listed["count"] == 2 and {m["embedding_status"] for m in listed["data"]} == {"done"}
    assert wait_for_job(client, tenant, answer["job_id"])["done"] == 2

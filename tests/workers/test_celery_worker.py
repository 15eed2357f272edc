"""The real thing: a `memsvc worker` process on a real Redis broker embeds what the API accepted, survives
a broker outage, a SIGKILL mid-batch and duplicate deliveries, and never stores a memory twice."""

import signal
import time

import pytest

from memsvc.jobs.dispatch import CONSOLIDATE_TASK, EMBED_TASK
from tests.conftest import wait_for_job
from tests.workers.conftest import REDIS_URL, embedding_counts, owner_rows, write
from workers.app import make_celery

pytestmark = pytest.mark.slow


def test_worker_process_embeds_what_the_api_accepted(celery_client, tenant, start_worker):
    start_worker()
    answer = write(celery_client, tenant, ["Alice: my sister's cat is called Miso.", "Bob: the boiler broke again."])

    job = wait_for_job(celery_client, tenant, answer["job_id"], timeout=120)

    assert (job["total"], job["done"]) == (2, 2)
    hits = celery_client.post(
        "/v1/search", json={"query": "what is the name of the cat", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert hits[0]["memory"]["id"] == answer["results"][0]["id"] and hits[0]["matched_by"][0] == "dense"


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


def test_worker_process_consolidates_on_the_consolidate_queue_and_a_redelivery_adds_nothing(
    celery_client, tenant, start_worker, settings, database_url
):
    start_worker(MEMSVC_CONSOLIDATION_SEGMENT_ITEMS="4")
    turns = [f"Alice: week {n} of the Lisbon bakery job, shift number {n}." for n in range(10)]
    wait_for_job(celery_client, tenant, write(celery_client, tenant, turns)["job_id"], timeout=120)

    accepted = celery_client.post("/v1/consolidate", json={"user_id": "u1"}, headers=tenant.headers)
    assert accepted.status_code == 202, accepted.text
    job = wait_for_job(celery_client, tenant, accepted.json()["job_id"], timeout=120)
    assert job["result"]["segments"] == 3 and job["done"] == job["total"] > 0

    producer = make_celery(settings.model_copy(update={"broker_url": REDIS_URL}))
    producer.send_task(CONSOLIDATE_TASK, args=[tenant.id, accepted.json()["job_id"]], queue="consolidate")
    deadline = time.monotonic() + 60
    while celery_client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json()["attempts"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    again = wait_for_job(celery_client, tenant, job["id"], timeout=60)
    assert again["result"]["segments"] == 0 and again["total"] == job["total"]  # nothing written twice
    derived = owner_rows(
        database_url,
        "SELECT count(*) FROM memories WHERE tenant_id = :t AND consolidation_level IS NOT NULL",
        t=tenant.id,
    )
    assert derived[0][0] == job["total"]

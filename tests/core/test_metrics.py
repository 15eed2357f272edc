"""GET /metrics: request latency by route template (never a raw path or id), job outcomes, embedding throughput
and queue depth, from the API with its in-process worker, the API publishing to Redis, and a real `memsvc worker`
serving its pool processes' metrics on its own port."""

import re
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from memsvc.app import create_app
from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import Embedder
from tests.conftest import TenantHandle, add_memories, create_tenant, wait_for_job
from tests.workers.conftest import celery_client, start_worker, write  # noqa: F401 (fixtures)

METRICS_REDIS_URL = "redis://127.0.0.1:6379/12"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metrics(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return scrape(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def request_count(samples: Samples, route: str, method: str, status: int) -> float:
    return value(samples, "memsvc_http_request_duration_seconds_count", route=route, method=method, status=str(status))


@pytest.fixture
def broker_url() -> str:
    """A Redis database of these tests' own (the worker tests flush theirs)."""
    redis.Redis.from_url(METRICS_REDIS_URL).flushdb()
    return METRICS_REDIS_URL


def test_requests_are_timed_by_route_template_method_and_status_without_ids(
    client: TestClient, tenant: TenantHandle
) -> None:
    before = metrics(client)
    [memory_id] = add_memories(client, tenant, {"content": "Carol's favourite tea is genmaicha."})
    missing = uuid.uuid4()
    assert client.get(f"/v1/memories/{memory_id}", headers=tenant.headers).status_code == 200
    assert client.get(f"/v1/memories/{missing}", headers=tenant.headers).status_code == 404
    assert client.get(f"/no/such/path/{missing}").status_code == 404

    response = client.get("/metrics")
    after = scrape(response.text)

    template = "/v1/memories/{memory_id}"
    assert request_count(after, template, "GET", 200) == request_count(before, template, "GET", 200) + 1
    assert request_count(after, template, "GET", 404) == request_count(before, template, "GET", 404) + 1
    assert request_count(after, "/v1/memories", "POST", 202) == request_count(before, "/v1/memories", "POST", 202) + 1
    assert request_count(after, "<unmatched>", "GET", 404) == request_count(before, "<unmatched>", "GET", 404) + 1
    bucket = (
        "memsvc_http_request_duration_seconds_bucket",
        frozenset({"route": template, "method": "GET", "status": "200", "le": "+Inf"}.items()),
    )
    assert after[bucket] >= 1
    for secret in (memory_id, str(missing), tenant.id, tenant.key, tenant.name):
        assert secret not in response.text
    routes = {dict(labels).get("route") for _, labels in after} - {None}
    assert template in routes and not any(UUID.search(route) for route in routes)
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_a_write_counts_its_job_as_done_and_its_texts_as_embedded(
    client: TestClient, tenant: TenantHandle, embedder: Embedder
) -> None:
    device = {"device": embedder.device, "runtime": embedder.runtime}
    before = metrics(client)

    add_memories(client, tenant, {"content": "Dan runs on Tuesdays."}, {"content": "Erin keeps bees."})

    after = metrics(client)
    done = {"kind": "embed", "outcome": "done"}
    assert value(after, "memsvc_jobs_total", **done) >= value(before, "memsvc_jobs_total", **done) + 1
    embedded = value(after, "memsvc_embedded_texts_total", **device) - value(
        before, "memsvc_embedded_texts_total", **device
    )
    assert embedded >= 2
    assert value(after, "memsvc_embedding_seconds_total", **device) > value(
        before, "memsvc_embedding_seconds_total", **device
    )
    assert value(after, "memsvc_http_requests_in_flight") == 1  # the scrape itself
    # The in-process worker's backlog, by the queue a Celery worker would take it from; nothing is waiting now.
    assert value(after, "memsvc_job_queue_depth", queue="embed") == 0
    assert ("memsvc_job_queue_depth", frozenset({"queue": "consolidate"}.items())) in after


@pytest.fixture
def publishing_client(
    settings: Settings, database_url: str, embedder: Embedder, broker_url: str
) -> Iterator[TestClient]:
    """The API publishing jobs to Redis, with no worker consuming them."""
    app = create_app(settings.model_copy(update={"broker_url": broker_url}), database_url, embedder=embedder)
    with TestClient(app) as test_client:
        yield test_client


def test_queue_depth_is_the_length_of_the_celery_queue_in_redis(publishing_client: TestClient) -> None:
    tenant = create_tenant(publishing_client)
    assert value(metrics(publishing_client), "memsvc_job_queue_depth", queue="embed") == 0

    for n in range(3):
        write(publishing_client, tenant, [f"queued turn {n}"])

    deadline = time.monotonic() + 30
    while (depth := value(metrics(publishing_client), "memsvc_job_queue_depth", queue="embed")) < 3:
        assert time.monotonic() < deadline, depth  # the publisher thread sends them in the background
        time.sleep(0.1)
    assert depth == 3
    assert value(metrics(publishing_client), "memsvc_job_queue_depth", queue="consolidate") == 0


def test_metrics_can_be_turned_off(settings: Settings, database_url: str, embedder: Embedder) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": False}), database_url, embedder=embedder)
    with TestClient(app) as off:
        assert off.get("/metrics").status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_worker_serves_the_job_outcomes_of_its_pool_processes(
    celery_client: TestClient,  # noqa: F811
    start_worker,  # noqa: F811
    tenant: TenantHandle,
) -> None:
    port = _free_port()
    start_worker(MEMSVC_WORKER_METRICS_PORT=str(port), MEMSVC_WORKER_METRICS_ADDR="127.0.0.1")
    answer = write(celery_client, tenant, ["Frank: the spare key is under the blue pot.", "Gina: noted."])
    wait_for_job(celery_client, tenant, answer["job_id"], timeout=120)

    # The task's outcome is counted just after it commits: give the pool process a moment to get there.
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        done = value(samples, "memsvc_jobs_total", kind="embed", outcome="done")
        if done >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert done >= 1  # (a sweeper redelivery of the finished job would count again)
    assert value(samples, "memsvc_jobs_total", kind="embed", outcome="failed") == 0
    assert sum(v for (name, _), v in samples.items() if name == "memsvc_embedded_texts_total") >= 2

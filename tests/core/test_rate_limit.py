"""Per-key rate limits against the real app: the in-process sliding window and the Redis one (real Redis), a
tenant's own limit, the window sliding, Redis down letting every request through, and the SDK waiting out a 429."""

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from memsvc_client import MemoryClient, RateLimited
from sqlalchemy import create_engine, text

from memsvc.app import create_app
from memsvc.core.db import sqlalchemy_url
from memsvc.core.errors import TooManyRequests
from memsvc.core.ratelimit import InProcessRateLimiter, RedisRateLimiter, build_rate_limiter
from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import Embedder
from tests.clients.conftest import LiveServer
from tests.conftest import ADMIN, ADMIN_KEY, TenantHandle, assert_problem, create_tenant

REDIS_URL = "redis://127.0.0.1:6379/12"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
BACKENDS = {"in-process": None, "redis": REDIS_URL}

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(settings: Settings, database_url: str, embedder: Embedder) -> Iterator[MakeClient]:
    """Apps on the test database with rate-limit settings of the test's choosing."""
    redis.Redis.from_url(REDIS_URL).flushdb()  # no request times left over from an earlier run
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(
            create_app(settings.model_copy(update=overrides), database_url, embedder=embedder),
            raise_server_exceptions=False,
        )
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _list(client: TestClient, tenant: TenantHandle) -> Any:
    return client.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)


def _second_key(client: TestClient, tenant: TenantHandle) -> dict[str, str]:
    key = client.post(f"/v1/tenants/{tenant.id}/keys", json={}, headers=ADMIN)
    assert key.status_code == 201, key.text
    return {"Authorization": f"Bearer {key.json()['key']}"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_key_over_its_limit_gets_429_and_other_keys_and_tenants_do_not(make_client, backend):
    client = make_client(rate_limit_per_minute=3, rate_limit_redis_url=BACKENDS[backend])
    tenant, other_tenant = create_tenant(client), create_tenant(client)

    answers = [_list(client, tenant) for _ in range(3)]
    refused = _list(client, tenant)

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    problem = assert_problem(refused, 429)
    assert problem["type"].endswith("/rate-limited")
    assert "3 requests" in problem["detail"]
    # The first of the three counted requests leaves the 60 s window less than a minute from now.
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert _list(client, tenant).status_code == 429, "still refused: refusals do not slide the window"
    assert client.get("/v1/memories", params={"user_id": "u1"}, headers=_second_key(client, tenant)).status_code == 200
    assert _list(client, other_tenant).status_code == 200
    admin_answers = [client.get("/v1/tenants", headers=ADMIN).status_code for _ in range(5)]
    assert admin_answers == [200] * 5, "admin routes are not limited"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_window_slides(make_client, backend):
    client = make_client(rate_limit_per_minute=2, rate_limit_window_s=1.0, rate_limit_redis_url=BACKENDS[backend])
    tenant = create_tenant(client)
    assert [_list(client, tenant).status_code for _ in range(2)] == [200, 200]
    refused = _list(client, tenant)
    assert_problem(refused, 429)
    assert refused.headers["Retry-After"] == "1"

    time.sleep(1.0)  # what Retry-After asked for

    assert [_list(client, tenant).status_code for _ in range(2)] == [200, 200]
    assert _list(client, tenant).status_code == 429


def test_a_tenant_limit_overrides_the_service_default(make_client, database_url):
    client = make_client(rate_limit_per_minute=1000)
    limited, default = create_tenant(client), create_tenant(client)
    owner = create_engine(sqlalchemy_url(database_url))
    with owner.begin() as conn:
        conn.execute(text("UPDATE tenants SET rate_limit_per_minute = 2 WHERE id = :t"), {"t": limited.id})
    owner.dispose()

    assert [_list(client, limited).status_code for _ in range(3)] == [200, 200, 429]
    assert [_list(client, default).status_code for _ in range(3)] == [200, 200, 200]


def test_redis_processes_share_one_count(make_client):
    # Two apps are two API processes: with Redis, a key's requests to either count against one limit.
    first = make_client(rate_limit_per_minute=3, rate_limit_redis_url=REDIS_URL)
    second = make_client(rate_limit_per_minute=3, rate_limit_redis_url=REDIS_URL)
    tenant = create_tenant(first)

    assert [_list(first, tenant).status_code for _ in range(2)] == [200, 200]
    assert [_list(second, tenant).status_code for _ in range(2)] == [200, 429]
    assert _list(first, tenant).status_code == 429


def test_redis_down_lets_every_request_through(make_client, caplog):
    client = make_client(rate_limit_per_minute=1, rate_limit_redis_url=UNREACHABLE_REDIS)
    tenant = create_tenant(client)

    with caplog.at_level(logging.WARNING, logger="memsvc.core.ratelimit"):
        reads = [_list(client, tenant).status_code for _ in range(3)]
        write = client.post(
            "/v1/memories",
            json={"memories": [{"type": "semantic", "user_id": "u1", "content": "Written while Redis is down."}]},
            headers=tenant.headers,
        )

    assert reads == [200, 200, 200]
    assert write.status_code == 202, write.text
    assert any("rate limiting is off" in r.getMessage() for r in caplog.records)


def test_the_sdk_waits_out_a_429(settings, database_url, embedder):
    app = create_app(
        settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_window_s": 1.0}),
        database_url,
        embedder=embedder,
    )
    server = LiveServer(app)
    server.start()
    try:
        with MemoryClient(base_url=server.url, api_key=ADMIN_KEY) as admin:
            tenant = admin.admin.create_tenant(name="rl-sdk-" + uuid.uuid4().hex[:12])
            key = admin.admin.create_key(tenant.id, name="rate limited")
        with MemoryClient(base_url=server.url, api_key=key.key, max_retries=0) as impatient:
            impatient.memories.list(user_id="u1")
            with pytest.raises(RateLimited) as refused:
                impatient.memories.list(user_id="u1")
        with MemoryClient(base_url=server.url, api_key=key.key, max_retries=2) as patient:
            # The window is still full (a refused call does not count, the first one does): refused once with
            # Retry-After: 1, then served.
            page = patient.memories.list(user_id="u1")
    finally:
        server.stop()
    assert refused.value.status == 429 and refused.value.type.endswith("/rate-limited")
    assert page.data == []


def test_in_process_window_with_a_clock():
    now = [0.0]
    limiter = InProcessRateLimiter(window_s=60.0, clock=lambda: now[0])
    for t in (0.0, 10.0, 20.0):
        now[0] = t
        assert limiter.hit("k", 3).allowed
    now[0] = 25.0
    refused = limiter.hit("k", 3)
    assert (refused.allowed, refused.remaining, refused.retry_after_s) == (False, 0, 35.0)
    now[0] = 60.0  # the request of t=0 has left the window
    allowed = limiter.hit("k", 3)
    assert (allowed.allowed, allowed.remaining) == (True, 0)
    now[0] = 61.0
    # Requests at 10, 20 and 60 against a lowered limit of 2: room for one more once those of 10 and 20 left.
    assert limiter.hit("k", 2).retry_after_s == 19.0


def test_retry_after_is_whole_seconds_rounded_up():
    assert TooManyRequests("x", retry_after_s=34.2).headers["Retry-After"] == "35"
    assert TooManyRequests("x", retry_after_s=0.0001).headers["Retry-After"] == "1"
    assert TooManyRequests("x", retry_after_s=0).headers["Retry-After"] == "1"


def test_the_backend_follows_the_settings(settings):
    assert isinstance(build_rate_limiter(settings), InProcessRateLimiter)
    assert isinstance(build_rate_limiter(settings.model_copy(update={"broker_url": REDIS_URL})), RedisRateLimiter)
    assert isinstance(
        build_rate_limiter(settings.model_copy(update={"rate_limit_redis_url": REDIS_URL})), RedisRateLimiter
    )

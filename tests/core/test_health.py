"""Liveness, readiness (schema migrated to the code's head, or past it) and the OpenAPI contract."""

import re
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient

from memsvc.app import create_app
from memsvc.core.migrate import alembic_config, head_revision, schema_lag, upgrade_to_head
from tests.conftest import _fresh_database, assert_problem

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def unmigrated_database(pg_server_url) -> Iterator[str]:
    """A fresh database with pgvector installed but no migrations applied; dropped afterwards."""
    url = _fresh_database(pg_server_url)
    with psycopg.connect(plain(url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    yield url
    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(plain(pg_server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_on(url, settings, embedder):
    return create_app(settings.model_copy(update={"database_url": url}), url, embedder=embedder)


def test_healthz_is_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_head_migration(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "migration": head_revision()}
    assert head_revision() == "0014_drop_seq_unique"


def test_health_routes_need_no_key(client):
    assert client.get("/healthz", headers={"Authorization": "Bearer wrong"}).status_code == 200
    assert client.get("/readyz", headers={"Authorization": "Bearer wrong"}).status_code == 200


def test_readyz_is_503_problem_on_an_unmigrated_database(unmigrated_database, settings, embedder):
    with TestClient(app_on(unmigrated_database, settings, embedder)) as fresh:
        ready = fresh.get("/readyz")
        live = fresh.get("/healthz")

    problem = assert_problem(ready, 503)
    assert problem["type"].endswith("/unavailable")
    assert head_revision() in problem["detail"]
    assert live.status_code == 200


def test_readyz_is_503_problem_when_the_database_is_at_an_earlier_revision(unmigrated_database, settings, embedder):
    command.upgrade(alembic_config(unmigrated_database), "0005_retrieval")

    with TestClient(app_on(unmigrated_database, settings, embedder)) as fresh:
        ready = fresh.get("/readyz")

    problem = assert_problem(ready, 503)
    assert "0005_retrieval" in problem["detail"] and head_revision() in problem["detail"]


def test_readyz_is_ready_on_a_schema_a_newer_release_migrated(unmigrated_database, settings, embedder):
    """During a rolling upgrade the new release's migration Job runs first; the old pods must keep serving."""
    upgrade_to_head(unmigrated_database)
    with psycopg.connect(plain(unmigrated_database), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")

    with TestClient(app_on(unmigrated_database, settings, embedder)) as fresh:
        ready = fresh.get("/readyz")

    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "migration": "9999_from_the_future"}
    assert schema_lag(unmigrated_database) is None  # and `memsvc migrate --wait` lets new pods of this code start


def test_readyz_is_503_problem_when_the_database_goes_away(pg_server_url, unmigrated_database, settings, embedder):
    with TestClient(app_on(unmigrated_database, settings, embedder)) as fresh:
        name = unmigrated_database.rsplit("/", 1)[1].split("?")[0]
        with psycopg.connect(plain(pg_server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

        ready = fresh.get("/readyz")
        live = fresh.get("/healthz")

    problem = assert_problem(ready, 503)
    assert "unreachable" in problem["detail"]
    assert live.status_code == 200


@pytest.fixture(scope="module")
def openapi(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(openapi):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_openapi_has_stable_operation_ids(openapi):
    ids = {(method, path): op["operationId"] for path, method, op in operations(openapi)}

    assert ids[("post", "/v1/memories")] == "memories-create"
    assert ids[("get", "/v1/memories")] == "memories-list"
    assert ids[("get", "/v1/memories/{memory_id}")] == "memories-get"
    assert ids[("patch", "/v1/memories/{memory_id}")] == "memories-update"
    assert ids[("post", "/v1/search")] == "search-search"
    assert ids[("post", "/v1/tenants")] == "admin-create_tenant"
    assert ids[("post", "/v1/tenants/{tenant_id}/keys")] == "admin-create_key"
    assert ids[("delete", "/v1/keys/{key_id}")] == "admin-revoke_key"
    assert ids[("get", "/v1/export")] == "portability-export"
    assert ids[("post", "/v1/import")] == "portability-import"
    assert ids[("get", "/readyz")] == "health-ready"
    assert len(set(ids.values())) == len(ids), "operation ids are unique"
    assert all(re.fullmatch(r"[a-z]+-[a-z_]+", op_id) for op_id in ids.values()), ids


def v1_operations(openapi):
    found = [(path, method, op) for path, method, op in operations(openapi) if path.startswith("/v1/")]
    assert len(found) >= 10
    return found


def test_every_v1_operation_declares_problem_responses(openapi):
    for path, method, op in v1_operations(openapi):
        responses = op["responses"]
        for status in ("401", "422"):
            assert status in responses, (method, path, status)
            assert "application/problem+json" in responses[status]["content"], (method, path, status)


def test_problem_responses_document_the_problem_schema_under_the_media_type_served(openapi):
    # Errors are served as application/problem+json, so that is where the Problem schema must be declared.
    for path, method, op in v1_operations(openapi):
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            declared = response["content"]
            assert declared["application/problem+json"].get("schema", {}).get("$ref", "").endswith("/Problem"), (
                method,
                path,
                status,
            )


def test_admin_and_lookup_operations_declare_their_specific_problems(openapi):
    responses = {(path, method): set(op["responses"]) for path, method, op in operations(openapi)}

    assert {"403", "409"} <= responses[("/v1/tenants", "post")]
    assert {"403", "404"} <= responses[("/v1/tenants/{tenant_id}/keys", "post")]
    assert "404" in responses[("/v1/memories/{memory_id}", "get")]
    assert "503" in responses[("/readyz", "get")]


def test_problem_schema_is_published(openapi):
    problem = openapi["components"]["schemas"]["Problem"]

    assert set(problem["required"]) >= {"type", "title", "status", "detail"}
    assert "errors" in problem["properties"]

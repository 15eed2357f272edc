"""Every request limit answers a problem that names the field and the limit: body size (413), items per write,
per append and per import, content size, query length, top_k, page sizes, metadata size and depth. Time limits:
a statement over the database statement timeout, or a request finding no free connection, answers 503."""

import json
import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import TimeoutError as PoolTimeout

from memsvc.app import create_app
from memsvc.memories.schemas import MAX_ITEMS_PER_WRITE, MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from memsvc.portability.service import MAX_IMPORT_RECORDS
from memsvc.search.schemas import MAX_TOP_K
from tests.conftest import add_memories, assert_problem


def _memory(**fields: Any) -> dict[str, Any]:
    return {"type": "semantic", "user_id": "u1", "content": "A fact.", **fields}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"next": value}
    return value


def test_a_body_over_the_limit_is_413(settings, database_url, embedder, tenant):
    app = create_app(settings.model_copy(update={"max_body_bytes": 4096}), database_url, embedder=embedder)
    with TestClient(app) as small:
        answer = small.post("/v1/memories", json={"memories": [_memory(content="x" * 5000)]}, headers=tenant.headers)
    problem = assert_problem(answer, 413)
    assert "4096 bytes" in problem["detail"]


def test_items_per_write(client, tenant):
    answer = client.post(
        "/v1/memories",
        json={"memories": [_memory(content=f"fact {i}") for i in range(MAX_ITEMS_PER_WRITE + 1)]},
        headers=tenant.headers,
    )
    problem = assert_problem(answer, 422)
    assert "memories" in problem["detail"] and str(MAX_ITEMS_PER_WRITE) in problem["detail"]


def test_messages_per_append(client, tenant):
    answer = client.post(
        "/v1/sessions/s1/messages",
        json={
            "user_id": "u1",
            "messages": [{"role": "user", "content": f"turn {i}"} for i in range(MAX_ITEMS_PER_WRITE + 1)],
        },
        headers=tenant.headers,
    )
    problem = assert_problem(answer, 422)
    assert "messages" in problem["detail"] and str(MAX_ITEMS_PER_WRITE) in problem["detail"]


def test_records_per_import(client, tenant):
    add_memories(client, tenant, {"content": "The one exported memory."})
    [line] = [ln for ln in client.get("/v1/export", headers=tenant.headers).text.splitlines() if ln.strip()]
    record = json.loads(line)
    lines = [
        json.dumps({**record, "id": str(uuid.uuid4()), "content": f"copy {i}", "content_hash": None, "embedding": None})
        for i in range(MAX_IMPORT_RECORDS + 1)
    ]

    answer = client.post("/v1/import", content="\n".join(lines).encode(), headers=tenant.headers)

    problem = assert_problem(answer, 422)
    assert f"at most {MAX_IMPORT_RECORDS} records" in problem["detail"]
    assert client.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers).json()["count"] == 1


def test_content_size(client, tenant, settings):
    answer = client.post(
        "/v1/memories",
        json={"memories": [_memory(content="é" * (settings.max_content_bytes // 2 + 1))]},
        headers=tenant.headers,
    )
    problem = assert_problem(answer, 422)
    assert "content" in problem["detail"] and f"limit is {settings.max_content_bytes} bytes" in problem["detail"]


def test_query_length(client, tenant):
    answer = client.post("/v1/search", json={"query": "q" * 8193, "user_id": "u1"}, headers=tenant.headers)
    problem = assert_problem(answer, 422)
    assert "query" in problem["detail"] and "8192 characters" in problem["detail"]


def test_top_k(client, tenant):
    answer = client.post(
        "/v1/search", json={"query": "anything", "user_id": "u1", "top_k": MAX_TOP_K + 1}, headers=tenant.headers
    )
    problem = assert_problem(answer, 422)
    assert "top_k" in problem["detail"] and str(MAX_TOP_K) in problem["detail"]


@pytest.mark.parametrize(
    ("path", "params", "limit"),
    [
        ("/v1/memories", {"user_id": "u1", "limit": 501}, 500),
        ("/v1/sessions/s1/messages", {"limit": 501}, 500),
        ("/v1/jobs", {"limit": 101}, 100),
    ],
)
def test_page_sizes(client, tenant, path, params, limit):
    problem = assert_problem(client.get(path, params=params, headers=tenant.headers), 422)
    assert "query.limit" in problem["detail"] and str(limit) in problem["detail"]


def test_metadata_size(client, tenant):
    big = {"notes": "n" * MAX_METADATA_BYTES}
    answer = client.post("/v1/memories", json={"memories": [_memory(metadata=big)]}, headers=tenant.headers)
    problem = assert_problem(answer, 422)
    assert "metadata" in problem["detail"] and f"limit is {MAX_METADATA_BYTES} bytes" in problem["detail"]


def test_metadata_depth(client, tenant):
    assert (
        client.post(
            "/v1/memories", json={"memories": [_memory(metadata=_nested(MAX_METADATA_DEPTH))]}, headers=tenant.headers
        ).status_code
        == 202
    ), "the limit itself is allowed"

    answer = client.post(
        "/v1/memories", json={"memories": [_memory(metadata=_nested(MAX_METADATA_DEPTH + 1))]}, headers=tenant.headers
    )
    problem = assert_problem(answer, 422)
    assert "metadata" in problem["detail"] and f"limit of {MAX_METADATA_DEPTH} levels" in problem["detail"]


def test_search_filters_have_the_metadata_limits(client, tenant):
    answer = client.post(
        "/v1/search",
        json={"query": "anything", "user_id": "u1", "filters": _nested(MAX_METADATA_DEPTH + 1)},
        headers=tenant.headers,
    )
    problem = assert_problem(answer, 422)
    assert "filters" in problem["detail"] and str(MAX_METADATA_DEPTH) in problem["detail"]


def test_a_statement_over_the_timeout_is_503(settings, database_url, embedder, tenant):
    app = create_app(settings.model_copy(update={"db_statement_timeout_ms": 300}), database_url, embedder=embedder)
    owner = psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))
    with TestClient(app, raise_server_exceptions=False) as limited, owner:
        # A real wait inside Postgres: the listing blocks on the lock until statement_timeout cancels it.
        owner.execute("LOCK TABLE memories IN ACCESS EXCLUSIVE MODE")
        answer = limited.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)
        owner.rollback()
        after = limited.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)

    problem = assert_problem(answer, 503)
    assert "took longer" in problem["detail"]
    assert answer.headers["Retry-After"] == "1"
    assert after.status_code == 200, "the connection is usable again once the lock is gone"


def test_no_free_connection_is_503(settings, database_url, embedder, tenant):
    app = create_app(settings.model_copy(update={"db_pool_timeout_s": 0.2}), database_url, embedder=embedder)
    with TestClient(app, raise_server_exceptions=False) as starved:
        engine = app.state.engine
        held = []
        with pytest.raises(PoolTimeout):  # take every connection the pool allows
            while True:
                held.append(engine.connect())
        answer = starved.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)
        for conn in held:
            conn.close()

    problem = assert_problem(answer, 503)
    assert "connection" in problem["detail"]
    assert answer.headers["Retry-After"] == "1"

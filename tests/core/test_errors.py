"""Every error is an RFC 9457 application/problem+json answer: routing errors, body limit, bad JSON, validation."""

import json

import pytest
from fastapi.testclient import TestClient

from memsvc.app import create_app
from tests.conftest import add_memories, assert_problem

LIMIT = 1000


@pytest.fixture
def small_client(settings, database_url, embedder):
    """The app with a 1000-byte request body limit, on the same database."""
    app = create_app(settings.model_copy(update={"max_body_bytes": LIMIT}), database_url, embedder=embedder)
    with TestClient(app) as test_client:
        yield test_client


def memory_body(content: str) -> bytes:
    return json.dumps({"memories": [{"type": "semantic", "user_id": "u1", "content": content}]}).encode()


def chunks(data: bytes, size: int = 256):
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/memories/a/b/c"])
def test_unknown_route_is_404_problem(client, path):
    problem = assert_problem(client.get(path), 404)

    assert problem["type"].endswith("/not-found")


def test_unknown_memory_is_404_problem(client, tenant):
    response = client.get("/v1/memories/00000000-0000-4000-8000-000000000000", headers=tenant.headers)

    problem = assert_problem(response, 404)
    assert "00000000-0000-4000-8000-000000000000" in problem["detail"]


@pytest.mark.parametrize(("method", "path", "allowed"), [("delete", "/healthz", "GET"), ("put", "/v1/search", "POST")])
def test_wrong_method_is_405_problem_with_allow_header(client, method, path, allowed):
    response = client.request(method, path)

    problem = assert_problem(response, 405)
    assert problem["type"].endswith("/method-not-allowed")
    # RFC 9110 §15.5.6: a 405 answer must say which methods the resource supports.
    assert allowed in response.headers.get("allow", "")


def test_body_over_limit_with_content_length_is_413_problem(small_client, tenant):
    body = memory_body("x" * 2000)

    response = small_client.post(
        "/v1/memories", content=body, headers={**tenant.headers, "Content-Type": "application/json"}
    )

    assert "content-length" in response.request.headers
    problem = assert_problem(response, 413)
    assert problem["type"].endswith("/payload-too-large")
    assert str(LIMIT) in problem["detail"]
    assert small_client.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers).json()["data"] == []


@pytest.mark.parametrize("path", ["/v1/memories", "/v1/import"])
def test_chunked_body_over_limit_is_413_problem(small_client, tenant, path):
    body = memory_body("y" * 2000)

    response = small_client.post(
        path, content=chunks(body), headers={**tenant.headers, "Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    problem = assert_problem(response, 413)
    assert problem["type"].endswith("/payload-too-large")
    assert small_client.get("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers).json()["data"] == []


def test_body_over_limit_is_refused_before_authentication(small_client):
    response = small_client.post("/v1/memories", content=memory_body("z" * 2000))

    assert_problem(response, 413)


def test_body_under_limit_still_works_with_and_without_content_length(small_client, tenant):
    headers = {**tenant.headers, "Content-Type": "application/json"}

    plain = small_client.post("/v1/memories", content=memory_body("Small enough."), headers=headers)
    chunked = small_client.post("/v1/memories", content=chunks(memory_body("Also small."), 64), headers=headers)

    assert plain.status_code == 202, plain.text
    assert chunked.status_code == 202, chunked.text
    listed = small_client.get("/v1/memories", params={"user_id": "u1", "order": "asc"}, headers=tenant.headers)
    assert [m["content"] for m in listed.json()["data"]] == ["Small enough.", "Also small."]


def test_body_exactly_at_limit_is_accepted(small_client, tenant):
    base = memory_body("")
    body = memory_body("a" * (LIMIT - len(base)))
    assert len(body) == LIMIT

    response = small_client.post(
        "/v1/memories", content=body, headers={**tenant.headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 202, response.text


@pytest.mark.parametrize("raw", [b'{"memories": [', b"{'memories': []}", b"not json at all"])
def test_malformed_json_is_400_problem(client, tenant, raw):
    response = client.post("/v1/memories", content=raw, headers={**tenant.headers, "Content-Type": "application/json"})

    problem = assert_problem(response, 400)
    assert problem["type"].endswith("malformed-json")
    assert problem["title"] == "Malformed JSON"


def test_body_validation_error_is_422_with_field_errors(client, tenant):
    body = {"memories": [{"type": "semantic", "user_id": "u1", "content": "fine"}, {"type": "bogus", "content": "x"}]}

    response = client.post("/v1/memories", json=body, headers=tenant.headers)

    problem = assert_problem(response, 422)
    assert problem["type"].endswith("/validation")
    assert problem["errors"]
    for error in problem["errors"]:
        assert set(error) == {"loc", "msg", "type"}
        assert isinstance(error["msg"], str) and error["msg"]
        assert isinstance(error["type"], str) and error["type"]
    locs = [e["loc"] for e in problem["errors"]]
    assert ["body", "memories", 1, "type"] in locs
    assert "memories.1.type" in problem["detail"]


def test_query_validation_error_is_422_with_query_location(client, tenant):
    response = client.get("/v1/memories", params={"limit": 0}, headers=tenant.headers)

    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["query", "limit"]


def test_service_validation_error_is_422_problem(client, tenant):
    response = client.get("/v1/memories", params={"user_id": "u1", "cursor": "garbage!"}, headers=tenant.headers)

    problem = assert_problem(response, 422)
    assert "cursor" in problem["detail"]


def test_conflict_is_409_problem(client, tenant):
    first, second = add_memories(client, tenant, {"content": "One."}, {"content": "Two."})

    response = client.patch(f"/v1/memories/{second}", json={"content": "One."}, headers=tenant.headers)

    problem = assert_problem(response, 409)
    assert first in problem["detail"]


def test_unauthorized_is_401_problem(client):
    response = client.get("/v1/memories", params={"user_id": "u1"})

    problem = assert_problem(response, 401)
    assert problem["title"] == "Missing or invalid API key"

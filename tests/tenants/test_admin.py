"""Admin routes (tenants, keys) and how keys authenticate: 401 without/with bad keys, 403 for the wrong kind."""

import uuid
from datetime import datetime

import pytest

from tests.conftest import ADMIN, assert_problem, create_tenant


def unique_name() -> str:
    return "admin-test-" + uuid.uuid4().hex[:12]


def test_create_tenant_returns_201_with_id_name_and_created_at(client):
    name = unique_name()

    response = client.post("/v1/tenants", json={"name": name}, headers=ADMIN)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "storage_profile", "created_at"}
    assert body["storage_profile"] is None  # follows the service default
    assert uuid.UUID(body["id"])
    assert body["name"] == name
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None


def test_duplicate_tenant_name_is_409_problem(client):
    name = unique_name()
    assert client.post("/v1/tenants", json={"name": name}, headers=ADMIN).status_code == 201

    problem = assert_problem(client.post("/v1/tenants", json={"name": name}, headers=ADMIN), 409)

    assert problem["type"].endswith("/conflict")
    assert name in problem["detail"]
    listed = client.get("/v1/tenants", headers=ADMIN).json()["data"]
    assert [t["name"] for t in listed].count(name) == 1


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x" * 201}, {}, {"name": None}, {"name": "ok", "extra": 1}],
    ids=["empty", "too-long", "missing", "null", "extra-field"],
)
def test_invalid_tenant_body_is_422_problem(client, body):
    problem = assert_problem(client.post("/v1/tenants", json=body, headers=ADMIN), 422)

    assert problem["errors"]


def test_list_tenants_includes_a_created_tenant(client):
    created = create_tenant(client)

    response = client.get("/v1/tenants", headers=ADMIN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["data"])
    [listed] = [t for t in body["data"] if t["id"] == created.id]
    assert listed["name"] == created.name


def test_create_key_returns_secret_once_with_its_public_prefix(client):
    tenant = client.post("/v1/tenants", json={"name": unique_name()}, headers=ADMIN).json()

    response = client.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "ci"}, headers=ADMIN)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tenant_id"] == tenant["id"]
    assert body["name"] == "ci"
    assert body["prefix"] and body["key"].startswith(body["prefix"])
    assert len(body["key"]) > len(body["prefix"]) + 20
    # The new key works on tenant routes right away.
    listing = client.get("/v1/memories", params={"user_id": "x"}, headers={"Authorization": f"Bearer {body['key']}"})
    assert listing.status_code == 200, listing.text
    assert listing.json()["data"] == []


def test_create_key_without_body_is_allowed(client):
    tenant = client.post("/v1/tenants", json={"name": unique_name()}, headers=ADMIN).json()

    response = client.post(f"/v1/tenants/{tenant['id']}/keys", headers=ADMIN)

    assert response.status_code == 201, response.text
    assert response.json()["name"] is None


def test_two_keys_of_a_tenant_are_distinct(client, tenant):
    second = client.post(f"/v1/tenants/{tenant.id}/keys", json={}, headers=ADMIN).json()

    assert second["key"] != tenant.key
    assert second["id"] != tenant.key_id


def test_create_key_for_unknown_tenant_is_404_problem(client):
    problem = assert_problem(client.post(f"/v1/tenants/{uuid.uuid4()}/keys", json={}, headers=ADMIN), 404)

    assert problem["type"].endswith("/not-found")


def test_create_key_for_malformed_tenant_id_is_422_problem(client):
    problem = assert_problem(client.post("/v1/tenants/not-a-uuid/keys", json={}, headers=ADMIN), 422)

    assert problem["errors"][0]["loc"] == ["path", "tenant_id"]


def test_revoked_key_gets_401_while_the_tenants_other_key_still_works(client, tenant):
    second = client.post(f"/v1/tenants/{tenant.id}/keys", json={}, headers=ADMIN).json()
    second_headers = {"Authorization": f"Bearer {second['key']}"}
    assert client.get("/v1/memories", params={"user_id": "x"}, headers=tenant.headers).status_code == 200

    response = client.delete(f"/v1/keys/{tenant.key_id}", headers=ADMIN)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_problem(client.get("/v1/memories", params={"user_id": "x"}, headers=tenant.headers), 401)
    assert_problem(client.post("/v1/search", json={"query": "x"}, headers=tenant.headers), 401)
    assert client.get("/v1/memories", params={"user_id": "x"}, headers=second_headers).status_code == 200


def test_revoking_unknown_key_is_404_problem(client):
    assert_problem(client.delete(f"/v1/keys/{uuid.uuid4()}", headers=ADMIN), 404)


def test_revoking_malformed_key_id_is_422_problem(client):
    assert_problem(client.delete("/v1/keys/12345", headers=ADMIN), 422)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/memories?user_id=x"), ("get", "/v1/tenants"), ("post", "/v1/search"), ("get", "/v1/export")],
)
def test_missing_authorization_is_401_problem_with_www_authenticate(client, method, path):
    response = client.request(method, path, json={"query": "x"} if method == "post" else None)

    problem = assert_problem(response, 401)
    assert problem["type"].endswith("/unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer msk_deadbeef_not-a-real-key", "Bearer ", "Basic dXNlcjpwYXNz", "msk_deadbeef_no-scheme"],
    ids=["unknown-key", "empty-bearer", "basic-auth", "no-scheme"],
)
def test_wrong_key_is_401_problem(client, authorization):
    headers = {"Authorization": authorization}

    tenant_route = client.get("/v1/memories", params={"user_id": "x"}, headers=headers)
    admin_route = client.get("/v1/tenants", headers=headers)

    assert_problem(tenant_route, 401)
    assert_problem(admin_route, 401)
    assert tenant_route.headers["www-authenticate"] == "Bearer"


def test_a_tenant_key_is_forbidden_on_every_admin_route(client, tenant):
    attempts = [
        client.post("/v1/tenants", json={"name": unique_name()}, headers=tenant.headers),
        client.get("/v1/tenants", headers=tenant.headers),
        client.post(f"/v1/tenants/{tenant.id}/keys", json={}, headers=tenant.headers),
        client.delete(f"/v1/keys/{tenant.key_id}", headers=tenant.headers),
    ]

    for response in attempts:
        problem = assert_problem(response, 403)
        assert problem["type"].endswith("/forbidden")
    # The attempted self-revocation did not happen.
    assert client.get("/v1/memories", params={"user_id": "x"}, headers=tenant.headers).status_code == 200


def test_the_admin_key_is_forbidden_on_tenant_routes(client):
    for response in [
        client.get("/v1/memories", params={"user_id": "x"}, headers=ADMIN),
        client.post("/v1/search", json={"query": "x"}, headers=ADMIN),
        client.post(
            "/v1/memories", json={"memories": [{"type": "semantic", "content": "c", "user_id": "x"}]}, headers=ADMIN
        ),
        client.get("/v1/export", headers=ADMIN),
    ]:
        assert_problem(response, 403)

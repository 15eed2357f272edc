"""API keys: listing a tenant's keys (never their secrets), revocation effective on the very next request (even on
an open connection), and which key each route accepts, checked over every route the app serves."""

import http.client
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from memsvc_client import MemoryClient, Unauthorized

from memsvc.app import create_app
from memsvc.core.deps import require_admin, require_tenant
from tests.clients.conftest import LiveServer
from tests.conftest import ADMIN, ADMIN_KEY, assert_problem, create_tenant

KEY_FIELDS = {"id", "tenant_id", "name", "prefix", "created_at", "revoked_at"}


def test_listing_a_tenants_keys_shows_prefixes_and_revocation_but_never_a_secret(client, tenant):
    named = client.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "ci"}, headers=ADMIN).json()
    other = create_tenant(client)  # its key is not listed
    assert client.delete(f"/v1/keys/{tenant.key_id}", headers=ADMIN).status_code == 204

    response = client.get(f"/v1/tenants/{tenant.id}/keys", headers=ADMIN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 2 and [k["id"] for k in body["data"]] == [tenant.key_id, named["id"]]  # oldest first
    assert all(set(k) == KEY_FIELDS for k in body["data"])
    first, second = body["data"]
    assert first["revoked_at"] is not None and second["revoked_at"] is None
    assert second["name"] == "ci" and second["prefix"] == named["prefix"] and first["tenant_id"] == tenant.id
    assert tenant.key.startswith(first["prefix"])
    for secret in (tenant.key, named["key"], other.key):
        assert secret not in response.text
    assert "hash" not in response.text


def test_listing_keys_of_an_unknown_tenant_is_404_and_a_tenant_key_is_403(client, tenant):
    assert_problem(client.get(f"/v1/tenants/{uuid.uuid4()}/keys", headers=ADMIN), 404)
    assert_problem(client.get(f"/v1/tenants/{tenant.id}/keys", headers=tenant.headers), 403)


# Revocation


@pytest.fixture(scope="module")
def live_url(settings: Any, database_url: str, embedder: Any) -> Iterator[str]:
    server = LiveServer(create_app(settings, database_url, embedder=embedder))
    server.start()
    yield server.url
    server.stop()


def test_a_revoked_key_gets_401_on_the_next_request_of_an_open_sdk_client(client, tenant, live_url):
    with MemoryClient(base_url=live_url, api_key=tenant.key) as memsvc:
        assert memsvc.memories.list(user_id="x").data == []  # the client's connection is open now

        client.delete(f"/v1/keys/{tenant.key_id}", headers=ADMIN)

        with pytest.raises(Unauthorized) as raised:
            memsvc.memories.list(user_id="x")
        assert raised.value.status == 401


def test_a_revoked_key_gets_401_on_the_same_kept_alive_connection(client, tenant, live_url):
    port = int(live_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {tenant.key}"}
    try:
        conn.request("GET", "/v1/memories?user_id=x", headers=headers)
        first = conn.getresponse()
        assert first.status == 200 and json.loads(first.read())["data"] == []
        socket_before = conn.sock
        assert socket_before is not None  # kept alive

        client.delete(f"/v1/keys/{tenant.key_id}", headers=ADMIN)
        conn.request("GET", "/v1/memories?user_id=x", headers=headers)
        second = conn.getresponse()

        assert conn.sock is socket_before  # the same TCP connection answered
        assert second.status == 401
        assert second.getheader("content-type", "").startswith("application/problem+json")
        second.read()
    finally:
        conn.close()


# Which key each route takes: every route, found from the app itself, so a new route is covered when added.


def depends_on(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or depends_on(d, call) for d in dependant.dependencies)


def api_routes(client: Any) -> list[APIRoute]:
    """Every API route of the app, through included routers too (as the OpenAPI document lists them)."""
    found = (context.original_route for context in iter_route_contexts(client.app.routes))
    return [route for route in found if isinstance(route, APIRoute)]


def concrete(path: str) -> str:
    """The route's path with every parameter filled in (ids: fresh UUIDs, nothing that exists)."""
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


def requests_of(routes: list[APIRoute]) -> list[tuple[str, str]]:
    return [(method, concrete(route.path)) for route in routes for method in sorted(route.methods)]


def test_admin_routes_are_exactly_the_routes_that_require_the_admin_key(client):
    admin_tagged = {r.unique_id for r in api_routes(client) if "admin" in r.tags}
    requiring_admin = {r.unique_id for r in api_routes(client) if depends_on(r.dependant, require_admin)}

    assert admin_tagged == requiring_admin
    assert {"admin-list_keys", "admin-get_rate_limit", "admin-set_rate_limit", "admin-list_audit"} <= admin_tagged
    assert not any(depends_on(r.dependant, require_tenant) for r in api_routes(client) if "admin" in r.tags)


def test_every_admin_route_refuses_a_tenant_key_with_403_and_no_or_a_wrong_key_with_401(client, tenant):
    routes = [r for r in api_routes(client) if "admin" in r.tags]
    assert len(routes) >= 12

    for method, path in requests_of(routes):
        assert_problem(client.request(method, path, headers=tenant.headers), 403)
        no_key = assert_problem(client.request(method, path), 401)
        assert no_key["type"].endswith("/unauthorized")
        assert_problem(client.request(method, path, headers={"Authorization": "Bearer msk_nope_wrong"}), 401)
        assert_problem(client.request(method, path, headers={"Authorization": f"Bearer {ADMIN_KEY}x"}), 401)
    # Not one of those attempts did anything.
    assert client.get("/v1/memories", params={"user_id": "x"}, headers=tenant.headers).status_code == 200


def test_every_tenant_route_refuses_the_admin_key_with_403(client):
    routes = [r for r in api_routes(client) if depends_on(r.dependant, require_tenant)]
    assert {"memories-forget", "memories-delete", "search-search", "portability-import"} <= {
        r.unique_id for r in routes
    }

    for method, path in requests_of(routes):
        problem = assert_problem(client.request(method, path, headers=ADMIN), 403)
        assert problem["type"].endswith("/forbidden")
        assert_problem(client.request(method, path), 401)


def test_every_route_takes_a_key_except_the_health_checks_and_metrics(client):
    open_routes = {
        r.path
        for r in api_routes(client)
        if not depends_on(r.dependant, require_admin) and not depends_on(r.dependant, require_tenant)
    }

    # /metrics (when enabled) is for the Prometheus scraper, kept off the public network by deployment.
    assert open_routes - {"/metrics"} == {"/healthz", "/readyz"}


# Per-tenant rate limit (admin)


def test_the_rate_limit_is_read_and_set_per_tenant_and_null_restores_the_default(client, tenant):
    path = f"/v1/tenants/{tenant.id}/rate-limit"
    assert client.get(path, headers=ADMIN).json() == {"tenant_id": tenant.id, "requests_per_minute": None}

    saved = client.put(path, json={"requests_per_minute": 1}, headers=ADMIN)

    assert saved.status_code == 200, saved.text
    assert saved.json() == {"tenant_id": tenant.id, "requests_per_minute": 1}
    assert client.get(path, headers=ADMIN).json()["requests_per_minute"] == 1
    # The tenant's keys read it as they authenticate: one request a minute, so the second is refused.
    client.get("/v1/memories", params={"user_id": "x"}, headers=tenant.headers)
    assert_problem(client.get("/v1/memories", params={"user_id": "x"}, headers=tenant.headers), 429)

    cleared = client.put(path, json={"requests_per_minute": None}, headers=ADMIN)
    assert cleared.json()["requests_per_minute"] is None
    assert client.get("/v1/memories", params={"user_id": "x"}, headers=tenant.headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"requests_per_minute": 0}, {"requests_per_minute": -5}, {"requests_per_minute": "many"}, {}, {"rpm": 5}],
    ids=["zero", "negative", "text", "missing", "unknown-field"],
)
def test_invalid_rate_limits_are_422_problems(client, tenant, body):
    assert_problem(client.put(f"/v1/tenants/{tenant.id}/rate-limit", json=body, headers=ADMIN), 422)
    assert client.get(f"/v1/tenants/{tenant.id}/rate-limit", headers=ADMIN).json()["requests_per_minute"] is None


def test_the_rate_limit_of_an_unknown_tenant_is_404(client):
    assert_problem(client.get(f"/v1/tenants/{uuid.uuid4()}/rate-limit", headers=ADMIN), 404)
    assert_problem(
        client.put(f"/v1/tenants/{uuid.uuid4()}/rate-limit", json={"requests_per_minute": 5}, headers=ADMIN), 404
    )

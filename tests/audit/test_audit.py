"""The audit log: each administrative action or deletion writes exactly one entry in its own transaction (none when
it fails), GET /v1/audit filters and pages them for the admin, and the service role cannot rewrite or erase them."""

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from memsvc_client import MemoryClient

from memsvc.app import create_app
from tests.clients.conftest import LiveServer, new_tenant
from tests.conftest import ADMIN, ADMIN_KEY, add_memories, assert_problem, create_tenant
from tests.core.test_rls import app_role_connection, owner_connection


def audit(client: Any, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/audit", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["count"] == len(body["data"])
    return body


def entries_of(client: Any, tenant_id: str, **params: Any) -> list[dict[str, Any]]:
    return list(audit(client, tenant_id=tenant_id, limit=500, **params)["data"])


def newest_id(client: Any) -> int:
    data = audit(client, limit=1)["data"]
    return int(data[0]["id"]) if data else 0


def with_request_id(headers: dict[str, str], request_id: str) -> dict[str, str]:
    return {**headers, "X-Request-ID": request_id}


def test_each_admin_action_writes_one_entry_naming_the_admin_the_tenant_and_the_request(client):
    rid = "audit-" + uuid.uuid4().hex
    name = "audit-" + uuid.uuid4().hex[:12]
    created = client.post("/v1/tenants", json={"name": name}, headers=with_request_id(ADMIN, rid + "-1"))
    assert created.status_code == 201, created.text
    tenant_id = created.json()["id"]
    key = client.post(f"/v1/tenants/{tenant_id}/keys", json={"name": "ci"}, headers=with_request_id(ADMIN, rid + "-2"))
    assert key.status_code == 201, key.text
    steps = [
        ("put", f"/v1/tenants/{tenant_id}/search-defaults", {"mode": "lexical"}),
        ("put", f"/v1/tenants/{tenant_id}/rate-limit", {"requests_per_minute": 120}),
        ("put", f"/v1/tenants/{tenant_id}/rate-limit", {"requests_per_minute": None}),
        ("put", f"/v1/tenants/{tenant_id}/storage-profile", {"profile": "float16"}),
        ("delete", f"/v1/keys/{key.json()['id']}", None),
    ]
    answers = []
    for n, (method, path, body) in enumerate(steps, start=3):
        answers.append(client.request(method, path, json=body, headers=with_request_id(ADMIN, f"{rid}-{n}")))
        assert answers[-1].status_code in (200, 202, 204), answers[-1].text

    entries = list(reversed(entries_of(client, tenant_id)))  # oldest first, as done

    assert [e["action"] for e in entries] == [
        "tenant.create",
        "key.create",
        "tenant.search_defaults.set",
        "tenant.rate_limit.set",
        "tenant.rate_limit.set",
        "tenant.storage_profile.set",
        "key.revoke",
    ]
    assert [e["request_id"] for e in entries] == [f"{rid}-{n}" for n in range(1, 8)]
    assert all(e["actor"] == "admin" and e["actor_key_id"] is None and e["tenant_id"] == tenant_id for e in entries)
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    create, key_create, defaults, limit_set, limit_unset, profile, revoke = entries
    assert create["target"] == {"name": name, "storage_profile": None} and create["counts"] == {"tenants": 1}
    key_target = {"key_id": key.json()["id"], "prefix": key.json()["prefix"], "name": "ci"}
    assert key_create["target"] == key_target and key_create["counts"] == {"keys": 1}
    assert defaults["target"] == {"search_defaults": {"mode": "lexical"}}
    assert limit_set["target"] == {"requests_per_minute": 120, "previous": None}
    assert limit_unset["target"] == {"requests_per_minute": None, "previous": 120}
    changed = answers[3].json()
    assert profile["target"] == {"profile": "float16", "outcome": changed["outcome"], "job_id": changed["job_id"]}
    assert revoke["target"] == {"key_id": key.json()["id"], "prefix": key.json()["prefix"]}
    assert revoke["counts"] == {"keys": 1}
    # The secret is nowhere in the log.
    assert key.json()["key"] not in json.dumps(entries)
    assert all(datetime.fromisoformat(e["at"]).tzinfo is not None for e in entries)


def test_deletions_are_recorded_with_the_key_prefix_and_the_forget_receipt_is_its_entry(client, tenant):
    keep, drop = add_memories(client, tenant, {"content": "Secret alpha of u1."}, {"content": "Secret beta of u1."})
    prefix = client.get(f"/v1/tenants/{tenant.id}/keys", headers=ADMIN).json()["data"][0]["prefix"]

    deleted = client.delete(f"/v1/memories/{drop}", headers=tenant.headers)
    assert deleted.status_code == 204, deleted.text
    forgotten = client.delete("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)
    assert forgotten.status_code == 200, forgotten.text
    receipt = forgotten.json()

    forget_entry, delete_entry = entries_of(client, tenant.id)[:2]
    assert delete_entry["action"] == "memories.delete"
    assert delete_entry["target"] == {"memory_id": drop} and delete_entry["counts"] == {"memories": 1}
    assert forget_entry["action"] == "memories.forget"
    assert (forget_entry["actor"], forget_entry["actor_key_id"]) == (prefix, tenant.key_id)
    assert (delete_entry["actor"], delete_entry["actor_key_id"]) == (prefix, tenant.key_id)
    assert tenant.key.startswith(prefix) and len(prefix) < len(tenant.key)
    assert forget_entry["id"] == receipt["receipt_id"]
    assert datetime.fromisoformat(forget_entry["at"]) == datetime.fromisoformat(receipt["forgotten_at"])
    assert forget_entry["target"] == receipt["scope"] == {"user_id": "u1", "agent_id": None, "session_id": None}
    counts = {k: v for k, v in receipt.items() if k not in ("receipt_id", "forgotten_at", "scope")}
    assert forget_entry["counts"] == counts and counts["memories"] == 1
    assert keep not in json.dumps(forget_entry) and "Secret" not in json.dumps(forget_entry)


def test_failed_actions_write_no_entry(client, tenant):
    taken = create_tenant(client).name
    before = newest_id(client)

    assert_problem(client.delete(f"/v1/memories/{uuid.uuid4()}", headers=tenant.headers), 404)
    assert_problem(client.delete("/v1/memories", headers=tenant.headers), 422)  # no scope named
    assert_problem(client.delete(f"/v1/keys/{uuid.uuid4()}", headers=ADMIN), 404)
    assert_problem(client.post(f"/v1/tenants/{uuid.uuid4()}/keys", json={}, headers=ADMIN), 404)
    assert_problem(client.post("/v1/tenants", json={"name": taken}, headers=ADMIN), 409)
    assert_problem(
        client.put(f"/v1/tenants/{uuid.uuid4()}/rate-limit", json={"requests_per_minute": 5}, headers=ADMIN), 404
    )
    assert_problem(
        client.put(f"/v1/tenants/{tenant.id}/rate-limit", json={"requests_per_minute": 0}, headers=ADMIN), 422
    )
    assert_problem(client.put(f"/v1/tenants/{uuid.uuid4()}/search-defaults", json={}, headers=ADMIN), 404)
    assert_problem(
        client.put(f"/v1/tenants/{tenant.id}/storage-profile", json={"profile": "pca50-fp8"}, headers=ADMIN), 409
    )
    assert_problem(client.delete(f"/v1/keys/{tenant.key_id}", headers=tenant.headers), 403)

    assert newest_id(client) == before


def test_the_log_filters_by_tenant_action_and_time_and_pages_newest_first(client):
    ours, theirs = create_tenant(client), create_tenant(client)
    for n in range(1, 6):
        for handle in (ours, theirs):
            limit = {"requests_per_minute": 100 * n}
            assert client.put(f"/v1/tenants/{handle.id}/rate-limit", json=limit, headers=ADMIN).status_code == 200

    everything = entries_of(client, ours.id)
    assert [e["action"] for e in everything] == ["tenant.rate_limit.set"] * 5 + ["key.create", "tenant.create"]
    assert {e["tenant_id"] for e in everything} == {ours.id}

    pages, cursor = [], None
    while True:
        page = audit(client, tenant_id=ours.id, limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append([e["id"] for e in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == [e["id"] for e in everything]
    ids = [i for p in pages for i in p]
    assert ids == sorted(ids, reverse=True)

    limits = entries_of(client, ours.id, action="tenant.rate_limit.set")
    assert [e["target"]["requests_per_minute"] for e in limits] == [500, 400, 300, 200, 100]
    assert entries_of(client, ours.id, action="memories.forget") == []

    third = limits[2]  # the 300 one
    since = entries_of(client, ours.id, since=third["at"])
    assert third["id"] in {e["id"] for e in since}
    assert all(e["at"] >= third["at"] for e in since)
    until = entries_of(client, ours.id, until=third["at"])
    assert third["id"] not in {e["id"] for e in until} and {e["id"] for e in until} | {e["id"] for e in since} == {
        e["id"] for e in everything
    }


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"cursor": "not-a-cursor"}, {"tenant_id": "nope"}, {"since": "yesterday"}],
    ids=["limit-0", "limit-501", "bad-cursor", "bad-tenant", "bad-time"],
)
def test_bad_audit_queries_are_422_problems(client, params):
    assert_problem(client.get("/v1/audit", params=params, headers=ADMIN), 422)


def test_until_before_since_is_a_422_problem(client):
    params = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    assert_problem(client.get("/v1/audit", params=params, headers=ADMIN), 422)


def test_tenant_keys_cannot_read_the_log(client, tenant):
    assert_problem(client.get("/v1/audit", headers=tenant.headers), 403)
    assert_problem(client.get("/v1/audit"), 401)
    assert_problem(client.get("/v1/audit", headers={"Authorization": "Bearer nope"}), 401)


def test_the_service_role_may_add_and_read_entries_but_never_change_or_remove_them(client, database_url, tenant):
    add_memories(client, tenant, {"content": "x"})
    assert client.delete("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers).status_code == 200

    with app_role_connection(database_url) as conn:
        [(entry_id,)] = conn.execute(
            "SELECT id FROM audit_log WHERE tenant_id = %s AND action = 'memories.forget'", (tenant.id,)
        ).fetchall()
        for statement in (
            "UPDATE audit_log SET counts = '{}' WHERE id = %s",
            "DELETE FROM audit_log WHERE id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, (entry_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE audit_log")
        # INSERT is granted (what the service needs), so the refusals above are the grants', not the connection's.
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'test.insert')")
    with owner_connection(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log WHERE id = %s", (entry_id,)).fetchone()[0] == 1


# The SDK exposes the receipt.


@pytest.fixture(scope="module")
def live_admin(settings: Any, database_url: str, embedder: Any) -> Iterator[MemoryClient]:
    server = LiveServer(create_app(settings, database_url, embedder=embedder))
    server.start()
    with MemoryClient(base_url=server.url, api_key=ADMIN_KEY) as admin:
        yield admin
    server.stop()


def test_the_sdk_returns_the_forget_receipt_and_reads_the_log(live_admin: MemoryClient):
    sdk_tenant = new_tenant(live_admin)
    with MemoryClient(base_url=live_admin.base_url, api_key=sdk_tenant.key) as memsvc:
        written = memsvc.memories.add(memories=[{"type": "semantic", "user_id": "alice", "content": "Likes tea."}])
        memsvc.jobs.wait(written.job_id)
        receipt = memsvc.memories.forget(user_id="alice")

    assert receipt.memories == 1 and receipt.receipt_id is not None and receipt.forgotten_at is not None
    assert receipt.scope is not None and receipt.scope.user_id == "alice" and receipt.scope.session_id is None
    page = live_admin.admin.list_audit(tenant_id=sdk_tenant.id, action="memories.forget")
    assert [e.id for e in page.data] == [receipt.receipt_id] and page.next_cursor is None
    assert page.data[0].counts["memories"] == 1
    keys = live_admin.admin.list_keys(sdk_tenant.id)
    assert [k.id for k in keys.data] == [uuid.UUID(sdk_tenant.key_id)]
    assert live_admin.admin.set_rate_limit(sdk_tenant.id, requests_per_minute=60).requests_per_minute == 60
    assert live_admin.admin.get_rate_limit(sdk_tenant.id).requests_per_minute == 60

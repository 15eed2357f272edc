"""Tenant isolation over the whole API: tenant A stores every kind of data; tenant B's key then tries every tenant
route with A's ids, scopes and exact contents. B gets the same 404 for A's ids as for ids that exist nowhere, finds
nothing of A's anywhere, and A's data is byte-for-byte what it was. Every tenant route the app serves must have a
probe here: a new route fails `test_every_tenant_route_has_an_isolation_probe` until one is added."""

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from memsvc.core.deps import require_admin, require_tenant
from tests.conftest import TenantHandle, add_memories, assert_problem, wait_for_job

NDJSON = {"Content-Type": "application/x-ndjson"}
# Distinctive words: any of them in a response to B means A's content leaked.
USER, AGENT, SESSION = "user-quetzal", "agent-quetzal", "session-quetzal"
DIALOGUE = [
    ("Ximena", "I moved to Valparaíso in March for a job at the quetzal observatory."),
    ("Bot", "How is the observatory job going?"),
    ("Ximena", "The telescope shift starts at 9 every night, so I sleep until noon."),
    ("Bot", "Do you like the neighbourhood?"),
    ("Ximena", "Cerro Alegre is lovely, and my brother Tomasz visits every other weekend."),
    ("Bot", "Nice to have family close by."),
]
# B's own history under the same scope names, with nothing in common with A's.
B_DIALOGUE = [
    ("Oskar", "I started learning the cello in Tromsø last autumn."),
    ("Bot", "How are the lessons going?"),
    ("Oskar", "My teacher Ingrid gives me scales every Tuesday."),
    ("Bot", "Scales are the foundation."),
]


@dataclass
class TenantData:
    """Everything tenant A stored, as B could only guess it."""

    ids: list[str]
    job_ids: list[str]
    contents: list[str]
    queries: list[str]  # a fact, a dialogue turn and a consolidated summary: B searches with these exact texts
    idempotency_key: str


@dataclass
class Probe:
    client: TestClient
    a: TenantHandle
    b: TenantHandle
    data: TenantData

    def as_b(self, method: str, url: str, **kwargs: Any) -> Response:
        headers = {**self.b.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def assert_leaks_nothing(self, response: Response) -> None:
        """Neither an id nor a content of A's appears anywhere in the answer."""
        text = response.text
        for leaked in (*self.data.ids, *self.data.job_ids, *self.data.contents):
            assert leaked not in text, f"{leaked!r} of tenant A in {response.request.method} {response.request.url}"

    def assert_same_as_nowhere(self, method: str, template: str, a_id: str, **kwargs: Any) -> None:
        """For A's id, B gets exactly the answer it gets for an id that exists nowhere (the requested id aside)."""
        nowhere = str(uuid.uuid4())
        for_a = self.as_b(method, template.format(id=a_id), **kwargs)
        for_nowhere = self.as_b(method, template.format(id=nowhere), **kwargs)
        assert for_a.status_code == for_nowhere.status_code, (for_a.text, for_nowhere.text)
        assert for_a.headers["content-type"] == for_nowhere.headers["content-type"]
        assert comparable(for_a, a_id) == comparable(for_nowhere, nowhere)


def comparable(response: Response, requested_id: str) -> Any:
    """The answer without what differs per request: the id that was asked for and any request id."""
    body = json.loads(response.text.replace(requested_id, "<id>"))
    if isinstance(body, dict):
        for per_request in ("instance", "request_id"):
            body.pop(per_request, None)
    return body


def memory_ids(response: Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["data"]}


def export_of(client: TestClient, tenant: TenantHandle, **params: Any) -> bytes:
    response = client.get("/v1/export", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.content


def jobs_of(client: TestClient, tenant: TenantHandle) -> list[dict[str, Any]]:
    response = client.get("/v1/jobs", params={"limit": 100}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def new_record(
    client: TestClient, tenant: TenantHandle, memory_id: str, content: str, links: list[tuple[str, str]]
) -> bytes:
    """An NDJSON line for a new memory: the shape of the tenant's first exported record, another id and content."""
    first = json.loads(export_of(client, tenant).splitlines()[0])
    record = {
        **first,
        "id": memory_id,
        "content": content,
        "content_hash": None,
        "embedding": None,
        "versions": [],
        "links": [{"source_id": source, "relation": relation} for source, relation in links],
    }
    return (json.dumps(record) + "\n").encode()


def build_tenant_a(client: TestClient, a: TenantHandle) -> TenantData:
    """Every kind of data: the four memory types, a dialogue session, a PATCHed memory (history), an evidence
    link, an idempotent write, an import, a consolidation run (summaries and facts) and the jobs of all of it."""
    key = "idem-" + uuid.uuid4().hex
    written = client.post(
        "/v1/memories",
        json={
            "memories": [
                {"type": "semantic", "user_id": USER, "content": "Ximena's favourite colour is quetzal green."},
                {
                    "type": "episodic",
                    "user_id": USER,
                    "agent_id": AGENT,
                    "content": "Ximena photographed the Andromeda galaxy from the quetzal observatory.",
                    "occurred_at": "2024-04-02T03:00:00Z",
                    "metadata": {"source": "quetzal-log"},
                },
                {
                    "type": "procedural",
                    "agent_id": AGENT,
                    "title": "Calibrate the quetzal telescope",
                    "trigger": "the quetzal telescope drifts",
                    "content": "Recalibrate the quetzal telescope mount.",
                    "steps": ["park the quetzal mount", "align on Polaris", "save the quetzal offsets"],
                },
            ]
        },
        headers={**a.headers, "Idempotency-Key": key},
    )
    assert written.status_code == 202, written.text
    wait_for_job(client, a, written.json()["job_id"])
    fact, episode, procedure = (r["id"] for r in written.json()["results"])
    [derived] = add_memories(
        client, a, {"user_id": USER, "content": "Ximena stargazes at the quetzal observatory.", "source_ids": [episode]}
    )
    patched = client.patch(
        f"/v1/memories/{fact}",
        json={"content": "Ximena's favourite colour is quetzal teal.", "metadata": {"corrected": True}},
        headers=a.headers,
    )
    assert patched.status_code == 200, patched.text
    wait_for_job(client, a, patched.json()["job_id"])

    turns = client.post(
        f"/v1/sessions/{SESSION}/messages",
        json={
            "user_id": USER,
            "messages": [
                {"role": "user" if speaker == "Ximena" else "assistant", "name": speaker, "content": text}
                for speaker, text in DIALOGUE
            ],
        },
        headers=a.headers,
    )
    assert turns.status_code == 202, turns.text
    wait_for_job(client, a, turns.json()["job_id"])

    imported_id = str(uuid.uuid4())
    record = new_record(client, a, imported_id, "Ximena imported her quetzal star catalogue.", [(episode, "evidence")])
    imported = client.post("/v1/import", content=record, headers={**a.headers, **NDJSON})
    assert imported.status_code == 201, imported.text
    assert imported.json()["imported"] == 1 and imported.json()["links"] == 1
    wait_for_job(client, a, imported.json()["job_id"])

    accepted = client.post("/v1/consolidate", json={"user_id": USER}, headers=a.headers)
    assert accepted.status_code == 202, accepted.text
    wait_for_job(client, a, accepted.json()["job_id"])

    listed = client.get("/v1/memories", params={"limit": 500}, headers=a.headers)
    assert listed.status_code == 200, listed.text
    memories = listed.json()["data"]
    assert {fact, episode, procedure, derived, imported_id} <= {m["id"] for m in memories}
    assert any(m["consolidation_level"] is not None for m in memories), "the consolidation run wrote nothing"
    assert all(m["embedding_status"] == "done" for m in memories)
    return TenantData(
        ids=[m["id"] for m in memories],
        job_ids=[j["id"] for j in jobs_of(client, a)],
        contents=sorted({m["content"] for m in memories}),
        queries=[
            "Ximena's favourite colour is quetzal teal.",
            DIALOGUE[0][1],
            next(m["content"] for m in memories if m["consolidation_level"] is not None),
        ],
        idempotency_key=key,
    )


# One probe per route: what B tries there with A's ids, scopes and contents.


def probe_create_memories(p: Probe) -> None:
    a_id = p.data.ids[0]
    for field in ("source_ids", "supersedes"):
        body = {"memories": [{"type": "semantic", "user_id": USER, "content": "B cites {id}.", field: ["{id}"]}]}
        p.assert_same_as_nowhere("POST", "/v1/memories", a_id, content=json.dumps(body).replace("{id}", a_id))
        unprocessable = p.as_b("POST", "/v1/memories", json=json.loads(json.dumps(body).replace("{id}", a_id)))
        assert_problem(unprocessable, 422)
    # A's exact content in A's scope is new to B (no dedupe across tenants), under an id of B's own.
    same = p.as_b(
        "POST",
        "/v1/memories",
        json={"memories": [{"type": "semantic", "user_id": USER, "content": p.data.contents[0]}]},
    )
    assert same.status_code == 202, same.text
    [result] = same.json()["results"]
    assert result["status"] == "created" and result["id"] not in p.data.ids
    deleted = p.as_b("DELETE", f"/v1/memories/{result['id']}")
    assert deleted.status_code == 204, deleted.text
    # A's Idempotency-Key is just a new key to B: B's own write runs, A's answer is not replayed.
    reused = p.as_b(
        "POST",
        "/v1/memories",
        json={"memories": [{"type": "semantic", "user_id": USER, "content": "B's own fact."}]},
        headers={"Idempotency-Key": p.data.idempotency_key},
    )
    assert reused.status_code == 202, reused.text
    p.assert_leaks_nothing(reused)
    assert reused.json()["created"] == 1


def probe_list_memories(p: Probe) -> None:
    for params in (
        {},
        {"user_id": USER},
        {"agent_id": AGENT},
        {"session_id": SESSION},
        {"type": ["semantic", "episodic", "procedural", "dialogue"]},
        {"metadata": json.dumps({"source": "quetzal-log"})},
        {"order": "asc", "occurred_after": "2000-01-01T00:00:00Z"},
    ):
        listed = p.as_b("GET", "/v1/memories", params={"limit": 500, **params})
        assert listed.status_code == 200, listed.text
        p.assert_leaks_nothing(listed)


def probe_forget(p: Probe) -> None:
    for scope in ({"user_id": USER}, {"agent_id": AGENT}, {"session_id": SESSION}):
        own = memory_ids(p.as_b("GET", "/v1/memories", params={"limit": 500, **scope}))
        report = p.as_b("DELETE", "/v1/memories", params=scope)
        assert report.status_code == 200, report.text
        assert report.json()["memories"] == len(own), "B's forget counted more than B's own memories"


def probe_append_messages(p: Probe) -> None:
    appended = p.as_b(
        "POST",
        f"/v1/sessions/{SESSION}/messages",
        json={"user_id": USER, "messages": [{"role": "user", "content": "B's first turn in a session of that name."}]},
    )
    assert appended.status_code == 202, appended.text
    p.assert_leaks_nothing(appended)
    wait_for_job(p.client, p.b, appended.json()["job_id"])
    [turn] = p.as_b("GET", f"/v1/sessions/{SESSION}/messages").json()["data"]
    # Numbered from 0: B's turn order does not reveal how many turns A's session of that name holds.
    assert turn["turn_index"] == 0


def probe_list_messages(p: Probe) -> None:
    listed = p.as_b("GET", f"/v1/sessions/{SESSION}/messages", params={"limit": 500})
    assert listed.status_code == 200, listed.text
    p.assert_leaks_nothing(listed)


def probe_get_memory(p: Probe) -> None:
    for a_id in p.data.ids:
        p.assert_same_as_nowhere("GET", "/v1/memories/{id}", a_id)


def probe_update_memory(p: Probe) -> None:
    for a_id in p.data.ids:
        p.assert_same_as_nowhere("PATCH", "/v1/memories/{id}", a_id, json={"content": "Overwritten by B."})
        p.assert_same_as_nowhere("PATCH", "/v1/memories/{id}", a_id, json={"metadata": {"by": "B"}})


def probe_delete_memory(p: Probe) -> None:
    for a_id in p.data.ids:
        p.assert_same_as_nowhere("DELETE", "/v1/memories/{id}", a_id)


def probe_history(p: Probe) -> None:
    for a_id in p.data.ids:
        p.assert_same_as_nowhere("GET", "/v1/memories/{id}/history", a_id)


def probe_list_jobs(p: Probe) -> None:
    for params in ({}, {"kind": "embed"}, {"kind": "consolidate"}, {"status": "done"}):
        listed = p.as_b("GET", "/v1/jobs", params={"limit": 100, **params})
        assert listed.status_code == 200, listed.text
        p.assert_leaks_nothing(listed)


def probe_get_job(p: Probe) -> None:
    for job_id in p.data.job_ids:
        p.assert_same_as_nowhere("GET", "/v1/jobs/{id}", job_id)


def probe_search(p: Probe) -> None:
    # B holds memories of its own in A's scopes, so each search has something to return.
    add_memories(
        p.client,
        p.b,
        {"user_id": USER, "agent_id": AGENT, "content": "B's own note about an observatory."},
        {"type": "dialogue", "user_id": USER, "session_id": SESSION, "content": "B talks about telescopes."},
    )
    for query in p.data.queries:
        for mode in ("dense", "lexical", "hybrid"):
            for extra in (
                {},
                {"user_id": USER},
                {"expand": ["evidence"], "hierarchy": "evidence", "context_window": 3},
            ):
                found = p.as_b("POST", "/v1/search", json={"query": query, "mode": mode, "top_k": 100, **extra})
                assert found.status_code == 200, found.text
                p.assert_leaks_nothing(found)
                if mode == "dense":  # nearest neighbours always exist: B's own memories are searched
                    assert found.json()["hits"], found.text


def probe_consolidate(p: Probe) -> None:
    own = add_memories(
        p.client,
        p.b,
        *[
            {"type": "dialogue", "user_id": USER, "session_id": SESSION, "speaker": s, "content": t}
            for s, t in B_DIALOGUE
        ],
    )
    accepted = p.as_b("POST", "/v1/consolidate", json={"user_id": USER})
    assert accepted.status_code == 202, accepted.text
    job = wait_for_job(p.client, p.b, accepted.json()["job_id"])
    p.assert_leaks_nothing(p.as_b("GET", f"/v1/jobs/{job['id']}"))
    written = p.as_b("GET", "/v1/memories", params={"user_id": USER, "limit": 500})
    p.assert_leaks_nothing(written)
    b_ids = {m["id"] for m in written.json()["data"]}
    consolidated = [m for m in written.json()["data"] if m["consolidation_level"] is not None]
    assert consolidated, "B's consolidation wrote nothing to check"
    for memory in consolidated:
        assert set(memory["source_ids"]) <= b_ids, "B's summary cites memories that are not B's"
    assert set(own) <= b_ids


def probe_export(p: Probe) -> None:
    for params in ({}, {"user_id": USER}, {"agent_id": AGENT}, {"session_id": SESSION}, {"type": "semantic"}):
        exported = p.as_b("GET", "/v1/export", params=params)
        assert exported.status_code == 200, exported.text
        p.assert_leaks_nothing(exported)


def probe_import(p: Probe) -> None:
    # A's whole export under B's key: whatever happens, nothing lands on A's rows and B gets none of A's ids.
    a_export = export_of(p.client, p.a)
    imported = p.as_b("POST", "/v1/import", content=a_export, headers=NDJSON)
    assert imported.status_code == 201, imported.text
    wait_for_job(p.client, p.b, imported.json()["job_id"])
    b_export = export_of(p.client, p.b)
    assert not {json.loads(line)["id"] for line in b_export.splitlines()} & set(p.data.ids)
    # A record of B's own citing A's memories: the links are not restored (they would attach B's row to A's).
    own = str(uuid.uuid4())
    links = [(a_id, relation) for a_id in p.data.ids for relation in ("evidence", "supersedes")]
    record = new_record(p.client, p.b, own, "B's record citing memories it does not hold.", links)
    cited = p.as_b("POST", "/v1/import", content=record, headers=NDJSON)
    assert cited.status_code == 201, cited.text
    assert cited.json()["imported"] == 1 and cited.json()["links"] == 0
    restored = p.as_b("GET", f"/v1/memories/{own}")
    assert restored.status_code == 200 and restored.json()["source_ids"] == [], restored.text
    # Whatever B imported is B's to remove; A's own memories are not deleted with it.
    for scope in ({"user_id": USER}, {"agent_id": AGENT}, {"session_id": SESSION}):
        assert p.as_b("DELETE", "/v1/memories", params=scope).status_code == 200


PROBES: dict[tuple[str, str], Callable[[Probe], None]] = {
    ("POST", "/v1/memories"): probe_create_memories,
    ("GET", "/v1/memories"): probe_list_memories,
    ("POST", "/v1/sessions/{session_id:path}/messages"): probe_append_messages,
    ("GET", "/v1/sessions/{session_id:path}/messages"): probe_list_messages,
    ("GET", "/v1/memories/{memory_id}"): probe_get_memory,
    ("PATCH", "/v1/memories/{memory_id}"): probe_update_memory,
    ("DELETE", "/v1/memories/{memory_id}"): probe_delete_memory,
    ("GET", "/v1/memories/{memory_id}/history"): probe_history,
    ("GET", "/v1/jobs"): probe_list_jobs,
    ("GET", "/v1/jobs/{job_id}"): probe_get_job,
    ("POST", "/v1/search"): probe_search,
    ("POST", "/v1/consolidate"): probe_consolidate,
    ("GET", "/v1/export"): probe_export,
    ("POST", "/v1/import"): probe_import,
    # Last: it deletes what B wrote in A's scope names, so the probes above each had B's data alongside.
    ("DELETE", "/v1/memories"): probe_forget,
}
# Routes that no tenant key can use: health checks, metrics, the API documents. Admin routes (tag `admin`, the
# admin key) are tested in tests/tenants/test_admin.py.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}


def depends_on(dependant: Dependant, function: Callable[..., Any]) -> bool:
    return dependant.call is function or any(depends_on(d, function) for d in dependant.dependencies)


def served_routes(client: TestClient) -> Iterator[tuple[str, str, APIRoute | None]]:
    """(method, path template, the route when it is an API route) for everything the app routes."""
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        for method in sorted((context.methods or set()) - {"HEAD"}):
            yield method, str(context.path), route if isinstance(route, APIRoute) else None


def test_every_tenant_route_has_an_isolation_probe(client):
    tenant_routes, unclassified = set(), set()
    for method, path, route in served_routes(client):
        if route is not None and depends_on(route.dependant, require_tenant):
            tenant_routes.add((method, path))
        elif route is not None and "admin" in route.tags:
            assert depends_on(route.dependant, require_admin), f"{method} {path} is tagged admin but takes any key"
        elif (method, path) not in PUBLIC:
            unclassified.add((method, path))

    assert tenant_routes - set(PROBES) == set(), "tenant routes without an isolation probe: add one to PROBES"
    assert set(PROBES) - tenant_routes == set(), "probes for routes the app no longer serves as tenant routes"
    assert unclassified == set(), "routes that are neither tenant, admin nor public: classify them here"


def test_another_tenants_key_reaches_nothing_of_a_tenant_on_any_route(client, tenant, other_tenant):
    data = build_tenant_a(client, tenant)
    before = export_of(client, tenant)
    jobs_before = jobs_of(client, tenant)
    session_before = client.get(f"/v1/sessions/{SESSION}/messages", params={"limit": 500}, headers=tenant.headers)
    assert session_before.status_code == 200 and session_before.json()["count"] == len(DIALOGUE)

    probe = Probe(client, a=tenant, b=other_tenant, data=data)
    for run in PROBES.values():
        run(probe)

    assert export_of(client, tenant) == before
    assert jobs_of(client, tenant) == jobs_before
    session_after = client.get(f"/v1/sessions/{SESSION}/messages", params={"limit": 500}, headers=tenant.headers)
    assert session_after.json() == session_before.json()
    for memory_id in data.ids:
        assert client.get(f"/v1/memories/{memory_id}", headers=tenant.headers).status_code == 200

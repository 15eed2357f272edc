"""DELETE /v1/memories?user_id=... (forget a scope): memories, what was derived from them, links and history."""

import uuid

from tests.conftest import add_memories, assert_problem


def forget(client, tenant, **scope):
    return client.delete("/v1/memories", params=scope, headers=tenant.headers)


def counts(response):
    """The receipt's counts, without its id, time and scope (tests/audit checks those)."""
    kept = ("memories", "derived", "links", "versions", "recall_projections")
    return {name: value for name, value in response.json().items() if name in kept}


def listed_ids(client, tenant, **params):
    response = client.get("/v1/memories", params={"limit": 500, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["data"]}


def search_ids(client, tenant, query, **scope):
    response = client.post("/v1/search", json={"query": query, "top_k": 100, **scope}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return {h["memory"]["id"] for h in response.json()["hits"]}


def status_of(client, tenant, memory_id):
    return client.get(f"/v1/memories/{memory_id}", headers=tenant.headers).status_code


def test_forget_user_removes_their_memories_and_keeps_other_users(client, tenant):
    u1 = add_memories(
        client,
        tenant,
        {"content": "Alice is allergic to peanuts."},
        {"type": "episodic", "content": "Alice went hiking."},
        {"type": "dialogue", "content": "I love peanuts", "session_id": "s1", "role": "user"},
    )
    u2 = add_memories(
        client,
        tenant,
        {"content": "Bob is allergic to peanuts.", "user_id": "u2"},
        {"type": "episodic", "content": "Bob went hiking.", "user_id": "u2"},
    )
    response = forget(client, tenant, user_id="u1")
    assert response.status_code == 200, response.text
    assert counts(response) == {"memories": 3, "derived": 0, "links": 0, "versions": 3, "recall_projections": 0}

    assert listed_ids(client, tenant, user_id="u1") == set()
    assert listed_ids(client, tenant, session_id="s1") == set()
    assert search_ids(client, tenant, "peanut allergy", user_id="u1") == set()
    assert search_ids(client, tenant, "hiking") == set(u2)
    assert listed_ids(client, tenant, user_id="u2") == set(u2)
    assert search_ids(client, tenant, "peanut allergy", user_id="u2") == set(u2)
    assert all(status_of(client, tenant, i) == 404 for i in u1)
    assert all(status_of(client, tenant, i) == 200 for i in u2)


def test_forget_counts_links_and_versions(client, tenant):
    a, b = add_memories(client, tenant, {"content": "a"}, {"content": "b"})
    (summary,) = add_memories(client, tenant, {"content": "a and b", "source_ids": [a, b]})
    patched = client.patch(f"/v1/memories/{b}", json={"content": "b, corrected"}, headers=tenant.headers)
    assert patched.status_code == 200
    response = forget(client, tenant, user_id="u1")
    assert counts(response) == {"memories": 3, "derived": 0, "links": 2, "versions": 4, "recall_projections": 0}
    assert all(status_of(client, tenant, i) == 404 for i in (a, b, summary))


def test_forget_deletes_memories_derived_from_the_scope_in_other_scopes(client, tenant):
    (source,) = add_memories(client, tenant, {"content": "Alice said her PIN is 1234."})
    (unrelated_u2,) = add_memories(client, tenant, {"content": "Bob likes chess.", "user_id": "u2"})
    (derived_u2,) = add_memories(
        client, tenant, {"content": "Someone's PIN is 1234.", "user_id": "u2", "source_ids": [source]}
    )
    (derived_agent,) = add_memories(
        client,
        tenant,
        {"content": "Users share PINs.", "user_id": None, "agent_id": "a1", "source_ids": [derived_u2, unrelated_u2]},
    )
    response = forget(client, tenant, user_id="u1")
    assert response.status_code == 200, response.text
    assert counts(response) == {"memories": 3, "derived": 2, "links": 3, "versions": 3, "recall_projections": 0}

    for gone in (source, derived_u2, derived_agent):
        assert status_of(client, tenant, gone) == 404
    assert listed_ids(client, tenant) == {unrelated_u2}
    assert search_ids(client, tenant, "PIN 1234") == {unrelated_u2}


def test_forget_keeps_the_sources_of_forgotten_memories(client, tenant):
    """Forgetting flows from sources to what was derived from them, never back up to evidence in other scopes."""
    (elsewhere,) = add_memories(
        client, tenant, {"content": "Team note about Alice.", "user_id": None, "agent_id": "a1"}
    )
    (mine,) = add_memories(client, tenant, {"content": "Alice is on the team.", "source_ids": [elsewhere]})
    response = forget(client, tenant, user_id="u1")
    assert counts(response) == {"memories": 1, "derived": 0, "links": 1, "versions": 1, "recall_projections": 0}
    assert status_of(client, tenant, mine) == 404
    assert status_of(client, tenant, elsewhere) == 200


def test_forget_by_agent_and_by_session(client, tenant):
    (agent_memory,) = add_memories(client, tenant, {"content": "agent note", "user_id": None, "agent_id": "a1"})
    turns = add_memories(
        client,
        tenant,
        {"type": "dialogue", "content": "hi", "session_id": "s1", "role": "user"},
        {"type": "dialogue", "content": "hello", "session_id": "s1", "role": "assistant"},
    )
    (kept,) = add_memories(client, tenant, {"content": "plain fact"})

    assert forget(client, tenant, session_id="s1").json()["memories"] == 2
    assert all(status_of(client, tenant, t) == 404 for t in turns)
    assert forget(client, tenant, agent_id="a1").json()["memories"] == 1
    assert status_of(client, tenant, agent_memory) == 404
    assert listed_ids(client, tenant) == {kept}


def test_forget_with_two_scope_fields_deletes_only_their_intersection(client, tenant):
    (both,) = add_memories(client, tenant, {"content": "u1 with a1", "agent_id": "a1"})
    (only_user,) = add_memories(client, tenant, {"content": "u1 alone"})
    (only_agent,) = add_memories(client, tenant, {"content": "a1 alone", "user_id": None, "agent_id": "a1"})
    assert forget(client, tenant, user_id="u1", agent_id="a1").json()["memories"] == 1
    assert listed_ids(client, tenant) == {only_user, only_agent}
    assert status_of(client, tenant, both) == 404


def test_forget_without_scope_is_422_and_deletes_nothing(client, tenant):
    ids = add_memories(client, tenant, {"content": "a"}, {"content": "b", "user_id": "u2"})
    assert_problem(forget(client, tenant), 422)
    assert_problem(forget(client, tenant, user_id=""), 422)
    assert listed_ids(client, tenant) == set(ids)


def test_forget_of_unknown_scope_reports_zero(client, tenant):
    (kept,) = add_memories(client, tenant, {"content": "a"})
    response = forget(client, tenant, user_id="nobody")
    assert response.status_code == 200
    assert counts(response) == {"memories": 0, "derived": 0, "links": 0, "versions": 0, "recall_projections": 0}
    assert listed_ids(client, tenant) == {kept}


def test_forget_in_another_tenant_deletes_nothing_of_ours(client, tenant, other_tenant):
    ours = add_memories(client, tenant, {"content": "our u1 fact"}, {"content": "our u1 event", "type": "episodic"})
    (theirs,) = add_memories(client, other_tenant, {"content": "their u1 fact"})
    response = forget(client, other_tenant, user_id="u1")
    assert counts(response) == {"memories": 1, "derived": 0, "links": 0, "versions": 1, "recall_projections": 0}
    assert listed_ids(client, tenant, user_id="u1") == set(ours)
    assert search_ids(client, tenant, "fact", user_id="u1") == set(ours)
    assert status_of(client, other_tenant, theirs) == 404


def test_forget_twice_reports_zero_the_second_time(client, tenant):
    add_memories(client, tenant, {"content": "a"})
    assert forget(client, tenant, user_id="u1").json()["memories"] == 1
    assert counts(forget(client, tenant, user_id="u1")) == {
        "memories": 0,
        "derived": 0,
        "links": 0,
        "versions": 0,
        "recall_projections": 0,
    }


def test_forgotten_content_can_be_written_again_as_new(client, tenant):
    (old,) = add_memories(client, tenant, {"content": "remember me"})
    forget(client, tenant, user_id="u1")
    response = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "content": "remember me", "user_id": "u1"}]},
        headers=tenant.headers,
    )
    result = response.json()["results"][0]
    assert result["status"] == "created" and result["id"] != old
    history = client.get(f"/v1/memories/{result['id']}/history", headers=tenant.headers).json()
    assert history["count"] == 1


def test_forgotten_memory_cannot_be_used_as_a_source(client, tenant):
    (old,) = add_memories(client, tenant, {"content": "gone soon"})
    forget(client, tenant, user_id="u1")
    response = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "content": "derived", "user_id": "u2", "source_ids": [old]}]},
        headers=tenant.headers,
    )
    assert_problem(response, 422)
    assert listed_ids(client, tenant) == set()


def test_forget_matches_the_scope_id_exactly(client, tenant):
    scope = "user-" + uuid.uuid4().hex
    (mine,) = add_memories(client, tenant, {"content": "scoped", "user_id": scope})
    (prefix_user,) = add_memories(client, tenant, {"content": "scoped", "user_id": scope[:-1]})
    assert forget(client, tenant, user_id=scope).json()["memories"] == 1
    assert listed_ids(client, tenant) == {prefix_user}
    assert status_of(client, tenant, mine) == 404

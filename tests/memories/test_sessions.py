"""POST/GET /v1/sessions/{session_id}/messages: dialogue turns in order."""

import uuid
from datetime import UTC, datetime

from tests.conftest import add_memories, assert_problem, wait_for_job


def append(client, tenant, session_id, messages, headers=None, **scope):
    return client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"messages": messages, **scope},
        headers={**tenant.headers, **(headers or {})},
    )


def messages(client, tenant, session_id, **params):
    response = client.get(f"/v1/sessions/{session_id}/messages", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def get(client, tenant, memory_id):
    response = client.get(f"/v1/memories/{memory_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def all_memories(client, tenant):
    response = client.get("/v1/memories", params={"limit": 500}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


CONVERSATION = [
    {"role": "user", "name": "Alice", "content": "Hi, I need help with my order."},
    {"role": "assistant", "name": "Bot", "content": "Sure, what is the order number?"},
    {"role": "user", "name": "Alice", "content": "It is 4711."},
]


def test_append_stores_turns_as_dialogue_memories(client, tenant):
    response = append(client, tenant, "s1", CONVERSATION, user_id="u1", agent_id="support")
    assert response.status_code == 202, response.text
    wait_for_job(client, tenant, response.json()["job_id"])
    body = response.json()
    assert body["created"] == 3 and body["duplicates"] == 0
    assert [r["status"] for r in body["results"]] == ["created"] * 3
    stored = [get(client, tenant, r["id"]) for r in body["results"]]
    assert [m["turn_index"] for m in stored] == [0, 1, 2]
    assert [m["content"] for m in stored] == [m["content"] for m in CONVERSATION]
    assert [m["role"] for m in stored] == ["user", "assistant", "user"]
    assert [m["speaker"] for m in stored] == ["Alice", "Bot", "Alice"]
    for memory in stored:
        assert memory["type"] == "dialogue"
        assert (memory["session_id"], memory["user_id"], memory["agent_id"]) == ("s1", "u1", "support")
        assert memory["embedding_status"] == "done" and memory["version"] == 1


def test_second_append_continues_the_turn_order(client, tenant):
    append(client, tenant, "s1", CONVERSATION, user_id="u1")
    response = append(
        client,
        tenant,
        "s1",
        [{"role": "assistant", "content": "Found it."}, {"role": "user", "content": "Thanks!"}],
        user_id="u1",
    )
    assert response.status_code == 202, response.text
    stored = [get(client, tenant, r["id"]) for r in response.json()["results"]]
    assert [m["turn_index"] for m in stored] == [3, 4]
    assert [m["speaker"] for m in stored] == [None, None]
    listed = messages(client, tenant, "s1")
    assert [m["turn_index"] for m in listed["data"]] == [0, 1, 2, 3, 4]
    assert listed["data"][-1]["content"] == "Thanks!"


def test_turn_order_is_per_session_and_per_tenant(client, tenant, other_tenant):
    append(client, tenant, "s1", CONVERSATION)
    other_session = append(client, tenant, "s2", [{"role": "user", "content": "new chat"}])
    other_tenants = append(client, other_tenant, "s1", [{"role": "user", "content": "their chat"}])
    assert get(client, tenant, other_session.json()["results"][0]["id"])["turn_index"] == 0
    assert get(client, other_tenant, other_tenants.json()["results"][0]["id"])["turn_index"] == 0
    assert [m["content"] for m in messages(client, other_tenant, "s1")["data"]] == ["their chat"]
    assert len(messages(client, tenant, "s1")["data"]) == 3


def test_turns_written_through_memories_endpoint_share_the_session_order(client, tenant):
    append(client, tenant, "s1", CONVERSATION[:2])
    add_memories(client, tenant, {"type": "dialogue", "content": "direct turn", "session_id": "s1", "role": "user"})
    response = append(client, tenant, "s1", [{"role": "assistant", "content": "after the direct one"}])
    assert get(client, tenant, response.json()["results"][0]["id"])["turn_index"] == 3
    listed = messages(client, tenant, "s1")["data"]
    assert [m["content"] for m in listed] == [
        *(m["content"] for m in CONVERSATION[:2]),
        "direct turn",
        "after the direct one",
    ]


def test_repeated_identical_messages_are_separate_turns(client, tenant):
    response = append(client, tenant, "s1", [{"role": "user", "content": "ok"}] * 3)
    assert response.json()["created"] == 3
    assert [m["turn_index"] for m in messages(client, tenant, "s1")["data"]] == [0, 1, 2]


def test_resent_message_with_same_timestamp_is_a_duplicate(client, tenant):
    message = {"role": "user", "name": "Alice", "content": "ok", "timestamp": "2024-05-01T09:00:00Z"}
    first = append(client, tenant, "s1", [message], user_id="u1").json()
    again = append(client, tenant, "s1", [message, {"role": "assistant", "content": "next"}], user_id="u1").json()
    assert again["results"][0] == {"id": first["results"][0]["id"], "status": "duplicate"}
    assert again["results"][1]["status"] == "created"
    assert again["created"] == 1 and again["duplicates"] == 1
    listed = messages(client, tenant, "s1")["data"]
    assert [(m["content"], m["turn_index"]) for m in listed] == [("ok", 0), ("next", 1)]


def test_message_timestamp_becomes_the_event_time(client, tenant):
    response = append(
        client, tenant, "s1", [{"role": "user", "content": "hi", "timestamp": "2024-05-01T11:00:00+02:00"}]
    )
    memory = get(client, tenant, response.json()["results"][0]["id"])
    assert datetime.fromisoformat(memory["occurred_at"].replace("Z", "+00:00")) == datetime(2024, 5, 1, 9, tzinfo=UTC)


def test_message_metadata_is_kept(client, tenant):
    response = append(client, tenant, "s1", [{"role": "tool", "content": "42", "metadata": {"tool": "calc"}}])
    memory = get(client, tenant, response.json()["results"][0]["id"])
    assert memory["metadata"] == {"tool": "calc"} and memory["role"] == "tool"


def test_all_roles_are_accepted(client, tenant):
    roles = ["user", "assistant", "system", "tool"]
    response = append(client, tenant, "s1", [{"role": r, "content": f"{r} says"} for r in roles])
    assert response.status_code == 202, response.text
    assert [m["role"] for m in messages(client, tenant, "s1")["data"]] == roles


def test_bad_role_is_422_and_nothing_is_stored(client, tenant):
    for role in ["wizard", "", None, "USER"]:
        response = append(client, tenant, "s1", [{"role": "user", "content": "fine"}, {"role": role, "content": "x"}])
        assert_problem(response, 422)
    assert_problem(append(client, tenant, "s1", [{"content": "no role"}]), 422)
    assert all_memories(client, tenant) == []


def test_invalid_messages_are_422_and_nothing_is_stored(client, tenant):
    bad_bodies = [
        {"messages": []},
        {},
        {"messages": [{"role": "user", "content": "  "}]},
        {"messages": [{"role": "user", "content": "x" * (32 * 1024 + 1)}]},
        {"messages": [{"role": "user", "content": "x", "extra": 1}]},
        {"messages": [{"role": "user", "content": "x"}], "session_id": "s2"},
        {"messages": [{"role": "user", "content": "x", "timestamp": "now-ish"}]},
        {"messages": [{"role": "user", "content": "x"}], "user_id": ""},
        {"messages": [{"role": "user", "content": "x"}] * 1001},
    ]
    for body in bad_bodies:
        response = client.post("/v1/sessions/s1/messages", json=body, headers=tenant.headers)
        assert_problem(response, 422)
    assert all_memories(client, tenant) == []


def test_malformed_json_is_400(client, tenant):
    response = client.post(
        "/v1/sessions/s1/messages",
        content=b'{"messages": [',
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert all_memories(client, tenant) == []


def test_list_messages_paginates_in_turn_order(client, tenant):
    contents = [f"turn {i}" for i in range(5)]
    append(client, tenant, "s1", [{"role": "user", "content": c} for c in contents[:3]])
    append(client, tenant, "s1", [{"role": "assistant", "content": c} for c in contents[3:]])
    seen, cursor = [], None
    for expected_count in (2, 2, 1):
        page = messages(client, tenant, "s1", limit=2, **({"cursor": cursor} if cursor else {}))
        assert page["count"] == expected_count
        seen += page["data"]
        cursor = page["next_cursor"]
    assert cursor is None
    assert [m["content"] for m in seen] == contents
    assert [m["turn_index"] for m in seen] == [0, 1, 2, 3, 4]


def test_list_messages_shows_only_dialogue_of_that_session(client, tenant):
    append(client, tenant, "s1", CONVERSATION)
    append(client, tenant, "s2", [{"role": "user", "content": "another session"}])
    add_memories(client, tenant, {"type": "semantic", "content": "a fact about s1", "session_id": "s1"})
    listed = messages(client, tenant, "s1")
    assert listed["count"] == 3
    assert {m["type"] for m in listed["data"]} == {"dialogue"}
    assert {m["session_id"] for m in listed["data"]} == {"s1"}


def test_list_messages_of_unknown_session_is_empty(client, tenant):
    assert messages(client, tenant, "never-used-" + uuid.uuid4().hex) == {"data": [], "count": 0, "next_cursor": None}


def test_list_messages_rejects_bad_paging(client, tenant):
    for params in ({"limit": 0}, {"limit": 501}, {"cursor": "bogus"}):
        response = client.get("/v1/sessions/s1/messages", params=params, headers=tenant.headers)
        assert_problem(response, 422)


def test_append_with_idempotency_key_stores_turns_once(client, tenant):
    key = {"Idempotency-Key": "append-" + uuid.uuid4().hex}
    first = append(client, tenant, "s1", CONVERSATION, headers=key)
    second = append(client, tenant, "s1", CONVERSATION, headers=key)
    assert first.status_code == 202 and second.status_code == 202
    assert second.json() == first.json()
    assert messages(client, tenant, "s1")["count"] == 3
    other_session = append(client, tenant, "s2", CONVERSATION, headers=key)
    assert_problem(other_session, 422)
    assert messages(client, tenant, "s2")["count"] == 0


def test_appended_turns_are_searchable_within_their_session(client, tenant):
    first = append(client, tenant, "s1", CONVERSATION, user_id="u1").json()
    ids = [r["id"] for r in first["results"]]
    later = append(client, tenant, "s2", [{"role": "user", "content": "My order 4711 is late."}], user_id="u1").json()
    for job_id in (first["job_id"], later["job_id"]):  # dense search covers every turn once embedded
        wait_for_job(client, tenant, job_id)
    response = client.post("/v1/search", json={"query": "order number", "session_id": "s1"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert sorted(h["memory"]["id"] for h in response.json()["hits"]) == sorted(ids)

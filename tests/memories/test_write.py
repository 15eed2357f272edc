"""POST /v1/memories: the four memory types, dedupe, validation, Idempotency-Key, evidence links, supersedes."""

import uuid
from datetime import UTC, datetime, timedelta

from tests.conftest import add_memories, assert_problem, wait_for_job


def post(client, tenant, *items, headers=None):
    return client.post("/v1/memories", json={"memories": list(items)}, headers={**tenant.headers, **(headers or {})})


def get(client, tenant, memory_id):
    response = client.get(f"/v1/memories/{memory_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def all_memories(client, tenant, **params):
    response = client.get("/v1/memories", params={"limit": 500, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def assert_nothing_stored(client, tenant):
    assert all_memories(client, tenant) == []


def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# --- the four types -------------------------------------------------------------------------------------------


def test_episodic_memory_is_stored_with_its_event_time(client, tenant):
    occurred = "2024-03-05T10:30:00+02:00"
    response = post(
        client,
        tenant,
        {"type": "episodic", "content": "Alice visited Lisbon.", "user_id": "u1", "occurred_at": occurred},
    )
    assert response.status_code == 202, response.text
    wait_for_job(client, tenant, response.json()["job_id"])
    body = response.json()
    assert body["created"] == 1 and body["duplicates"] == 0
    assert [r["status"] for r in body["results"]] == ["created"]
    memory = get(client, tenant, body["results"][0]["id"])
    assert memory["id"] == body["results"][0]["id"]
    assert memory["type"] == "episodic"
    assert memory["content"] == "Alice visited Lisbon."
    assert memory["user_id"] == "u1" and memory["agent_id"] is None and memory["session_id"] is None
    assert parse(memory["occurred_at"]) == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert memory["version"] == 1
    assert memory["embedding_status"] == "done"
    assert memory["embedding_model"]
    assert memory["source_ids"] == []


def test_naive_occurred_at_is_taken_as_utc(client, tenant):
    (memory_id,) = add_memories(
        client, tenant, {"type": "episodic", "content": "x", "occurred_at": "2024-01-01T12:00:00"}
    )
    assert parse(get(client, tenant, memory_id)["occurred_at"]) == datetime(2024, 1, 1, 12, tzinfo=UTC)


def test_occurred_at_defaults_to_now(client, tenant):
    before = datetime.now(UTC) - timedelta(seconds=5)
    (memory_id,) = add_memories(client, tenant, {"content": "no event time given"})
    occurred = parse(get(client, tenant, memory_id)["occurred_at"])
    assert before <= occurred <= datetime.now(UTC) + timedelta(seconds=5)


def test_semantic_memory_keeps_its_metadata_and_scope(client, tenant):
    metadata = {"source": "intake", "confidence": 0.9, "tags": ["food", "health"], "nested": {"a": 1}}
    response = post(
        client,
        tenant,
        {
            "type": "semantic",
            "content": "Alice is allergic to peanuts.",
            "user_id": "u1",
            "agent_id": "a1",
            "metadata": metadata,
        },
    )
    assert response.status_code == 202, response.text
    wait_for_job(client, tenant, response.json()["job_id"])
    memory = get(client, tenant, response.json()["results"][0]["id"])
    assert memory["type"] == "semantic"
    assert memory["metadata"] == metadata
    assert memory["user_id"] == "u1" and memory["agent_id"] == "a1"
    assert memory["version"] == 1
    assert memory["embedding_status"] == "done" and memory["embedding_model"]


def test_procedural_memory_keeps_title_steps_and_trigger(client, tenant):
    steps = ["Open the settings page", "Click 'Reset password'", "Follow the emailed link"]
    response = post(
        client,
        tenant,
        {
            "type": "procedural",
            "content": "How to reset a password.",
            "agent_id": "support-bot",
            "title": "Password reset",
            "steps": steps,
            "trigger": "A user cannot log in",
        },
    )
    assert response.status_code == 202, response.text
    wait_for_job(client, tenant, response.json()["job_id"])
    memory = get(client, tenant, response.json()["results"][0]["id"])
    assert memory["type"] == "procedural"
    assert memory["content"] == "How to reset a password."
    assert memory["title"] == "Password reset"
    assert memory["steps"] == steps
    assert memory["trigger"] == "A user cannot log in"
    assert memory["agent_id"] == "support-bot" and memory["user_id"] is None
    assert memory["turn_index"] is None
    assert memory["embedding_status"] == "done" and memory["version"] == 1


def test_dialogue_memory_gets_a_turn_index_in_its_session(client, tenant):
    response = post(
        client,
        tenant,
        {"type": "dialogue", "content": "Hi there", "session_id": "s1", "role": "user", "speaker": "Alice"},
        {"type": "dialogue", "content": "Hello Alice", "session_id": "s1", "role": "assistant", "speaker": "Bot"},
    )
    assert response.status_code == 202, response.text
    wait_for_job(client, tenant, response.json()["job_id"])
    body = response.json()
    assert body["created"] == 2 and body["duplicates"] == 0
    first, second = (get(client, tenant, r["id"]) for r in body["results"])
    assert first["type"] == "dialogue" and first["session_id"] == "s1"
    assert (first["turn_index"], first["role"], first["speaker"]) == (0, "user", "Alice")
    assert (second["turn_index"], second["role"], second["speaker"]) == (1, "assistant", "Bot")
    assert first["embedding_status"] == "done" and first["version"] == 1


def test_content_is_stored_exactly_as_written(client, tenant):
    content = "  Zoë prefers 日本語 — and emoji 🎉\nsecond line\t "
    (memory_id,) = add_memories(client, tenant, {"content": content})
    assert get(client, tenant, memory_id)["content"] == content


def test_batch_results_are_in_submission_order(client, tenant):
    contents = [f"fact number {i}" for i in range(5)]
    response = post(client, tenant, *({"type": "semantic", "content": c, "user_id": "u1"} for c in contents))
    assert response.status_code == 202, response.text
    ids = [r["id"] for r in response.json()["results"]]
    assert len(set(ids)) == 5
    assert [get(client, tenant, i)["content"] for i in ids] == contents


# --- dedupe ---------------------------------------------------------------------------------------------------


def test_exact_duplicate_in_same_scope_returns_existing_id(client, tenant):
    item = {"type": "semantic", "content": "Bob likes tea.", "user_id": "u1"}
    first = post(client, tenant, item).json()
    second = post(client, tenant, item)
    assert second.status_code == 202, second.text
    body = second.json()
    assert body["results"] == [{"id": first["results"][0]["id"], "status": "duplicate"}]
    assert body["created"] == 0 and body["duplicates"] == 1
    assert len(all_memories(client, tenant)) == 1


def test_duplicate_inside_one_batch_is_stored_once(client, tenant):
    item = {"type": "semantic", "content": "Bob likes tea.", "user_id": "u1"}
    other = {"type": "semantic", "content": "Bob likes coffee.", "user_id": "u1"}
    response = post(client, tenant, item, other, item)
    assert response.status_code == 202, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["created", "created", "duplicate"]
    assert body["results"][2]["id"] == body["results"][0]["id"]
    assert body["created"] == 2 and body["duplicates"] == 1
    assert len(all_memories(client, tenant)) == 2


def test_same_content_in_another_user_scope_is_a_new_memory(client, tenant):
    (first,) = add_memories(client, tenant, {"content": "Likes jazz.", "user_id": "u1"})
    response = post(client, tenant, {"type": "semantic", "content": "Likes jazz.", "user_id": "u2"})
    assert response.status_code == 202, response.text
    result = response.json()["results"][0]
    assert result["status"] == "created" and result["id"] != first
    assert get(client, tenant, result["id"])["user_id"] == "u2"


def test_same_content_with_another_type_or_agent_is_a_new_memory(client, tenant):
    (first,) = add_memories(client, tenant, {"content": "Likes jazz."})
    response = post(
        client,
        tenant,
        {"type": "episodic", "content": "Likes jazz.", "user_id": "u1"},
        {"type": "semantic", "content": "Likes jazz.", "user_id": "u1", "agent_id": "a1"},
    )
    assert response.status_code == 202, response.text
    assert [r["status"] for r in response.json()["results"]] == ["created", "created"]
    assert len({first, *(r["id"] for r in response.json()["results"])}) == 3


def test_same_content_in_another_tenant_is_not_a_duplicate(client, tenant, other_tenant):
    (mine,) = add_memories(client, tenant, {"content": "Shared sentence."})
    response = post(client, other_tenant, {"type": "semantic", "content": "Shared sentence.", "user_id": "u1"})
    assert response.status_code == 202, response.text
    assert response.json()["results"][0]["status"] == "created"
    assert response.json()["results"][0]["id"] != mine


def test_dialogue_turns_without_timestamp_never_dedupe(client, tenant):
    turn = {"type": "dialogue", "content": "ok", "session_id": "s1", "role": "user"}
    first = post(client, tenant, turn, turn)
    second = post(client, tenant, turn)
    assert first.status_code == 202 and second.status_code == 202
    assert first.json()["created"] == 2 and second.json()["created"] == 1
    ids = [r["id"] for r in first.json()["results"] + second.json()["results"]]
    assert len(set(ids)) == 3
    assert sorted(get(client, tenant, i)["turn_index"] for i in ids) == [0, 1, 2]


def test_dialogue_turns_with_same_timestamp_dedupe(client, tenant):
    turn = {
        "type": "dialogue",
        "content": "ok",
        "session_id": "s1",
        "role": "user",
        "occurred_at": "2024-05-01T09:00:00Z",
    }
    first = post(client, tenant, turn).json()
    second = post(client, tenant, turn).json()
    assert second["results"] == [{"id": first["results"][0]["id"], "status": "duplicate"}]
    later = post(client, tenant, {**turn, "occurred_at": "2024-05-01T09:00:01Z"}).json()
    assert later["results"][0]["status"] == "created"
    assert len(all_memories(client, tenant, session_id="s1")) == 2


def test_dialogue_turns_at_the_same_instant_dedupe_whatever_the_utc_offset(client, tenant):
    """09:00Z and 11:00+02:00 are the same timestamp: a resent turn must not become a second turn."""
    turn = {
        "type": "dialogue",
        "content": "ok",
        "session_id": "s1",
        "role": "user",
        "occurred_at": "2024-05-01T09:00:00Z",
    }
    first = post(client, tenant, turn).json()["results"][0]["id"]
    for same_instant in ("2024-05-01T09:00:00+00:00", "2024-05-01T09:00:00", "2024-05-01T11:00:00+02:00"):
        again = post(client, tenant, {**turn, "occurred_at": same_instant}).json()
        assert again["results"] == [{"id": first, "status": "duplicate"}], same_instant
    assert len(all_memories(client, tenant, session_id="s1")) == 1


def test_dialogue_turns_with_same_timestamp_but_other_speaker_or_role_are_distinct(client, tenant):
    turn = {
        "type": "dialogue",
        "content": "ok",
        "session_id": "s1",
        "role": "user",
        "occurred_at": "2024-05-01T09:00:00Z",
    }
    response = post(client, tenant, turn, {**turn, "role": "assistant"}, {**turn, "speaker": "Alice"})
    assert response.status_code == 202, response.text
    assert response.json()["created"] == 3


def test_resent_dialogue_turn_is_still_a_duplicate_after_its_metadata_was_patched(client, tenant):
    """A metadata-only PATCH changes nothing that identifies the turn, so a retry of it must still dedupe."""
    turn = {
        "type": "dialogue",
        "content": "ok",
        "session_id": "s1",
        "role": "user",
        "occurred_at": "2024-05-01T09:00:00Z",
    }
    first = post(client, tenant, turn).json()["results"][0]["id"]
    patched = client.patch(f"/v1/memories/{first}", json={"metadata": {"seen": True}}, headers=tenant.headers)
    assert patched.status_code == 200, patched.text
    again = post(client, tenant, turn).json()
    assert again["results"] == [{"id": first, "status": "duplicate"}]
    assert len(all_memories(client, tenant, session_id="s1")) == 1


def test_resent_semantic_memory_is_still_a_duplicate_after_its_metadata_was_patched(client, tenant):
    item = {"type": "semantic", "content": "Likes tea.", "user_id": "u1"}
    first = post(client, tenant, item).json()["results"][0]["id"]
    client.patch(f"/v1/memories/{first}", json={"metadata": {"seen": True}}, headers=tenant.headers)
    assert post(client, tenant, item).json()["results"] == [{"id": first, "status": "duplicate"}]


def test_dialogue_turns_of_several_sessions_in_one_batch_are_numbered_per_session(client, tenant):
    turns = [
        {"type": "dialogue", "content": f"{session} turn {n}", "session_id": session, "role": "user"}
        for n, session in enumerate(["s1", "s2", "s1", "s2", "s2"])
    ]
    response = post(client, tenant, *turns)
    assert response.status_code == 202, response.text
    stored = [get(client, tenant, r["id"]) for r in response.json()["results"]]
    assert [(m["session_id"], m["turn_index"]) for m in stored] == [
        ("s1", 0),
        ("s2", 0),
        ("s1", 1),
        ("s2", 1),
        ("s2", 2),
    ]


# --- validation: every rejected write stores nothing ------------------------------------------------------------


def test_malformed_json_is_400(client, tenant):
    response = client.post(
        "/v1/memories",
        content=b'{"memories": [{"type": "semantic", "content": "x", "user_id": "u1"}',
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert_nothing_stored(client, tenant)


def test_body_that_is_not_an_object_is_422(client, tenant):
    response = client.post(
        "/v1/memories", json=[{"type": "semantic", "content": "x", "user_id": "u1"}], headers=tenant.headers
    )
    assert_problem(response, 422)
    assert_nothing_stored(client, tenant)


def test_wrong_field_types_are_422(client, tenant):
    good = {"type": "semantic", "content": "x", "user_id": "u1"}
    bad_items = [
        {**good, "content": 123},
        {**good, "user_id": 7},
        {**good, "metadata": "not an object"},
        {**good, "metadata": ["a"]},
        {**good, "occurred_at": "yesterday"},
        {**good, "type": "procedural", "steps": "one step"},
        {**good, "source_ids": ["not-a-uuid"]},
    ]
    for item in bad_items:
        assert_problem(post(client, tenant, item), 422)
    assert_problem(client.post("/v1/memories", json={"memories": good}, headers=tenant.headers), 422)
    assert_nothing_stored(client, tenant)


def test_validation_problem_lists_field_errors(client, tenant):
    body = assert_problem(post(client, tenant, {"type": "semantic", "content": 123, "user_id": "u1"}), 422)
    assert any(e["loc"][:4] == ["body", "memories", 0, "content"] for e in body["errors"]), body


def test_unknown_type_is_422(client, tenant):
    assert_problem(post(client, tenant, {"type": "opinion", "content": "x", "user_id": "u1"}), 422)
    assert_problem(post(client, tenant, {"content": "x", "user_id": "u1"}), 422)
    assert_nothing_stored(client, tenant)


def test_empty_and_whitespace_content_are_422(client, tenant):
    for content in ["", "   ", "\n\t  \n"]:
        assert_problem(post(client, tenant, {"type": "semantic", "content": content, "user_id": "u1"}), 422)
    assert_problem(post(client, tenant, {"type": "semantic", "user_id": "u1"}), 422)
    assert_nothing_stored(client, tenant)


def test_content_limit_counts_utf8_bytes(client, tenant):
    # 16385 two-byte characters: far fewer than 32768 characters, but 32770 bytes.
    too_big = "é" * 16385
    assert len(too_big) < 32 * 1024 < len(too_big.encode())
    assert_problem(post(client, tenant, {"type": "semantic", "content": too_big, "user_id": "u1"}), 422)
    assert_problem(post(client, tenant, {"type": "semantic", "content": "a" * (32 * 1024 + 1), "user_id": "u1"}), 422)
    assert_nothing_stored(client, tenant)


def test_nul_characters_are_422(client, tenant):
    good = {"type": "semantic", "content": "x", "user_id": "u1"}
    for item in [
        {**good, "content": "a\u0000b"},
        {**good, "metadata": {"k": "\u0000"}},
        {**good, "user_id": "u\u0000"},
    ]:
        assert_problem(post(client, tenant, item), 422)
    assert_nothing_stored(client, tenant)


def test_scope_ids_longer_than_256_characters_are_422(client, tenant):
    assert_problem(post(client, tenant, {"type": "semantic", "content": "x", "user_id": "u" * 257}), 422)
    assert_nothing_stored(client, tenant)
    (memory_id,) = add_memories(client, tenant, {"content": "x", "user_id": "u" * 256})
    assert get(client, tenant, memory_id)["user_id"] == "u" * 256


def test_content_of_exactly_32_kib_is_accepted(client, tenant):
    content = "é" * (16 * 1024)
    assert len(content.encode()) == 32 * 1024
    (memory_id,) = add_memories(client, tenant, {"content": content})
    assert get(client, tenant, memory_id)["content"] == content


def test_memory_without_any_scope_is_422(client, tenant):
    assert_problem(post(client, tenant, {"type": "semantic", "content": "x"}), 422)
    assert_problem(post(client, tenant, {"type": "semantic", "content": "x", "user_id": None, "agent_id": None}), 422)
    assert_problem(post(client, tenant, {"type": "semantic", "content": "x", "user_id": ""}), 422)
    assert_nothing_stored(client, tenant)


def test_dialogue_without_session_is_422(client, tenant):
    assert_problem(post(client, tenant, {"type": "dialogue", "content": "hi", "user_id": "u1", "role": "user"}), 422)
    assert_nothing_stored(client, tenant)


def test_zero_items_is_422(client, tenant):
    assert_problem(client.post("/v1/memories", json={"memories": []}, headers=tenant.headers), 422)
    assert_problem(client.post("/v1/memories", json={}, headers=tenant.headers), 422)


def test_1001_items_are_rejected_and_nothing_is_stored(client, tenant):
    items = [{"type": "semantic", "content": f"n{i}", "user_id": "u1"} for i in range(1001)]
    assert_problem(post(client, tenant, *items), 422)
    assert_nothing_stored(client, tenant)


def test_1000_items_are_accepted(client, tenant):
    items = [{"type": "semantic", "content": f"n{i}", "user_id": "u1"} for i in range(1000)]
    response = post(client, tenant, *items)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["created"] == 1000 and body["duplicates"] == 0
    assert len({r["id"] for r in body["results"]}) == 1000
    page = client.get("/v1/memories", params={"user_id": "u1", "limit": 500}, headers=tenant.headers).json()
    assert page["count"] == 500 and page["next_cursor"]


def test_unknown_extra_field_is_422(client, tenant):
    assert_problem(post(client, tenant, {"type": "semantic", "content": "x", "user_id": "u1", "importance": 5}), 422)
    response = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "content": "x", "user_id": "u1"}], "mode": "fast"},
        headers=tenant.headers,
    )
    assert_problem(response, 422)
    assert_nothing_stored(client, tenant)


def test_valid_to_before_valid_from_is_422(client, tenant):
    item = {
        "type": "semantic",
        "content": "x",
        "user_id": "u1",
        "valid_from": "2024-02-01T00:00:00Z",
        "valid_to": "2024-01-01T00:00:00Z",
    }
    assert_problem(post(client, tenant, item), 422)
    assert_nothing_stored(client, tenant)


def test_validity_window_is_stored(client, tenant):
    (memory_id,) = add_memories(
        client, tenant, {"content": "x", "valid_from": "2024-01-01T00:00:00Z", "valid_to": "2024-02-01T00:00:00Z"}
    )
    memory = get(client, tenant, memory_id)
    assert parse(memory["valid_from"]) == datetime(2024, 1, 1, tzinfo=UTC)
    assert parse(memory["valid_to"]) == datetime(2024, 2, 1, tzinfo=UTC)


def test_one_bad_item_rejects_the_whole_batch(client, tenant):
    items = [{"type": "semantic", "content": f"good {i}", "user_id": "u1"} for i in range(3)]
    response = post(client, tenant, *items, {"type": "semantic", "content": " ", "user_id": "u1"})
    body = assert_problem(response, 422)
    assert any(e["loc"][:3] == ["body", "memories", 3] for e in body["errors"]), body
    assert_nothing_stored(client, tenant)


def test_unknown_source_ids_are_422_and_nothing_is_stored(client, tenant):
    (existing,) = add_memories(client, tenant, {"content": "real source"})
    unknown = str(uuid.uuid4())
    response = post(
        client,
        tenant,
        {"type": "semantic", "content": "fine", "user_id": "u2"},
        {"type": "semantic", "content": "derived", "user_id": "u2", "source_ids": [existing, unknown]},
    )
    body = assert_problem(response, 422)
    assert unknown in body["detail"]
    assert all_memories(client, tenant, user_id="u2") == []
    assert [m["id"] for m in all_memories(client, tenant)] == [existing]


def test_unknown_supersedes_id_is_422(client, tenant):
    item = {"type": "semantic", "content": "new fact", "user_id": "u1", "supersedes": [str(uuid.uuid4())]}
    assert_problem(post(client, tenant, item), 422)
    assert_nothing_stored(client, tenant)


def test_source_ids_of_another_tenant_are_unknown(client, tenant, other_tenant):
    (theirs,) = add_memories(client, other_tenant, {"content": "their source"})
    response = post(client, tenant, {"type": "semantic", "content": "derived", "user_id": "u1", "source_ids": [theirs]})
    assert_problem(response, 422)
    assert_nothing_stored(client, tenant)


def test_missing_or_bad_api_key_is_401(client, tenant):
    item = {"type": "semantic", "content": "x", "user_id": "u1"}
    assert_problem(client.post("/v1/memories", json={"memories": [item]}), 401)
    assert_problem(
        client.post("/v1/memories", json={"memories": [item]}, headers={"Authorization": "Bearer nope"}), 401
    )
    assert_nothing_stored(client, tenant)


# --- Idempotency-Key ------------------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_the_first_answer(client, tenant):
    # Untimed dialogue turns never dedupe, so only the key can keep the retry from storing a second turn.
    item = {"type": "dialogue", "content": "retry me", "session_id": "s1", "role": "user"}
    key = {"Idempotency-Key": "write-" + uuid.uuid4().hex}
    first = post(client, tenant, item, headers=key)
    second = post(client, tenant, item, headers=key)
    assert first.status_code == 202 and second.status_code == 202
    assert second.json() == first.json()
    assert first.json()["results"][0]["status"] == "created"
    assert [m["id"] for m in all_memories(client, tenant)] == [first.json()["results"][0]["id"]]


def test_same_idempotency_key_with_other_body_is_422(client, tenant):
    key = {"Idempotency-Key": "k1"}
    first = post(client, tenant, {"type": "semantic", "content": "one", "user_id": "u1"}, headers=key)
    assert first.status_code == 202
    response = post(client, tenant, {"type": "semantic", "content": "two", "user_id": "u1"}, headers=key)
    assert_problem(response, 422)
    assert [m["content"] for m in all_memories(client, tenant)] == ["one"]


def test_idempotency_keys_are_per_tenant(client, tenant, other_tenant):
    item = {"type": "semantic", "content": "same body, same key", "user_id": "u1"}
    key = {"Idempotency-Key": "shared-key"}
    mine = post(client, tenant, item, headers=key)
    theirs = post(client, other_tenant, item, headers=key)
    assert mine.status_code == 202 and theirs.status_code == 202
    assert theirs.json()["results"][0]["status"] == "created"
    assert theirs.json()["results"][0]["id"] != mine.json()["results"][0]["id"]
    assert len(all_memories(client, other_tenant)) == 1
    assert len(all_memories(client, tenant)) == 1


def test_rejected_write_does_not_consume_the_idempotency_key(client, tenant):
    key = {"Idempotency-Key": "k-after-error"}
    bad = {"type": "semantic", "content": "x", "user_id": "u1", "source_ids": [str(uuid.uuid4())]}
    assert_problem(post(client, tenant, bad, headers=key), 422)
    response = post(client, tenant, {"type": "semantic", "content": "x", "user_id": "u1"}, headers=key)
    assert response.status_code == 202, response.text
    assert response.json()["created"] == 1


def test_overlong_idempotency_key_is_422(client, tenant):
    item = {"type": "semantic", "content": "x", "user_id": "u1"}
    assert_problem(post(client, tenant, item, headers={"Idempotency-Key": "k" * 256}), 422)
    assert_nothing_stored(client, tenant)


# --- evidence and supersedes ----------------------------------------------------------------------------------


def test_source_ids_are_kept_as_evidence(client, tenant):
    a, b = add_memories(client, tenant, {"content": "Alice said she moved."}, {"content": "Alice mentioned Berlin."})
    response = post(
        client, tenant, {"type": "semantic", "content": "Alice lives in Berlin.", "user_id": "u1", "source_ids": [a, b]}
    )
    assert response.status_code == 202, response.text
    derived = get(client, tenant, response.json()["results"][0]["id"])
    assert sorted(derived["source_ids"]) == sorted([a, b])
    assert get(client, tenant, a)["source_ids"] == []
    listed = {m["id"]: m for m in all_memories(client, tenant)}
    assert sorted(listed[derived["id"]]["source_ids"]) == sorted([a, b])


def test_supersedes_closes_the_old_fact(client, tenant):
    (old,) = add_memories(client, tenant, {"content": "Alice lives in Paris."})
    response = post(
        client, tenant, {"type": "semantic", "content": "Alice lives in Berlin.", "user_id": "u1", "supersedes": [old]}
    )
    assert response.status_code == 202, response.text
    new = response.json()["results"][0]["id"]
    closed = get(client, tenant, old)
    assert closed["valid_to"] is not None
    assert parse(closed["valid_to"]) <= datetime.now(UTC) + timedelta(seconds=5)
    assert get(client, tenant, new)["valid_to"] is None
    now = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    assert [m["id"] for m in all_memories(client, tenant, user_id="u1", valid_at=now)] == [new]
    assert {m["id"] for m in all_memories(client, tenant, user_id="u1")} == {old, new}


def test_supersedes_closes_at_the_new_facts_valid_from(client, tenant):
    (old,) = add_memories(client, tenant, {"content": "Works at Acme."})
    add_memories(
        client, tenant, {"content": "Works at Globex.", "valid_from": "2024-06-01T00:00:00Z", "supersedes": [old]}
    )
    assert parse(get(client, tenant, old)["valid_to"]) == datetime(2024, 6, 1, tzinfo=UTC)
    before = all_memories(client, tenant, valid_at="2024-05-31T00:00:00Z")
    assert [m["id"] for m in before] == [old]

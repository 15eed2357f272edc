"""GET/PATCH/DELETE /v1/memories/{id}, history, and GET /v1/memories with filters and cursor pagination."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

from tests.conftest import add_memories, assert_problem, wait_for_job


def get(client, tenant, memory_id):
    response = client.get(f"/v1/memories/{memory_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def patch(client, tenant, memory_id, body):
    return client.patch(f"/v1/memories/{memory_id}", json=body, headers=tenant.headers)


def history(client, tenant, memory_id):
    response = client.get(f"/v1/memories/{memory_id}/history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def listing(client, tenant, **params):
    response = client.get("/v1/memories", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def listed_ids(client, tenant, **params):
    return [m["id"] for m in listing(client, tenant, limit=500, **params)["data"]]


def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# --- GET / PATCH / DELETE by id -------------------------------------------------------------------------------


def test_unknown_id_is_404_on_every_route(client, tenant):
    unknown = uuid.uuid4()
    assert_problem(client.get(f"/v1/memories/{unknown}", headers=tenant.headers), 404)
    assert_problem(patch(client, tenant, unknown, {"content": "x"}), 404)
    assert_problem(client.delete(f"/v1/memories/{unknown}", headers=tenant.headers), 404)
    assert_problem(client.get(f"/v1/memories/{unknown}/history", headers=tenant.headers), 404)


def test_another_tenants_memory_looks_exactly_like_an_unknown_one(client, tenant, other_tenant):
    (theirs,) = add_memories(client, other_tenant, {"content": "their secret"})
    unknown = str(uuid.uuid4())
    requests = [
        ("GET", "/v1/memories/{}", None),
        ("PATCH", "/v1/memories/{}", {"content": "overwritten"}),
        ("DELETE", "/v1/memories/{}", None),
        ("GET", "/v1/memories/{}/history", None),
    ]
    for method, path, body in requests:
        foreign = client.request(method, path.format(theirs), json=body, headers=tenant.headers)
        missing = client.request(method, path.format(unknown), json=body, headers=tenant.headers)
        foreign_body = assert_problem(foreign, 404)
        missing_body = assert_problem(missing, 404)
        assert json.dumps(foreign_body).replace(theirs, "ID") == json.dumps(missing_body).replace(unknown, "ID")
        assert "their secret" not in foreign.text
    untouched = get(client, other_tenant, theirs)
    assert untouched["content"] == "their secret" and untouched["version"] == 1


def test_malformed_id_is_422(client, tenant):
    assert_problem(client.get("/v1/memories/not-a-uuid", headers=tenant.headers), 422)
    assert_problem(patch(client, tenant, "not-a-uuid", {"content": "x"}), 422)
    assert_problem(client.delete("/v1/memories/123", headers=tenant.headers), 422)
    assert_problem(client.get("/v1/memories/xyz/history", headers=tenant.headers), 422)


def test_patch_content_makes_version_2_with_history(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "Alice lives in Paris.", "metadata": {"k": 1}})
    response = patch(client, tenant, memory_id, {"content": "Alice lives in Berlin."})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["id"] == memory_id
    assert updated["content"] == "Alice lives in Berlin."
    assert updated["version"] == 2
    assert updated["metadata"] == {"k": 1}
    assert parse(updated["updated_at"]) >= parse(updated["created_at"])
    # The new content is re-embedded in the background, which may finish between the PATCH and this read.
    embedding = ("embedding_status", "embedding_model", "job_id")
    read = get(client, tenant, memory_id)
    assert {k: v for k, v in read.items() if k not in embedding} == {
        k: v for k, v in updated.items() if k not in embedding
    }

    versions = history(client, tenant, memory_id)
    assert versions["count"] == 2
    assert [v["version"] for v in versions["data"]] == [1, 2]
    assert [v["change"] for v in versions["data"]] == ["created", "updated"]
    assert versions["data"][0]["memory"]["content"] == "Alice lives in Paris."
    assert versions["data"][1]["memory"]["content"] == "Alice lives in Berlin."
    assert versions["data"][0]["memory"]["version"] == 1 and versions["data"][1]["memory"]["version"] == 2


def test_history_of_new_memory_has_its_first_version(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "first words"})
    versions = history(client, tenant, memory_id)
    assert versions["count"] == 1
    (version,) = versions["data"]
    assert version["version"] == 1 and version["change"] == "created"
    assert version["memory"]["id"] == memory_id and version["memory"]["content"] == "first words"


def test_every_patch_adds_a_version(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "v1"})
    for n in (2, 3, 4):
        response = patch(client, tenant, memory_id, {"content": f"v{n}"})
        assert response.json()["version"] == n
    versions = history(client, tenant, memory_id)
    assert versions["count"] == 4
    assert [v["memory"]["content"] for v in versions["data"]] == ["v1", "v2", "v3", "v4"]


def test_patch_content_is_re_embedded(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "Alice lives in Paris."}, {"content": "The sky is blue."})[
        :1
    ]
    patched = patch(client, tenant, memory_id, {"content": "Carol plays the violin."})
    assert patched.status_code == 200, patched.text
    wait_for_job(client, tenant, patched.json()["job_id"])  # the new text is embedded in the background
    response = client.post(
        "/v1/search", json={"query": "Carol plays the violin.", "user_id": "u1"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    top = response.json()["hits"][0]
    assert top["memory"]["id"] == memory_id
    assert top["scores"]["dense"] > 0.99


def test_patch_metadata_replaces_the_whole_object(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "x", "metadata": {"a": 1, "b": 2}})
    response = patch(client, tenant, memory_id, {"metadata": {"c": 3}})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"c": 3}
    assert response.json()["version"] == 2
    assert response.json()["content"] == "x"


def test_patch_procedural_fields(client, tenant):
    (memory_id,) = add_memories(
        client, tenant, {"type": "procedural", "content": "Deploy", "title": "Deploy", "steps": ["build", "push"]}
    )
    response = patch(client, tenant, memory_id, {"steps": ["build", "test", "push"], "trigger": "on release"})
    assert response.status_code == 200, response.text
    memory = get(client, tenant, memory_id)
    assert memory["steps"] == ["build", "test", "push"]
    assert memory["trigger"] == "on release" and memory["title"] == "Deploy"


def test_patch_with_empty_body_is_422(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "unchanged"})
    assert_problem(patch(client, tenant, memory_id, {}), 422)
    assert get(client, tenant, memory_id)["version"] == 1
    assert history(client, tenant, memory_id)["count"] == 1


def test_patch_with_invalid_values_is_422_and_changes_nothing(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "unchanged", "valid_from": "2024-01-01T00:00:00Z"})
    for body in [
        {"content": None},
        {"content": "   "},
        {"content": 5},
        {"type": "episodic"},
        {"user_id": "someone-else"},
        {"importance": 3},
        {"valid_to": "2023-01-01T00:00:00Z"},
    ]:
        assert_problem(patch(client, tenant, memory_id, body), 422)
    memory = get(client, tenant, memory_id)
    assert memory["content"] == "unchanged" and memory["version"] == 1 and memory["valid_to"] is None
    assert memory["user_id"] == "u1" and memory["type"] == "semantic"


def test_patch_null_for_a_required_field_is_422(client, tenant):
    """metadata and occurred_at always have a value; nulling them is a client error, not a server failure."""
    (memory_id,) = add_memories(client, tenant, {"content": "x", "metadata": {"a": 1}})
    assert_problem(patch(client, tenant, memory_id, {"metadata": None}), 422)
    assert_problem(patch(client, tenant, memory_id, {"occurred_at": None}), 422)
    memory = get(client, tenant, memory_id)
    assert memory["metadata"] == {"a": 1} and memory["version"] == 1


def test_patch_to_content_of_another_memory_in_same_scope_is_409(client, tenant):
    first, second = add_memories(client, tenant, {"content": "Likes tea."}, {"content": "Likes coffee."})
    body = assert_problem(patch(client, tenant, second, {"content": "Likes tea."}), 409)
    assert first in body["detail"]
    memory = get(client, tenant, second)
    assert memory["content"] == "Likes coffee." and memory["version"] == 1


def test_patch_to_content_of_a_memory_in_another_scope_is_allowed(client, tenant):
    add_memories(client, tenant, {"content": "Likes tea.", "user_id": "u1"})
    (other,) = add_memories(client, tenant, {"content": "Likes coffee.", "user_id": "u2"})
    response = patch(client, tenant, other, {"content": "Likes tea."})
    assert response.status_code == 200, response.text
    assert response.json()["content"] == "Likes tea."


def test_patched_content_then_dedupes_new_writes(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "old words"})
    patch(client, tenant, memory_id, {"content": "new words"})
    response = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "content": "new words", "user_id": "u1"}]},
        headers=tenant.headers,
    )
    assert response.json()["results"] == [{"id": memory_id, "status": "duplicate"}]
    again = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "content": "old words", "user_id": "u1"}]},
        headers=tenant.headers,
    )
    assert again.json()["results"][0]["status"] == "created"


def test_delete_then_404(client, tenant):
    memory_id, kept = add_memories(client, tenant, {"content": "delete me"}, {"content": "keep me"})
    response = client.delete(f"/v1/memories/{memory_id}", headers=tenant.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"/v1/memories/{memory_id}", headers=tenant.headers), 404)
    assert_problem(client.get(f"/v1/memories/{memory_id}/history", headers=tenant.headers), 404)
    assert_problem(client.delete(f"/v1/memories/{memory_id}", headers=tenant.headers), 404)
    assert listed_ids(client, tenant) == [kept]


def test_deleted_memory_is_not_found_by_search(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "Alice is allergic to peanuts."})
    client.delete(f"/v1/memories/{memory_id}", headers=tenant.headers)
    response = client.post("/v1/search", json={"query": "peanuts", "user_id": "u1"}, headers=tenant.headers)
    assert response.json()["hits"] == []


def test_deleting_a_source_removes_it_from_derived_source_ids(client, tenant):
    a, b = add_memories(client, tenant, {"content": "a"}, {"content": "b"})
    (derived,) = add_memories(client, tenant, {"content": "a and b", "source_ids": [a, b]})
    client.delete(f"/v1/memories/{a}", headers=tenant.headers)
    assert get(client, tenant, derived)["source_ids"] == [b]


# --- GET /v1/memories -----------------------------------------------------------------------------------------


def test_list_shows_only_this_tenants_memories(client, tenant, other_tenant):
    mine = add_memories(client, tenant, {"content": "mine"})
    add_memories(client, other_tenant, {"content": "theirs"})
    body = listing(client, tenant)
    assert [m["id"] for m in body["data"]] == mine
    assert body["count"] == 1 and body["next_cursor"] is None


def test_list_filters_by_scope(client, tenant):
    u1 = add_memories(client, tenant, {"content": "u1 only", "user_id": "u1"})
    a1 = add_memories(client, tenant, {"content": "agent only", "user_id": None, "agent_id": "a1"})
    both = add_memories(client, tenant, {"content": "u1 with a1", "user_id": "u1", "agent_id": "a1"})
    s1 = add_memories(
        client, tenant, {"type": "dialogue", "content": "hi", "user_id": "u2", "session_id": "s1", "role": "user"}
    )
    assert set(listed_ids(client, tenant, user_id="u1")) == {*u1, *both}
    assert set(listed_ids(client, tenant, agent_id="a1")) == {*a1, *both}
    assert set(listed_ids(client, tenant, user_id="u1", agent_id="a1")) == set(both)
    assert listed_ids(client, tenant, session_id="s1") == s1
    assert listed_ids(client, tenant, user_id="nobody") == []


def test_list_filters_by_type_repeatable(client, tenant):
    semantic, episodic, procedural = add_memories(
        client,
        tenant,
        {"type": "semantic", "content": "fact"},
        {"type": "episodic", "content": "event"},
        {"type": "procedural", "content": "skill"},
    )
    assert listed_ids(client, tenant, type="episodic") == [episodic]
    assert set(listed_ids(client, tenant, type=["semantic", "procedural"])) == {semantic, procedural}
    assert_problem(client.get("/v1/memories", params={"type": "opinion"}, headers=tenant.headers), 422)


def test_list_filters_by_event_time(client, tenant):
    jan, feb, mar = add_memories(
        client,
        tenant,
        {"type": "episodic", "content": "jan", "occurred_at": "2024-01-15T00:00:00Z"},
        {"type": "episodic", "content": "feb", "occurred_at": "2024-02-15T00:00:00Z"},
        {"type": "episodic", "content": "mar", "occurred_at": "2024-03-15T00:00:00Z"},
    )
    assert set(listed_ids(client, tenant, occurred_after="2024-02-01T00:00:00Z")) == {feb, mar}
    assert listed_ids(client, tenant, occurred_before="2024-02-01T00:00:00Z") == [jan]
    window = {"occurred_after": "2024-02-01T00:00:00Z", "occurred_before": "2024-03-01T00:00:00Z"}
    assert listed_ids(client, tenant, **window) == [feb]
    # occurred_after is inclusive, occurred_before exclusive
    assert listed_ids(
        client, tenant, occurred_after="2024-02-15T00:00:00Z", occurred_before="2024-03-15T00:00:00Z"
    ) == [feb]
    assert listed_ids(client, tenant, occurred_after="2024-03-15T01:00:00+01:00") == [mar]
    assert_problem(client.get("/v1/memories", params={"occurred_after": "soon"}, headers=tenant.headers), 422)


def test_list_filters_by_metadata(client, tenant):
    intake, _, nested = add_memories(
        client,
        tenant,
        {"content": "a", "metadata": {"source": "intake", "rank": 1}},
        {"content": "b", "metadata": {"source": "chat"}},
        {"content": "c", "metadata": {"source": "intake", "tags": ["x", "y"]}},
    )
    assert set(listed_ids(client, tenant, metadata='{"source": "intake"}')) == {intake, nested}
    assert listed_ids(client, tenant, metadata='{"source": "intake", "rank": 1}') == [intake]
    assert listed_ids(client, tenant, metadata='{"tags": ["x"]}') == [nested]
    assert listed_ids(client, tenant, metadata='{"source": "email"}') == []


def test_list_rejects_metadata_that_is_not_a_json_object(client, tenant):
    add_memories(client, tenant, {"content": "a", "metadata": {"source": "intake"}})
    for bad in ["{source: intake}", "not json", '["source"]', '"intake"', "null", "42"]:
        assert_problem(client.get("/v1/memories", params={"metadata": bad}, headers=tenant.headers), 422)


def test_list_filters_by_validity(client, tenant):
    always, old, current, future = add_memories(
        client,
        tenant,
        {"content": "always"},
        {"content": "old", "valid_from": "2020-01-01T00:00:00Z", "valid_to": "2021-01-01T00:00:00Z"},
        {"content": "current", "valid_from": "2021-01-01T00:00:00Z"},
        {"content": "future", "valid_from": "2999-01-01T00:00:00Z"},
    )
    assert set(listed_ids(client, tenant, valid_at="2020-06-01T00:00:00Z")) == {always, old}
    # valid_to is exclusive: at that instant the old fact is over and the new one holds
    assert set(listed_ids(client, tenant, valid_at="2021-01-01T00:00:00Z")) == {always, current}
    now = datetime.now(UTC).isoformat()
    assert set(listed_ids(client, tenant, valid_at=now)) == {always, current}
    assert set(listed_ids(client, tenant)) == {always, old, current, future}


def test_list_order_desc_by_default_and_asc(client, tenant):
    ids = add_memories(client, tenant, *({"content": f"m{i}"} for i in range(4)))
    assert listed_ids(client, tenant) == ids[::-1]
    assert listed_ids(client, tenant, order="desc") == ids[::-1]
    assert listed_ids(client, tenant, order="asc") == ids
    assert_problem(client.get("/v1/memories", params={"order": "random"}, headers=tenant.headers), 422)


def test_cursor_pagination_walks_every_memory_once(client, tenant):
    ids = add_memories(client, tenant, *({"content": f"m{i}"} for i in range(7)))
    add_memories(client, tenant, {"content": "other user", "user_id": "u2"})
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        seen, cursor, pages = [], None, 0
        while True:
            params = {"user_id": "u1", "limit": 2, "order": order, **({"cursor": cursor} if cursor else {})}
            body = listing(client, tenant, **params)
            pages += 1
            assert body["count"] == len(body["data"]) <= 2
            seen += [m["id"] for m in body["data"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == expected
        assert pages == 4


def test_cursor_sees_memories_written_after_the_first_page(client, tenant):
    first_ids = add_memories(client, tenant, {"content": "a"}, {"content": "b"}, {"content": "c"})
    page = listing(client, tenant, limit=2, order="asc")
    (late,) = add_memories(client, tenant, {"content": "d"})
    rest = listing(client, tenant, limit=2, order="asc", cursor=page["next_cursor"])
    assert [m["id"] for m in page["data"]] + [m["id"] for m in rest["data"]] == [*first_ids, late]


def test_last_page_has_no_cursor(client, tenant):
    add_memories(client, tenant, {"content": "a"}, {"content": "b"})
    body = listing(client, tenant, limit=2)
    assert body["count"] == 2 and body["next_cursor"] is None


def test_bogus_cursor_is_422(client, tenant):
    add_memories(client, tenant, {"content": "a"})

    def forged(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    for cursor in [
        "bogus",
        "!!!",
        "é",
        forged({"before": 1}),
        forged({"after": "1"}),
        forged([1]),
        forged("after"),
        forged({"after": 10**30}),
    ]:
        response = client.get("/v1/memories", params={"cursor": cursor}, headers=tenant.headers)
        assert_problem(response, 422)


def test_limit_out_of_range_is_422(client, tenant):
    for limit in (0, -1, 501, "many"):
        assert_problem(client.get("/v1/memories", params={"limit": limit}, headers=tenant.headers), 422)
    assert listing(client, tenant, limit=500)["count"] == 0
    assert listing(client, tenant, limit=1)["count"] == 0


def test_empty_scope_value_is_422(client, tenant):
    assert_problem(client.get("/v1/memories", params={"user_id": ""}, headers=tenant.headers), 422)


def test_list_items_have_the_full_memory_shape(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "shape", "metadata": {"m": True}})
    (item,) = listing(client, tenant)["data"]
    assert item == get(client, tenant, memory_id)
    assert item["embedding_status"] == "done" and item["version"] == 1


def test_updated_at_moves_on_patch(client, tenant):
    (memory_id,) = add_memories(client, tenant, {"content": "x"})
    before = get(client, tenant, memory_id)
    after = patch(client, tenant, memory_id, {"content": "y"}).json()
    assert parse(after["updated_at"]) > parse(before["updated_at"])
    assert after["created_at"] == before["created_at"]
    assert parse(after["updated_at"]) - parse(before["created_at"]) < timedelta(minutes=5)

"""GET /v1/export (NDJSON) and POST /v1/import: lossless round trips, dedupe on re-import, bad bodies, tenants."""

import json
import uuid

import pytest

from tests.conftest import add_memories, assert_problem, wait_for_job

NDJSON = {"Content-Type": "application/x-ndjson"}

RECORD_KEYS = {
    "id",
    "type",
    "content",
    "user_id",
    "agent_id",
    "session_id",
    "metadata",
    "occurred_at",
    "created_at",
    "updated_at",
    "valid_from",
    "valid_to",
    "version",
    "role",
    "speaker",
    "turn_index",
    "title",
    "steps",
    "trigger",
    "embedding_status",
    "embedding_model",
    "content_hash",
    "embedding",
    "links",
    "versions",
}


def export(client, tenant, **params):
    response = client.get("/v1/export", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return response.content


def parse(body: bytes) -> list[dict]:
    lines = body.decode().splitlines()
    assert all(line.strip() for line in lines), "an export has no blank lines"
    return [json.loads(line) for line in lines]


def import_(client, tenant, body: bytes):
    return client.post("/v1/import", content=body, headers={**tenant.headers, **NDJSON})


def list_ids(client, tenant, **params):
    response = client.get("/v1/memories", params={"limit": 500, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return sorted(m["id"] for m in response.json()["data"])


def history(client, tenant, memory_id):
    response = client.get(f"/v1/memories/{memory_id}/history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def build_user_memories(client, tenant):
    """u1 gets: a PATCHed fact (2 versions), an episode, a fact derived from it (evidence link), a procedure and
    two dialogue turns. u2 gets one fact that no u1 export or forget may touch."""
    [colour] = add_memories(client, tenant, {"content": "The user's favourite colour is green."})
    patched = client.patch(
        f"/v1/memories/{colour}",
        json={"content": "The user's favourite colour is teal.", "metadata": {"corrected": True}},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    wait_for_job(client, tenant, patched.json()["job_id"])  # exports below must see the new embedding
    [hike] = add_memories(
        client,
        tenant,
        {
            "type": "episodic",
            "content": "On Monday the user went hiking in the Alps.",
            "metadata": {"source": "chat", "tags": ["travel"]},
            "occurred_at": "2024-05-06T09:30:00Z",
        },
    )
    [sporty] = add_memories(client, tenant, {"content": "The user enjoys mountain sports.", "source_ids": [hike]})
    [procedure] = add_memories(
        client,
        tenant,
        {
            "type": "procedural",
            "title": "Book a train",
            "trigger": "the user wants to travel by rail",
            "content": "Book train tickets for the user.",
            "steps": ["open the rail site", "pick the cheapest fare", "pay with the saved card"],
        },
    )
    turns = client.post(
        "/v1/sessions/s-export/messages",
        json={
            "user_id": "u1",
            "messages": [
                {"role": "user", "name": "Sam", "content": "Can you remind me about the dentist?"},
                {"role": "assistant", "content": "Sure, I'll remind you on Tuesday."},
            ],
        },
        headers=tenant.headers,
    )
    assert turns.status_code == 202, turns.text
    dialogue = [r["id"] for r in turns.json()["results"]]
    [other_user] = add_memories(client, tenant, {"content": "The user's favourite colour is red.", "user_id": "u2"})
    return {
        "colour": colour,
        "hike": hike,
        "sporty": sporty,
        "procedure": procedure,
        "dialogue": dialogue,
        "other_user": other_user,
        "u1": [colour, hike, sporty, procedure, *dialogue],
    }


def test_export_streams_one_complete_ndjson_record_per_memory_oldest_first(client, tenant):
    made = build_user_memories(client, tenant)

    records = parse(export(client, tenant, user_id="u1"))

    assert [r["id"] for r in records] == made["u1"]
    assert made["other_user"] not in {r["id"] for r in records}
    for record in records:
        assert set(record) >= RECORD_KEYS
        assert record["user_id"] == "u1"
        assert len(record["embedding"]) == 384
        assert all(isinstance(v, float) for v in record["embedding"])
        assert record["versions"], "every memory has at least its creation in its history"
    by_id = {r["id"]: r for r in records}

    colour = by_id[made["colour"]]
    assert colour["content"] == "The user's favourite colour is teal."
    assert colour["metadata"] == {"corrected": True}
    assert colour["version"] == 2
    assert [(v["version"], v["change"]) for v in colour["versions"]] == [(1, "created"), (2, "updated")]
    assert colour["versions"][0]["memory"]["content"] == "The user's favourite colour is green."
    assert colour["versions"][1]["memory"]["content"] == "The user's favourite colour is teal."

    assert by_id[made["sporty"]]["links"] == [{"source_id": made["hike"], "relation": "evidence"}]
    assert by_id[made["hike"]]["links"] == []
    assert by_id[made["hike"]]["metadata"] == {"source": "chat", "tags": ["travel"]}
    assert by_id[made["procedure"]]["steps"] == [
        "open the rail site",
        "pick the cheapest fare",
        "pay with the saved card",
    ]
    assert [by_id[d]["turn_index"] for d in made["dialogue"]] == [0, 1]
    assert by_id[made["dialogue"][0]]["speaker"] == "Sam"


def test_export_without_scope_holds_the_whole_tenant_and_nothing_of_other_tenants(client, tenant, other_tenant):
    ours = add_memories(client, tenant, {"content": "We like tea."}, {"content": "We like cake.", "user_id": "u9"})
    add_memories(client, other_tenant, {"content": "They like coffee."})

    assert [r["id"] for r in parse(export(client, tenant))] == ours
    assert [r["content"] for r in parse(export(client, other_tenant))] == ["They like coffee."]


def test_export_of_an_empty_scope_is_an_empty_body(client, tenant):
    add_memories(client, tenant, {"content": "Only u1 has memories."})

    assert export(client, tenant, user_id="nobody") == b""


def test_export_filters_by_type(client, tenant):
    _fact, episode = add_memories(
        client, tenant, {"content": "A fact."}, {"type": "episodic", "content": "Something happened."}
    )

    assert [r["id"] for r in parse(export(client, tenant, user_id="u1", type="episodic"))] == [episode]


def test_round_trip_export_forget_import_restores_everything_exactly(client, tenant):
    made = build_user_memories(client, tenant)
    first_body = export(client, tenant, user_id="u1")
    first = parse(first_body)
    colour_history = history(client, tenant, made["colour"])
    sporty_before = client.get(f"/v1/memories/{made['sporty']}", headers=tenant.headers).json()

    forgotten = client.delete("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)
    assert forgotten.status_code == 200, forgotten.text
    assert forgotten.json()["memories"] == len(made["u1"])
    assert export(client, tenant, user_id="u1") == b""

    response = import_(client, tenant, first_body)

    assert response.status_code == 201, response.text
    assert without_job(response.json()) == {
        "imported": len(made["u1"]),
        "skipped": 0,
        "links": 1,
        "versions": len(made["u1"]) + 1,  # the PATCHed memory has two versions
        "reembedded": 0,
    }
    assert parse(export(client, tenant, user_id="u1")) == first

    colour = client.get(f"/v1/memories/{made['colour']}", headers=tenant.headers)
    assert colour.status_code == 200, colour.text
    assert colour.json()["content"] == "The user's favourite colour is teal."
    assert colour.json()["version"] == 2
    assert history(client, tenant, made["colour"]) == colour_history
    sporty = client.get(f"/v1/memories/{made['sporty']}", headers=tenant.headers)
    assert without_job(sporty.json()) == without_job(sporty_before)
    assert sporty.json()["source_ids"] == [made["hike"]]
    # The other user's memory was never touched.
    assert list_ids(client, tenant, user_id="u2") == [made["other_user"]]

    hits = client.post(
        "/v1/search", json={"query": "what colour does the user like best", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert hits[0]["memory"]["id"] == made["colour"]
    hits = client.post(
        "/v1/search", json={"query": "how do I buy rail tickets", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert hits[0]["memory"]["id"] == made["procedure"]


def test_importing_the_same_body_twice_skips_everything_the_second_time(client, tenant):
    made = build_user_memories(client, tenant)
    body = export(client, tenant, user_id="u1")
    client.delete("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)

    first = import_(client, tenant, body)
    second = import_(client, tenant, body)

    assert first.status_code == 201, first.text
    assert first.json()["imported"] == len(made["u1"])
    assert second.status_code == 201, second.text
    assert without_job(second.json()) == {
        "imported": 0,
        "skipped": len(made["u1"]),
        "links": 0,
        "versions": 0,
        "reembedded": 0,
    }
    assert list_ids(client, tenant, user_id="u1") == sorted(made["u1"])
    assert parse(export(client, tenant, user_id="u1")) == parse(body)
    assert history(client, tenant, made["colour"])["count"] == 2


def test_importing_an_export_over_the_live_data_changes_nothing(client, tenant):
    made = build_user_memories(client, tenant)
    body = export(client, tenant, user_id="u1")

    response = import_(client, tenant, body)

    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 0
    assert response.json()["skipped"] == len(made["u1"])
    assert export(client, tenant, user_id="u1") == body


def test_record_without_embedding_is_reembedded_and_searchable(client, tenant):
    record = hand_written_record(content="The user's passport expires in 2031.")

    response = import_(client, tenant, (json.dumps(record) + "\n").encode())

    assert response.status_code == 201, response.text
    assert without_job(response.json()) == {"imported": 1, "skipped": 0, "links": 0, "versions": 0, "reembedded": 1}
    wait_for_job(client, tenant, response.json()["job_id"])
    stored = client.get(f"/v1/memories/{record['id']}", headers=tenant.headers).json()
    assert stored["content"] == record["content"]
    assert stored["embedding_model"] == "all-MiniLM-L6-v2"
    # No history came with it: its history is the memory as imported, from when the record says it was written.
    [version] = history(client, tenant, record["id"])["data"]
    assert (version["version"], version["change"]) == (record["version"], "created")
    assert version["memory"]["content"] == record["content"]
    hits = client.post(
        "/v1/search", json={"query": "when does the travel document run out", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert [h["memory"]["id"] for h in hits] == [record["id"]]


def hand_written_record(**overrides):
    record = {
        "id": str(uuid.uuid4()),
        "type": "semantic",
        "content": "A hand-written memory.",
        "user_id": "u1",
        "agent_id": None,
        "session_id": None,
        "metadata": {},
        "occurred_at": "2024-01-01T00:00:00Z",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "valid_from": None,
        "valid_to": None,
        "version": 1,
        "role": None,
        "speaker": None,
        "turn_index": None,
        "title": None,
        "steps": None,
        "trigger": None,
        "embedding_status": "done",
        "embedding_model": None,
    }
    record.update(overrides)
    return record


def ndjson(*records) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def without(record, *keys):
    return {k: v for k, v in record.items() if k not in keys}


@pytest.mark.parametrize(
    ("body", "line", "mentions"),
    [
        (lambda good: ndjson(good, "{this is not json"), 2, None),
        (lambda good: ndjson(good, without(hand_written_record(), "content")), 2, "content"),
        (lambda good: ndjson(hand_written_record(content="   ")), 1, None),
        (lambda good: ndjson(good, good, hand_written_record(user_id=None)), 3, "user_id"),
        (lambda good: ndjson(hand_written_record(type="gossip")), 1, "type"),
        (lambda good: ndjson(hand_written_record(embedding=[0.1] * 10)), 1, "384"),
        (lambda good: ndjson(good, "[1, 2, 3]"), 2, None),
        (lambda good: ndjson(good, hand_written_record(content="nul \u0000 byte")), 2, "content"),
        (lambda good: ndjson(good, hand_written_record(content_hash="not a digest")), 2, "content_hash"),
    ],
    ids=[
        "invalid-json",
        "missing-content",
        "blank-content",
        "no-scope",
        "unknown-type",
        "short-embedding",
        "not-object",
        "nul-in-content",
        "content-hash-not-hex",
    ],
)
def test_bad_import_line_is_a_422_naming_the_line_and_imports_nothing(client, tenant, body, line, mentions):
    good = hand_written_record(content="A valid line that must not be stored.")

    response = import_(client, tenant, body(good))

    problem = assert_problem(response, 422)
    assert f"line {line}" in problem["detail"]
    if mentions:
        assert mentions in problem["detail"]
    assert client.get(f"/v1/memories/{good['id']}", headers=tenant.headers).status_code == 404
    assert list_ids(client, tenant) == []


@pytest.mark.parametrize(
    "body",
    [b"", b"\n\n   \n", b'{"content": "caf\xe9"}\n', b"\xff\xfe\x00\x01"],
    ids=["empty", "blank-lines", "latin-1", "binary"],
)
def test_empty_or_non_utf8_import_body_is_a_422_problem(client, tenant, body):
    assert_problem(import_(client, tenant, body), 422)
    assert list_ids(client, tenant) == []


def test_import_without_a_key_is_401(client, tenant):
    body = ndjson(hand_written_record())

    assert_problem(client.post("/v1/import", content=body, headers=NDJSON), 401)
    assert_problem(client.get("/v1/export"), 401)


def test_other_tenant_importing_our_export_cannot_touch_or_see_our_data(client, tenant, other_tenant):
    made = build_user_memories(client, tenant)
    ours_before = export(client, tenant)
    colour_history = history(client, tenant, made["colour"])

    response = import_(client, other_tenant, export(client, tenant, user_id="u1"))

    assert response.status_code == 201, response.text
    report = response.json()
    assert report["imported"] >= 0 and report["skipped"] >= 0
    # We still have exactly what we had: same rows, same history, nothing of theirs.
    assert export(client, tenant) == ours_before
    assert history(client, tenant, made["colour"]) == colour_history
    assert list_ids(client, tenant) == sorted([*made["u1"], made["other_user"]])
    # Whatever they imported lives in their tenant only, under their own ids.
    theirs = parse(export(client, other_tenant))
    assert not {r["id"] for r in theirs} & set(made["u1"])


def test_export_record_fields_match_the_memory_as_served_by_get(client, tenant):
    made = build_user_memories(client, tenant)

    for record in parse(export(client, tenant, user_id="u1")):
        served = client.get(f"/v1/memories/{record['id']}", headers=tenant.headers).json()
        # job_id is operational state of this database, not part of the memory: exports leave it out.
        assert {k: record[k] for k in served if k != "job_id"} == without_job(served), record["id"]
        assert "job_id" not in record
    # In particular the derived fact names its evidence, as GET does.
    [sporty] = [r for r in parse(export(client, tenant, user_id="u1")) if r["id"] == made["sporty"]]
    assert sporty["source_ids"] == [made["hike"]]


def test_record_with_embedding_from_another_model_is_reembedded(client, tenant):
    [original] = parse(export(client, tenant_with(client, tenant, "The user's bike is a red road bike.")))
    client.delete("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)
    stale = {**original, "embedding_model": "some-older-model", "embedding": [0.05] * 384}

    response = import_(client, tenant, ndjson(stale))

    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 1
    assert response.json()["reembedded"] == 1
    wait_for_job(client, tenant, response.json()["job_id"])
    [restored] = parse(export(client, tenant, user_id="u1"))
    assert restored["embedding_model"] == "all-MiniLM-L6-v2"
    assert restored["embedding"] == original["embedding"]


def without_job(answer):
    return {k: v for k, v in answer.items() if k != "job_id"}


def tenant_with(client, tenant, content):
    add_memories(client, tenant, {"content": content})
    return tenant


def test_record_with_new_id_but_same_content_hash_is_skipped_as_a_duplicate(client, tenant):
    [original] = parse(export(client, tenant_with(client, tenant, "The user has two cats.")))
    copy = {**original, "id": str(uuid.uuid4())}

    response = import_(client, tenant, ndjson(copy))

    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 0
    assert response.json()["skipped"] == 1
    assert list_ids(client, tenant) == [original["id"]]


def test_hand_written_record_repeating_existing_content_in_scope_is_skipped(client, tenant):
    [existing] = add_memories(client, tenant, {"content": "The user has two cats."})
    repeat = hand_written_record(content="The user has two cats.")

    response = import_(client, tenant, ndjson(repeat))

    assert response.status_code == 201, response.text
    assert response.json()["skipped"] == 1
    assert response.json()["imported"] == 0
    assert list_ids(client, tenant) == [existing]


def test_superseded_fact_round_trips_closed(client, tenant):
    [old] = add_memories(client, tenant, {"content": "The user lives in Paris."})
    [new] = add_memories(client, tenant, {"content": "The user lives in Rome.", "supersedes": [old]})
    body = export(client, tenant, user_id="u1")
    client.delete("/v1/memories", params={"user_id": "u1"}, headers=tenant.headers)

    assert import_(client, tenant, body).status_code == 201

    records = parse(export(client, tenant, user_id="u1"))
    assert records == parse(body)
    assert records[0]["valid_to"] is not None
    assert records[1]["links"] == [{"source_id": old, "relation": "supersedes"}]
    hits = client.post(
        "/v1/search", json={"query": "which city is the user's home", "user_id": "u1"}, headers=tenant.headers
    ).json()["hits"]
    assert [h["memory"]["id"] for h in hits] == [new]


def test_large_import_and_export_cross_page_and_chunk_boundaries(client, tenant):
    def vector(n):  # distinct, non-zero vectors (identical ones would only exercise HNSW ties)
        return [0.5 if i == n % 384 else round(0.01 * ((i + n) % 7 + 1), 3) for i in range(384)]

    records = [
        hand_written_record(
            content=f"Bulk memory number {n}.",
            embedding=vector(n),
            embedding_model="all-MiniLM-L6-v2",
            created_at=f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}Z",
        )
        for n in range(503)
    ]

    response = import_(client, tenant, ndjson(*records))

    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 503
    assert response.json()["reembedded"] == 0
    exported = parse(export(client, tenant, user_id="u1"))
    assert [r["id"] for r in exported] == [r["id"] for r in records]
    assert [r["content"] for r in exported] == [r["content"] for r in records]
    # Stored in the default profile's float8 codes: each value comes back within float8 e4m3's relative precision.
    assert exported[-1]["embedding"] == pytest.approx(vector(502), rel=2**-4)

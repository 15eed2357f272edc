"""POST /v1/consolidate end to end: the real app, worker thread, Postgres and model; the extractive backend."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import TenantHandle, add_memories, assert_problem, create_tenant, wait_for_job

TRIP = [
    ("Alice", "I moved to Lisbon in May 2023 for a job at a bakery."),
    ("Bot", "That sounds exciting. How is the new job going?"),
    ("Alice", "The bakery opens at 6 every morning, so I wake up at 5."),
    ("Bot", "Early starts! Do you like the neighbourhood?"),
    ("Alice", "Alfama is lovely, and my sister Ines visits every other weekend."),
    ("Bot", "It is nice to have family close by."),
]
PETS = [
    ("Alice", "We adopted a rabbit called Biscuit last week."),
    ("Bot", "What a great name. How old is Biscuit?"),
    ("Alice", "Biscuit is two years old and loves carrots."),
]
START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def add_dialogue(client: Any, tenant: TenantHandle, session: str, turns: list[tuple[str, str]], day: int) -> list[str]:
    return add_memories(
        client,
        tenant,
        *[
            {
                "type": "dialogue",
                "user_id": "alice",
                "session_id": session,
                "speaker": speaker,
                "role": "user" if speaker == "Alice" else "assistant",
                "content": text,
                "occurred_at": (START + timedelta(days=day, minutes=n)).isoformat(),
            }
            for n, (speaker, text) in enumerate(turns)
        ],
    )


def consolidate(client: Any, tenant: TenantHandle, **body: Any) -> dict[str, Any]:
    accepted = client.post("/v1/consolidate", json=body, headers=tenant.headers)
    assert accepted.status_code == 202, accepted.text
    return wait_for_job(client, tenant, accepted.json()["job_id"])


def consolidated(client: Any, tenant: TenantHandle) -> list[dict[str, Any]]:
    page = client.get("/v1/memories", params={"user_id": "alice", "limit": 500}, headers=tenant.headers)
    assert page.status_code == 200, page.text
    return [m for m in page.json()["data"] if m["consolidation_level"] is not None]


def test_a_users_history_becomes_segment_session_and_profile_memories_linked_to_their_evidence(client, monkeypatch):
    from memsvc.consolidation import service

    # Segments of 4 turns: the trip session is two segments (one session summary), the pets session one.
    monkeypatch.setattr(service.ConsolidationConfig, "of", classmethod(lambda cls, s: cls(segment_items=4)))
    tenant = create_tenant(client)
    trip = add_dialogue(client, tenant, "trip", TRIP, day=0)
    pets = add_dialogue(client, tenant, "pets", PETS, day=3)

    job = consolidate(client, tenant, user_id="alice")
    assert job["kind"] == "consolidate" and job["params"]["scope"]["user_id"] == "alice"
    result = job["result"]
    assert result["backend"] == "extractive" and result["segments"] == 3 and result["skipped_segments"] == 0
    assert result["tokens_in"] > 0 and result["tokens_out"] > 0 and result["wall_s"] > 0

    written = consolidated(client, tenant)
    by_level: dict[str, list[dict[str, Any]]] = {}
    for memory in written:
        by_level.setdefault(memory["consolidation_level"], []).append(memory)
    segments, sessions, profiles = by_level["segment"], by_level["session"], by_level["profile"]
    assert len(segments) == 3 and len(sessions) == 1 and len(profiles) == 1
    assert all(m["embedding_status"] == "done" for m in written)  # the job embeds what it wrote
    assert job["total"] == len(written) and job["done"] == len(written)

    history = set(trip + pets)
    for segment in segments:
        assert segment["source_ids"] and set(segment["source_ids"]) <= history
        assert segment["user_id"] == "alice" and segment["session_id"] in ("trip", "pets")
    trip_segments = {s["id"] for s in segments if s["session_id"] == "trip"}
    assert len(trip_segments) == 2 and set(sessions[0]["source_ids"]) <= trip_segments
    assert sessions[0]["session_id"] == "trip"
    pets_segment = next(s["id"] for s in segments if s["session_id"] == "pets")
    assert set(profiles[0]["source_ids"]) <= {sessions[0]["id"], pets_segment}
    # Facts carry names and numbers from their sources only.
    for fact in by_level.get("fact", []):
        sources = [
            client.get(f"/v1/memories/{i}", headers=tenant.headers).json()["content"] for i in fact["source_ids"]
        ]
        assert any(word in " ".join(sources) for word in fact["content"].split() if word[:1].isupper())


def test_consolidating_again_writes_nothing_and_new_history_extends_the_hierarchy(client, monkeypatch):
    from memsvc.consolidation import service

    monkeypatch.setattr(service.ConsolidationConfig, "of", classmethod(lambda cls, s: cls(segment_items=4)))
    tenant = create_tenant(client)
    add_dialogue(client, tenant, "trip", TRIP, day=0)
    add_dialogue(client, tenant, "pets", PETS, day=3)
    consolidate(client, tenant, user_id="alice")
    before = {m["id"]: m for m in consolidated(client, tenant)}

    again = consolidate(client, tenant, user_id="alice")
    assert again["result"]["segments"] == 0 and again["result"]["summaries"] == 0
    assert {m["id"] for m in consolidated(client, tenant)} == set(before)

    # Two more pet turns: one new segment (read after the earlier ones as sensory memory); the pets session now
    # has two segments, so it gets a session summary, and the profile is replaced (the old one closed).
    add_dialogue(client, tenant, "pets", [("Alice", "Biscuit chewed the sofa in Lisbon."), ("Bot", "Oh no!")], day=4)
    more = consolidate(client, tenant, user_id="alice")
    assert more["result"]["segments"] == 1
    after = consolidated(client, tenant)
    current = [m for m in after if m["valid_to"] is None]
    assert sorted(m["session_id"] for m in current if m["consolidation_level"] == "session") == ["pets", "trip"]
    profiles = [m for m in after if m["consolidation_level"] == "profile"]
    assert len(profiles) == 2 and sum(1 for p in profiles if p["valid_to"] is None) == 1
    old_profile = next(p for p in profiles if p["id"] in before)
    assert old_profile["valid_to"] is not None


def test_search_finds_a_summary_and_expands_it_to_its_evidence(client):
    tenant = create_tenant(client)
    trip = add_dialogue(client, tenant, "trip", TRIP, day=0)
    consolidate(client, tenant, user_id="alice")
    found = client.post(
        "/v1/search",
        json={
            "query": "Where did Alice move for work?",
            "user_id": "alice",
            "hierarchy": "mixed",
            "expand": ["evidence"],
            "top_k": 20,
        },
        headers=tenant.headers,
    )
    assert found.status_code == 200, found.text
    summaries = [h for h in found.json()["hits"] if h["memory"]["consolidation_level"] == "segment"]
    assert summaries, found.json()
    evidence = {e["id"] for e in summaries[0]["evidence"]}
    assert evidence and evidence <= set(trip)


def search_hits(client: Any, tenant: TenantHandle, **body: Any) -> list[dict[str, Any]]:
    found = client.post("/v1/search", json={"user_id": "alice", **body}, headers=tenant.headers)
    assert found.status_code == 200, found.text
    hits: list[dict[str, Any]] = found.json()["hits"]
    return hits


def cited_by(memory_id: str, written: dict[str, dict[str, Any]]) -> set[str]:
    """What a consolidated memory cites, directly or through the levels below it."""
    found: set[str] = set()
    frontier = [memory_id]
    while frontier:
        sources = [s for m in frontier for s in written[m]["source_ids"] if s not in found]
        found |= set(sources)
        frontier = [s for s in sources if s in written]
    return found


def test_hierarchy_evidence_returns_the_history_the_best_summaries_cite_instead_of_them(client, monkeypatch):
    from memsvc.consolidation import service

    monkeypatch.setattr(service.ConsolidationConfig, "of", classmethod(lambda cls, s: cls(segment_items=4)))
    tenant = create_tenant(client)
    history = set(add_dialogue(client, tenant, "trip", TRIP, day=0) + add_dialogue(client, tenant, "pets", PETS, day=3))
    consolidate(client, tenant, user_id="alice")
    written = {m["id"]: m for m in consolidated(client, tenant)}
    # Two turns' worth in one question: the segment summary holding both sentences matches it best.
    query = "Alice moved to Lisbon for a job at a bakery, which opens at 6, so she wakes up at 5"

    mixed = search_hits(client, tenant, query=query, top_k=20, hierarchy="mixed")
    top = mixed[0]["memory"]
    assert top["consolidation_level"] is not None  # a summary or fact ranks first among the turns

    routed = search_hits(client, tenant, query=query, top_k=20)  # hierarchy: evidence, the default
    assert routed and {h["memory"]["id"] for h in routed} <= history  # consolidated hits gave way to their sources
    assert routed[0]["via"] == [top["id"]] and "hierarchy" in routed[0]["matched_by"]
    assert routed[0]["memory"]["id"] in cited_by(top["id"], written)
    assert routed[0]["score"] >= 0.5  # a confident match itself
    for hit in routed:
        if "hierarchy" in hit["matched_by"]:
            (via,) = hit["via"]
            assert hit["memory"]["id"] in cited_by(via, written)
        else:
            assert hit["via"] == []
    assert len({h["memory"]["id"] for h in routed}) == len(routed) <= 20  # each memory once


def test_hierarchy_evidence_keeps_to_the_filters(client, monkeypatch):
    from memsvc.consolidation import service

    monkeypatch.setattr(service.ConsolidationConfig, "of", classmethod(lambda cls, s: cls(segment_items=4)))
    tenant = create_tenant(client)
    trip = add_dialogue(client, tenant, "trip", TRIP, day=0)
    consolidate(client, tenant, user_id="alice")
    # The first segment's summary is dated by its last turn, so it passes a filter that its first turn does not.
    after_first_turn = (START + timedelta(minutes=1)).isoformat()
    hits = search_hits(
        client,
        tenant,
        query="Alice moved to Lisbon for a job at a bakery",
        hierarchy="evidence",
        occurred_after=after_first_turn,
        top_k=20,
    )
    assert hits and trip[0] not in {h["memory"]["id"] for h in hits}
    earliest = START + timedelta(minutes=1)
    assert all(datetime.fromisoformat(h["memory"]["occurred_at"]) >= earliest for h in hits)


def test_another_tenant_consolidates_only_its_own_history(client, tenant, other_tenant):
    add_dialogue(client, tenant, "trip", TRIP, day=0)
    theirs = consolidate(client, other_tenant, user_id="alice")
    assert theirs["result"]["segments"] == 0
    assert consolidated(client, other_tenant) == [] and consolidated(client, tenant) == []


def test_a_consolidation_request_needs_a_scope_and_a_known_backend(client, tenant):
    assert "user_id" in assert_problem(client.post("/v1/consolidate", json={}, headers=tenant.headers), 422)["detail"]
    unknown = client.post("/v1/consolidate", json={"user_id": "alice", "backend": "gpt-9"}, headers=tenant.headers)
    assert "gpt-9" in assert_problem(unknown, 422)["detail"]
    extra = client.post("/v1/consolidate", json={"user_id": "alice", "colour": "red"}, headers=tenant.headers)
    assert_problem(extra, 422)


def test_a_later_fact_supersedes_the_one_it_updates_and_a_repeat_only_adds_evidence(client):
    tenant = create_tenant(client)
    before = add_dialogue(client, tenant, "spring", [("Alice", "I live in Lisbon with my sister Ines.")], day=0)
    consolidate(client, tenant, user_id="alice")
    [lisbon] = [m for m in consolidated(client, tenant) if m["consolidation_level"] == "fact"]
    assert lisbon["source_ids"] == before

    moved = add_dialogue(client, tenant, "autumn", [("Alice", "I live in Porto with my sister Ines.")], day=200)
    update = consolidate(client, tenant, user_id="alice")
    assert update["result"]["updated_facts"] == 1
    facts = {m["id"]: m for m in consolidated(client, tenant) if m["consolidation_level"] == "fact"}
    porto = next(m for m in facts.values() if "Porto" in m["content"])
    assert facts[lisbon["id"]]["valid_to"] is not None and porto["valid_to"] is None
    assert porto["valid_from"] == facts[lisbon["id"]]["valid_to"]  # closed when the newer became true
    linked = client.get(f"/v1/memories/{porto['id']}", headers=tenant.headers).json()["source_ids"]
    assert set(linked) == set(moved)

    again = add_dialogue(client, tenant, "winter", [("Alice", "I live in Porto with my sister Ines.")], day=300)
    repeat = consolidate(client, tenant, user_id="alice")
    assert repeat["result"]["merged_facts"] == 1 and repeat["result"]["facts"] == 0
    porto_now = client.get(f"/v1/memories/{porto['id']}", headers=tenant.headers).json()
    assert set(porto_now["source_ids"]) == {*moved, *again} and porto_now["valid_to"] is None

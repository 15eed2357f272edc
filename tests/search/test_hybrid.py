"""POST /v1/search beyond dense retrieval: lexical and hybrid modes, time expressions, entities, evidence
expansion, diversity, calibrated abstention, tenant defaults and filtered searches at 1% selectivity."""

import pytest
from sqlalchemy import event

from memsvc.search import service
from tests.conftest import ADMIN, add_memories, assert_problem, create_tenant

NOW = "2024-05-15T14:30:00Z"  # a Wednesday


def search(client, tenant, **body):
    response = client.post("/v1/search", json={"user_id": "u1", **body}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def ids(answer):
    return [h["memory"]["id"] for h in answer["hits"]]


def test_lexical_mode_finds_a_rare_code_word_and_hybrid_keeps_it_on_top(client):
    tenant = create_tenant(client)
    contents = [
        "The deployment of project ZX81 is frozen until the audit ends.",
        "Deployments are frozen during the holiday season.",
        "The audit of the payroll system starts in June.",
        "Our team froze the release branch yesterday.",
    ]
    stored = add_memories(client, tenant, *({"content": c} for c in contents))

    lexical = search(client, tenant, query="ZX81", mode="lexical")
    assert ids(lexical) == [stored[0]]
    assert lexical["mode"] == "lexical"
    assert lexical["hits"][0]["matched_by"] == ["lexical"]
    assert lexical["hits"][0]["scores"]["lexical"] == pytest.approx(1.0)

    hybrid = search(client, tenant, query="is ZX81 frozen?")
    assert ids(hybrid)[0] == stored[0]
    assert set(hybrid["hits"][0]["matched_by"]) >= {"dense", "lexical"}
    assert hybrid["hits"][0]["scores"]["dense"] is not None


def test_weights_decide_between_sources(client):
    tenant = create_tenant(client)
    stored = add_memories(
        client,
        tenant,
        {"content": "The user's favourite fruit is mango."},
        {"content": "Ticket ZQ4471 closed: printer fixed."},
    )
    query = "tropical produce ZQ4471"
    dense_only = search(client, tenant, query=query, weights={"dense": 1, "lexical": 0, "entity": 0, "time": 0})
    lexical_only = search(client, tenant, query=query, weights={"dense": 0, "lexical": 1, "entity": 0, "time": 0})
    assert ids(dense_only)[0] == stored[0]
    assert ids(lexical_only)[0] == stored[1]


def test_a_time_expression_ranks_memories_of_that_time_first(client):
    tenant = create_tenant(client)
    days = ["2024-04-10", "2024-05-08", "2024-03-02", "2024-05-01"]  # last week (Mon 6 - Sun 12 May) is the 2nd
    stored = add_memories(
        client,
        tenant,
        *(
            {
                "type": "episodic",
                "content": f"Went for a long run along the river ({n}).",
                "occurred_at": f"{day}T08:00:00Z",
            }
            for n, day in enumerate(days)
        ),
    )
    answer = search(client, tenant, query="when did I go running last week?", now=NOW)
    assert answer["time_window"]["text"] == "last week"
    assert answer["time_window"]["start"].startswith("2024-05-06")
    assert ids(answer)[0] == stored[1]
    assert "time" in answer["hits"][0]["matched_by"]

    untimed = search(client, tenant, query="when did I go running last week?", now=NOW, parse_time=False)
    assert untimed["time_window"] is None
    assert all("time" not in h["matched_by"] for h in untimed["hits"])


def test_entities_are_stored_filtered_on_and_boost_their_memories(client):
    tenant = create_tenant(client)
    stored = add_memories(
        client,
        tenant,
        {"content": "Yesterday Priya Raman moved to Lisbon for a new job."},
        {"content": "Someone moved to a new city for a job."},
        {"type": "dialogue", "session_id": "s1", "speaker": "Priya", "content": "The flat search was exhausting."},
    )
    memory = client.get(f"/v1/memories/{stored[0]}", headers=tenant.headers).json()
    assert {"priya raman", "priya", "lisbon"} <= set(memory["entities"])

    filtered = search(client, tenant, query="who moved for a job", entities=["Priya"])
    assert set(ids(filtered)) == {stored[0], stored[2]}
    assert ids(search(client, tenant, query="who moved", entities=["Priya", "Lisbon"])) == [stored[0]]

    boosted = search(client, tenant, query="what did priya say", weights={"entity": 1})
    assert "entity" in boosted["hits"][0]["matched_by"]
    assert boosted["hits"][0]["memory"]["id"] in (stored[0], stored[2])


def test_expand_evidence_returns_the_sources_of_a_consolidated_memory(client):
    tenant = create_tenant(client)
    sources = add_memories(
        client,
        tenant,
        {"content": "Monday: Sam said the staging database keeps running out of disk."},
        {"content": "Tuesday: Sam doubled the staging disk to 200 GB."},
    )
    (summary,) = add_memories(
        client,
        tenant,
        {"content": "Staging ran out of disk; Sam doubled it to 200 GB.", "source_ids": sources},
    )
    answer = search(client, tenant, query="staging disk problem", expand=["evidence"])
    evidence = {h["memory"]["id"]: {m["id"] for m in h["evidence"]} for h in answer["hits"]}
    assert evidence == {summary: set(sources), sources[0]: set(), sources[1]: set()}
    (expanded,) = (h for h in answer["hits"] if h["memory"]["id"] == summary)
    assert {m["content"][:7] for m in expanded["evidence"]} == {"Monday:", "Tuesday"}

    plain = search(client, tenant, query="staging disk problem")
    assert all(h["evidence"] == [] for h in plain["hits"])


def test_expanded_evidence_comes_best_match_first_up_to_the_limit(client):
    tenant = create_tenant(client)
    sources = add_memories(
        client,
        tenant,
        {"content": "Sam booked the team offsite at a lake hotel."},
        {"content": "The staging database ran out of disk on Monday."},
        {"content": "Lunch on Friday is pizza."},
    )
    (summary,) = add_memories(
        client, tenant, {"content": "A week of the team: offsite, staging disk, pizza.", "source_ids": sources}
    )
    query = "staging database disk"
    answer = search(client, tenant, query=query, expand=["evidence"], evidence_limit=1)
    (expanded,) = (h for h in answer["hits"] if h["memory"]["id"] == summary)
    assert [m["id"] for m in expanded["evidence"]] == [sources[1]]

    everything = search(client, tenant, query=query, expand=["evidence"])
    (expanded,) = (h for h in everything["hits"] if h["memory"]["id"] == summary)
    assert [m["id"] for m in expanded["evidence"]][0] == sources[1]
    assert {m["id"] for m in expanded["evidence"]} == set(sources)


def test_diversity_pushes_near_duplicates_down(client):
    tenant = create_tenant(client)
    stored = add_memories(
        client,
        tenant,
        {"content": "The user loves hiking in the Alps."},
        {"content": "The user really loves hiking in the Alps!"},
        {"content": "The user loves going hiking in the Alps."},
        {"content": "The user enjoys mountain biking on weekends."},
    )
    query = "hiking in the Alps"
    plain = ids(search(client, tenant, query=query, top_k=2))
    assert set(plain) <= set(stored[:3])
    diverse = ids(search(client, tenant, query=query, top_k=2, diversity=0.7))
    assert stored[3] in diverse


def test_min_score_abstains_instead_of_padding_with_noise(client):
    tenant = create_tenant(client)
    add_memories(
        client,
        tenant,
        {"content": "Alice is allergic to peanuts."},
        {"content": "The office printer is out of toner."},
    )
    noise = search(client, tenant, query="quantum chromodynamics lattice gauge theory", min_score=0.5)
    assert noise["hits"] == []
    assert noise["no_confident_memory"] is True

    answered = search(client, tenant, query="what is Alice allergic to?", min_score=0.5)
    assert answered["hits"] and answered["no_confident_memory"] is False
    assert all(h["score"] >= 0.5 for h in answered["hits"])
    assert answered["hits"][0]["memory"]["content"] == "Alice is allergic to peanuts."

    padded = search(client, tenant, query="quantum chromodynamics lattice gauge theory")
    assert len(padded["hits"]) == 2 and padded["no_confident_memory"] is True


def test_tenant_search_defaults_apply_until_a_request_overrides_them(client):
    tenant = create_tenant(client)
    add_memories(client, tenant, {"content": "The wifi password is on the fridge."})
    url = f"/v1/tenants/{tenant.id}/search-defaults"
    assert client.get(url, headers=ADMIN).json() == {
        "mode": None,
        "weights": None,
        "fusion": None,
        "parse_time": None,
        "recency_half_life_days": None,
        "min_score": None,
        "diversity": None,
        "rerank": None,
        "hierarchy": None,
    }
    saved = client.put(url, json={"mode": "lexical", "weights": {"lexical": 2}}, headers=ADMIN)
    assert saved.status_code == 200, saved.text
    assert saved.json()["weights"] == {"dense": 1.0, "lexical": 2.0, "entity": 0.0, "time": 2.0}

    assert search(client, tenant, query="wifi password")["mode"] == "lexical"
    assert search(client, tenant, query="wifi password", mode="dense")["mode"] == "dense"

    assert_problem(client.put(url, json={"weights": {"dense": -1}}, headers=ADMIN), 422)
    assert_problem(client.put(url, json={"mode": "magic"}, headers=ADMIN), 422)
    assert_problem(client.put(url, json={}, headers=tenant.headers), 403)
    assert client.put(url, json={}, headers=ADMIN).json()["mode"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "fuzzy"},
        {"fusion": "borda"},
        {"weights": {"dense": 11}},
        {"weights": {"semantic": 1}},
        {"diversity": 1.5},
        {"min_score": -0.1},
        {"expand": ["everything"]},
        {"evidence_limit": 0},
        {"hierarchy": "flat"},
        {"entities": [""]},
        {"now": "yesterday"},
        {"recency_half_life_days": 0},
    ],
)
def test_invalid_search_options_are_422(client, body):
    tenant = create_tenant(client)
    response = client.post("/v1/search", json={"query": "x", **body}, headers=tenant.headers)
    assert_problem(response, 422)


def test_recency_weighting_prefers_the_newer_of_two_equal_memories(client):
    tenant = create_tenant(client)
    stored = add_memories(
        client,
        tenant,
        {"type": "episodic", "content": "Paid the electricity bill.", "occurred_at": "2023-01-10T09:00:00Z"},
        {"type": "episodic", "content": "Paid the electricity bill!", "occurred_at": "2024-05-10T09:00:00Z"},
    )
    answer = search(client, tenant, query="electricity bill", now=NOW, recency_half_life_days=30, parse_time=False)
    assert ids(answer)[0] == stored[1]


RARE = "kestrel"


@pytest.mark.parametrize("exact_limit", [service.EXACT_SCAN_LIMIT, 0], ids=["exact-scan", "index-scan"])
def test_filtered_search_at_one_percent_selectivity_still_fills_top_k(client, monkeypatch, exact_limit):
    tenant = create_tenant(client)
    topics = ["groceries", "the weather", "a football match", "a new phone", "train delays", "a birthday party"]
    items = [
        {"content": f"Note {n}: a short remark about {topics[n % len(topics)]} number {n}.", "metadata": {"n": n}}
        for n in range(1000)
    ]
    for n in range(0, 1000, 100):  # 10 of 1,000
        items[n]["metadata"] = {"n": n, "tag": RARE}
    for offset in range(0, len(items), 500):
        add_memories(client, tenant, *items[offset : offset + 500])
    monkeypatch.setattr(service, "EXACT_SCAN_LIMIT", exact_limit)

    answer = search(client, tenant, query="a remark about the weather", top_k=10, filters={"tag": RARE})
    assert len(answer["hits"]) == 10
    assert all(h["memory"]["metadata"]["tag"] == RARE for h in answer["hits"])


def test_a_small_filtered_selection_is_sized_and_scored_in_the_same_statement(client):
    tenant = create_tenant(client)
    mine = add_memories(
        client, tenant, *[{"content": f"Ana's note {n} about sailing", "user_id": "ana"} for n in range(8)]
    )
    add_memories(client, tenant, *[{"content": f"Bo's note {n} about sailing", "user_id": "bo"} for n in range(8)])
    statements: list[str] = []

    def record(conn, cursor, statement, *_):
        statements.append(statement)

    engine = client.app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        answer = search(client, tenant, query="sailing", user_id="ana", top_k=5)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert set(ids(answer)) <= set(mine) and len(ids(answer)) == 5
    assert not [s for s in statements if s.lstrip().startswith("SELECT count(*)")], "no separate count"
    # The user's ranking only: with no consolidated memories in the tenant yet, no search looks for them.
    assert sum("WITH selected AS MATERIALIZED" in s for s in statements) == 1


def test_a_question_about_the_present_puts_the_newest_version_of_a_fact_first(client):
    tenant = create_tenant(client)
    stored = add_memories(
        client,
        tenant,
        {"content": "Dana lives in Porto; she moved there in March.", "occurred_at": "2024-03-10T09:00:00Z"},
        {"content": "Dana lives in Oslo.", "occurred_at": "2020-06-01T09:00:00Z"},
    )
    now = search(client, tenant, query="Which city does Dana live in now?", now=NOW)
    assert ids(now)[0] == stored[0]
    # The recency preference comes from "now": the same question without reading time ranks by relevance alone.
    plain = search(client, tenant, query="Which city does Dana live in now?", now=NOW, parse_time=False)
    fused = {h["memory"]["id"]: h["scores"]["fused"] for h in plain["hits"]}
    cued = {h["memory"]["id"]: h["scores"]["fused"] for h in now["hits"]}
    assert cued[stored[1]] / fused[stored[1]] < cued[stored[0]] / fused[stored[0]]


def test_lexical_candidates_come_from_the_rarest_words_but_every_word_scores(client, monkeypatch):
    tenant = create_tenant(client)
    common = [{"content": f"Weekly meeting number {n} about the budget."} for n in range(6)]
    other = [{"content": f"Groceries list number {n}: apples and bread."} for n in range(6)]
    rare = [
        {"content": "The meeting with the ornithologist was cancelled."},
        {"content": "An ornithologist counted the birds."},
    ]
    stored = add_memories(client, tenant, *common, *other, *rare)
    query = "meeting ornithologist"

    # A word-frequency sample short of the whole store: candidates come through the text index, from the rarest
    # words within the budget. Budget for one memory: only the rarer word; the memory with both ranks first.
    monkeypatch.setattr(service, "IDF_SAMPLE", 10)
    monkeypatch.setattr(service, "LEXICAL_SCAN_BUDGET", 1)
    pruned = search(client, tenant, query=query, mode="lexical", top_k=20)
    assert ids(pruned) == stored[12:]
    assert pruned["hits"][0]["scores"]["lexical"] == pytest.approx(1.0)
    assert 0 < pruned["hits"][1]["scores"]["lexical"] < 1

    # A store the sample covers whole is scored whole: memories with only the common word follow.
    monkeypatch.setattr(service, "IDF_SAMPLE", 1000)
    everything = search(client, tenant, query=query, mode="lexical", top_k=20)
    assert ids(everything)[:2] == stored[12:] and set(ids(everything)) == set(stored[:6] + stored[12:])


def test_relevance_fusion_scores_every_hit_on_both_sides_and_ranks_by_calibrated_score(client):
    tenant = create_tenant(client)
    add_memories(
        client,
        tenant,
        {"content": "Priya moved to Lisbon for a job at a bakery."},
        {"content": "The bakery on Main Street sells sourdough."},
        {"content": "Priya's sister lives in Porto."},
        {"content": "Lisbon trams are yellow."},
        {"content": "The user prefers tea to coffee."},
        {"content": "A new job started in March."},
    )
    query = "Where does Priya work?"
    fused = search(client, tenant, query=query, fusion="relevance", parse_time=False)
    scores = [h["score"] for h in fused["hits"]]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    for hit in fused["hits"]:
        names_priya = "Priya" in hit["memory"]["content"]
        assert hit["scores"]["dense"] is not None
        assert (hit["scores"]["lexical"] or 0) > 0 if names_priya else hit["scores"]["lexical"] is None
    assert fused["hits"][0]["memory"]["content"].startswith("Priya")

    # A side weighted 0 does not rank: lexical alone puts the memories naming Priya first, in either order.
    lexical_side = search(
        client, tenant, query=query, fusion="relevance", parse_time=False, weights={"dense": 0, "lexical": 1}
    )
    assert {h["memory"]["content"][:5] for h in lexical_side["hits"][:2]} == {"Priya"}

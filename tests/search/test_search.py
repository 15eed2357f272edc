"""POST /v1/search: dense retrieval with the real embedding model, scope/type/metadata/time filters, validity."""

import pytest

from tests.conftest import add_memories, assert_problem

DISTRACTORS = [
    "The office printer on the third floor is out of toner.",
    "Bob supports Arsenal and watches every home match.",
    "The quarterly budget review is scheduled for next Thursday.",
    "Maria plays the cello in a community orchestra.",
    "The user drives a blue 2015 Honda Civic.",
    "The cat needs her vaccination booster in March.",
    "The cabin's wifi password is written on the fridge door.",
    "Last summer's holiday was a two-week trip to Tokyo.",
    "The user prefers dark mode in every code editor.",
    "The garden tomatoes were planted in late April.",
]

# (stored memory, a paraphrased question that shares almost no words with it)
PARAPHRASES = [
    ("Alice is allergic to peanuts.", "which food makes Alice ill"),
    ("The user's daughter Emma was born on 12 June 2015.", "when is the user's kid's birthday"),
    ("The user is vegetarian and never eats meat or fish.", "what are the user's dietary restrictions"),
    ("The user works night shifts as a nurse at the city hospital.", "what does the user do for a living"),
    ("The user is afraid of flying and avoids airplanes.", "does the user have any phobias about air travel"),
]


def search(client, tenant, **body):
    response = client.post("/v1/search", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def hit_ids(hits):
    return [h["memory"]["id"] for h in hits]


@pytest.mark.parametrize(("stored", "question"), PARAPHRASES, ids=[q for _, q in PARAPHRASES])
def test_paraphrased_question_returns_the_stored_memory_first(client, tenant, stored, question):
    contents = [*DISTRACTORS, *(s for s, _ in PARAPHRASES)]
    ids = add_memories(client, tenant, *({"content": c} for c in contents))
    wanted = ids[contents.index(stored)]

    hits = search(client, tenant, query=question, user_id="u1", top_k=5)

    assert hits[0]["memory"]["id"] == wanted
    assert hits[0]["memory"]["content"] == stored


def test_procedural_memory_is_found_by_describing_the_task(client, tenant):
    add_memories(client, tenant, *({"content": c} for c in DISTRACTORS))
    [procedure] = add_memories(
        client,
        tenant,
        {
            "type": "procedural",
            "title": "Deploy the web app",
            "trigger": "releasing a new version of the website",
            "content": "Release the web application to production.",
            "steps": [
                "run the test suite",
                "build the docker image",
                "push the image to the registry",
                "roll out with kubectl",
            ],
        },
    )

    hits = search(client, tenant, query="how do I ship a new release of our website to prod", user_id="u1")

    assert hits[0]["memory"]["id"] == procedure
    assert hits[0]["memory"]["type"] == "procedural"
    assert hits[0]["memory"]["steps"][0] == "run the test suite"


def test_dense_scores_are_cosine_similarities_in_descending_order(client, tenant):
    add_memories(client, tenant, *({"content": c} for c in DISTRACTORS))

    query = "The cat needs her vaccination booster in March."
    hits = search(client, tenant, query=query, user_id="u1", top_k=10, mode="dense")

    cosines = [h["scores"]["dense"] for h in hits]
    assert len(cosines) == len(DISTRACTORS)
    assert cosines == sorted(cosines, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in cosines)
    assert all(0.0 <= h["score"] <= 1.0 for h in hits)
    # The exact stored text scores (almost) 1, far above the unrelated ones; so does its calibrated relevance.
    assert hits[0]["memory"]["content"] == query
    assert cosines[0] > 0.99 and cosines[1] < 0.8
    assert hits[0]["score"] > 0.9 > hits[1]["score"]


def test_top_k_limits_the_number_of_hits(client, tenant):
    add_memories(client, tenant, *({"content": c} for c in DISTRACTORS))

    assert len(search(client, tenant, query="weekend plans", user_id="u1", top_k=3)) == 3
    assert len(search(client, tenant, query="weekend plans", user_id="u1", top_k=1)) == 1
    # top_k larger than what exists returns everything there is, once.
    everything = search(client, tenant, query="weekend plans", user_id="u1", top_k=100)
    assert len(everything) == len(DISTRACTORS)
    assert len(set(hit_ids(everything))) == len(DISTRACTORS)


def test_default_top_k_is_ten(client, tenant):
    add_memories(client, tenant, *({"content": f"{c} (note {n})"} for n, c in enumerate(DISTRACTORS * 2)))

    assert len(search(client, tenant, query="weekend plans", user_id="u1")) == 10


def test_user_agent_and_session_scopes_filter_hits(client, tenant):
    [u1_plain] = add_memories(client, tenant, {"content": "The user likes jazz music."})
    [u2_plain] = add_memories(client, tenant, {"content": "The user likes jazz music.", "user_id": "u2"})
    [agent_only] = add_memories(
        client, tenant, {"content": "The agent likes jazz music.", "user_id": None, "agent_id": "a1"}
    )
    [u1_session] = add_memories(
        client, tenant, {"content": "In this chat the user asked for jazz.", "session_id": "s1"}
    )
    query = "what music does the user like"

    assert set(hit_ids(search(client, tenant, query=query, user_id="u1"))) == {u1_plain, u1_session}
    assert hit_ids(search(client, tenant, query=query, user_id="u2")) == [u2_plain]
    assert hit_ids(search(client, tenant, query=query, agent_id="a1")) == [agent_only]
    assert hit_ids(search(client, tenant, query=query, session_id="s1")) == [u1_session]
    assert hit_ids(search(client, tenant, query=query, user_id="u1", session_id="s1")) == [u1_session]
    assert search(client, tenant, query=query, user_id="u2", agent_id="a1") == []
    assert search(client, tenant, query=query, user_id="nobody") == []
    # No scope at all: the whole tenant.
    assert set(hit_ids(search(client, tenant, query=query))) == {u1_plain, u2_plain, agent_only, u1_session}


def test_types_filter_keeps_only_the_listed_types(client, tenant):
    semantic, episodic, procedural = add_memories(
        client,
        tenant,
        {"type": "semantic", "content": "The user drinks coffee black."},
        {"type": "episodic", "content": "This morning the user spilled coffee on the laptop."},
        {"type": "procedural", "title": "Brew coffee", "content": "Make pour-over coffee.", "steps": ["grind"]},
    )
    query = "coffee"

    only_two = search(client, tenant, query=query, user_id="u1", types=["episodic", "procedural"])
    assert set(hit_ids(only_two)) == {episodic, procedural}
    assert {h["memory"]["type"] for h in only_two} == {"episodic", "procedural"}

    assert hit_ids(search(client, tenant, query=query, user_id="u1", types=["semantic"])) == [semantic]
    assert search(client, tenant, query=query, user_id="u1", types=["dialogue"]) == []


def test_metadata_filter_matches_by_json_containment(client, tenant):
    chat, email, _plain = add_memories(
        client,
        tenant,
        {"content": "The user asked to move the meeting.", "metadata": {"source": "chat", "tags": ["work", "urgent"]}},
        {"content": "The user confirmed the meeting by email.", "metadata": {"source": "email", "priority": 2}},
        {"content": "The user has a meeting on Friday."},
    )
    query = "meeting"

    assert hit_ids(search(client, tenant, query=query, user_id="u1", filters={"source": "chat"})) == [chat]
    assert hit_ids(search(client, tenant, query=query, user_id="u1", filters={"tags": ["urgent"]})) == [chat]
    assert hit_ids(search(client, tenant, query=query, user_id="u1", filters={"priority": 2})) == [email]
    assert search(client, tenant, query=query, user_id="u1", filters={"source": "chat", "priority": 2}) == []
    assert search(client, tenant, query=query, user_id="u1", filters={"source": "sms"}) == []


def test_occurred_range_is_inclusive_after_and_exclusive_before(client, tenant):
    jan, feb, mar = add_memories(
        client,
        tenant,
        {"type": "episodic", "content": "The user ran a 5k race.", "occurred_at": "2024-01-01T00:00:00Z"},
        {"type": "episodic", "content": "The user ran a 10k race.", "occurred_at": "2024-02-01T00:00:00Z"},
        {"type": "episodic", "content": "The user ran a half marathon.", "occurred_at": "2024-03-01T00:00:00Z"},
    )
    query = "running races"

    after = search(client, tenant, query=query, user_id="u1", occurred_after="2024-02-01T00:00:00Z")
    assert set(hit_ids(after)) == {feb, mar}
    before = search(client, tenant, query=query, user_id="u1", occurred_before="2024-03-01T00:00:00Z")
    assert set(hit_ids(before)) == {jan, feb}
    both = search(
        client,
        tenant,
        query=query,
        user_id="u1",
        occurred_after="2024-02-01T00:00:00Z",
        occurred_before="2024-03-01T00:00:00Z",
    )
    assert hit_ids(both) == [feb]
    # A timestamp without an offset is taken as UTC.
    assert hit_ids(search(client, tenant, query=query, user_id="u1", occurred_after="2024-02-15T00:00:00")) == [mar]


def test_fact_closed_by_patch_is_excluded_unless_expired_or_earlier_time_requested(client, tenant):
    [old] = add_memories(client, tenant, {"content": "The user lives in Paris."})
    query = "where does the user live"
    assert hit_ids(search(client, tenant, query=query, user_id="u1")) == [old]

    patched = client.patch(f"/v1/memories/{old}", json={"valid_to": "2023-06-01T00:00:00Z"}, headers=tenant.headers)
    assert patched.status_code == 200, patched.text

    assert search(client, tenant, query=query, user_id="u1") == []
    assert hit_ids(search(client, tenant, query=query, user_id="u1", include_expired=True)) == [old]
    assert hit_ids(search(client, tenant, query=query, user_id="u1", as_of="2023-05-31T23:59:59Z")) == [old]
    # valid_to is exclusive: at that very instant the fact is no longer valid.
    assert search(client, tenant, query=query, user_id="u1", as_of="2023-06-01T00:00:00Z") == []


def test_fact_created_with_past_validity_only_found_inside_its_window(client, tenant):
    [closed] = add_memories(
        client,
        tenant,
        {
            "content": "The user's manager is Dana.",
            "valid_from": "2020-01-01T00:00:00Z",
            "valid_to": "2022-01-01T00:00:00Z",
        },
    )
    query = "who is the user's boss"

    assert search(client, tenant, query=query, user_id="u1") == []
    assert hit_ids(search(client, tenant, query=query, user_id="u1", include_expired=True)) == [closed]
    assert hit_ids(search(client, tenant, query=query, user_id="u1", as_of="2021-01-01T00:00:00Z")) == [closed]
    # Before valid_from it was not yet true either.
    assert search(client, tenant, query=query, user_id="u1", as_of="2019-01-01T00:00:00Z") == []


def test_superseded_fact_is_replaced_by_its_successor(client, tenant):
    [old] = add_memories(client, tenant, {"content": "The user's phone number ends in 1234."})
    [new] = add_memories(client, tenant, {"content": "The user's phone number ends in 9876.", "supersedes": [old]})
    query = "what is the user's phone number"

    assert hit_ids(search(client, tenant, query=query, user_id="u1")) == [new]
    assert set(hit_ids(search(client, tenant, query=query, user_id="u1", include_expired=True))) == {old, new}


def test_future_fact_is_not_yet_valid(client, tenant):
    [future] = add_memories(
        client, tenant, {"content": "The user will work in Lisbon.", "valid_from": "2999-01-01T00:00:00Z"}
    )
    query = "where will the user work"

    assert search(client, tenant, query=query, user_id="u1") == []
    assert hit_ids(search(client, tenant, query=query, user_id="u1", as_of="2999-06-01T00:00:00Z")) == [future]


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "   \n\t "},
        {"query": "coffee", "top_k": 0},
        {"query": "coffee", "top_k": 101},
        {"query": "coffee", "top_k": 100000},
        {"query": "coffee", "top_k": -1},
        {"query": "coffee", "types": ["gossip"]},
        {"query": "coffee", "unexpected": True},
        {"top_k": 5},
        {"query": "coffee", "user_id": ""},
        {"query": "coffee", "filters": ["not", "an", "object"]},
        {"query": "coffee", "occurred_after": "yesterday-ish"},
    ],
    ids=[
        "empty-query",
        "whitespace-query",
        "top_k-0",
        "top_k-101",
        "top_k-100000",
        "top_k-negative",
        "unknown-type",
        "extra-field",
        "missing-query",
        "empty-user_id",
        "filters-not-object",
        "bad-timestamp",
    ],
)
def test_invalid_search_request_is_a_422_problem(client, tenant, body):
    response = client.post("/v1/search", json=body, headers=tenant.headers)

    problem = assert_problem(response, 422)
    assert problem["errors"]
    assert all(e["loc"][0] == "body" for e in problem["errors"])


def test_top_k_of_100_is_accepted(client, tenant):
    add_memories(client, tenant, {"content": "The user likes tea."})

    assert len(search(client, tenant, query="tea", top_k=100)) == 1


def test_other_tenant_searching_same_user_sees_none_of_our_memories(client, tenant, other_tenant):
    ours = add_memories(
        client, tenant, *({"content": c} for c in DISTRACTORS), {"content": "Alice is allergic to peanuts."}
    )

    assert search(client, other_tenant, query="which food makes Alice ill", user_id="u1", top_k=100) == []

    [theirs] = add_memories(client, other_tenant, {"content": "Alice loves strawberries."})
    hits = search(client, other_tenant, query="which food makes Alice ill", user_id="u1", top_k=100)
    assert hit_ids(hits) == [theirs]
    assert not set(hit_ids(hits)) & set(ours)
    # ... and our own search is untouched by theirs.
    assert theirs not in hit_ids(search(client, tenant, query="Alice food", user_id="u1", top_k=100))


def test_search_without_a_key_is_401(client):
    assert_problem(client.post("/v1/search", json={"query": "anything"}), 401)

"""POST /v1/search with context_window: a dialogue hit comes with its neighbouring turns from its own session."""

from tests.conftest import add_memories, assert_problem, create_tenant, wait_for_job

TRIP = [
    ("user", "Alice", "Morning! I have a few things to sort out today."),
    ("assistant", "Bot", "Happy to help. What first?"),
    ("user", "Alice", "My passport expires next month."),
    ("assistant", "Bot", "You can renew it online in about three weeks."),
    ("user", "Alice", "I am flying to Lisbon for my sister's wedding in June."),
    ("assistant", "Bot", "Then renew the passport this week to be safe."),
    ("user", "Alice", "Also remind me to buy a gift."),
    ("assistant", "Bot", "Noted: a wedding gift before June."),
]
OTHER = [
    ("user", "Alice", "Different chat, same opening."),
    ("assistant", "Bot", "This session must never leak into the other one's context."),
    ("user", "Alice", "I love the beaches in Lisbon."),
]


def start_session(client, tenant, session_id, turns):
    messages = [{"role": role, "name": name, "content": content} for role, name, content in turns]
    response = client.post(
        f"/v1/sessions/{session_id}/messages", json={"messages": messages, "user_id": "alice"}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    wait_for_job(client, tenant, response.json()["job_id"])


def search(client, tenant, **body):
    response = client.post("/v1/search", json={"user_id": "alice", **body}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def test_a_dialogue_hit_comes_with_the_turns_around_it_in_order(client):
    tenant = create_tenant(client)
    start_session(client, tenant, "trip", TRIP)
    start_session(client, tenant, "other", OTHER)

    [hit] = search(client, tenant, query="which city is Alice flying to for the wedding", top_k=1, context_window=2)

    assert (hit["memory"]["content"], hit["memory"]["turn_index"]) == (TRIP[4][2], 4)
    assert [(t["turn_index"], t["content"]) for t in hit["context"]] == [(i, TRIP[i][2]) for i in (2, 3, 5, 6)]
    assert {t["session_id"] for t in hit["context"]} == {"trip"}


def test_the_window_stops_at_the_session_edges_and_is_off_by_default(client):
    tenant = create_tenant(client)
    start_session(client, tenant, "trip", TRIP)
    [fact] = add_memories(client, tenant, {"content": "Alice's sister is called Marta.", "user_id": "alice"})

    first = search(client, tenant, query="Morning! I have a few things to sort out today.", top_k=1, context_window=3)
    assert first[0]["memory"]["turn_index"] == 0
    assert [t["turn_index"] for t in first[0]["context"]] == [1, 2, 3]

    hits = search(client, tenant, query="what is the name of Alice's sister", top_k=3)
    assert all(h["context"] == [] for h in hits)
    with_window = search(client, tenant, query="what is the name of Alice's sister", top_k=3, context_window=1)
    assert next(h for h in with_window if h["memory"]["id"] == fact)["context"] == []  # not a dialogue turn


def test_context_window_beyond_20_is_a_422_problem(client):
    tenant = create_tenant(client)
    response = client.post("/v1/search", json={"query": "x", "context_window": 21}, headers=tenant.headers)
    assert_problem(response, 422)

"""Contextual indexing: a dialogue turn is embedded with its speaker, its date and the turn before it, so a reply
that never names its subject is still found by a question about that subject; its stored content is unchanged."""

from datetime import datetime

import numpy as np

from tests.conftest import create_tenant, wait_for_job

TURNS = [
    ("user", "Alice", "I finally booked the trip to Rome for the spring."),
    ("assistant", "Bob", "Great choice! How long will you stay there?"),
    ("user", "Alice", "Ten days. I want to see the Colosseum and eat too much pasta."),
    ("assistant", "Bob", "Also try the gelato near the Pantheon."),
    ("user", "Alice", "My sister is coming along, she paid for her own ticket."),
    ("assistant", "Bob", "Then she will enjoy it as much as you do."),
]
NOISE = [
    "The quarterly report is due next Friday.",
    "Alice's car needs new tyres before winter.",
    "Bob reorganised the shared drive folders.",
    "The team lunch moved to Thursday.",
]


def test_a_reply_that_never_names_its_subject_is_found_through_the_turn_before_it(client):
    tenant = create_tenant(client)
    messages = [{"role": role, "name": name, "content": content} for role, name, content in TURNS]
    answer = client.post(
        "/v1/sessions/trip/messages",
        json={"messages": messages, "user_id": "alice"},
        headers=tenant.headers,
    )
    assert answer.status_code == 202, answer.text
    wait_for_job(client, tenant, answer.json()["job_id"])
    noise = client.post(
        "/v1/memories",
        json={"memories": [{"type": "semantic", "user_id": "alice", "content": c} for c in NOISE]},
        headers=tenant.headers,
    )
    wait_for_job(client, tenant, noise.json()["job_id"])

    response = client.post(
        "/v1/search",
        json={"query": "how many days will Alice spend in Rome?", "user_id": "alice", "top_k": 3, "mode": "dense"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    # "Ten days. ..." never says Rome: only the turn before it (Bob asking how long she stays) ties it to the trip.
    assert TURNS[2][2] in [h["memory"]["content"] for h in hits[:2]]
    assert all(h["memory"]["content"] in {t[2] for t in TURNS} | set(NOISE) for h in hits)


def test_what_is_embedded_for_a_turn_is_its_text_with_speaker_date_and_the_turn_before(client, embedder):
    tenant = create_tenant(client)
    messages = [
        {"role": "user", "name": "Alice", "content": "Should I take the night train to Vienna?"},
        {"role": "assistant", "name": "Bob", "content": "Yes, book a sleeper cabin."},
    ]
    answer = client.post(
        "/v1/sessions/s1/messages", json={"messages": messages, "user_id": "alice"}, headers=tenant.headers
    )
    wait_for_job(client, tenant, answer.json()["job_id"])
    query = "travel advice"
    response = client.post(
        "/v1/search", json={"query": query, "user_id": "alice", "mode": "dense"}, headers=tenant.headers
    )
    (reply,) = (h for h in response.json()["hits"] if h["memory"]["speaker"] == "Bob")
    assert reply["memory"]["content"] == "Yes, book a sleeper cabin."  # stored as written

    day = datetime.fromisoformat(reply["memory"]["occurred_at"])
    contextual = (
        f"Bob: Yes, book a sleeper cabin.\n({day:%A %d %B %Y})\nBefore: Alice: Should I take the night train to Vienna?"
    )
    query_vector, contextual_vector, plain_vector = embedder.embed(
        [query, contextual, "Bob: Yes, book a sleeper cabin."]
    )
    # The default storage profile keeps float8 codes: cosines agree to about 0.01.
    assert abs(reply["scores"]["dense"] - float(np.dot(query_vector, contextual_vector))) < 0.02
    assert abs(reply["scores"]["dense"] - float(np.dot(query_vector, plain_vector))) > 0.05

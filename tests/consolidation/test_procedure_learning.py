"""Procedures learned by consolidation: a how-to sequence that recurs in a user's history becomes a procedural
memory with its trigger and steps, citing every occurrence; a later change of steps supersedes it."""

from typing import Any

import numpy as np

from memsvc.consolidation.procedures import find_episodes
from memsvc.consolidation.service import SAME_PROCEDURE
from memsvc.consolidation.types import HistoryItem
from tests.conftest import create_tenant
from tests.consolidation.test_consolidate_api import START, add_dialogue, consolidate, consolidated

ROTATE = [
    ("Alice", "How do I rotate the staging API keys?"),
    ("Bot", "1. Open the vault\n2. Generate a new key pair\n3. Update the staging secrets\n4. Restart the API pods"),
    ("Alice", "Thanks, done."),
]
ROTATE_AGAIN = [
    ("Alice", "Can you remind me how to rotate the staging API keys?"),
    (
        "Bot",
        "First, open the vault. Then generate a new key pair. Next, update the staging secrets. "
        "Finally, restart the API pods.",
    ),
]
ROTATE_REWORDED = [
    ("Alice", "what's the way to rotate the keys for staging?"),
    ("Bot", "- Open Vault\n- Create a fresh key pair\n- Put it into the staging secrets\n- Restart the API pods"),
]
ROTATE_WITH_SMOKE_TESTS = [
    ("Alice", "How do I rotate the staging API keys?"),
    (
        "Bot",
        "1. Open the vault\n2. Generate a new key pair\n3. Update the staging secrets\n4. Run the smoke tests\n"
        "5. Restart the API pods",
    ),
]
ROTATE_PASSWORD = [
    ("Alice", "How do I rotate the production database password?"),
    (
        "Bot",
        "1. Open the vault\n2. Generate a new password\n3. Update the production secrets\n"
        "4. Restart the database proxies",
    ),
]


def episode_text(turns: list[tuple[str, str]]) -> str:
    import uuid

    items = [HistoryItem(uuid.uuid4(), text, "dialogue", START, "s", speaker) for speaker, text in turns]
    (episode,) = find_episodes(items)
    return episode.text


def test_the_same_procedure_reworded_is_close_and_another_task_with_the_same_verbs_is_not(embedder) -> None:
    texts = [episode_text(t) for t in (ROTATE, ROTATE_REWORDED, ROTATE_WITH_SMOKE_TESTS, ROTATE_PASSWORD)]
    vectors = embedder.embed(texts)
    similarity = vectors @ vectors[0]
    assert similarity[1] >= SAME_PROCEDURE and similarity[2] >= SAME_PROCEDURE
    assert similarity[3] < SAME_PROCEDURE - 0.1
    assert np.all((vectors @ vectors[3])[:3] < SAME_PROCEDURE)


def procedures(client: Any, tenant: Any) -> list[dict[str, Any]]:
    return [m for m in consolidated(client, tenant) if m["consolidation_level"] == "procedure"]


def test_a_recurring_how_to_becomes_a_procedure_citing_every_occurrence(client) -> None:
    tenant = create_tenant(client)
    first = add_dialogue(client, tenant, "monday", ROTATE, day=0)
    add_dialogue(client, tenant, "tuesday", ROTATE_PASSWORD, day=1)
    once = consolidate(client, tenant, user_id="alice")
    assert once["result"]["episodes"] == 2 and once["result"]["procedures"] == 0  # nothing recurred yet
    assert procedures(client, tenant) == []

    second = add_dialogue(client, tenant, "friday", ROTATE_AGAIN, day=4)
    twice = consolidate(client, tenant, user_id="alice")
    assert twice["result"]["episodes"] == 1 and twice["result"]["procedures"] == 1
    (procedure,) = procedures(client, tenant)
    assert procedure["type"] == "procedural" and procedure["user_id"] == "alice"
    assert procedure["title"] == "rotate the staging API keys"
    # The latest occurrence's steps, as written there (after "First," and "Then").
    assert procedure["steps"] == [
        "open the vault",
        "generate a new key pair",
        "update the staging secrets",
        "restart the API pods",
    ]
    assert procedure["trigger"] == "Can you remind me how to rotate the staging API keys?"
    assert first[1] in procedure["source_ids"] and set(second) <= set(procedure["source_ids"])
    assert procedure["embedding_status"] == "done"

    found = client.post(
        "/v1/search",
        json={"query": "rotate staging keys", "user_id": "alice", "types": ["procedural"]},
        headers=tenant.headers,
    )
    assert [h["memory"]["id"] for h in found.json()["hits"]] == [procedure["id"]]

    again = consolidate(client, tenant, user_id="alice")
    assert again["result"]["episodes"] == 0 and len(procedures(client, tenant)) == 1


def test_a_repeat_adds_evidence_and_changed_steps_supersede_the_procedure(client) -> None:
    tenant = create_tenant(client)
    add_dialogue(client, tenant, "monday", ROTATE, day=0)
    add_dialogue(client, tenant, "friday", ROTATE_AGAIN, day=4)
    consolidate(client, tenant, user_id="alice")
    (learned,) = procedures(client, tenant)

    reworded = add_dialogue(client, tenant, "next-week", ROTATE, day=8)  # the same steps again
    repeat = consolidate(client, tenant, user_id="alice")
    assert repeat["result"]["procedures"] == 0
    (same,) = procedures(client, tenant)
    assert same["id"] == learned["id"] and reworded[1] in same["source_ids"]

    add_dialogue(client, tenant, "month-later", ROTATE_WITH_SMOKE_TESTS, day=30)
    changed = consolidate(client, tenant, user_id="alice")
    assert changed["result"]["procedures"] == 1 and changed["result"]["updated_procedures"] == 1
    old, new = sorted(procedures(client, tenant), key=lambda m: m["occurred_at"])
    assert old["id"] == learned["id"] and old["valid_to"] is not None
    assert new["valid_to"] is None and "Run the smoke tests" in new["steps"]

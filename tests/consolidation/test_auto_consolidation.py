"""Automatic consolidation, started by the sweeper: a user's history past the word threshold, or idle."""

import uuid
from datetime import timedelta

from memsvc.consolidation import repository
from memsvc.consolidation.service import ConsolidationConfig
from memsvc.jobs.dispatch import sweep
from tests.conftest import add_memories, create_tenant, wait_for_job

# Far above what any other test writes for one user: the sweep below runs over the whole shared database.
THRESHOLD_WORDS = 20_000


# ~6,000 words a turn: few turns pass the threshold, and consolidating them (the test's cost) stays short.
_SENTENCE = (
    "We talked about " + ", ".join(["the bakery", "the early shifts", "the new flat near the river"] * 46) + ". "
)


def long_history(user: str, turns: int) -> list[dict]:
    filler = _SENTENCE * 12
    return [
        {"type": "dialogue", "user_id": user, "session_id": f"{user}-s", "content": f"Turn {n}. {filler}"}
        for n in range(turns)
    ]


def test_a_user_past_the_word_threshold_gets_one_consolidation_job_and_is_not_due_after_it(client):
    factory = client.app.state.session_factory
    dispatcher = client.app.state.dispatcher
    config = ConsolidationConfig(auto_words=THRESHOLD_WORDS)
    tenant = create_tenant(client)
    talker, quiet = f"talker-{uuid.uuid4().hex[:6]}", f"quiet-{uuid.uuid4().hex[:6]}"
    add_memories(client, tenant, *long_history(talker, 4), *long_history(quiet, 2))  # ~24,000 and ~12,000 words

    enqueued: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    sweep(factory, timedelta(hours=1), lambda t, j, k: enqueued.append((t, j, k)), config)
    ours = [(job, kind) for t, job, kind in enqueued if str(t) == tenant.id]
    assert len(ours) == 1 and ours[0][1] == "consolidate"
    job = client.get(f"/v1/jobs/{ours[0][0]}", headers=tenant.headers).json()
    assert job["params"]["scope"] == {"user_id": talker, "agent_id": None, "session_id": None}

    # Queued already: the next sweep does not start a second one.
    again: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    sweep(factory, timedelta(hours=1), lambda t, j, k: again.append((t, j, k)), config)
    assert not [1 for t, _, _ in again if str(t) == tenant.id]

    dispatcher.enqueue(uuid.UUID(tenant.id), ours[0][0], "consolidate")
    assert wait_for_job(client, tenant, str(ours[0][0]), timeout=120)["result"]["segments"] >= 1
    with factory() as db:
        due = repository.due_users(db, THRESHOLD_WORDS, timedelta(0))
    assert (uuid.UUID(tenant.id), talker) not in due  # consolidated: nothing left waiting


def test_idle_history_is_due_once_nothing_was_added_for_the_idle_time(client):
    tenant = create_tenant(client)
    user = f"idle-{uuid.uuid4().hex[:6]}"
    add_memories(client, tenant, {"type": "episodic", "user_id": user, "content": "Went hiking in the Alps."})
    with client.app.state.session_factory() as db:
        soon = repository.due_users(db, 0, timedelta(microseconds=1))
        later = repository.due_users(db, 0, timedelta(days=1))
    assert (uuid.UUID(tenant.id), user) in soon
    assert (uuid.UUID(tenant.id), user) not in later

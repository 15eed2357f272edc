"""Every MemoryClient method against the real server: memories, sessions, search, jobs, consolidation,
export/import, admin, health, and the auto-paging lists."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from memsvc_client import FusionWeights, JobTimeout, MemoryClient, Message, NewMemory, NotFound, Unauthorized

from memsvc.app import create_app
from tests.clients.conftest import LiveServer, SdkTenant, new_tenant
from tests.workers.conftest import UNREACHABLE_BROKER

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def add_and_wait(memsvc: MemoryClient, *memories: NewMemory) -> list[uuid.UUID]:
    written = memsvc.memories.add(memories=list(memories))
    assert memsvc.jobs.wait(written.job_id, timeout=60).status == "done"
    return [result.id for result in written.results]


def test_health(memsvc):
    assert memsvc.health.live().status == "ok"
    ready = memsvc.health.ready()
    assert ready.status == "ready" and ready.migration


def test_memories_add_get_list_update_history_delete_forget(memsvc):
    written = memsvc.memories.add(
        memories=[
            NewMemory(type="semantic", user_id="alice", content="Alice is allergic to peanuts.", metadata={"k": 1}),
            # A plain mapping works too, sent as given.
            {"type": "episodic", "user_id": "alice", "content": "Alice ran the Berlin marathon.", "occurred_at": T0},
            NewMemory(
                type="procedural",
                user_id="alice",
                title="Rotate API keys",
                trigger="a key may have leaked",
                content="Create a new key, deploy it, then revoke the old one.",
                steps=["create the new key", "deploy it", "revoke the old key"],
            ),
            NewMemory(type="dialogue", user_id="alice", session_id="s1", role="user", content="I move in June."),
        ]
    )
    assert written.created == 4 and written.duplicates == 0
    assert [r.status for r in written.results] == ["created"] * 4
    job = memsvc.jobs.wait(written.job_id, timeout=60)
    assert job.status == "done" and job.kind == "embed" and job.done == 4
    fact, event, procedure, turn = (r.id for r in written.results)

    got = memsvc.memories.get(fact)
    assert got.content == "Alice is allergic to peanuts." and got.metadata == {"k": 1} and got.version == 1
    assert memsvc.memories.get(str(event)).occurred_at == T0
    assert memsvc.memories.get(procedure).steps == ["create the new key", "deploy it", "revoke the old key"]

    listed = memsvc.memories.list(user_id="alice", types=["semantic", "episodic"], order="asc")
    assert [m.id for m in listed.data] == [fact, event] and listed.next_cursor is None
    assert [m.id for m in memsvc.memories.list(user_id="alice", metadata={"k": 1})] == [fact]
    assert [m.id for m in memsvc.memories.list(user_id="alice", occurred_before=T0 + timedelta(hours=1))] == [event]
    assert turn in [m.id for m in memsvc.memories.list(session_id="s1", valid_at=datetime.now(UTC))]

    updated = memsvc.memories.update(fact, content="Alice is allergic to peanuts and cashews.", metadata={"k": 2})
    assert updated.version == 2 and updated.metadata == {"k": 2}
    assert memsvc.memories.update(procedure, trigger=None).trigger is None  # None clears; unset fields stay
    history = memsvc.memories.history(fact)
    assert [v.version for v in history.data] == [1, 2] and history.data[0].memory["content"].endswith("peanuts.")

    memsvc.memories.delete(event)
    with pytest.raises(NotFound):
        memsvc.memories.get(event)

    report = memsvc.memories.forget(user_id="alice")
    assert report.memories == 3 and report.versions >= 4
    assert list(memsvc.memories.list(user_id="alice")) == []


def test_sessions_add_and_list_messages_in_turn_order_across_pages(memsvc):
    turns = [Message(role="user", name="Alice", content=f"Turn number {n} about the trip.") for n in range(5)]
    turns[1] = Message(role="assistant", content="Booked: 8pm at Taberna da Rua.", timestamp=T0, metadata={"a": 1})
    written = memsvc.sessions.add_messages("trip 2024", messages=turns, user_id="alice", agent_id="planner")
    assert written.created == 5
    memsvc.jobs.wait(written.job_id, timeout=60)

    first = memsvc.sessions.list_messages("trip 2024", limit=2)
    assert len(first.data) == 2 and first.has_next_page()
    assert [len(page.data) for page in first.iter_pages()] == [2, 2, 1]
    messages = list(first)
    assert [m.turn_index for m in messages] == [0, 1, 2, 3, 4]
    assert messages[1].role == "assistant" and messages[1].occurred_at == T0 and messages[1].metadata == {"a": 1}
    assert (messages[0].speaker, messages[0].session_id, messages[0].agent_id) == ("Alice", "trip 2024", "planner")
    second = memsvc.sessions.list_messages("trip 2024", limit=2, cursor=first.next_cursor)
    assert [m.turn_index for m in second.data] == [2, 3]


@pytest.mark.parametrize("session_id", ["team/alpha/2024", "..", "50% off?#frag", "ends/with/messages"])
def test_any_session_id_is_addressable(memsvc, session_id):
    written = memsvc.sessions.add_messages(session_id, messages=[Message(role="user", content="Hi.")], user_id="u")
    assert written.created == 1
    [message] = memsvc.sessions.list_messages(session_id)
    assert message.session_id == session_id and message.id == written.results[0].id


def test_memories_list_pages_through_more_memories_than_a_page(memsvc):
    ids = add_and_wait(memsvc, *[NewMemory(type="semantic", user_id="pager", content=f"Fact {n}.") for n in range(7)])
    page = memsvc.memories.list(user_id="pager", limit=3, order="asc")
    assert len(page.data) == 3 and page.next_cursor is not None
    assert [len(p.data) for p in page.iter_pages()] == [3, 3, 1]
    assert [m.id for m in page] == ids
    last = page.next_page()
    assert last is not None and [m.id for m in last.data] == ids[3:6]


def test_search_finds_a_paraphrase_and_takes_every_option(memsvc):
    add_and_wait(
        memsvc,
        NewMemory(type="semantic", user_id="alice", content="Alice is allergic to peanuts.", metadata={"src": "a"}),
        NewMemory(type="episodic", user_id="alice", content="Alice ran the Berlin marathon.", occurred_at=T0),
        NewMemory(type="semantic", user_id="bob", content="Bob is allergic to cats."),
    )
    found = memsvc.search(query="Which food should Alice stay away from?", user_id="alice", top_k=3)
    assert found.hits[0].memory.content == "Alice is allergic to peanuts." and found.mode == "hybrid"
    assert 0 <= found.hits[0].score <= 1 and found.hits[0].matched_by

    every_option = memsvc.search(
        query="What did Alice run in May 2024?",
        top_k=5,
        user_id="alice",
        agent_id=None,
        session_id=None,
        types=["episodic", "semantic"],
        filters=None,
        occurred_after=T0 - timedelta(days=30),
        occurred_before=T0 + timedelta(days=30),
        as_of=datetime.now(UTC),
        mode="hybrid",
        weights=FusionWeights(dense=1, lexical=2, entity=0.5, time=1),
        fusion="rrf",
        parse_time=True,
        recency_half_life_days=365,
        diversity=0.2,
        min_score=0.0,
        rerank=False,
        hierarchy="mixed",
        expand=["evidence"],
        evidence_limit=3,
        context_window=1,
        include_expired=True,
        entities=["Alice"],
        now=T0 + timedelta(days=20),
        oversample=8,
    )
    assert every_option.mode == "hybrid"
    assert [h.memory.content for h in every_option.hits][:1] == ["Alice ran the Berlin marathon."]
    assert every_option.time_window is not None and every_option.time_window.text
    lexical = memsvc.search(query="peanuts", mode="lexical", filters={"src": "a"}, weights={"lexical": 1})
    assert [h.memory.content for h in lexical.hits] == ["Alice is allergic to peanuts."]


def test_jobs_get_list_and_wait(memsvc):
    written = memsvc.memories.add(memories=[NewMemory(type="semantic", agent_id="a1", content="The sky is blue.")])
    done = memsvc.jobs.wait(written.job_id, timeout=60, poll_interval=0.05)
    assert done.status == "done" and done.total == 1 and done.errors == []
    assert memsvc.jobs.get(written.job_id).id == written.job_id
    recent = memsvc.jobs.list(kind="embed", status="done", limit=5)
    assert written.job_id in [job.id for job in recent.data] and recent.count == len(recent.data)
    with pytest.raises(NotFound):
        memsvc.jobs.get(uuid.uuid4())


def test_jobs_wait_gives_up_after_its_timeout(settings, database_url, embedder, sdk_tenant: SdkTenant):
    # A server whose broker is unreachable accepts writes whose jobs never run (until the sweeper, after 60 s).
    parked = LiveServer(
        create_app(settings.model_copy(update={"broker_url": UNREACHABLE_BROKER}), database_url, embedder=embedder)
    )
    parked.start()
    try:
        with MemoryClient(base_url=parked.url, api_key=sdk_tenant.key) as client:
            written = client.memories.add(memories=[NewMemory(type="semantic", user_id="u", content="Parked.")])
            with pytest.raises(JobTimeout) as caught:
                client.jobs.wait(written.job_id, timeout=0.3, poll_interval=0.1)
    finally:
        parked.stop()
    assert caught.value.job.id == written.job_id and caught.value.job.status == "queued"


def test_consolidate_a_users_dialogue(memsvc):
    turns = [
        Message(role="user", name="Alice", content="I moved to Lisbon in May 2023 for a job at a bakery."),
        Message(role="assistant", content="How is the new job going?"),
        Message(role="user", name="Alice", content="The bakery opens at 6 every morning, so I wake up at 5."),
        Message(role="user", name="Alice", content="My sister Ines visits every other weekend."),
    ]
    memsvc.jobs.wait(memsvc.sessions.add_messages("s-lisbon", messages=turns, user_id="alice").job_id, timeout=60)
    accepted = memsvc.consolidate(user_id="alice", backend="extractive")
    assert accepted.backend == "extractive"
    job = memsvc.jobs.wait(accepted.job_id, timeout=120)
    assert job.kind == "consolidate" and job.status == "done" and job.result is not None
    assert job.params is not None and job.params["scope"]["user_id"] == "alice"


def test_export_then_forget_then_import_restores_the_scope(memsvc):
    ids = add_and_wait(
        memsvc,
        NewMemory(type="semantic", user_id="carol", content="Carol prefers tea.", metadata={"n": 1}),
        NewMemory(type="semantic", user_id="carol", content="Carol lives in Oslo."),
        NewMemory(type="semantic", user_id="dave", content="Dave prefers coffee."),
    )
    patched = memsvc.memories.update(ids[0], content="Carol prefers green tea.")
    assert patched.job_id is not None
    memsvc.jobs.wait(patched.job_id, timeout=60)  # the export must carry the new embedding
    records = list(memsvc.export(user_id="carol"))
    assert sorted(r.id for r in records) == sorted(ids[:2])
    assert all(r.embedding is not None for r in records) and [len(r.versions) for r in records] == [2, 1]
    assert [r.id for r in memsvc.export(types=["semantic"])] == [r.id for r in memsvc.export()]

    assert memsvc.memories.forget(user_id="carol").memories == 2
    report = memsvc.import_records(records=records)
    assert report.imported == 2 and report.versions == 3 and report.skipped == 0
    restored = memsvc.memories.get(ids[0])
    assert restored.content == "Carol prefers green tea." and restored.version == 2
    # Plain mappings import too; the same records again are skipped.
    again = memsvc.import_records(records=[r.model_dump(mode="json") for r in records])
    assert again.imported == 0 and again.skipped == 2


def test_admin_tenants_keys_storage_profiles_and_search_defaults(admin, live_server: LiveServer):
    name = "sdk-admin-" + uuid.uuid4().hex[:8]
    tenant = admin.admin.create_tenant(name=name, storage_profile="float16")
    assert tenant.name == name and tenant.storage_profile == "float16"
    assert tenant.id in [t.id for t in admin.admin.list_tenants().data]

    profiles = admin.admin.list_storage_profiles()
    assert profiles.default in [p.name for p in profiles.data] and profiles.dim > 0
    storage = admin.admin.get_storage_profile(tenant.id)
    assert storage.profile == "float16" and storage.chosen
    moved = admin.admin.set_storage_profile(tenant.id, profile="fp8")
    assert moved.profile.startswith("fp8") and moved.chosen and moved.outcome in ("adopted", "reencoding")
    assert admin.admin.set_storage_profile(tenant.id, profile=None).chosen is False

    saved = admin.admin.set_search_defaults(
        tenant.id, mode="hybrid", weights={"dense": 2, "lexical": 1}, min_score=0.3, hierarchy="evidence"
    )
    assert saved.mode == "hybrid" and saved.weights is not None and saved.weights.dense == 2
    got = admin.admin.get_search_defaults(tenant.id)
    assert got.min_score == 0.3 and got.hierarchy == "evidence" and got.rerank is None

    key = admin.admin.create_key(tenant.id, name="temporary")
    assert key.key.startswith(key.prefix) and str(key.tenant_id) == str(tenant.id)
    with MemoryClient(base_url=live_server.url, api_key=key.key) as client:
        assert list(client.memories.list(user_id="nobody")) == []
        admin.admin.revoke_key(key.id)
        with pytest.raises(Unauthorized):
            client.memories.list(user_id="nobody")


def test_base_url_and_key_come_from_the_environment(live_server: LiveServer, sdk_tenant: SdkTenant, monkeypatch):
    monkeypatch.setenv("MEMSVC_URL", live_server.url)
    monkeypatch.setenv("MEMSVC_API_KEY", sdk_tenant.key)
    with MemoryClient() as client:
        assert client.base_url == live_server.url
        assert client.memories.list(user_id="x").data == []


def test_tenants_are_isolated(admin, memsvc):
    other = new_tenant(admin)
    [fact] = add_and_wait(memsvc, NewMemory(type="semantic", user_id="u", content="Only mine."))
    with MemoryClient(base_url=memsvc.base_url, api_key=other.key) as theirs, pytest.raises(NotFound):
        theirs.memories.get(fact)

"""Every AsyncMemoryClient method against the real server, driven by asyncio.run (the suite has no async test
plugin): the twin of test_sync_client.py, more compact."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from memsvc_client import AsyncMemoryClient, Message, NewMemory, NotFound, Unauthorized

from tests.clients.conftest import LiveServer, SdkTenant
from tests.conftest import ADMIN_KEY

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def test_memories_sessions_search_jobs_and_paging(live_server: LiveServer, sdk_tenant: SdkTenant):
    async def scenario() -> None:
        async with AsyncMemoryClient(base_url=live_server.url, api_key=sdk_tenant.key) as memsvc:
            assert (await memsvc.health.live()).status == "ok"
            assert (await memsvc.health.ready()).status == "ready"

            facts = [NewMemory(type="semantic", user_id="alice", content=f"Alice fact {n}.") for n in range(5)]
            event = NewMemory(type="episodic", user_id="alice", content="Alice ran a marathon.", occurred_at=T0)
            written = await memsvc.memories.add(memories=[*facts, event])
            job = await memsvc.jobs.wait(written.job_id, timeout=60, poll_interval=0.05)
            assert job.status == "done" and (await memsvc.jobs.get(job.id)).done == 6
            assert job.id in [j.id for j in (await memsvc.jobs.list(kind="embed", limit=10)).data]
            ids = [r.id for r in written.results]

            page = await memsvc.memories.list(user_id="alice", limit=4, order="asc")
            assert len(page.data) == 4 and page.has_next_page()
            assert [m.id async for m in page] == ids
            assert [len(p.data) async for p in page.iter_pages()] == [4, 2]
            second = await page.next_page()
            assert second is not None and [m.id for m in second.data] == ids[4:]
            assert [m.id for m in (await memsvc.memories.list(user_id="alice", types=["episodic"])).data] == ids[5:]

            assert (await memsvc.memories.get(ids[0])).content == "Alice fact 0."
            updated = await memsvc.memories.update(ids[0], content="Alice fact zero.", metadata={"fixed": True})
            assert updated.version == 2 and len((await memsvc.memories.history(ids[0])).data) == 2
            await memsvc.memories.delete(ids[1])
            with pytest.raises(NotFound):
                await memsvc.memories.get(ids[1])

            found = await memsvc.search(
                query="Which marathon did Alice run?", user_id="alice", mode="hybrid", now=T0 + timedelta(days=1)
            )
            assert found.hits[0].memory.id == ids[5]

            assert updated.job_id is not None
            await memsvc.jobs.wait(updated.job_id, timeout=60)  # the export must carry the new embedding
            records = [r async for r in memsvc.export(user_id="alice", types=["semantic", "episodic"])]
            assert [r.id for r in records] == [ids[0], *ids[2:]]
            assert (await memsvc.memories.forget(user_id="alice")).memories == len(records)
            restored = await memsvc.import_records(records=records)
            assert restored.imported == len(records)
            assert (await memsvc.memories.get(ids[0])).content == "Alice fact zero."

            turns = [Message(role="user", name="Alice", content=f"Turn {n}.") for n in range(3)]
            appended = await memsvc.sessions.add_messages("s-async", messages=turns, user_id="alice")
            await memsvc.jobs.wait(appended.job_id, timeout=60)
            messages = await memsvc.sessions.list_messages("s-async", limit=2)
            assert [m.turn_index async for m in messages] == [0, 1, 2]

            accepted = await memsvc.consolidate(user_id="alice")
            assert (await memsvc.jobs.wait(accepted.job_id, timeout=120)).status == "done"

    asyncio.run(scenario())


def test_admin(live_server: LiveServer):
    async def scenario() -> None:
        async with AsyncMemoryClient(base_url=live_server.url, api_key=ADMIN_KEY) as admin:
            tenant = await admin.admin.create_tenant(name="sdk-async-" + uuid.uuid4().hex[:8])
            assert tenant.id in [t.id for t in (await admin.admin.list_tenants()).data]
            assert (await admin.admin.list_storage_profiles()).data
            assert (await admin.admin.get_storage_profile(tenant.id)).chosen is False
            assert (await admin.admin.set_storage_profile(tenant.id, profile="float16")).profile == "float16"
            await admin.admin.set_search_defaults(tenant.id, diversity=0.25, parse_time=False)
            defaults = await admin.admin.get_search_defaults(tenant.id)
            assert (defaults.diversity, defaults.parse_time, defaults.mode) == (0.25, False, None)

            key = await admin.admin.create_key(tenant.id)
            async with AsyncMemoryClient(base_url=live_server.url, api_key=key.key) as memsvc:
                assert (await memsvc.memories.list(user_id="u")).data == []
                await admin.admin.revoke_key(key.id)
                with pytest.raises(Unauthorized):
                    await memsvc.memories.list(user_id="u")

    asyncio.run(scenario())

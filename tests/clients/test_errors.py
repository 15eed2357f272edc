"""Error answers become one exception per kind, carrying the problem+json fields; unreachable is ConnectionFailed."""

import asyncio
import uuid

import pytest
from memsvc_client import (
    APIError,
    AsyncMemoryClient,
    Conflict,
    ConnectionFailed,
    Forbidden,
    MemoryClient,
    MemsvcError,
    NewMemory,
    NotFound,
    Unauthorized,
    ValidationFailed,
)

from tests.clients.conftest import LiveServer, SdkTenant, free_port


def test_404_is_not_found_with_the_problem_details(memsvc):
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as caught:
        memsvc.memories.get(missing)
    error = caught.value
    assert isinstance(error, APIError) and isinstance(error, MemsvcError)
    assert error.status == 404 and error.title == "Not found" and str(missing) in error.detail
    assert error.type == "https://memsvc.dev/problems/not-found" and error.body["status"] == 404
    # The SDK names each call with an X-Request-ID and the service answers with it.
    assert error.request_id is not None and len(error.request_id) == 32
    assert str(missing) in str(error)


def test_422_is_validation_failed_with_the_field_errors(memsvc):
    with pytest.raises(ValidationFailed) as caught:
        memsvc.search(query="anything", top_k=1000)
    error = caught.value
    assert error.status == 422 and "top_k" in error.detail
    assert error.errors is not None and error.errors[0].loc == ["body", "top_k"]
    with pytest.raises(ValidationFailed, match="user_id, agent_id or session_id"):
        memsvc.memories.forget()
    with pytest.raises(ValidationFailed, match="at least one of user_id"):
        memsvc.memories.add(memories=[NewMemory(type="semantic", content="No scope.")])


def test_a_bad_import_body_is_a_validation_failure(memsvc):
    with pytest.raises(ValidationFailed, match="line 1"):
        memsvc.import_records(records=[{"id": "not a uuid"}])


def test_401_for_a_bad_key_and_403_for_the_wrong_kind_of_key(live_server: LiveServer, admin):
    with MemoryClient(base_url=live_server.url, api_key="msk_wrong") as client, pytest.raises(Unauthorized) as caught:
        client.memories.list(user_id="u")
    assert caught.value.status == 401 and caught.value.detail == "The API key is unknown or revoked."
    with pytest.raises(Forbidden):
        admin.memories.list(user_id="u")  # the admin key manages tenants, not memories


def test_409_is_a_conflict_and_is_not_retried(admin, memsvc):
    name = "sdk-dup-" + uuid.uuid4().hex[:8]
    admin.admin.create_tenant(name=name)
    with pytest.raises(Conflict, match="already exists"):
        admin.admin.create_tenant(name=name)
    with pytest.raises(Conflict, match="Reranking is not available"):
        memsvc.search(query="anything", user_id="u", rerank=True)


def test_the_async_client_raises_the_same_errors(live_server: LiveServer, sdk_tenant: SdkTenant):
    async def scenario() -> None:
        async with AsyncMemoryClient(base_url=live_server.url, api_key=sdk_tenant.key) as memsvc:
            with pytest.raises(NotFound):
                await memsvc.jobs.get(uuid.uuid4())
            with pytest.raises(ValidationFailed):
                await memsvc.search(query=" ")
        async with AsyncMemoryClient(base_url=live_server.url + "/nowhere", api_key=sdk_tenant.key) as lost:
            with pytest.raises(NotFound):
                [r async for r in lost.export()]
        async with AsyncMemoryClient(base_url=live_server.url) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.memories.list(user_id="u")
            assert (await anonymous.health.live()).status == "ok"  # health needs no key

    asyncio.run(scenario())


def test_nothing_listening_is_connection_failed():
    url = f"http://127.0.0.1:{free_port()}"
    with MemoryClient(base_url=url, max_retries=1) as client, pytest.raises(ConnectionFailed) as caught:
        client.health.live()
    assert isinstance(caught.value, MemsvcError) and "ConnectError" in str(caught.value)

    async def scenario() -> None:
        async with AsyncMemoryClient(base_url=url, max_retries=0) as client:
            await client.memories.list()

    with pytest.raises(ConnectionFailed):
        asyncio.run(scenario())

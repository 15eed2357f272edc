"""The MCP server (memsvc_client.mcp) as hosts run it: `memsvc-mcp` spawned over stdio, and served over
streamable HTTP in subprocesses, driven by the MCP SDK's own client against the real memsvc server (conftest.py's
`live_server`). Async scenarios run under asyncio.run (the suite has no async test plugin)."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from memsvc_client import MemoryClient, NotFound

from memsvc import cli
from tests.clients.conftest import LiveServer, SdkTenant, free_port, new_tenant

MEMSVC_MCP = str(Path(sys.executable).parent / "memsvc-mcp")
TOOLS = {"remember", "recall", "forget", "consolidate"}


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The tool's structured result; fails the test on a tool error."""
    result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, text
    assert result.structured_content is not None
    assert json.loads(text) == result.structured_content  # the model reads the same result as text
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """The tool error's message; fails the test if the call succeeded."""
    result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert result.is_error, text
    return text


async def recalled_ids(client: Client, query: str, **scope: Any) -> list[str]:
    return [hit["id"] for hit in (await call(client, "recall", query=query, **scope))["hits"]]


def memsvc_env(live_server: LiveServer, api_key: str | None) -> dict[str, str]:
    """The environment a host would give the server: memsvc's URL and, when given, a key (never an inherited one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MEMSVC_API_KEY", "MEMSVC_URL")}
    env["MEMSVC_URL"] = live_server.url
    if api_key is not None:
        env["MEMSVC_API_KEY"] = api_key
    return env


# stdio


def test_stdio_remember_recall_forget_consolidate(
    live_server: LiveServer, sdk_tenant: SdkTenant, memsvc: MemoryClient
) -> None:
    params = StdioServerParameters(
        command=MEMSVC_MCP,
        args=["--user-id", "alice", "--log-level", "warning"],
        env=memsvc_env(live_server, sdk_tenant.key),
    )

    async def scenario() -> None:
        async with Client(params) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == TOOLS
            assert tools["remember"].input_schema["required"] == ["content"]
            assert set(tools["remember"].input_schema["properties"]) >= {"content", "type", "user_id", "wait"}
            assert tools["recall"].input_schema["properties"]["top_k"]["minimum"] == 1
            assert tools["forget"].input_schema["properties"]["scope"]["default"] is False
            assert all(tool.output_schema for tool in tools.values())
            assert "user_id='alice'" in (tools["recall"].description or "")
            assert tools["forget"].annotations is not None and tools["forget"].annotations.destructive_hint

            peanuts = await call(client, "remember", content="Alice is allergic to peanuts.")
            assert (peanuts["status"], peanuts["job_status"]) == ("created", "done")
            assert peanuts["scope"] == {"user_id": "alice", "agent_id": None, "session_id": None}
            green = await call(client, "remember", content="Alice's favourite colour is green.", metadata={"k": 1})
            again = await call(client, "remember", content="Alice is allergic to peanuts.")
            assert (again["id"], again["status"]) == (peanuts["id"], "duplicate")
            # Stored through memsvc as the configured user, under the tenant of the key in the environment.
            stored = memsvc.memories.get(peanuts["id"])
            assert (stored.user_id, stored.type) == ("alice", "semantic")

            found = await call(client, "recall", query="Which food should Alice stay away from?", top_k=2)
            assert found["hits"][0]["id"] == peanuts["id"]
            assert found["hits"][0]["content"] == "Alice is allergic to peanuts."
            assert {"score", "type", "occurred_at"} <= set(found["hits"][0])
            assert await recalled_ids(client, "Alice", user_id="bob") == []  # an argument overrides the default

            forgotten = await call(client, "forget", memory_id=peanuts["id"])
            assert forgotten["memory_id"] == peanuts["id"] and forgotten["memories"] == 1
            assert forgotten["content"] == "Alice is allergic to peanuts."
            assert peanuts["id"] not in await recalled_ids(client, "Which food should Alice stay away from?")
            with pytest.raises(NotFound):
                memsvc.memories.get(peanuts["id"])

            # The default scope holds for deletion by id too: bob's memory is not alice's server's to delete.
            bobs = memsvc.memories.add(memories=[{"type": "semantic", "content": "Bob likes jazz.", "user_id": "bob"}])
            bob_id = str(bobs.results[0].id)
            assert "nothing deleted" in await call_error(client, "forget", memory_id=bob_id)
            assert memsvc.memories.get(bob_id).content == "Bob likes jazz."
            assert (await call(client, "forget", memory_id=bob_id, user_id="bob"))["memories"] == 1

            # Nothing is wiped by omission: a scope goes only with scope=true.
            assert "scope=true" in await call_error(client, "forget")
            assert "not both" in await call_error(client, "forget", memory_id=green["id"], scope=True)
            wiped = await call(client, "forget", scope=True)
            assert (wiped["memories"], wiped["scope"]["user_id"]) == (1, "alice")
            assert await recalled_ids(client, "Alice's favourite colour") == []

            await call(client, "remember", content="Alice asked about trains.", session_id="s-1", type="episodic")
            job = await call(client, "consolidate", session_id="s-1", wait=True)
            assert job["scope"] == {"user_id": "alice", "agent_id": None, "session_id": "s-1"}
            assert (job["status"], job["error"]) == ("done", None) and job["result"]["summaries"] >= 1
            assert memsvc.jobs.get(job["job_id"]).kind == "consolidate"

    asyncio.run(scenario())


# streamable HTTP


class McpHttpServer:
    """`memsvc-mcp --transport http` in a subprocess on a free loopback port."""

    def __init__(self, live_server: LiveServer, log: Path, api_key: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._log = log
        args = [MEMSVC_MCP, "--transport", "http", "--port", str(self.port), "--log-level", "warning"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                args, env=memsvc_env(live_server, api_key), stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"memsvc-mcp exited:\n{self._log.read_text()}"
            assert time.monotonic() < deadline, f"memsvc-mcp did not start:\n{self._log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        """Ask it to stop (see `reap`)."""
        if self.process.poll() is None:
            self.process.terminate()

    def reap(self) -> None:
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def fallback_tenant(admin: MemoryClient) -> SdkTenant:
    return new_tenant(admin)


@pytest.fixture(scope="module")
def http_servers(
    live_server: LiveServer, fallback_tenant: SdkTenant, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[McpHttpServer, McpHttpServer]]:
    """Two deployments, started together: one with no key of its own (every request brings one), and one whose
    --api-key serves the requests that bring none."""
    logs = tmp_path_factory.mktemp("memsvc-mcp")
    servers: list[McpHttpServer] = []
    try:
        servers.append(McpHttpServer(live_server, logs / "keyless.log"))
        servers.append(McpHttpServer(live_server, logs / "fallback.log", api_key=fallback_tenant.key))
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            server.reap()


@pytest.fixture
def mcp_url(http_servers: tuple[McpHttpServer, McpHttpServer]) -> str:
    return http_servers[0].url


@asynccontextmanager
async def http_client(url: str, api_key: str | None, authorization: str | None = None) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP that sends `api_key` as its bearer token (or `authorization` as the
    header) on every request."""
    if api_key is not None:
        authorization = f"Bearer {api_key}"
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def test_http_round_trip_with_the_request_key(mcp_url: str, sdk_tenant: SdkTenant, memsvc: MemoryClient) -> None:
    async def scenario() -> None:
        async with http_client(mcp_url, sdk_tenant.key) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
            written = await call(client, "remember", content="Bob plays the cello.", user_id="bob", type="semantic")
            assert written["status"] == "created"
            assert await recalled_ids(client, "Which instrument does Bob play?", user_id="bob") == [written["id"]]
        assert memsvc.memories.get(written["id"]).user_id == "bob"  # stored in the key's tenant

    asyncio.run(scenario())


def test_http_tenants_are_kept_apart(mcp_url: str, sdk_tenant: SdkTenant, admin: MemoryClient) -> None:
    other = new_tenant(admin)

    async def scenario() -> None:
        async with http_client(mcp_url, sdk_tenant.key) as mine, http_client(mcp_url, other.key) as theirs:
            secret = await call(mine, "remember", content="Carol's door code is 4321.", user_id="carol")
            await call(theirs, "remember", content="Carol likes jazz.", user_id="carol")
            query = "What is Carol's door code?"
            assert await recalled_ids(mine, query, user_id="carol", top_k=10) == [secret["id"]]
            assert secret["id"] not in await recalled_ids(theirs, query, user_id="carol", top_k=10)
            assert "404" in await call_error(theirs, "forget", memory_id=secret["id"])
            assert await recalled_ids(mine, query, user_id="carol") == [secret["id"]]

    asyncio.run(scenario())


def test_http_without_a_key(
    http_servers: tuple[McpHttpServer, McpHttpServer],
    live_server: LiveServer,
    sdk_tenant: SdkTenant,
    fallback_tenant: SdkTenant,
) -> None:
    keyless, fallback = http_servers

    async def scenario() -> None:
        async with http_client(keyless.url, None) as client:
            message = await call_error(client, "recall", query="anything", user_id="dave")
            assert "No memsvc API key" in message and "Authorization: Bearer" in message
        async with http_client(keyless.url, "not-a-key") as client:
            assert "401" in await call_error(client, "recall", query="anything", user_id="dave")

        # With --api-key, a request without a key acts with it; one with a key still acts with its own, and one
        # whose Authorization is not a bearer token is refused rather than served with the deployment's key.
        async with http_client(fallback.url, None, authorization="Basic ZGF2ZTpzZWNyZXQ=") as client:
            assert "Bearer <memsvc API key>" in await call_error(client, "recall", query="anything", user_id="dave")
        async with http_client(fallback.url, None) as client:
            fell_back = await call(client, "remember", content="Dave collects stamps.", user_id="dave", wait=False)
            assert fell_back["job_status"] in ("queued", "running", "done")
        with MemoryClient(base_url=live_server.url, api_key=fallback_tenant.key) as memsvc:
            assert memsvc.jobs.wait(fell_back["job_id"], timeout=60, poll_interval=0.05).status == "done"
        async with http_client(fallback.url, sdk_tenant.key) as client:
            own = await call(client, "remember", content="Dave collects coins.", user_id="dave")
            assert await recalled_ids(client, "What does Dave collect?", user_id="dave") == [own["id"]]
        async with http_client(fallback.url, fallback_tenant.key) as client:
            assert await recalled_ids(client, "What does Dave collect?", user_id="dave") == [fell_back["id"]]

    asyncio.run(scenario())


def test_bad_input_is_a_tool_error_naming_the_problem(mcp_url: str, sdk_tenant: SdkTenant) -> None:
    async def scenario() -> None:
        async with http_client(mcp_url, sdk_tenant.key) as client:
            empty = await call_error(client, "remember", content="", user_id="erin")
            assert "content" in empty and "at least 1 character" in empty
            zero = await call_error(client, "recall", query="anything", top_k=0)
            assert "top_k" in zero and "greater than or equal to 1" in zero
            assert "type" in await call_error(client, "remember", content="x", type="gossip", user_id="erin")
            assert "memory_id" in await call_error(client, "forget", memory_id="not-an-id")
            # What only memsvc checks comes back as its problem detail, not as a crash.
            blank = await call_error(client, "remember", content="   ", user_id="erin")
            assert "422" in blank and "content must not be empty or only whitespace" in blank
            # No default scope on this server, and none named: writing needs one.
            assert "No scope" in await call_error(client, "remember", content="Erin is left-handed.")
            assert "404" in await call_error(client, "forget", memory_id=str(uuid.uuid4()))

    asyncio.run(scenario())


# `memsvc mcp`


def test_memsvc_mcp_forwards_to_the_mcp_server(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["mcp", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert "--transport {stdio,http}" in help_text and "--api-key" in help_text and "--user-id" in help_text

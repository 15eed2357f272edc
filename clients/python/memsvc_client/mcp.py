"""memsvc as an MCP server: an agent's long-term memory offered to any MCP host (Claude Desktop, IDEs, agent
frameworks) as four tools, `remember`, `recall`, `forget` and `consolidate`, over stdio or streamable HTTP.

The server is a client of a running memsvc (`AsyncMemoryClient`): it holds no memory itself, so one deployment can
serve many tenants. Over HTTP each request's `Authorization: Bearer <memsvc API key>` is the key that request acts
with; `--api-key` ($MEMSVC_API_KEY) is used only when a request sends none, and is the key on stdio. The default
scope (`--user-id`, `--agent-id`, `--session-id`) lets a host configure one server per user or agent without the
model having to name the scope on every call; a tool argument overrides it field by field.

Run `memsvc-mcp --help` (or `memsvc mcp --help`). Needs the `mcp` extra: pip install 'memsvc-client[mcp]'."""

import argparse
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from memsvc_client._version import __version__
from memsvc_client.async_client import AsyncMemoryClient
from memsvc_client.errors import APIError, ConnectionFailed, JobTimeout, MemsvcError
from memsvc_client.models import Job, JobStatus, MemoryType, NewMemory

try:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("memsvc_client.mcp needs the MCP SDK: pip install 'memsvc-client[mcp]'") from exc

DEFAULT_PORT = 8001
MCP_PATH = "/mcp"
# How long `remember(wait=true)` and `consolidate(wait=true)` wait for their job before answering with its state.
DEFAULT_WAIT_TIMEOUT_S = 60.0
_POLL_INTERVAL_S = 0.1

ToolContext = Context[Any, Any]


# Tool arguments. The model reads these descriptions and the JSON schema they make, so they say what to pass.

_ScopeId = Annotated[str, Field(min_length=1, max_length=256)]
UserIdArg = Annotated[_ScopeId | None, Field(description="The end user; default: the server's configured user.")]
AgentIdArg = Annotated[_ScopeId | None, Field(description="The agent; default: the server's configured agent.")]
SessionIdArg = Annotated[
    _ScopeId | None, Field(description="The conversation/session; default: the server's configured session.")
]
ContentArg = Annotated[
    str,
    Field(
        min_length=1,
        description="The memory, as one self-contained statement that will make sense later without this "
        "conversation (e.g. 'Alice is allergic to peanuts.').",
    ),
]
TypeArg = Annotated[
    MemoryType,
    Field(
        description="semantic: a lasting fact or preference; episodic: an event that happened (set occurred_at); "
        "procedural: how to do something; dialogue: a conversation turn (needs a session)."
    ),
]
OccurredAtArg = Annotated[
    datetime | None, Field(description="When the event happened (ISO 8601); default: now. Mostly for episodic.")
]
MetadataArg = Annotated[
    dict[str, Any] | None, Field(description="Optional JSON object kept with the memory (e.g. tags, source).")
]
RememberWaitArg = Annotated[
    bool,
    Field(description="Wait until the memory is indexed for meaning-based recall (a second or so) before answering."),
]
QueryArg = Annotated[str, Field(min_length=1, description="What to look for, in natural language.")]
TopKArg = Annotated[int, Field(ge=1, le=100, description="How many memories to return, best first (1-100).")]
TypesArg = Annotated[list[MemoryType] | None, Field(description="Only these memory types; default: all.")]
MemoryIdArg = Annotated[
    uuid.UUID | None, Field(description="The id of the one memory to delete (as remember or recall returned it).")
]
ForgetScopeArg = Annotated[
    bool,
    Field(
        description="Set true, with no memory_id, to delete EVERY memory of the scope (the user, agent and/or "
        "session) and everything derived from them. Irreversible: only when the user asks for it."
    ),
]
ConsolidateWaitArg = Annotated[
    bool, Field(description="Wait for the consolidation to finish (can take a while) and return its result.")
]


# Tool results: structured content (with an output schema) for the host, and the same as JSON text for the model.


class MemoryScope(BaseModel):
    """Whose memories: at least one of the three names a scope."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def named(self) -> bool:
        return bool(self.user_id or self.agent_id or self.session_id)


class Remembered(BaseModel):
    id: uuid.UUID = Field(description="The memory's id (the existing one when it was a duplicate).")
    status: Literal["created", "duplicate"] = Field(description="duplicate: the scope already had this exact memory.")
    job_id: uuid.UUID = Field(description="The embedding job.")
    job_status: JobStatus = Field(description="done: recall finds it by meaning; queued/running: not yet.")
    scope: MemoryScope


class RecalledMemory(BaseModel):
    id: uuid.UUID
    content: str
    type: MemoryType
    score: float = Field(description="Relevance; higher is better.")
    occurred_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)


class Recalled(BaseModel):
    hits: list[RecalledMemory] = Field(description="Best first.")
    no_confident_memory: bool = Field(description="True when nothing found is a confident match for the query.")


class Forgotten(BaseModel):
    memory_id: uuid.UUID | None = Field(default=None, description="The memory deleted, when one was named.")
    content: str | None = Field(default=None, description="Its text, when one memory was deleted.")
    scope: MemoryScope | None = Field(default=None, description="The scope forgotten, when scope was true.")
    memories: int = Field(description="Memories deleted.")
    derived: int | None = Field(default=None, description="Scope: of these, summaries and facts derived from them.")
    links: int | None = Field(default=None, description="Scope: links between memories deleted.")
    versions: int | None = Field(default=None, description="Scope: past versions deleted.")


class Consolidation(BaseModel):
    job_id: uuid.UUID
    backend: str = Field(description="Who writes the summaries and facts.")
    status: JobStatus
    result: dict[str, Any] | None = Field(default=None, description="What the consolidation made, once done.")
    error: str | None = None
    scope: MemoryScope


INSTRUCTIONS = """\
Long-term memory (memsvc). Use `recall` before answering anything that may depend on what you were told earlier \
(the user's preferences, facts, past events, how a task was done). Use `remember` for lasting information worth \
keeping across conversations, one self-contained statement per memory. Use `forget` with a memory_id to remove a \
wrong or outdated memory; forget a whole scope only when the user explicitly asks to be forgotten. Use \
`consolidate` now and then to distill long histories into summaries and facts."""


def build_server(
    *,
    url: str | None = None,
    api_key: str | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT_S,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO",
) -> MCPServer[Any]:
    """The MCP server, not yet running: `.run("stdio")`, or `.streamable_http_app()` to mount it elsewhere.

    `url` is memsvc's (default $MEMSVC_URL, else http://127.0.0.1:8000). `api_key` is the memsvc key used when a
    request brings none (every stdio request; an HTTP request without an Authorization header); it is not read
    from the environment here, so what serves requests is what the caller passed. `user_id`, `agent_id` and
    `session_id` are the tools' default scope."""
    memsvc = _Memsvc(url=url, api_key=api_key, wait_timeout=wait_timeout)
    defaults = MemoryScope(user_id=user_id, agent_id=agent_id, session_id=session_id)

    def resolve_scope(user_id: str | None, agent_id: str | None, session_id: str | None) -> MemoryScope:
        """The default scope with the fields a tool call names replaced."""
        return MemoryScope(
            user_id=defaults.user_id if user_id is None else user_id,
            agent_id=defaults.agent_id if agent_id is None else agent_id,
            session_id=defaults.session_id if session_id is None else session_id,
        )

    def required_scope(user_id: str | None, agent_id: str | None, session_id: str | None) -> MemoryScope:
        chosen = resolve_scope(user_id, agent_id, session_id)
        if not chosen.named():
            raise ToolError(
                "No scope: pass user_id, agent_id and/or session_id (this server has no default scope configured)."
            )
        return chosen

    async def remember(
        ctx: ToolContext,
        content: ContentArg,
        type: TypeArg = "semantic",
        occurred_at: OccurredAtArg = None,
        metadata: MetadataArg = None,
        user_id: UserIdArg = None,
        agent_id: AgentIdArg = None,
        session_id: SessionIdArg = None,
        wait: RememberWaitArg = True,
    ) -> Remembered:
        """Store a memory for later recall. An exact duplicate in the same scope is not stored twice."""
        where = required_scope(user_id, agent_id, session_id)
        memory = NewMemory(type=type, content=content, occurred_at=occurred_at, metadata=metadata, **where.model_dump())
        async with memsvc.client(ctx) as client:
            written = await client.memories.add(memories=[memory])
            job = await memsvc.finished(client, written.job_id) if wait else await client.jobs.get(written.job_id)
        result = written.results[0]
        return Remembered(id=result.id, status=result.status, job_id=job.id, job_status=job.status, scope=where)

    async def recall(
        ctx: ToolContext,
        query: QueryArg,
        top_k: TopKArg = 5,
        types: TypesArg = None,
        user_id: UserIdArg = None,
        agent_id: AgentIdArg = None,
        session_id: SessionIdArg = None,
    ) -> Recalled:
        """Search long-term memory: the memories that best answer the query, best first."""
        where = resolve_scope(user_id, agent_id, session_id)
        async with memsvc.client(ctx) as client:
            found = await client.search(query=query, top_k=top_k, types=types, **where.model_dump())
        hits = [
            RecalledMemory(
                id=hit.memory.id,
                content=hit.memory.content,
                type=hit.memory.type,
                score=hit.score,
                occurred_at=hit.memory.occurred_at,
                metadata=hit.memory.metadata,
            )
            for hit in found.hits
        ]
        return Recalled(hits=hits, no_confident_memory=found.no_confident_memory)

    async def forget(
        ctx: ToolContext,
        memory_id: MemoryIdArg = None,
        scope: ForgetScopeArg = False,
        user_id: UserIdArg = None,
        agent_id: AgentIdArg = None,
        session_id: SessionIdArg = None,
    ) -> Forgotten:
        """Delete one memory by its id, or, only with scope=true, every memory of a scope."""
        if memory_id is not None and scope:
            raise ToolError("Pass either memory_id (one memory) or scope=true (a whole scope), not both.")
        if memory_id is not None:
            # Only inside the scope the call acts on (the default, or what it names), as recall reads: a server
            # configured for one user does not delete another user's memory because the model saw its id.
            where = resolve_scope(user_id, agent_id, session_id)
            async with memsvc.client(ctx) as client:
                memory = await client.memories.get(memory_id)
                outside = [
                    name for name, value in where.model_dump().items() if value and getattr(memory, name) != value
                ]
                if outside:
                    raise ToolError(
                        f"No memory {memory_id} in this scope ({', '.join(outside)} differ): nothing deleted."
                    )
                await client.memories.delete(memory_id)
            return Forgotten(memory_id=memory.id, content=memory.content, memories=1)
        if not scope:
            raise ToolError(
                "Nothing forgotten: pass the memory_id of the memory to delete, or scope=true to delete a whole scope."
            )
        where = required_scope(user_id, agent_id, session_id)
        async with memsvc.client(ctx) as client:
            report = await client.memories.forget(**where.model_dump())
        return Forgotten(
            scope=where,
            memories=report.memories,
            derived=report.derived,
            links=report.links,
            versions=report.versions,
        )

    async def consolidate(
        ctx: ToolContext,
        user_id: UserIdArg = None,
        agent_id: AgentIdArg = None,
        session_id: SessionIdArg = None,
        wait: ConsolidateWaitArg = False,
    ) -> Consolidation:
        """Distill a scope's history into summaries and facts linked to their evidence, in the background."""
        where = required_scope(user_id, agent_id, session_id)
        async with memsvc.client(ctx) as client:
            accepted = await client.consolidate(**where.model_dump())
            job = await memsvc.finished(client, accepted.job_id) if wait else await client.jobs.get(accepted.job_id)
        return Consolidation(
            job_id=accepted.job_id,
            backend=accepted.backend,
            status=job.status,
            result=job.result,
            error=job.error,
            scope=where,
        )

    server: MCPServer[Any] = MCPServer("memsvc", instructions=INSTRUCTIONS, version=__version__, log_level=log_level)
    tools: list[tuple[Callable[..., Any], ToolAnnotations]] = [
        (remember, ToolAnnotations(title="Remember", read_only_hint=False, idempotent_hint=True)),
        (recall, ToolAnnotations(title="Recall", read_only_hint=True)),
        (forget, ToolAnnotations(title="Forget", read_only_hint=False, destructive_hint=True)),
        (consolidate, ToolAnnotations(title="Consolidate", read_only_hint=False, destructive_hint=False)),
    ]
    for fn, annotations in tools:
        server.add_tool(fn, description=_describe(fn, defaults), annotations=annotations, structured_output=True)
    return server


def _describe(fn: Callable[..., Any], defaults: MemoryScope) -> str:
    """The tool's docstring plus the default scope, so the model knows whose memory it acts on unless it says."""
    configured = ", ".join(f"{name}={value!r}" for name, value in defaults.model_dump().items() if value)
    suffix = f"Default scope: {configured}." if configured else "No default scope is configured."
    return f"{fn.__doc__} {suffix}"


class _Memsvc:
    """Where memsvc is and which key a request uses. A client per tool call: over HTTP the key can differ on every
    request, and a call never sees another request's key.

    The key is read from the request's headers (`Context.headers`) rather than through the SDK's auth hook
    (`TokenVerifier` with `AuthSettings`): that is OAuth resource-server machinery, which answers a request without
    a token with HTTP 401 (leaving no room for the --api-key fallback) and would check the key a second time. memsvc
    checks the key on every call itself, and its 401 comes back as a tool error."""

    def __init__(self, *, url: str | None, api_key: str | None, wait_timeout: float) -> None:
        self.url = url
        self.api_key = api_key
        self.wait_timeout = wait_timeout

    def key_for(self, headers: Mapping[str, str] | None) -> str:
        """The request's bearer token if it sent an Authorization header, else the configured key. A header that
        is not a bearer token is an error, never a reason to fall back to the configured key."""
        authorization = next((v for k, v in (headers or {}).items() if k.lower() == "authorization"), None)
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ToolError("The Authorization header must be 'Bearer <memsvc API key>'.")
            return token.strip()
        if self.api_key:
            return self.api_key
        raise ToolError(
            "No memsvc API key: send 'Authorization: Bearer <memsvc API key>' with the request, or start the "
            "server with --api-key (or $MEMSVC_API_KEY)."
        )

    @asynccontextmanager
    async def client(self, ctx: ToolContext) -> AsyncIterator[AsyncMemoryClient]:
        """A client with the request's key; memsvc's errors become tool errors the model can read."""
        key = self.key_for(ctx.headers)
        try:
            async with AsyncMemoryClient(base_url=self.url, api_key=key) as client:
                yield client
        except MemsvcError as exc:
            raise ToolError(_problem(exc)) from exc

    async def finished(self, client: AsyncMemoryClient, job_id: uuid.UUID) -> Job:
        """The job once it is done or failed, or as it stands after `wait_timeout`: still running is an answer the
        model can act on (the work goes on), not a failure."""
        try:
            return await client.jobs.wait(job_id, timeout=self.wait_timeout, poll_interval=_POLL_INTERVAL_S)
        except JobTimeout as exc:
            return exc.job


def _problem(exc: MemsvcError) -> str:
    """memsvc's problem detail as one message, with any refused field the detail does not already name."""
    if isinstance(exc, ConnectionFailed):
        return f"memsvc could not be reached: {exc}"
    if not isinstance(exc, APIError):
        return f"memsvc: {exc}"
    message = f"memsvc refused the request ({exc.status} {exc.title}): {exc.detail}"
    for error in exc.errors or []:
        if error.msg not in exc.detail:
            message += f"\n- {'.'.join(str(part) for part in error.loc)}: {error.msg}"
    return message


def build_parser(prog: str = "memsvc-mcp") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve memsvc's long-term memory to MCP hosts as tools (remember, recall, forget, consolidate).",
    )
    parser.add_argument("--url", default=None, help="memsvc's URL (default $MEMSVC_URL, else http://127.0.0.1:8000)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="memsvc API key (default $MEMSVC_API_KEY); over HTTP only for requests without an Authorization header",
    )
    parser.add_argument("--user-id", default=None, help="default user scope of the tools")
    parser.add_argument("--agent-id", default=None, help="default agent scope of the tools")
    parser.add_argument("--session-id", default=None, help="default session scope of the tools")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio", help="default stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_TIMEOUT_S,
        help="seconds remember and consolidate wait for their job when asked to (default %(default)g)",
    )
    parser.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], default="INFO", type=str.upper
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "memsvc-mcp") -> int:
    """`memsvc-mcp` (or `memsvc mcp`): run the server until the host closes stdio, or until interrupted over HTTP."""
    args = build_parser(prog).parse_args(argv)
    server = build_server(
        url=args.url,
        api_key=args.api_key or os.environ.get("MEMSVC_API_KEY") or None,
        user_id=args.user_id,
        agent_id=args.agent_id,
        session_id=args.session_id,
        wait_timeout=args.wait_timeout,
        log_level=args.log_level,
    )
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            # Stateless: a request carries everything it needs (its key and its arguments) and the server keeps no
            # session, so any replica can answer it and no session outlives its client.
            server.run(
                "streamable-http",
                host=args.host,
                port=args.port,
                streamable_http_path=MCP_PATH,
                stateless_http=True,
                json_response=True,
            )
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

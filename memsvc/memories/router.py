import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse

from memsvc.audit.service import Actor
from memsvc.core.deps import DbDep, ReadsOnly, TenantContext, TenantDep
from memsvc.core.errors import Conflict, NotFound, Unprocessable, problem_responses
from memsvc.idempotency.service import request_fingerprint, run_once
from memsvc.jobs.dispatch import enqueue_after_commit
from memsvc.memories import service
from memsvc.memories.repository import MemoryFilter
from memsvc.memories.schemas import (
    ForgetReport,
    MemoryBatchCreate,
    MemoryCreate,
    MemoryHistory,
    MemoryList,
    MemoryPublic,
    MemoryType,
    MemoryUpdate,
    MessagesAppend,
    WriteResponse,
)

router = APIRouter(prefix="/v1", tags=["memories"])

IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Retries with the same key get the first answer.")
]
ScopeQuery = Annotated[str | None, Query(min_length=1, max_length=256)]


def actor_of(tenant: TenantContext) -> Actor:
    """The audit log's name for the caller: its key's public prefix, never the secret."""
    return Actor(tenant.key_prefix, tenant.key_id)


def parse_metadata_filter(metadata: str | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    try:
        value = json.loads(metadata)
    except ValueError as exc:
        raise Unprocessable('`metadata` must be a JSON object, e.g. {"source": "intake"}.') from exc
    if not isinstance(value, dict):
        raise Unprocessable('`metadata` must be a JSON object, e.g. {"source": "intake"}.')
    return value


def _write(
    request: Request,
    db: DbDep,
    tenant: TenantDep,
    idempotency_key: str | None,
    operation: str,
    body: Any,
    items: list[MemoryCreate],
) -> JSONResponse:
    status_code, payload = run_once(
        db,
        tenant.tenant_id,
        idempotency_key,
        request_fingerprint(operation, body) if idempotency_key is not None else "",
        status.HTTP_202_ACCEPTED,
        lambda: service.create_memories(db, tenant.tenant_id, items),
    )
    db.commit()
    # Also on an idempotent replay: enqueueing a job twice is harmless, and it may have been lost the first time.
    enqueue_after_commit(request.app.state.dispatcher, tenant.tenant_id, uuid.UUID(payload["job_id"]))
    return JSONResponse(payload, status_code=status_code)


@router.post(
    "/memories",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WriteResponse,
    operation_id="memories-create",
    responses=problem_responses(Conflict),
)
def create_memories(
    body: MemoryBatchCreate, request: Request, db: DbDep, tenant: TenantDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Store 1–1000 memories and answer at once (202): embedding runs in the background as the returned job.
    The memories are readable immediately and found by search lexically until embedded. An exact duplicate in
    the same scope returns the existing id."""
    return _write(request, db, tenant, idempotency_key, "memories-create", body, body.memories)


@router.post(
    # `:path`: a session id may contain "/" (sent as %2F, which the server has decoded before routing).
    "/sessions/{session_id:path}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WriteResponse,
    operation_id="sessions-append_messages",
    responses=problem_responses(),
)
def append_messages(
    session_id: Annotated[str, Path(min_length=1, max_length=256)],
    body: MessagesAppend,
    request: Request,
    db: DbDep,
    tenant: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Append dialogue turns to a session, in order; each becomes a dialogue memory with its turn index."""
    items = [
        MemoryCreate(
            type=MemoryType.dialogue,
            content=m.content,
            user_id=body.user_id,
            agent_id=body.agent_id,
            session_id=session_id,
            role=m.role,
            speaker=m.name,
            occurred_at=m.timestamp,
            metadata=m.metadata,
        )
        for m in body.messages
    ]
    return _write(request, db, tenant, idempotency_key, f"sessions-append:{session_id}", body, items)


@router.get(
    "/sessions/{session_id:path}/messages",
    operation_id="sessions-list_messages",
    responses=problem_responses(),
    dependencies=[ReadsOnly],
)
def list_messages(
    session_id: Annotated[str, Path(min_length=1, max_length=256)],
    db: DbDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> MemoryList:
    """A session's dialogue turns in turn order."""
    where = MemoryFilter(tenant_id=tenant.tenant_id, session_id=session_id, types=[MemoryType.dialogue.value])
    return service.list_memories(db, where, cursor=cursor, limit=limit, ascending=True)


@router.get("/memories", operation_id="memories-list", responses=problem_responses(), dependencies=[ReadsOnly])
def list_memories(
    db: DbDep,
    tenant: TenantDep,
    user_id: ScopeQuery = None,
    agent_id: ScopeQuery = None,
    session_id: ScopeQuery = None,
    type: Annotated[list[MemoryType] | None, Query(description="Repeat to match several types.")] = None,
    occurred_after: Annotated[datetime | None, Query(description="Event time ≥ this.")] = None,
    occurred_before: Annotated[datetime | None, Query(description="Event time < this.")] = None,
    valid_at: Annotated[datetime | None, Query(description="Only memories valid at this time.")] = None,
    metadata: Annotated[str | None, Query(description="JSON object; memories whose metadata contain it.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    order: Annotated[Literal["desc", "asc"], Query(description="Newest first (desc) or oldest first.")] = "desc",
) -> MemoryList:
    """List memories with filters and cursor pagination."""
    where = MemoryFilter(
        tenant_id=tenant.tenant_id,
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        types=[t.value for t in type or []],
        occurred_after=occurred_after,
        occurred_before=occurred_before,
        valid_at=valid_at,
        metadata=parse_metadata_filter(metadata),
    )
    return service.list_memories(db, where, cursor=cursor, limit=limit, ascending=order == "asc")


@router.delete("/memories", operation_id="memories-forget", responses=problem_responses())
def forget(
    db: DbDep, tenant: TenantDep, user_id: ScopeQuery = None, agent_id: ScopeQuery = None, session_id: ScopeQuery = None
) -> ForgetReport:
    """Forget a scope: its memories, what was derived from them, links, history and embeddings. The answer is a
    receipt: the counts, the scope, when, and the id of the audit log entry that records it."""
    report = service.forget(
        db,
        MemoryFilter(tenant_id=tenant.tenant_id, user_id=user_id, agent_id=agent_id, session_id=session_id),
        actor_of(tenant),
    )
    db.commit()
    return report


@router.get(
    "/memories/{memory_id}",
    operation_id="memories-get",
    responses=problem_responses(NotFound),
    dependencies=[ReadsOnly],
)
def get_memory(memory_id: uuid.UUID, db: DbDep, tenant: TenantDep) -> MemoryPublic:
    """One memory by id."""
    return service.get_memory(db, tenant.tenant_id, memory_id)


@router.patch("/memories/{memory_id}", operation_id="memories-update", responses=problem_responses(NotFound, Conflict))
def update_memory(
    memory_id: uuid.UUID, body: MemoryUpdate, request: Request, db: DbDep, tenant: TenantDep
) -> MemoryPublic:
    """Change a memory; every PATCH becomes a new version in its history."""
    updated = service.update_memory(db, tenant.tenant_id, memory_id, body)
    db.commit()
    if updated.embedding_status == "pending" and updated.job_id is not None:
        enqueue_after_commit(request.app.state.dispatcher, tenant.tenant_id, updated.job_id)
    return updated


@router.delete(
    "/memories/{memory_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="memories-delete",
    responses=problem_responses(NotFound),
)
def delete_memory(memory_id: uuid.UUID, db: DbDep, tenant: TenantDep) -> None:
    """Delete one memory with its links, history and embedding."""
    service.delete_memory(db, tenant.tenant_id, memory_id, actor_of(tenant))
    db.commit()


@router.get(
    "/memories/{memory_id}/history",
    operation_id="memories-history",
    responses=problem_responses(NotFound),
    dependencies=[ReadsOnly],
)
def memory_history(memory_id: uuid.UUID, db: DbDep, tenant: TenantDep) -> MemoryHistory:
    """Every version of a memory, oldest first."""
    return service.history(db, tenant.tenant_id, memory_id)

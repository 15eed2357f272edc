"""Typed request and response models mirroring the service's schemas (its `/openapi.json`).

Responses keep fields the client does not know yet (`extra="allow"`), so a newer server does not break an older
client and an exported record re-imports losslessly."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MemoryType = Literal["episodic", "dialogue", "semantic", "procedural"]
Role = Literal["user", "assistant", "system", "tool"]
JobKind = Literal["embed", "reembed", "consolidate"]
JobStatus = Literal["queued", "running", "done", "failed"]
SearchMode = Literal["hybrid", "dense", "lexical"]
Fusion = Literal["rrf", "relevance"]
Hierarchy = Literal["mixed", "evidence"]
Expansion = Literal["evidence"]
HitSource = Literal["dense", "lexical", "entity", "time", "hierarchy"]
ConsolidationLevel = Literal["segment", "session", "profile", "fact", "procedure"]
ListOrder = Literal["desc", "asc"]


class _Response(BaseModel):
    # protected_namespaces: the server names fields `model_id`, which older pydantic 2 releases warn about.
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class _Request(BaseModel):
    # A misspelt field fails here, before a round trip to the server.
    model_config = ConfigDict(extra="forbid")


# Requests


class NewMemory(_Request):
    """One memory to store (POST /v1/memories). At least one of user_id, agent_id, session_id is required."""

    type: MemoryType
    content: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    role: Role | None = None
    speaker: str | None = None
    title: str | None = None
    steps: list[str] | None = None
    trigger: str | None = None
    source_ids: list[uuid.UUID] | None = None
    supersedes: list[uuid.UUID] | None = None


class Message(_Request):
    """One dialogue turn to append to a session."""

    role: Role
    content: str
    name: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None


class FusionWeights(BaseModel):
    """How much each ranking counts in hybrid search (request and response)."""

    model_config = ConfigDict(extra="allow")

    dense: float = 1.0
    lexical: float = 1.0
    entity: float = 0.0
    time: float = 2.0


# Memories


class Memory(_Response):
    id: uuid.UUID
    type: MemoryType
    content: str
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    metadata: dict[str, Any]
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime
    valid_from: datetime | None
    valid_to: datetime | None
    version: int
    role: Role | None
    speaker: str | None
    turn_index: int | None
    title: str | None
    steps: list[str] | None
    trigger: str | None
    entities: list[str] = Field(default_factory=list)
    embedding_status: str
    embedding_model: str | None = None
    job_id: uuid.UUID | None = None
    source_ids: list[uuid.UUID] = Field(default_factory=list)
    consolidation_level: ConsolidationLevel | None = None


class MemoryList(_Response):
    data: list[Memory]
    count: int
    next_cursor: str | None


class WriteResult(_Response):
    id: uuid.UUID
    status: Literal["created", "duplicate"]


class WriteResponse(_Response):
    results: list[WriteResult]
    created: int
    duplicates: int
    job_id: uuid.UUID


class MemoryVersion(_Response):
    version: int
    change: str
    changed_at: datetime
    memory: dict[str, Any]


class MemoryHistory(_Response):
    data: list[MemoryVersion]
    count: int


class ForgetScope(_Response):
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


class ForgetReport(_Response):
    """The receipt of a forget. The receipt fields are None from a server older than them."""

    memories: int
    derived: int
    links: int
    versions: int
    recall_projections: int = 0
    jobs: int = 0
    idempotency_records: int = 0
    receipt_id: int | None = None
    forgotten_at: datetime | None = None
    scope: ForgetScope | None = None


# Jobs


class ItemError(_Response):
    memory_id: uuid.UUID
    error: str


class EmbeddingSpace(_Response):
    model_id: str
    dim: int
    storage: str


class Job(_Response):
    id: uuid.UUID
    kind: JobKind
    status: JobStatus
    total: int
    pending: int
    done: int
    failed: int
    attempts: int
    error: str | None
    errors: list[ItemError]
    embedding_space: EmbeddingSpace | None = None
    params: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


class JobList(_Response):
    data: list[Job]
    count: int


# Search


class HitScores(_Response):
    dense: float | None
    lexical: float | None
    fused: float
    rerank: float | None = None


class SearchHit(_Response):
    memory: Memory
    score: float
    scores: HitScores
    matched_by: list[HitSource]
    context: list[Memory] = Field(default_factory=list)
    evidence: list[Memory] = Field(default_factory=list)
    via: list[uuid.UUID] = Field(default_factory=list)


class TimeWindow(_Response):
    text: str
    start: datetime | None
    end: datetime | None


class SearchResponse(_Response):
    hits: list[SearchHit]
    no_confident_memory: bool
    time_window: TimeWindow | None = None
    mode: SearchMode


class SearchDefaults(_Response):
    """A tenant's search defaults; None means the built-in default."""

    mode: SearchMode | None = None
    weights: FusionWeights | None = None
    fusion: Fusion | None = None
    parse_time: bool | None = None
    recency_half_life_days: float | None = None
    diversity: float | None = None
    min_score: float | None = None
    rerank: bool | None = None
    hierarchy: Hierarchy | None = None


# Consolidation and portability


class ConsolidateAccepted(_Response):
    job_id: uuid.UUID
    backend: str


class ExportedLink(_Response):
    source_id: uuid.UUID
    relation: str


class ExportRecord(Memory):
    """One line of an export: a memory with its embedding, incoming links and history."""

    content_hash: str | None = None
    embedding: list[float] | None = None
    links: list[ExportedLink] = Field(default_factory=list)
    versions: list[MemoryVersion] = Field(default_factory=list)


class ImportReport(_Response):
    imported: int
    skipped: int
    links: int
    versions: int
    reembedded: int
    job_id: uuid.UUID


# Admin


class Tenant(_Response):
    id: uuid.UUID
    name: str
    storage_profile: str | None
    created_at: datetime


class TenantList(_Response):
    data: list[Tenant]
    count: int


class KeyCreated(_Response):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str | None
    prefix: str
    key: str
    created_at: datetime


class KeyPublic(_Response):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyList(_Response):
    data: list[KeyPublic]
    count: int


class TenantRateLimit(_Response):
    tenant_id: uuid.UUID
    requests_per_minute: int | None


class AuditEntry(_Response):
    id: int
    at: datetime
    actor: str
    actor_key_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    action: str
    target: dict[str, Any]
    counts: dict[str, Any]
    request_id: str | None


class AuditList(_Response):
    data: list[AuditEntry]
    count: int
    next_cursor: str | None


class TenantStorage(_Response):
    tenant_id: uuid.UUID
    profile: str
    chosen: bool
    searching: str | None
    moving_to: str | None
    outcome: Literal["adopted", "reencoding", "cancelled", "unchanged"] | None = None
    job_id: uuid.UUID | None = None


class StorageProfileInfo(_Response):
    name: str
    codec: str
    pca_percent: int | None
    index: str
    oversample: int | None
    bytes_per_memory: int
    compression: float
    fitted: bool


class StorageProfileList(_Response):
    model_id: str
    dim: int
    default: str
    data: list[StorageProfileInfo]


# Health and errors


class Health(_Response):
    status: str


class Readiness(_Response):
    status: str
    migration: str | None


class FieldError(_Response):
    loc: list[str | int]
    msg: str
    type: str


class Problem(_Response):
    """An RFC 9457 error body, as every 4xx/5xx answer carries."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None

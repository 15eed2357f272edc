import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    case,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, aggregate_order_by
from sqlalchemy.orm import Mapped, column_property, mapped_column

from memsvc.models.base import Base

MEMORY_TYPES = ("episodic", "dialogue", "semantic", "procedural")
CONSOLIDATION_LEVELS = ("segment", "session", "profile", "fact", "procedure")


class HexDigest(TypeDecorator[str]):
    """A digest the code handles as hex text, stored as its bytes: half the size in the row and in its unique
    index (32 bytes for a SHA-256 rather than 64 characters and a length byte)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> bytes | None:
        return bytes.fromhex(value) if value is not None else None

    def process_result_value(self, value: bytes | None, dialect: Any) -> str | None:
        return value.hex() if value is not None else None


def _constant(value: str) -> Any:
    """A string written into the SQL, not a bound parameter: statements that load memories are reused with only
    their own parameters (memsvc.core.db.Statements)."""
    return literal_column(f"'{value}'", String)


class PendingEmbedding(Base):
    """A memory waiting for its vectors: the embedding queue. A row is written with the memory (or when a PATCH
    changes its text) and deleted once its vectors are stored, so the wide memory row is written once and never
    rewritten by the worker (an update of it would add an entry to each of its indexes). `error` set: its embed
    job gave up on it."""

    __tablename__ = "pending_embeddings"
    __table_args__ = (
        Index("ix_pending_embeddings_tenant_seq", "tenant_id", "seq", postgresql_where=text("error IS NULL")),
    )

    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)  # the memory's: claims take the oldest first
    error: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MemoryLink(Base):
    """Evidence link: `derived_id` (a summary, an extracted fact) came from `source_id`."""

    __tablename__ = "memory_links"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), primary_key=True)
    derived_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memories.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    relation: Mapped[str] = mapped_column(String(32), server_default="evidence")


class Memory(Base):
    __tablename__ = "memories"
    __table_args__ = (
        CheckConstraint(f"type IN {MEMORY_TYPES}", name="type_known"),
        CheckConstraint("user_id IS NOT NULL OR agent_id IS NOT NULL OR session_id IS NOT NULL", name="has_scope"),
        CheckConstraint(f"consolidation_level IN {CONSOLIDATION_LEVELS}", name="consolidation_level_known"),
        # Exact duplicates in the same scope are stored once: the hash covers scope, type and content.
        UniqueConstraint("tenant_id", "content_hash", name="uq_memories_tenant_content_hash"),
        Index("ix_memories_tenant_user", "tenant_id", "user_id"),
        Index("ix_memories_tenant_agent", "tenant_id", "agent_id"),
        Index("ix_memories_tenant_session_turn", "tenant_id", "session_id", "turn_index"),
        Index("ix_memories_tenant_seq", "tenant_id", "seq"),
        Index("ix_memories_tenant_occurred_at", "tenant_id", "occurred_at"),
        Index("ix_memories_job_id", "job_id"),
        Index("ix_memories_search_tsv", "search_tsv", postgresql_using="gin"),
        Index("ix_memories_entities", "entities", postgresql_using="gin"),
        Index(
            "ix_memories_consolidated",
            "tenant_id",
            "seq",
            postgresql_where=text("consolidation_level IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Insertion order: stable cursor pagination and turn order within one write. Unique by the identity alone
    # (migration 0014).
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(256))
    agent_id: Mapped[str | None] = mapped_column(String(256))
    session_id: Mapped[str | None] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    content_hash: Mapped[str] = mapped_column(HexDigest())

    # dialogue turns
    role: Mapped[str | None] = mapped_column(String(32))
    speaker: Mapped[str | None] = mapped_column(String(256))
    turn_index: Mapped[int | None] = mapped_column(Integer)
    # procedural memories
    title: Mapped[str | None] = mapped_column(String(512))
    steps: Mapped[list[str] | None] = mapped_column(JSONB)
    trigger: Mapped[str | None] = mapped_column(Text)

    # pending (queued), failed (queued, given up on) or done: embedded in every space the tenant's search and
    # re-embedding use (vectors: MemoryEmbedding). Read from the queue, never stored here.
    embedding_status: Mapped[str] = column_property(
        func.coalesce(
            select(case((PendingEmbedding.error.is_(None), _constant("pending")), else_=_constant("failed")))
            .where(PendingEmbedding.memory_id == id)
            .correlate_except(PendingEmbedding)
            .scalar_subquery(),
            _constant("done"),
        )
    )
    # The memories this one came from (its evidence links), in a stable order: read with the memory, rather than
    # by one more statement for every page or search that shows memories.
    source_ids: Mapped[list[uuid.UUID]] = column_property(
        func.coalesce(
            select(func.array_agg(aggregate_order_by(MemoryLink.source_id, MemoryLink.source_id)))
            .where(MemoryLink.derived_id == id, MemoryLink.relation == _constant("evidence"))
            .correlate_except(MemoryLink)
            .scalar_subquery(),
            literal_column("'{}'::uuid[]"),
        )
    )
    # The job that (re-)embeds this memory; its progress is counted from these rows and the queue.
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # Set on what consolidation derived (memsvc.consolidation): a segment, session or profile summary, or an
    # extracted fact; NULL on what a client wrote, which is the history consolidation reads.
    consolidation_level: Mapped[str | None] = mapped_column(String(16))
    # Names and other entities mentioned in the content (memsvc.search.entities), for boosts and filters.
    entities: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # Lexical index over the content and its context: the lexical half of hybrid search, and how a memory is
    # found before its embedding exists (read-your-writes).
    search_tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('english', coalesce(speaker, '') || ' ' || coalesce(title, '') || ' ' || "
            "coalesce(trigger, '') || ' ' || content || ' ' || coalesce(steps::text, ''))",
            persisted=True,
        ),
        deferred=True,
    )


class MemoryVersion(Base):
    """A version a PATCH replaced: the memory as it was before it. The current version is the memory row itself,
    so a memory never changed has no row here (memories.service.histories joins the two)."""

    __tablename__ = "memory_versions"
    __table_args__ = (UniqueConstraint("memory_id", "version", name="uq_memory_versions_memory_version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(16))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


JOB_STATUSES = ("queued", "running", "done", "failed")


JOB_KINDS = ("embed", "reembed", "consolidate")


class Job(Base):
    """Background work. `embed`: the memories whose `job_id` points here; counts come from those rows.
    `reembed`: every embedded memory of the tenant, into `embedding_space_id`. `consolidate`: a scope's history
    (`params`), into summaries and facts (`result`: what was done and what it cost)."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES}", name="status_known"),
        CheckConstraint(f"kind IN {JOB_KINDS}", name="kind_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    embedding_space_id: Mapped[int | None] = mapped_column(SmallInteger, ForeignKey("embedding_spaces.id"))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsolidatedSegment(Base):
    """A unit of consolidation done (a segment of a scope's history, or a roll-up of lower-level summaries),
    keyed by the hash of the memories it came from: the same history is never consolidated twice. Its memory
    embedding (HMT's M_n) is in the scope's long-term cache, which later segments recall from."""

    __tablename__ = "consolidated_segments"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    source_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(String(256))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    memory_embedding: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    backend: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ScopeRecallProjection(Base):
    """A scope's learned memory-recall projections Wq, Wk (`memsvc consolidation train-recall`), with how often
    recall found each segment's predecessor before and after training."""

    __tablename__ = "recall_projections"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    input_dim: Mapped[int] = mapped_column(Integer)
    projected_dim: Mapped[int] = mapped_column(Integer)
    weights: Mapped[bytes] = mapped_column(LargeBinary)  # Wq then Wk: float32, little-endian, row-major
    segments: Mapped[int] = mapped_column(Integer)
    accuracy_before: Mapped[float] = mapped_column(Float)
    accuracy_after: Mapped[float] = mapped_column(Float)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyRecord(Base):
    """The first answer to a write sent with an `Idempotency-Key`, replayed to its retries."""

    __tablename__ = "idempotency_records"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

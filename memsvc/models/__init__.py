"""ORM models, one per table. Import them from here so Alembic sees the whole metadata."""

from memsvc.models.base import Base
from memsvc.models.embedding import EmbeddingFit, EmbeddingSpace, MemoryEmbedding
from memsvc.models.memory import (
    MEMORY_TYPES,
    ConsolidatedSegment,
    IdempotencyRecord,
    Job,
    Memory,
    MemoryLink,
    MemoryVersion,
    PendingEmbedding,
    ScopeRecallProjection,
)
from memsvc.models.tenant import ApiKey, AuditEntry, Tenant

__all__ = [
    "MEMORY_TYPES",
    "ApiKey",
    "AuditEntry",
    "Base",
    "ConsolidatedSegment",
    "EmbeddingFit",
    "EmbeddingSpace",
    "IdempotencyRecord",
    "Job",
    "Memory",
    "MemoryEmbedding",
    "MemoryLink",
    "MemoryVersion",
    "PendingEmbedding",
    "ScopeRecallProjection",
    "Tenant",
]

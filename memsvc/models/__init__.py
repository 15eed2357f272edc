"""ORM models, one per table. Import them from here so Alembic sees the whole metadata."""

from memsvc.models.base import EMBEDDING_DIM, Base
from memsvc.models.memory import (
    MEMORY_TYPES,
    IdempotencyRecord,
    Job,
    Memory,
    MemoryLink,
    MemoryVersion,
)
from memsvc.models.tenant import ApiKey, Tenant

__all__ = [
    "EMBEDDING_DIM",
    "MEMORY_TYPES",
    "ApiKey",
    "Base",
    "IdempotencyRecord",
    "Job",
    "Memory",
    "MemoryLink",
    "MemoryVersion",
    "Tenant",
]

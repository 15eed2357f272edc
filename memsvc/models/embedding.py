import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from memsvc.models.base import Base


class EmbeddingSpace(Base):
    """One embedding model configuration (model and output dimension). Vectors of different spaces are never
    compared; each space has its own HNSW index (a partial expression index, created with the space)."""

    __tablename__ = "embedding_spaces"
    __table_args__ = (
        UniqueConstraint("model_id", "dim", name="uq_embedding_spaces_model_id_dim"),
        CheckConstraint("dim BETWEEN 1 AND 4000", name="dim_indexable"),  # pgvector's HNSW limit for halfvec
    )

    id: Mapped[int] = mapped_column(SmallInteger, Identity(always=True), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200))
    # Where this deployment loads the weights from; NULL = the bundled all-MiniLM-L6-v2.
    model_path: Mapped[str | None] = mapped_column(Text)
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MemoryEmbedding(Base):
    """A memory's vector in one space: at most one per (memory, space), so a redelivered task overwrites it."""

    __tablename__ = "memory_embeddings"
    __table_args__ = (Index("ix_memory_embeddings_space_id_tenant_id", "space_id", "tenant_id"),)

    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), primary_key=True)
    space_id: Mapped[int] = mapped_column(SmallInteger, ForeignKey("embedding_spaces.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # Unsized: the dimension is the space's; its index casts to halfvec(dim).
    embedding: Mapped[Any] = mapped_column(HALFVEC())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

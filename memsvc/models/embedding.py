import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import HALFVEC, VECTOR
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
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
from sqlalchemy.dialects.postgresql import BYTEA
from sqlalchemy.orm import Mapped, mapped_column

from memsvc.models.base import Base


class EmbeddingSpace(Base):
    """One embedding model configuration (model and output dimension) stored one way (a storage profile's codec
    and reduction). Vectors of different spaces are never compared; each space has its own HNSW index (a partial
    expression index, created with the space)."""

    __tablename__ = "embedding_spaces"
    __table_args__ = (
        UniqueConstraint("model_id", "dim", "storage", name="uq_embedding_spaces_model_id_dim_storage"),
        CheckConstraint("dim BETWEEN 1 AND 4000", name="dim_indexable"),  # pgvector's HNSW limit for halfvec
    )

    id: Mapped[int] = mapped_column(SmallInteger, Identity(always=True), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200))
    # Where this deployment loads the weights from; NULL = the bundled all-MiniLM-L6-v2.
    model_path: Mapped[str | None] = mapped_column(Text)
    dim: Mapped[int] = mapped_column(Integer)
    # StorageProfile.storage: codec and reduction, e.g. "float16", "pca50-fp8-e4m3".
    storage: Mapped[str] = mapped_column(String(40), server_default="float16")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MemoryEmbedding(Base):
    """A memory's vector in one space: at most one per (memory, space), so a redelivered task overwrites it."""

    __tablename__ = "memory_embeddings"
    __table_args__ = (
        Index("ix_memory_embeddings_space_id_tenant_id", "space_id", "tenant_id"),
        CheckConstraint("num_nonnulls(embedding, embedding_f32, codes) = 1", name="one_encoding"),
    )

    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), primary_key=True)
    space_id: Mapped[int] = mapped_column(SmallInteger, ForeignKey("embedding_spaces.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # One of the three, by the space's codec. Unsized: the dimension is the space's; its index casts to it.
    embedding: Mapped[Any] = mapped_column(HALFVEC(), nullable=True)  # float16
    embedding_f32: Mapped[Any] = mapped_column(VECTOR(), nullable=True)  # float32
    codes: Mapped[bytes | None] = mapped_column(BYTEA)  # float8, int8, binary: sign bits first (see codecs)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmbeddingFit(Base):
    """Encoding parameters learned from a sample of one tenant's embeddings for one space (PCA basis, int8
    scales). Versioned: a tenant that comes back to a space is fitted anew; its vectors use the latest version."""

    __tablename__ = "embedding_fits"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    space_id: Mapped[int] = mapped_column(SmallInteger, ForeignKey("embedding_spaces.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_size: Mapped[int] = mapped_column(Integer)
    pca_mean: Mapped[bytes | None] = mapped_column(BYTEA)  # float32 little-endian
    pca_components: Mapped[bytes | None] = mapped_column(BYTEA)
    explained_variance: Mapped[float | None] = mapped_column(Float)
    int8_scales: Mapped[bytes | None] = mapped_column(BYTEA)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

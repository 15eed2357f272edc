import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from memsvc.models.base import Base


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (CheckConstraint("rate_limit_per_minute > 0", name="rate_limit_per_minute_positive"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The space the tenant's searches use, and the one its memories are being re-embedded into (if any):
    # search switches when the re-embedding is complete.
    embedding_space_id: Mapped[int | None] = mapped_column(SmallInteger, ForeignKey("embedding_spaces.id"))
    next_embedding_space_id: Mapped[int | None] = mapped_column(SmallInteger, ForeignKey("embedding_spaces.id"))
    # The storage profile the tenant chose (a profile name); NULL follows the service default.
    storage_profile: Mapped[str | None] = mapped_column(String(40))
    # Search options applied when a request leaves them out (memsvc.search.schemas.SearchDefaults); NULL = built-in.
    search_defaults: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Requests per minute each of its keys may make; NULL follows Settings.rate_limit_per_minute.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)


class ApiKey(Base):
    """A tenant's API key; only its SHA-256 is stored, the secret is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One administrative action or deletion. Append-only: the service role may insert and read, never change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(64))
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column()
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128))

"""SQL for the audit log (append-only: the service role may only insert and read it)."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memsvc.models import AuditEntry


@dataclass(frozen=True)
class AuditFilter:
    tenant_id: uuid.UUID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def insert(
    db: Session,
    *,
    actor: str,
    actor_key_id: uuid.UUID | None,
    tenant_id: uuid.UUID | None,
    action: str,
    target: dict[str, Any],
    counts: dict[str, Any],
    request_id: str | None,
) -> AuditEntry:
    """Add an entry to the current transaction; it commits or rolls back with the action it records."""
    entry = AuditEntry(
        actor=actor,
        actor_key_id=actor_key_id,
        tenant_id=tenant_id,
        action=action,
        target=target,
        counts=counts,
        request_id=request_id,
    )
    db.add(entry)
    db.flush()
    db.refresh(entry)  # `at` is the database's clock
    return entry


def page(db: Session, where: AuditFilter, *, before_id: int | None, limit: int) -> list[AuditEntry]:
    """Entries matching `where`, newest first, older than `before_id` when given."""
    query = select(AuditEntry)
    if where.tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == where.tenant_id)
    if where.action is not None:
        query = query.where(AuditEntry.action == where.action)
    if where.since is not None:
        query = query.where(AuditEntry.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.at < where.until)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(db.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))

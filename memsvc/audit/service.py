"""Recording and reading the audit log. An entry is written in the transaction of the action it records, so it
exists exactly when the action committed. No HTTP and no commits here."""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from memsvc.audit import repository
from memsvc.audit.repository import AuditFilter
from memsvc.audit.schemas import AuditEntryPublic, AuditList
from memsvc.core.errors import Unprocessable
from memsvc.core.request_id import current_request_id
from memsvc.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who acts: the admin, or a tenant's API key named by its public prefix (never its secret)."""

    name: str
    key_id: uuid.UUID | None = None


ADMIN = Actor("admin")


def record(
    db: Session,
    actor: Actor,
    action: str,
    *,
    tenant_id: uuid.UUID | None,
    target: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry for `action` to the caller's transaction (it commits with the action, or not at all)."""
    return repository.insert(
        db,
        actor=actor.name,
        actor_key_id=actor.key_id,
        tenant_id=tenant_id,
        action=action,
        target=target or {},
        counts=counts or {},
        request_id=current_request_id.get(),
    )


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": entry_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["before"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise Unprocessable("The cursor is not one this API returned.") from exc
    if not isinstance(value, int):
        raise Unprocessable("The cursor is not one this API returned.")
    return value


def list_entries(db: Session, where: AuditFilter, *, cursor: str | None, limit: int) -> AuditList:
    """A page of entries, newest first, with the cursor of the next (older) page."""
    if where.since is not None and where.until is not None and where.until <= where.since:
        raise Unprocessable("`until` must be after `since`.")
    before = _decode_cursor(cursor) if cursor else None
    rows = repository.page(db, where, before_id=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditList(
        data=[AuditEntryPublic.model_validate(r) for r in rows],
        count=len(rows),
        next_cursor=_encode_cursor(rows[-1].id) if more else None,
    )

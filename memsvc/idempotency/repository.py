import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from memsvc.models import IdempotencyRecord


def lock_key(db: Session, tenant_id: uuid.UUID, key: str) -> None:
    """Serialise concurrent requests carrying the same key (released at commit or rollback)."""
    db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 1))"), {"k": f"idem:{tenant_id}:{key}"})


def find(db: Session, tenant_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
    return db.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key)
    )


def save(
    db: Session, tenant_id: uuid.UUID, key: str, request_hash: str, status_code: int, response: dict[str, Any]
) -> None:
    db.add(
        IdempotencyRecord(
            tenant_id=tenant_id, key=key, request_hash=request_hash, status_code=status_code, response=response
        )
    )
    db.flush()


def delete_answers_listing(db: Session, tenant_id: uuid.UUID, memory_ids: Sequence[uuid.UUID]) -> int:
    """Delete the stored answers of writes that returned any of these memory ids (a write answer lists each
    memory as `results[].id`). Returns how many."""
    result = db.execute(
        text("""
            DELETE FROM idempotency_records r
            WHERE r.tenant_id = :tenant_id
              AND EXISTS (
                SELECT 1 FROM jsonb_array_elements(
                    CASE WHEN jsonb_typeof(r.response -> 'results') = 'array' THEN r.response -> 'results'
                    ELSE '[]'::jsonb END
                ) AS item
                WHERE item ->> 'id' = ANY(CAST(:ids AS text[]))
              )
        """),
        {"tenant_id": tenant_id, "ids": [str(i) for i in memory_ids]},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]

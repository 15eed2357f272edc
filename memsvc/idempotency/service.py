"""`Idempotency-Key` for writes: a retry with the same key and body gets the first answer back, unchanged."""

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from memsvc.core.errors import Unprocessable
from memsvc.idempotency import repository

MAX_KEY_LENGTH = 255


def request_fingerprint(operation: str, body: Any) -> str:
    payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return hashlib.sha256(json.dumps([operation, payload], sort_keys=True, default=str).encode()).hexdigest()


def run_once(
    db: Session,
    tenant_id: uuid.UUID,
    key: str | None,
    fingerprint: str,
    status_code: int,
    write: Callable[[], BaseModel],
) -> tuple[int, dict[str, Any]]:
    """Run `write` unless this key already has an answer; returns (status, JSON body) either way.

    The answer is stored in the same transaction as the write, so both land or neither does."""
    if key is None:
        return status_code, write().model_dump(mode="json")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Unprocessable(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
    repository.lock_key(db, tenant_id, key)
    previous = repository.find(db, tenant_id, key)
    if previous is not None:
        if previous.request_hash != fingerprint:
            raise Unprocessable("This Idempotency-Key was already used with a different request.")
        return previous.status_code, previous.response
    body = write().model_dump(mode="json")
    repository.save(db, tenant_id, key, fingerprint, status_code, body)
    return status_code, body

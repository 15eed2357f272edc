import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Entry id; increases with every entry (the receipt id of a forget).")
    at: datetime = Field(description="When the action was committed (its transaction's time).")
    actor: str = Field(description='Who acted: "admin", or the public prefix of the tenant API key used.')
    actor_key_id: uuid.UUID | None = Field(description="Id of the tenant API key used (null: the admin key).")
    tenant_id: uuid.UUID | None = Field(description="Tenant acted on.")
    action: str = Field(description="What was done, e.g. memories.forget, key.revoke, tenant.rate_limit.set.")
    target: dict[str, Any] = Field(
        description="What it applied to: a scope filter, a memory or key id, a profile. Never memory content."
    )
    counts: dict[str, Any] = Field(description="How many rows of each kind it created, changed or removed.")
    request_id: str | None = Field(description="X-Request-ID of the request that did it.")


class AuditList(BaseModel):
    data: list[AuditEntryPublic] = Field(description="Entries, newest first.")
    count: int = Field(description="Number of entries in `data`.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last.")

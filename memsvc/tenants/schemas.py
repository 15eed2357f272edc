import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from memsvc.memories.schemas import Text


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200, description="Unique, human-readable tenant name.")


class TenantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Tenant id.")
    name: str = Field(description="Tenant name.")
    created_at: datetime = Field(description="When the tenant was created.")


class TenantList(BaseModel):
    data: list[TenantPublic] = Field(description="All tenants, oldest first.")
    count: int = Field(description="Number of tenants.")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, max_length=200, description="Optional label for the key.")


class KeyCreated(BaseModel):
    id: uuid.UUID = Field(description="Key id (use it to revoke the key).")
    tenant_id: uuid.UUID = Field(description="Tenant the key acts for.")
    name: str | None = Field(description="Label given at creation.")
    prefix: str = Field(description="Public prefix of the key, safe to log.")
    key: str = Field(description="The secret API key. Shown only in this answer; only its hash is stored.")
    created_at: datetime = Field(description="When the key was created.")

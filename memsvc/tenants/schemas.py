import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from memsvc.embeddings.profiles import parse_profile
from memsvc.memories.schemas import Text


def _canonical_profile(value: str | None) -> str | None:
    return parse_profile(value).name if value is not None else None


ProfileName = Annotated[str | None, AfterValidator(_canonical_profile)]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200, description="Unique, human-readable tenant name.")
    storage_profile: ProfileName = Field(
        default=None,
        max_length=40,
        description="How its embeddings are stored (GET /v1/storage-profiles); unset follows the service default. "
        "Fitted profiles (PCA, int8) need embedded memories first: choose them later.",
    )


class TenantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Tenant id.")
    name: str = Field(description="Tenant name.")
    storage_profile: str | None = Field(description="Chosen storage profile; null follows the service default.")
    created_at: datetime = Field(description="When the tenant was created.")


class StorageProfileChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: ProfileName = Field(
        max_length=40, description="A storage profile name, e.g. fp8, pca50-fp8, float16; null: the service default."
    )


class TenantStorage(BaseModel):
    tenant_id: uuid.UUID = Field(description="Tenant id.")
    profile: str = Field(description="The profile the tenant is on, or moving to.")
    chosen: bool = Field(description="Chosen for this tenant (false: it follows the service default).")
    searching: str | None = Field(description="Storage its searches use now (null before its first embedding).")
    moving_to: str | None = Field(
        description="Storage its embeddings are being re-encoded into; search switches when that is complete."
    )
    outcome: Literal["adopted", "reencoding", "cancelled", "unchanged"] | None = Field(
        default=None,
        description="Of a change: adopted at once (no embeddings yet), re-encoding in the background, a move "
        "cancelled (back to the storage searched now), or nothing to do.",
    )
    job_id: uuid.UUID | None = Field(default=None, description="The re-encoding job: GET /v1/jobs/{job_id}.")


class StorageProfileInfo(BaseModel):
    name: str = Field(description="Profile name, as PUT /v1/tenants/{id}/storage-profile takes it.")
    codec: str = Field(description="Stored codec: float32, float16, fp8-e4m3, fp8-e5m2, int8 or binary.")
    pca_percent: int | None = Field(description="Dimensions kept by the tenant's PCA, in percent (null: all).")
    index: str = Field(description="Candidate index: float32/float16 HNSW (cosine) or binary HNSW (Hamming).")
    oversample: int | None = Field(description="Candidates per hit rescored exactly (null: searched directly).")
    bytes_per_memory: int = Field(description="Embedding bytes stored per memory for the configured model.")
    compression: float = Field(description="How many times smaller than float32 that is.")
    fitted: bool = Field(description="Needs parameters fitted on the tenant's own embeddings (PCA, int8 scales).")


class StorageProfileList(BaseModel):
    model_id: str = Field(description="The configured embedding model.")
    dim: int = Field(description="Its dimension.")
    default: str = Field(description="The service default profile.")
    data: list[StorageProfileInfo] = Field(description="Profiles offered by name; any valid name works.")


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


class KeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Key id (use it to revoke the key).")
    tenant_id: uuid.UUID = Field(description="Tenant the key acts for.")
    name: str | None = Field(description="Label given at creation.")
    prefix: str = Field(description="Public prefix of the key, safe to log; names the key in the audit log.")
    created_at: datetime = Field(description="When the key was created.")
    revoked_at: datetime | None = Field(description="When the key was revoked (null: active).")


class KeyList(BaseModel):
    data: list[KeyPublic] = Field(description="The tenant's keys, active and revoked, oldest first.")
    count: int = Field(description="Number of keys.")


class RateLimitChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(
        ge=1,
        le=1_000_000,
        description="Requests per minute each of the tenant's API keys may make; null: the service default.",
    )


class TenantRateLimit(BaseModel):
    tenant_id: uuid.UUID = Field(description="Tenant id.")
    requests_per_minute: int | None = Field(
        description="Requests per minute each of the tenant's API keys may make; null: the service default."
    )

import uuid

from pydantic import BaseModel, Field

from memsvc.memories.schemas import MemoryPublic, MemoryVersionPublic


class ExportedLink(BaseModel):
    source_id: uuid.UUID = Field(description="Memory this one was derived from.")
    relation: str = Field(description="evidence or supersedes.")


class ExportRecord(MemoryPublic):
    """One NDJSON line of an export: a memory with everything needed to restore it exactly."""

    job_id: uuid.UUID | None = Field(default=None, exclude=True, description="Not exported: operational state.")
    content_hash: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="Dedupe identity, a SHA-256 in hex (kept so re-import dedupes); null: computed from the content.",
    )
    embedding: list[float] | None = Field(
        default=None,
        description="Stored embedding, in the model's coordinates as stored (float16, float8 or int8 values); "
        "null where the storage profile keeps no such vector (PCA, binary): import embeds those again.",
    )
    links: list[ExportedLink] = Field(default_factory=list, description="Incoming links (sources).")
    versions: list[MemoryVersionPublic] = Field(default_factory=list, description="History, oldest first.")


class ImportReport(BaseModel):
    imported: int = Field(description="Memories restored.")
    skipped: int = Field(description="Lines whose memory (same id or same content in scope) already existed.")
    links: int = Field(description="Evidence links restored.")
    versions: int = Field(description="History versions restored.")
    reembedded: int = Field(description="Memories queued for embedding (none stored from the current model).")
    job_id: uuid.UUID = Field(description="Background job embedding those memories: GET /v1/jobs/{job_id}.")

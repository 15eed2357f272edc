import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class JobKind(StrEnum):
    embed = "embed"
    reembed = "reembed"
    consolidate = "consolidate"


class ItemError(BaseModel):
    memory_id: uuid.UUID = Field(description="Memory that could not be processed.")
    error: str = Field(description="Why.")


class EmbeddingSpacePublic(BaseModel):
    model_id: str = Field(description="Embedding model name.")
    dim: int = Field(description="Vector dimension.")
    storage: str = Field(description="Storage (codec and reduction) of the vectors, e.g. float16, pca50-fp8-e4m3.")


class JobPublic(BaseModel):
    id: uuid.UUID = Field(description="Job id, as returned by the write that created it.")
    kind: JobKind = Field(
        description="embed: memories just written or changed. reembed: all memories, into a newly configured "
        "embedding model or storage profile; search switches to it when the job is done. consolidate: a scope's "
        "history into summaries and facts (the memories it counts are the ones it wrote)."
    )
    status: JobStatus = Field(description="queued, running, done, or failed (retries exhausted; see errors).")
    total: int = Field(description="Memories this job covers (ones deleted since are no longer counted).")
    pending: int = Field(description="Not processed yet.")
    done: int = Field(description="Processed.")
    failed: int = Field(description="Given up on after the last retry.")
    attempts: int = Field(description="How many times a worker has started on this job.")
    error: str | None = Field(description="Last error of the job, if any.")
    errors: list[ItemError] = Field(description="Per-memory errors (first 100).")
    embedding_space: EmbeddingSpacePublic | None = Field(
        default=None, description="reembed: the model configuration being filled in."
    )
    params: dict[str, Any] | None = Field(default=None, description="consolidate: the scope and backend asked for.")
    result: dict[str, Any] | None = Field(
        default=None,
        description="consolidate, when done: segments consolidated and skipped (already done), memories written, "
        "generated sentences rejected as unsupported by their sources, tokens in and out, wall time.",
    )
    created_at: datetime = Field(description="When the job was created.")
    updated_at: datetime = Field(description="Last change of the job's state.")


class JobList(BaseModel):
    data: list[JobPublic] = Field(description="Jobs, newest first.")
    count: int = Field(description="Number of jobs in `data`.")

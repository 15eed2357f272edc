import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class ItemError(BaseModel):
    memory_id: uuid.UUID = Field(description="Memory that could not be processed.")
    error: str = Field(description="Why.")


class JobPublic(BaseModel):
    id: uuid.UUID = Field(description="Job id, as returned by the write that created it.")
    kind: str = Field(description="What the job does: embed.")
    status: JobStatus = Field(description="queued, running, done, or failed (retries exhausted; see errors).")
    total: int = Field(description="Memories this job covers (ones deleted since are no longer counted).")
    pending: int = Field(description="Not processed yet.")
    done: int = Field(description="Processed.")
    failed: int = Field(description="Given up on after the last retry.")
    attempts: int = Field(description="How many times a worker has started on this job.")
    error: str | None = Field(description="Last error of the job, if any.")
    errors: list[ItemError] = Field(description="Per-memory errors (first 100).")
    created_at: datetime = Field(description="When the job was created.")
    updated_at: datetime = Field(description="Last change of the job's state.")

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from memsvc.embeddings.profiles import MAX_OVERSAMPLE
from memsvc.memories.schemas import MemoryPublic, MemoryType, Metadata, ScopeId, Timestamp, _as_utc, _no_nul

MAX_TOP_K = 100
MAX_CONTEXT_WINDOW = 20
MatchKind = Literal["dense", "lexical"]


def _check_query(value: str) -> str:
    _no_nul(value)
    if not value.strip():
        raise ValueError("query must not be empty or only whitespace")
    return value


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, AfterValidator(_check_query)] = Field(
        max_length=8192, description="What to look for, in natural language."
    )
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K, description="How many hits to return (1–100).")
    user_id: ScopeId | None = Field(default=None, description="Only this user's memories.")
    agent_id: ScopeId | None = Field(default=None, description="Only this agent's memories.")
    session_id: ScopeId | None = Field(default=None, description="Only this session's memories.")
    types: list[MemoryType] | None = Field(default=None, description="Only these memory types.")
    filters: Metadata | None = Field(
        default=None, description="Metadata equality: hits' metadata must contain this JSON object."
    )
    occurred_after: Timestamp | None = Field(default=None, description="Event time ≥ this.")
    occurred_before: Timestamp | None = Field(default=None, description="Event time < this.")
    as_of: Annotated[datetime | None, AfterValidator(_as_utc)] = Field(
        default=None, description="Only memories valid at this time (default: now)."
    )
    oversample: int | None = Field(
        default=None,
        ge=1,
        le=MAX_OVERSAMPLE,
        description="Byte-code storage profiles: candidates fetched per hit before exact rescoring "
        "(default: the tenant's profile's). More is slower and closer to exact search.",
    )
    context_window: int = Field(
        default=0,
        ge=0,
        le=MAX_CONTEXT_WINDOW,
        description="Dialogue hits: also return the N turns before and after each, from its session (0–20).",
    )
    include_expired: bool = Field(
        default=False, description="Also return memories whose validity ended (superseded facts)."
    )


class SearchHit(BaseModel):
    memory: MemoryPublic = Field(description="The matching memory.")
    score: float = Field(
        description="dense: cosine similarity of query and memory, in [-1, 1]; lexical: text rank in [0, 1)."
    )
    matched_by: MatchKind = Field(
        description="dense (embedding), or lexical for a memory not embedded yet (read-your-writes)."
    )
    context: list[MemoryPublic] = Field(
        default_factory=list,
        description="With context_window: the neighbouring turns of a dialogue hit in its session, in turn order "
        "(the hit itself not repeated).",
    )


class SearchResponse(BaseModel):
    hits: list[SearchHit] = Field(description="Best first.")

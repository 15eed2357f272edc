import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, model_validator

from memsvc.core.settings import get_settings

MAX_ITEMS_PER_WRITE = 1000


class MemoryType(StrEnum):
    episodic = "episodic"
    dialogue = "dialogue"
    semantic = "semantic"
    procedural = "procedural"


class Role(StrEnum):
    user = "user"
    assistant = "assistant"
    system = "system"
    tool = "tool"


def _check_content(value: str) -> str:
    if not value.strip():
        raise ValueError("content must not be empty or only whitespace")
    limit = get_settings().max_content_bytes
    size = len(value.encode("utf-8"))
    if size > limit:
        raise ValueError(f"content is {size} bytes; the limit is {limit} bytes")
    return value


def _as_utc(value: datetime | None) -> datetime | None:
    # A timestamp without an offset is taken as UTC rather than the server's local time.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Content = Annotated[str, AfterValidator(_check_content)]
ScopeId = Annotated[str, Field(min_length=1, max_length=256)]
Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
Metadata = Annotated[dict[str, Any], Field(description="Free-form JSON object; filterable by equality.")]


class _ValidityMixin(BaseModel):
    valid_from: Timestamp | None = Field(default=None, description="When this memory starts being true.")
    valid_to: Timestamp | None = Field(
        default=None, description="When it stopped being true (a superseded fact is closed, not deleted)."
    )

    @model_validator(mode="after")
    def _validity_ordered(self) -> Self:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to must not be before valid_from")
        return self


class MemoryCreate(_ValidityMixin):
    model_config = ConfigDict(extra="forbid")

    type: MemoryType = Field(description="episodic | dialogue | semantic | procedural.")
    content: Content = Field(description="The memory's text (UTF-8, non-empty, size-limited).")
    user_id: ScopeId | None = Field(default=None, description="End user this memory belongs to.")
    agent_id: ScopeId | None = Field(default=None, description="Agent this memory belongs to.")
    session_id: ScopeId | None = Field(default=None, description="Session (required for dialogue turns).")
    metadata: Metadata = Field(default_factory=dict)
    occurred_at: Timestamp | None = Field(default=None, description="Event time; default: now.")
    role: Role | None = Field(default=None, description="Dialogue: who spoke (user, assistant, system, tool).")
    speaker: str | None = Field(default=None, max_length=256, description="Dialogue: the speaker's name.")
    title: str | None = Field(default=None, max_length=512, description="Procedural: short name of the skill.")
    steps: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        default=None, max_length=200, description="Procedural: ordered steps."
    )
    trigger: str | None = Field(default=None, max_length=4096, description="Procedural: when to use it.")
    source_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=1000, description="Memories this one was derived from (evidence)."
    )
    supersedes: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=100,
        description="Memories this one replaces: they are closed (valid_to set), not deleted.",
    )

    @model_validator(mode="after")
    def _scoped(self) -> Self:
        if not (self.user_id or self.agent_id or self.session_id):
            raise ValueError("at least one of user_id, agent_id, session_id is required")
        if self.type is MemoryType.dialogue and not self.session_id:
            raise ValueError("dialogue memories need a session_id")
        return self


class MemoryBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memories: list[MemoryCreate] = Field(
        min_length=1, max_length=MAX_ITEMS_PER_WRITE, description="1 to 1000 memories to store."
    )


class WriteStatus(StrEnum):
    created = "created"
    duplicate = "duplicate"


class WriteResult(BaseModel):
    id: uuid.UUID = Field(description="Id of the stored memory (the existing one for a duplicate).")
    status: WriteStatus = Field(description="created, or duplicate when the same scope already held it.")


class WriteResponse(BaseModel):
    results: list[WriteResult] = Field(description="One result per submitted item, in order.")
    created: int = Field(description="How many new memories were stored.")
    duplicates: int = Field(description="How many items matched an existing memory.")


class MemoryUpdate(_ValidityMixin):
    model_config = ConfigDict(extra="forbid")

    content: Content | None = Field(default=None, description="New text (re-embedded).")
    metadata: Metadata | None = Field(default=None, description="Replaces the whole metadata object.")
    occurred_at: Timestamp | None = Field(default=None, description="New event time.")
    role: Role | None = Field(default=None, description="Dialogue role.")
    speaker: str | None = Field(default=None, max_length=256, description="Dialogue speaker.")
    title: str | None = Field(default=None, max_length=512, description="Procedural title.")
    steps: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        default=None, max_length=200, description="Procedural steps."
    )
    trigger: str | None = Field(default=None, max_length=4096, description="Procedural trigger.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        if "content" in self.model_fields_set and self.content is None:
            raise ValueError("content cannot be null")
        return self


class MemoryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Memory id.")
    type: MemoryType = Field(description="Memory type.")
    content: str = Field(description="Stored text, as written.")
    user_id: str | None = Field(description="User scope.")
    agent_id: str | None = Field(description="Agent scope.")
    session_id: str | None = Field(description="Session scope.")
    metadata: dict[str, Any] = Field(
        validation_alias=AliasChoices("metadata_", "metadata"), description="Metadata object."
    )
    occurred_at: datetime = Field(description="Event time.")
    created_at: datetime = Field(description="When it was stored.")
    updated_at: datetime = Field(description="Last change.")
    valid_from: datetime | None = Field(description="Start of validity.")
    valid_to: datetime | None = Field(description="End of validity (closed when superseded).")
    version: int = Field(description="Current version (1 + number of PATCHes).")
    role: Role | None = Field(description="Dialogue role.")
    speaker: str | None = Field(description="Dialogue speaker name.")
    turn_index: int | None = Field(description="Dialogue: 0-based turn order within the session.")
    title: str | None = Field(description="Procedural title.")
    steps: list[str] | None = Field(description="Procedural steps.")
    trigger: str | None = Field(description="Procedural when-to-use text.")
    embedding_status: str = Field(description="pending | done | failed.")
    embedding_model: str | None = Field(description="Model that produced the stored embedding.")
    source_ids: list[uuid.UUID] = Field(default_factory=list, description="Evidence this memory came from.")


class MemoryList(BaseModel):
    data: list[MemoryPublic] = Field(description="One page of memories.")
    count: int = Field(description="Number of memories in this page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class MemoryVersionPublic(BaseModel):
    version: int = Field(description="Version number, 1 for the original write.")
    change: str = Field(description="created, updated or imported.")
    changed_at: datetime = Field(description="When this version was written.")
    memory: dict[str, Any] = Field(description="The memory's fields at this version.")


class MemoryHistory(BaseModel):
    data: list[MemoryVersionPublic] = Field(description="Every version, oldest first.")
    count: int = Field(description="Number of versions.")


class ForgetReport(BaseModel):
    memories: int = Field(description="Memories deleted (with their embeddings).")
    derived: int = Field(description="Of those, memories deleted because they were derived from the scope.")
    links: int = Field(description="Evidence links deleted.")
    versions: int = Field(description="History versions deleted.")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="user, assistant, system or tool.")
    name: str | None = Field(default=None, max_length=256, description="Speaker's name.")
    content: Content = Field(description="What was said.")
    timestamp: Timestamp | None = Field(default=None, description="When it was said; default: now.")
    metadata: Metadata = Field(default_factory=dict)


class MessagesAppend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: ScopeId | None = Field(default=None, description="User the conversation is with.")
    agent_id: ScopeId | None = Field(default=None, description="Agent in the conversation.")
    messages: list[Message] = Field(min_length=1, max_length=MAX_ITEMS_PER_WRITE, description="Turns, in order.")

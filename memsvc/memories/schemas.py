import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, model_validator

from memsvc.core.settings import get_settings

MAX_ITEMS_PER_WRITE = 1000
# Metadata is matched by jsonb containment and returned with every hit: it is for tags and ids, not documents.
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8


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


def _no_nul(value: str) -> str:
    # Postgres text and jsonb cannot hold U+0000; refuse it here instead of failing in the database.
    if "\x00" in value:
        raise ValueError("text must not contain NUL (U+0000) characters")
    return value


def _json_without_nul(value: Any) -> Any:
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _json_without_nul(item)
    elif isinstance(value, list):
        for item in value:
            _json_without_nul(item)
    return value


def _check_content(value: str) -> str:
    _no_nul(value)
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


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES} bytes")
    if _depth(value) > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata nests deeper than the limit of {MAX_METADATA_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


Content = Annotated[str, AfterValidator(_check_content)]
Text = Annotated[str, AfterValidator(_no_nul)]
ScopeId = Annotated[Text, Field(min_length=1, max_length=256)]
Speaker = Annotated[Text, Field(max_length=256)]
Title = Annotated[Text, Field(max_length=512)]
Step = Annotated[Text, Field(min_length=1, max_length=4096)]
Trigger = Annotated[Text, Field(max_length=4096)]
Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_json_without_nul),
    AfterValidator(_check_metadata),
    Field(description="Free-form JSON object; filterable by equality. At most 16 KiB as JSON and 8 levels of nesting."),
]


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
    speaker: Speaker | None = Field(default=None, description="Dialogue: the speaker's name.")
    title: Title | None = Field(default=None, description="Procedural: short name of the skill.")
    steps: list[Step] | None = Field(default=None, max_length=200, description="Procedural: ordered steps.")
    trigger: Trigger | None = Field(default=None, description="Procedural: when to use it.")
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
    job_id: uuid.UUID = Field(description="Background job embedding the new memories: GET /v1/jobs/{job_id}.")


class MemoryUpdate(_ValidityMixin):
    model_config = ConfigDict(extra="forbid")

    content: Content | None = Field(default=None, description="New text (re-embedded).")
    metadata: Metadata | None = Field(default=None, description="Replaces the whole metadata object.")
    occurred_at: Timestamp | None = Field(default=None, description="New event time.")
    role: Role | None = Field(default=None, description="Dialogue role.")
    speaker: Speaker | None = Field(default=None, description="Dialogue speaker.")
    title: Title | None = Field(default=None, description="Procedural title.")
    steps: list[Step] | None = Field(default=None, max_length=200, description="Procedural steps.")
    trigger: Trigger | None = Field(default=None, description="Procedural trigger.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        for required in ("content", "metadata", "occurred_at"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be null")
        return self


ConsolidationLevel = Literal["segment", "session", "profile", "fact", "procedure"]


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
    entities: list[str] = Field(
        default_factory=list,
        description="Names and other entities found in the speaker, title and content, lowercased: what search's "
        "entity boost and `entities` filter match.",
    )
    embedding_status: str = Field(description="pending | done | failed.")
    embedding_model: str | None = Field(
        default=None, description="Model of the embedding search uses for this memory (None until embedded)."
    )
    job_id: uuid.UUID | None = Field(default=None, description="Job that embeds (or last embedded) this memory.")
    source_ids: list[uuid.UUID] = Field(default_factory=list, description="Evidence this memory came from.")
    consolidation_level: ConsolidationLevel | None = Field(
        default=None,
        description="Set on what consolidation wrote: segment, session or profile (a summary), fact, or procedure "
        "(a how-to that recurred in the history); null on what a client wrote.",
    )


class MemoryList(BaseModel):
    data: list[MemoryPublic] = Field(description="One page of memories.")
    count: int = Field(description="Number of memories in this page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class MemoryVersionPublic(BaseModel):
    version: int = Field(description="Version number, 1 for the original write.")
    change: str = Field(description="created or updated (imported: in histories restored from older exports).")
    changed_at: datetime = Field(description="When this version was written (the current one: its last change).")
    memory: dict[str, Any] = Field(description="The memory's fields at this version.")


class MemoryHistory(BaseModel):
    data: list[MemoryVersionPublic] = Field(description="Every version, oldest first.")
    count: int = Field(description="Number of versions.")


class ForgetScope(BaseModel):
    user_id: str | None = Field(default=None, description="User forgotten (null: any).")
    agent_id: str | None = Field(default=None, description="Agent forgotten (null: any).")
    session_id: str | None = Field(default=None, description="Session forgotten (null: any).")


class ForgetReport(BaseModel):
    """The receipt of a forget: what was deleted, and the audit entry that records it."""

    memories: int = Field(description="Memories deleted (with their embeddings).")
    derived: int = Field(description="Of those, memories deleted because they were derived from the scope.")
    links: int = Field(description="Evidence links deleted.")
    versions: int = Field(description="History versions deleted.")
    recall_projections: int = Field(
        default=0, description="Learned recall projections of scopes within it deleted (consolidation train-recall)."
    )
    jobs: int = Field(description="Consolidation jobs of scopes within it deleted (they named the scope).")
    idempotency_records: int = Field(
        description="Stored answers of idempotent writes deleted (they listed forgotten memory ids)."
    )
    receipt_id: int = Field(description="Id of the audit log entry recording this forget (GET /v1/audit, admin).")
    forgotten_at: datetime = Field(description="When the forget was committed (its transaction's time).")
    scope: ForgetScope = Field(description="The scope filter applied.")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="user, assistant, system or tool.")
    name: Speaker | None = Field(default=None, description="Speaker's name.")
    content: Content = Field(description="What was said.")
    timestamp: Timestamp | None = Field(default=None, description="When it was said; default: now.")
    metadata: Metadata = Field(default_factory=dict)


class MessagesAppend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: ScopeId | None = Field(default=None, description="User the conversation is with.")
    agent_id: ScopeId | None = Field(default=None, description="Agent in the conversation.")
    messages: list[Message] = Field(min_length=1, max_length=MAX_ITEMS_PER_WRITE, description="Turns, in order.")

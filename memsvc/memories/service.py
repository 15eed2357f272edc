"""Memory rules: dedupe, turn order, evidence links, versioning, forgetting. No HTTP and no commits here:
the request (or task) boundary commits."""

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import func
from sqlalchemy.orm import Session

from memsvc.audit import service as audit
from memsvc.audit.service import Actor
from memsvc.consolidation import repository as consolidation_repository
from memsvc.core.errors import Conflict, NotFound, Unprocessable
from memsvc.core.settings import Settings
from memsvc.embeddings import repository as embeddings
from memsvc.idempotency import repository as idempotency
from memsvc.jobs import repository as jobs
from memsvc.memories import repository
from memsvc.memories.repository import MemoryFilter
from memsvc.memories.schemas import (
    ForgetReport,
    ForgetScope,
    MemoryCreate,
    MemoryHistory,
    MemoryList,
    MemoryPublic,
    MemoryType,
    MemoryUpdate,
    MemoryVersionPublic,
    WriteResponse,
    WriteResult,
    WriteStatus,
)
from memsvc.models import Memory
from memsvc.search.entities import memory_entities


class TextEmbedder(Protocol):
    """Turns texts into unit vectors of `dim` dimensions."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


class EmbeddableMemory(Protocol):
    """What `embedding_text` reads: a stored memory, a write request item or an import record."""

    @property
    def content(self) -> str: ...
    @property
    def speaker(self) -> str | None: ...
    @property
    def title(self) -> str | None: ...
    @property
    def trigger(self) -> str | None: ...
    @property
    def steps(self) -> list[str] | None: ...


def embedding_text(memory: EmbeddableMemory) -> str:
    """What gets embedded: the content with the context that makes it findable (a procedure's title,
    trigger and steps; a turn's speaker). The stored content stays exactly as written."""
    parts = [p for p in (memory.title, f"When to use: {memory.trigger}" if memory.trigger else None) if p]
    parts.append(f"{memory.speaker}: {memory.content}" if memory.speaker else memory.content)
    if memory.steps:
        parts.append("Steps: " + "; ".join(memory.steps))
    return "\n".join(parts)


@dataclass(frozen=True)
class IndexingContext:
    """How much context goes into what is embedded for a memory (contextual indexing)."""

    enabled: bool = True
    preceding_turns: int = 1

    @classmethod
    def of(cls, settings: Settings) -> "IndexingContext":
        return cls(settings.contextual_indexing, settings.context_turns)


# A preceding turn adds context; kept short so the memory's own text dominates its embedding.
CONTEXT_TURN_CHARS = 200


class ContextualMemory(EmbeddableMemory, Protocol):
    """What `contextual_text` reads besides the text: when it happened and where it sits in its session."""

    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def turn_index(self) -> int | None: ...


def contextual_text(memory: ContextualMemory, preceding: Sequence[ContextualMemory]) -> str:
    """`embedding_text` with the memory's context: when it happened (dialogue turns, events) and, for a turn,
    the `preceding` turns of its session (oldest first), each cut to CONTEXT_TURN_CHARS."""
    parts = [embedding_text(memory)]
    if memory.type in ("dialogue", "episodic"):
        parts.append(f"({memory.occurred_at.astimezone(UTC):%A %d %B %Y})")
    for turn in preceding:
        said = f"{turn.speaker}: {turn.content}" if turn.speaker else turn.content
        parts.append("Before: " + said[:CONTEXT_TURN_CHARS])
    return "\n".join(parts)


def indexing_texts(
    db: Session, tenant_id: uuid.UUID, memories: Sequence[Memory], context: IndexingContext
) -> list[str]:
    """What to embed for each memory: `embedding_text`, and with contextual indexing also when it happened
    and the turns just before it in its session, so "what did Alice say about Rome in May" can match a turn
    that only says "we loved it there"."""
    if not context.enabled:
        return [embedding_text(m) for m in memories]
    anchors = {
        (m.session_id, m.turn_index)
        for m in memories
        if m.type == "dialogue" and m.session_id is not None and m.turn_index is not None
    }
    window = context.preceding_turns
    turns = repository.turns_around(db, tenant_id, anchors, window) if anchors and window else []
    by_turn = {(t.session_id, t.turn_index): t for t in turns}
    return [contextual_text(m, preceding_turns(m, by_turn, window)) for m in memories]


def preceding_turns(
    memory: ContextualMemory, by_turn: Mapping[tuple[str | None, int | None], ContextualMemory], window: int
) -> list[ContextualMemory]:
    """The up to `window` turns before a dialogue turn, oldest first, from its session's turns by (session,
    turn index)."""
    if memory.type != "dialogue" or memory.turn_index is None:
        return []
    earlier = range(memory.turn_index - window, memory.turn_index)
    found = (by_turn.get((memory.session_id, before)) for before in earlier)
    return [turn for turn in found if turn is not None]


def content_hash(
    *,
    user_id: str | None,
    agent_id: str | None,
    session_id: str | None,
    type: str,
    content: str,
    discriminator: str = "",
) -> str:
    """Identity of a memory for exact-duplicate detection: same scope, same type, same text."""
    payload = json.dumps([user_id, agent_id, session_id, type, content, discriminator], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def dialogue_discriminator(role: str | None, speaker: str | None, occurred_at: datetime | None) -> str:
    """Two identical turns ("ok", "thanks") are different events unless their timestamp says they are the same
    turn sent twice, so an untimed turn never dedupes."""
    when = occurred_at.astimezone(UTC).isoformat() if occurred_at else uuid.uuid4().hex
    return f"{role}|{speaker}|{when}"


class IdentifiableMemory(Protocol):
    """What decides whether two memories are duplicates: a stored memory, a write item or an import record."""

    @property
    def user_id(self) -> str | None: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def type(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def role(self) -> str | None: ...
    @property
    def speaker(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime | None: ...


def memory_hash(memory: IdentifiableMemory, consolidation_level: str | None = None) -> str:
    """The dedupe identity of a memory: scope, type and text, plus role, speaker and time for a dialogue turn, or
    the level of a consolidated one."""
    dialogue = memory.type == MemoryType.dialogue
    discriminator = dialogue_discriminator(memory.role, memory.speaker, memory.occurred_at) if dialogue else ""
    return content_hash(
        user_id=memory.user_id,
        agent_id=memory.agent_id,
        session_id=memory.session_id,
        type=str(memory.type),
        content=memory.content,
        discriminator=consolidation_level or discriminator,
    )


def snapshot(memory: Memory) -> dict[str, Any]:
    """The memory's fields as JSON, as kept in its history: not the job that last embedded it, which says how the
    service got it searchable, not what the version held (and an import gives it another)."""
    return MemoryPublic.model_validate(memory).model_dump(mode="json", exclude={"source_ids", "job_id"})


def to_public(
    db: Session, tenant_id: uuid.UUID, memories: Sequence[Memory], search_model_id: str | None = None
) -> list[MemoryPublic]:
    """The memories as the API shows them. `search_model_id`: the model of the tenant's search space, when the
    caller knows it (else it is read)."""
    # An embedded memory has a vector in the tenant's search space: name that model.
    model = None
    if any(m.embedding_status == "done" for m in memories):
        model = search_model_id or embeddings.search_model_id(db, tenant_id)
    return [
        MemoryPublic.model_validate(m).model_copy(
            update={"embedding_model": model if m.embedding_status == "done" else None}
        )
        for m in memories
    ]


def create_memories(
    db: Session,
    tenant_id: uuid.UUID,
    items: Sequence[MemoryCreate],
    *,
    job_id: uuid.UUID | None = None,
    consolidation_level: str | None = None,
) -> WriteResponse:
    """Store memories as pending under a new embed job (enqueue it after commit), or under `job_id` (a job that
    embeds them itself: consolidation, which also sets their `consolidation_level`); exact duplicates in the
    same scope return the existing id instead of a new row."""
    referenced = {i for item in items for i in (*item.source_ids, *item.supersedes)}
    missing = referenced - repository.existing_ids(db, tenant_id, referenced)
    if missing:
        raise Unprocessable(f"Unknown source or superseded memory id(s): {', '.join(sorted(map(str, missing)))}.")

    # A consolidated memory is a duplicate only of one at its own level: a profile that reads like a fact is both.
    hashes = [memory_hash(i, consolidation_level) for i in items]
    # Dialogue turns must know which of them are new before they are numbered; other writes learn about
    # duplicates from the insert itself (its ON CONFLICT), a round trip less on the hot path.
    numbered = any(item.type is MemoryType.dialogue for item in items)
    known = repository.ids_by_hash(db, tenant_id, hashes) if numbered else {}

    new_positions: list[int] = []
    seen: set[str] = set(known)
    for pos, h in enumerate(hashes):
        if h not in seen:
            seen.add(h)
            new_positions.append(pos)

    turn_indexes = _assign_turns(db, tenant_id, [items[p] for p in new_positions])
    job_id = job_id or jobs.add(db, tenant_id, kind="embed").id
    rows = [
        _row(tenant_id, items[p], hashes[p], job_id, turn_indexes[n], consolidation_level)
        for n, p in enumerate(new_positions)
    ]
    inserted = repository.insert_new(db, rows)
    jobs.queue_for_embedding(db, tenant_id, list(inserted.values()))
    # Not inserted: stored before (or by a concurrent writer since our lookup): a duplicate.
    raced = [h for h in (hashes[p] for p in new_positions) if h not in inserted]
    known.update(repository.ids_by_hash(db, tenant_id, raced))
    links: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    for item, h in ((items[p], hashes[p]) for p in new_positions if hashes[p] in inserted):
        links += [(s, inserted[h], "evidence") for s in item.source_ids]
        links += [(s, inserted[h], "supersedes") for s in item.supersedes]
        repository.close_validity(db, tenant_id, item.supersedes, item.valid_from or func.now())
    repository.add_links(db, tenant_id, links)

    results: list[WriteResult] = []
    reported_new: set[str] = set()
    for h in hashes:
        if h in inserted and h not in reported_new:
            reported_new.add(h)
            results.append(WriteResult(id=inserted[h], status=WriteStatus.created))
        else:
            results.append(WriteResult(id=inserted.get(h) or known[h], status=WriteStatus.duplicate))
    return WriteResponse(results=results, created=len(inserted), duplicates=len(items) - len(inserted), job_id=job_id)


def _assign_turns(db: Session, tenant_id: uuid.UUID, items: Sequence[MemoryCreate]) -> list[int | None]:
    next_index: dict[str, int] = {}
    assigned: list[int | None] = []
    for item in items:
        if item.type is not MemoryType.dialogue or item.session_id is None:
            assigned.append(None)
            continue
        if item.session_id not in next_index:
            repository.lock_session_turns(db, tenant_id, item.session_id)
            next_index[item.session_id] = repository.next_turn_index(db, tenant_id, item.session_id)
        assigned.append(next_index[item.session_id])
        next_index[item.session_id] += 1
    return assigned


def _row(
    tenant_id: uuid.UUID,
    item: MemoryCreate,
    digest: str,
    job_id: uuid.UUID,
    turn_index: int | None,
    consolidation_level: str | None = None,
) -> dict[str, Any]:
    row = {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "user_id": item.user_id,
        "agent_id": item.agent_id,
        "session_id": item.session_id,
        "type": item.type.value,
        "content": item.content,
        "metadata_": item.metadata,
        "valid_from": item.valid_from,
        "valid_to": item.valid_to,
        "content_hash": digest,
        "role": item.role.value if item.role else None,
        "speaker": item.speaker,
        "turn_index": turn_index,
        "title": item.title,
        "steps": item.steps,
        "trigger": item.trigger,
        "entities": memory_entities(item.content, item.speaker, item.title),
        "job_id": job_id,
        "consolidation_level": consolidation_level,
    }
    if item.occurred_at is not None:  # otherwise the column default: the transaction's time, as created_at
        row["occurred_at"] = item.occurred_at
    return row


def get_memory(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> MemoryPublic:
    memory = repository.get(db, tenant_id, memory_id)
    if memory is None:
        raise NotFound(f"No memory {memory_id}.")
    return to_public(db, tenant_id, [memory])[0]


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": seq}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise Unprocessable("The cursor is not one this API returned.") from exc
    if not isinstance(value, int):
        raise Unprocessable("The cursor is not one this API returned.")
    return value


def list_memories(db: Session, where: MemoryFilter, *, cursor: str | None, limit: int, ascending: bool) -> MemoryList:
    after = decode_cursor(cursor) if cursor else None
    rows = repository.page(db, where, after_seq=after, limit=limit + 1, ascending=ascending)
    more = len(rows) > limit
    rows = rows[:limit]
    return MemoryList(
        data=to_public(db, where.tenant_id, rows),
        count=len(rows),
        next_cursor=encode_cursor(rows[-1].seq) if more else None,
    )


_REEMBED_FIELDS = {"content", "speaker", "title", "trigger", "steps"}
_ENTITY_FIELDS = {"content", "speaker", "title"}
_DIALOGUE_IDENTITY = {"content", "role", "speaker", "occurred_at"}


def update_memory(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, patch: MemoryUpdate) -> MemoryPublic:
    """Apply a PATCH as a new version; changed text goes back to pending under a new embed job (its `job_id`),
    to be enqueued after commit."""
    memory = repository.get(db, tenant_id, memory_id, for_update=True)
    if memory is None:
        raise NotFound(f"No memory {memory_id}.")
    replaced = current_version(memory)
    changes = patch.model_dump(include=patch.model_fields_set)
    for field, value in changes.items():
        setattr(memory, "metadata_" if field == "metadata" else field, value)
    if memory.valid_from and memory.valid_to and memory.valid_to < memory.valid_from:
        raise Unprocessable("valid_to must not be before valid_from.")

    dialogue = memory.type == MemoryType.dialogue.value
    if (_DIALOGUE_IDENTITY if dialogue else {"content"}) & changes.keys():
        digest = memory_hash(memory)
        holder = repository.ids_by_hash(db, tenant_id, [digest]).get(digest)
        if holder is not None and holder != memory.id:
            raise Conflict(f"Memory {holder} in the same scope already has this content.")
        memory.content_hash = digest
    if _ENTITY_FIELDS & changes.keys():
        memory.entities = memory_entities(memory.content, memory.speaker, memory.title)
    if _REEMBED_FIELDS & changes.keys():
        # The old vectors describe the old text: drop them; until new ones exist, search finds it lexically.
        embeddings.delete_vectors(db, tenant_id, memory.id)
        memory.job_id = jobs.add(db, tenant_id, kind="embed").id
        jobs.queue_for_embedding(db, tenant_id, [memory.id])
    memory.version += 1
    memory.updated_at = func.now()
    repository.add_versions(
        db,
        tenant_id,
        [
            {
                "memory_id": memory.id,
                "version": replaced.version,
                "change": replaced.change,
                "changed_at": replaced.changed_at,
                "snapshot": replaced.memory,
            }
        ],
    )
    db.flush()
    db.refresh(memory)
    return to_public(db, tenant_id, [memory])[0]


def delete_memory(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, actor: Actor) -> None:
    """Delete one memory (its links, history and embeddings go with it), recorded in the audit log."""
    if not repository.delete_one(db, tenant_id, memory_id):
        raise NotFound(f"No memory {memory_id}.")
    target = {"memory_id": str(memory_id)}
    audit.record(db, actor, "memories.delete", tenant_id=tenant_id, target=target, counts={"memories": 1})


def history(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> MemoryHistory:
    memory = repository.get(db, tenant_id, memory_id)
    if memory is None:
        raise NotFound(f"No memory {memory_id}.")
    versions = histories(db, tenant_id, [memory])[memory.id]
    return MemoryHistory(data=versions, count=len(versions))


def histories(
    db: Session, tenant_id: uuid.UUID, memories: Sequence[Memory]
) -> dict[uuid.UUID, list[MemoryVersionPublic]]:
    """Each memory's versions, oldest first: those it replaced, as kept in its history, then the memory as it is
    (unless a kept one already holds its version: an import's record, or a row written before history kept only
    replaced versions). The current version is never stored twice: it is the memory itself."""
    kept: dict[uuid.UUID, list[MemoryVersionPublic]] = {m.id: [] for m in memories}
    for v in repository.versions_of(db, tenant_id, list(kept)):
        kept[v.memory_id].append(
            MemoryVersionPublic(version=v.version, change=v.change, changed_at=v.changed_at, memory=v.snapshot)
        )
    for memory in memories:
        if not kept[memory.id] or kept[memory.id][-1].version < memory.version:
            kept[memory.id].append(current_version(memory))
    return kept


def current_version(memory: Memory) -> MemoryVersionPublic:
    """The memory as it is, as a version of its history: written when it was created (version 1) or last
    changed."""
    first = memory.version == 1
    return MemoryVersionPublic(
        version=memory.version,
        change="created" if first else "updated",
        changed_at=memory.created_at if first else memory.updated_at,
        memory=snapshot(memory),
    )


def forget(db: Session, where: MemoryFilter, actor: Actor) -> ForgetReport:
    """Delete a scope: its memories, everything derived from them, their links, history and embeddings, the
    consolidation jobs and stored idempotent answers that name it; returns the receipt, whose audit entry
    (scope and counts, never content) commits with the deletion."""
    if where.user_id is None and where.agent_id is None and where.session_id is None:
        raise Unprocessable("Name the scope to forget: user_id, agent_id or session_id.")
    scope = ForgetScope(user_id=where.user_id, agent_id=where.agent_id, session_id=where.session_id)
    learned = consolidation_repository.forget_recall_projections(db, where)
    jobs_deleted = jobs.delete_consolidations_within(
        db, where.tenant_id, where.user_id, where.agent_id, where.session_id
    )
    ids, derived = repository.scope_and_derived_ids(db, where)
    counts = {"memories": 0, "derived": 0, "links": 0, "versions": 0}
    answers = 0
    if ids:
        counts["links"] = repository.count_links_touching(db, where.tenant_id, ids)
        counts["versions"] = repository.count_history_versions(db, where.tenant_id, ids)
        counts["memories"] = repository.delete_many(db, where.tenant_id, ids)
        counts["derived"] = derived
        answers = idempotency.delete_answers_listing(db, where.tenant_id, ids)
    counts.update(recall_projections=learned, jobs=jobs_deleted, idempotency_records=answers)
    entry = audit.record(
        db, actor, "memories.forget", tenant_id=where.tenant_id, target=scope.model_dump(), counts=counts
    )
    return ForgetReport(**counts, receipt_id=entry.id, forgotten_at=entry.at, scope=scope)

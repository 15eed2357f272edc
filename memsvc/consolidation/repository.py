"""All SQL of consolidation: a scope's history, the segments already consolidated and their memory embeddings,
and the current roll-ups. Row-level security scopes every statement to the session's tenant."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from memsvc.memories.repository import MemoryFilter
from memsvc.models import ConsolidatedSegment, Memory, MemoryLink, ScopeRecallProjection

HISTORY_TYPES = ("dialogue", "episodic")  # what happened; facts and procedures are what was learned from it


def history(db: Session, scope: MemoryFilter, after_seq: int, limit: int) -> list[Memory]:
    """The scope's history written by clients (not consolidation), after `after_seq`, in write order."""
    query = scope.apply(select(Memory)).where(
        Memory.consolidation_level.is_(None), Memory.type.in_(HISTORY_TYPES), Memory.seq > after_seq
    )
    return list(db.scalars(query.order_by(Memory.seq).limit(limit)))


def session_tail(db: Session, scope: MemoryFilter, session_id: str | None, before_seq: int, count: int) -> list[Memory]:
    """The last `count` history memories of one session of the scope written before `before_seq`, oldest first."""
    if count == 0:
        return []
    query = scope.apply(select(Memory)).where(
        Memory.consolidation_level.is_(None),
        Memory.type.in_(HISTORY_TYPES),
        Memory.seq < before_seq,
        Memory.session_id.is_(None) if session_id is None else Memory.session_id == session_id,
    )
    return list(reversed(list(db.scalars(query.order_by(Memory.seq.desc()).limit(count)))))


def consolidated_up_to(db: Session, tenant_id: uuid.UUID, scope_key: str) -> int:
    """The newest history memory (seq) of the scope already in a consolidated segment; 0 if none."""
    newest = db.scalar(
        select(func.max(ConsolidatedSegment.last_seq)).where(
            ConsolidatedSegment.tenant_id == tenant_id,
            ConsolidatedSegment.scope_key == scope_key,
            ConsolidatedSegment.level == "segment",
        )
    )
    return int(newest or 0)


def is_consolidated(db: Session, tenant_id: uuid.UUID, scope_key: str, level: str, source_hash: str) -> bool:
    found = db.scalar(
        select(ConsolidatedSegment.memory_id).where(
            ConsolidatedSegment.tenant_id == tenant_id,
            ConsolidatedSegment.scope_key == scope_key,
            ConsolidatedSegment.level == level,
            ConsolidatedSegment.source_hash == source_hash,
        )
    )
    return found is not None


def record(db: Session, row: dict[str, Any]) -> bool:
    """Record a consolidated unit; False if a concurrent run recorded the same one first."""
    done = db.execute(
        insert(ConsolidatedSegment).values(row).on_conflict_do_nothing().returning(ConsolidatedSegment.memory_id)
    )
    return done.first() is not None


def recall_cache(
    db: Session, tenant_id: uuid.UUID, scope_key: str, limit: int
) -> list[tuple[uuid.UUID, str, list[float]]]:
    """The scope's long-term cache: (summary id, summary text, memory embedding) of its newest `limit` segments
    still stored, oldest first."""
    rows: Any = db.execute(
        select(ConsolidatedSegment.memory_id, Memory.content, ConsolidatedSegment.memory_embedding)
        .join(Memory, Memory.id == ConsolidatedSegment.memory_id)
        .where(
            ConsolidatedSegment.tenant_id == tenant_id,
            ConsolidatedSegment.scope_key == scope_key,
            ConsolidatedSegment.level == "segment",
        )
        .order_by(ConsolidatedSegment.last_seq.desc())
        .limit(limit)
    )
    return list(reversed([(memory_id, content, vector) for memory_id, content, vector in rows]))


def current_summaries(
    db: Session, tenant_id: uuid.UUID, scope_key: str, level: str, session_ids: Sequence[str | None] | None = None
) -> list[tuple[uuid.UUID, str, str | None, int, int]]:
    """(memory id, text, session, first seq, last seq) of the scope's current (not closed) consolidated memories
    of `level`, optionally of some sessions only, in history order."""
    query = (
        select(
            ConsolidatedSegment.memory_id,
            Memory.content,
            ConsolidatedSegment.session_id,
            ConsolidatedSegment.first_seq,
            ConsolidatedSegment.last_seq,
        )
        .join(Memory, Memory.id == ConsolidatedSegment.memory_id)
        .where(
            ConsolidatedSegment.tenant_id == tenant_id,
            ConsolidatedSegment.scope_key == scope_key,
            ConsolidatedSegment.level == level,
            Memory.valid_to.is_(None),
        )
    )
    if session_ids is not None:
        named = [s for s in session_ids if s is not None]
        in_sessions: Any = ConsolidatedSegment.session_id.in_(named)
        if None in session_ids:
            in_sessions = in_sessions | ConsolidatedSegment.session_id.is_(None)
        query = query.where(in_sessions)
    rows: Any = db.execute(query.order_by(ConsolidatedSegment.first_seq, ConsolidatedSegment.last_seq))
    return [tuple(row) for row in rows]


def close(db: Session, tenant_id: uuid.UUID, memory_ids: Sequence[uuid.UUID]) -> None:
    """Close superseded roll-ups (valid_to = now): kept in history, no longer current or searched."""
    if memory_ids:
        db.execute(
            update(Memory)
            .where(Memory.tenant_id == tenant_id, Memory.id.in_(list(memory_ids)), Memory.valid_to.is_(None))
            .values(valid_to=func.now(), updated_at=func.now())
        )


def current_facts(db: Session, scope: MemoryFilter, limit: int) -> list[tuple[uuid.UUID, str, datetime]]:
    """(id, text, time) of the scope's newest `limit` facts still current (not superseded)."""
    columns: Any = select(Memory.id, Memory.content, Memory.occurred_at)
    query = scope.apply(columns).where(Memory.consolidation_level == "fact", Memory.valid_to.is_(None))
    rows: Any = db.execute(query.order_by(Memory.seq.desc()).limit(limit))
    return [(memory_id, content, occurred_at) for memory_id, content, occurred_at in rows]


def due_users(db: Session, min_words: int, idle: timedelta) -> list[tuple[uuid.UUID, str]]:
    """(tenant, user) pairs, across tenants, whose unconsolidated history is due (migration 0009)."""
    rows: Any = db.execute(
        text("SELECT tenant_id, user_id FROM memsvc_consolidation_due(:words, :idle)"),
        {"words": min_words, "idle": idle},
    )
    return [(tenant_id, user_id) for tenant_id, user_id in rows]


def recorded_at_level(
    db: Session, tenant_id: uuid.UUID, scope_key: str, level: str
) -> list[tuple[uuid.UUID, str | None, list[float]]]:
    """(memory, session, embedding) of every unit the scope has recorded at `level` (segment summaries, how-to
    episodes), in history order."""
    rows: Any = db.execute(
        select(ConsolidatedSegment.memory_id, ConsolidatedSegment.session_id, ConsolidatedSegment.memory_embedding)
        .where(
            ConsolidatedSegment.tenant_id == tenant_id,
            ConsolidatedSegment.scope_key == scope_key,
            ConsolidatedSegment.level == level,
        )
        .order_by(ConsolidatedSegment.first_seq)
    )
    return [(memory_id, session_id, vector) for memory_id, session_id, vector in rows]


def recall_projection(db: Session, tenant_id: uuid.UUID, scope_key: str) -> ScopeRecallProjection | None:
    return db.get(ScopeRecallProjection, (tenant_id, scope_key))


def forget_recall_projections(db: Session, scope: MemoryFilter) -> int:
    """Delete the learned projections of every scope within `scope` (their scope keys name its user, agent and
    session): they were learned from its history. Returns how many."""
    key: Any = func.cast(ScopeRecallProjection.scope_key, JSONB)
    named = [(0, scope.user_id), (1, scope.agent_id), (2, scope.session_id)]
    conditions = [key.op("->>")(index) == value for index, value in named if value is not None]
    deleted = db.execute(
        delete(ScopeRecallProjection)
        .where(ScopeRecallProjection.tenant_id == scope.tenant_id, *conditions)
        .returning(ScopeRecallProjection.scope_key)
    )
    return len(deleted.all())


def save_recall_projection(db: Session, row: dict[str, Any]) -> None:
    """Store a scope's projection, replacing the one it had."""
    changed = {key: value for key, value in row.items() if key not in ("tenant_id", "scope_key")}
    db.execute(
        insert(ScopeRecallProjection)
        .values(row)
        .on_conflict_do_update(
            index_elements=[ScopeRecallProjection.tenant_id, ScopeRecallProjection.scope_key],
            set_={**changed, "trained_at": func.now()},
        )
    )


def current_procedure_citing(db: Session, scope: MemoryFilter, source_ids: Sequence[uuid.UUID]) -> Memory | None:
    """The scope's newest current learned procedure citing any of these memories as evidence."""
    cited = select(MemoryLink.derived_id).where(
        MemoryLink.tenant_id == scope.tenant_id,
        MemoryLink.source_id.in_(list(source_ids)),
        MemoryLink.relation == "evidence",
    )
    query: Any = scope.apply(select(Memory)).where(
        Memory.consolidation_level == "procedure", Memory.valid_to.is_(None), Memory.id.in_(cited)
    )
    return db.scalars(query.order_by(Memory.seq.desc()).limit(1)).first()

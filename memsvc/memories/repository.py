"""All SQL touching memories, their links and their history. Row-level security scopes every statement to
the session's tenant; the explicit tenant filters below are the application's own first line."""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import AliasedClass

from memsvc.core.db import Statements, id_in
from memsvc.models import Memory, MemoryLink, MemoryVersion

RESTATING_LEVELS = ("segment", "session", "profile", "fact")  # consolidation levels that restate their sources
_statements = Statements()  # the statements searches read memories with (see Statements)


@dataclass(frozen=True)
class MemoryFilter:
    """Which memories of a tenant a list, export, search or forget applies to."""

    tenant_id: uuid.UUID
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    types: Sequence[str] = ()
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None
    metadata: dict[str, Any] | None = None
    valid_at: datetime | None = None
    entities: Sequence[str] = ()  # names all of these (normalized entity forms)
    mentions_any: Sequence[str] = ()  # names at least one of these
    # Only consolidation's summaries and facts (True), which restate the memories they cite; only the rest
    # (False: what clients wrote, and the procedures consolidation learned); or both (None).
    restatements: bool | None = None

    def parameters(self) -> dict[str, Any]:
        """The values `apply` binds, by parameter name: a statement built once for filters of one `shape` runs
        with each filter's own (memsvc.core.db.Statements)."""
        bound = {
            "where_tenant_id": self.tenant_id,
            "where_user_id": self.user_id,
            "where_agent_id": self.agent_id,
            "where_session_id": self.session_id,
            "where_types": list(self.types) or None,
            "where_occurred_after": self.occurred_after,
            "where_occurred_before": self.occurred_before,
            "where_metadata": self.metadata or None,
            "where_valid_at": self.valid_at,
            "where_entities": list(self.entities) or None,
            "where_mentions_any": list(self.mentions_any) or None,
        }
        return {name: value for name, value in bound.items() if value is not None}

    def shape(self) -> tuple[Any, ...]:
        """What the statements `apply` narrows depend on: which filters are set, not their values."""
        return (*self.parameters(), self.restatements)

    def apply(self, query: Select[Any], memory: "type[Memory] | AliasedClass[Memory]" = Memory) -> Select[Any]:
        """`query` narrowed to these memories, as rows of `memory` (the table, or rows of it read otherwise). Every
        value is a parameter named as in `parameters`, so one statement is narrowed by one filter: a second would
        share the first one's parameters."""
        bound = self.parameters()

        def value(name: str, type_: Any = None) -> Any:
            return bindparam(name, bound[name], type_=type_)

        query = query.where(memory.tenant_id == value("where_tenant_id"))
        if "where_user_id" in bound:
            query = query.where(memory.user_id == value("where_user_id"))
        if "where_agent_id" in bound:
            query = query.where(memory.agent_id == value("where_agent_id"))
        if "where_session_id" in bound:
            query = query.where(memory.session_id == value("where_session_id"))
        if "where_types" in bound:
            query = query.where(memory.type == any_(value("where_types", ARRAY(String))))
        if "where_occurred_after" in bound:
            query = query.where(memory.occurred_at >= value("where_occurred_after"))
        if "where_occurred_before" in bound:
            query = query.where(memory.occurred_at < value("where_occurred_before"))
        if "where_metadata" in bound:
            query = query.where(memory.metadata_.contains(value("where_metadata", JSONB)))
        if "where_valid_at" in bound:
            valid_at = value("where_valid_at")
            query = query.where(
                (memory.valid_from.is_(None) | (memory.valid_from <= valid_at))
                & (memory.valid_to.is_(None) | (memory.valid_to > valid_at))
            )
        if "where_entities" in bound:
            query = query.where(memory.entities.contains(value("where_entities", ARRAY(Text))))
        if "where_mentions_any" in bound:
            query = query.where(memory.entities.overlap(value("where_mentions_any", ARRAY(Text))))
        if self.restatements is not None:
            restating = restating_level(memory.consolidation_level)
            query = query.where(restating if self.restatements else memory.consolidation_level.is_(None) | ~restating)
        return query


def restating_level(level: Any) -> ColumnElement[bool]:
    """`level` is one of RESTATING_LEVELS, written into the statement (constants, not parameters)."""
    return level.in_([literal_column(f"'{name}'") for name in RESTATING_LEVELS])


def get(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, *, for_update: bool = False) -> Memory | None:
    query = select(Memory).where(Memory.tenant_id == tenant_id, Memory.id == memory_id)
    if for_update:
        query = query.with_for_update()
    return db.scalar(query)


def get_many(db: Session, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Memory]:
    if not ids:
        return []
    return list(
        db.scalars(select(Memory).where(Memory.tenant_id == tenant_id, id_in(Memory.id, ids)).order_by(Memory.seq))
    )


def existing_ids(db: Session, tenant_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    wanted = list(set(ids))
    if not wanted:
        return set()
    return set(db.scalars(select(Memory.id).where(Memory.tenant_id == tenant_id, Memory.id.in_(wanted))))


def ids_by_hash(db: Session, tenant_id: uuid.UUID, hashes: Iterable[str]) -> dict[str, uuid.UUID]:
    wanted = list(set(hashes))
    if not wanted:
        return {}
    rows = db.execute(
        select(Memory.content_hash, Memory.id).where(Memory.tenant_id == tenant_id, Memory.content_hash.in_(wanted))
    )
    return {h: i for h, i in rows}


def lock_session_turns(db: Session, tenant_id: uuid.UUID, session_id: str) -> None:
    """Serialise turn numbering of one session across concurrent writers (released at commit)."""
    db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"turns:{tenant_id}:{session_id}"})


def next_turn_index(db: Session, tenant_id: uuid.UUID, session_id: str) -> int:
    last = db.scalar(
        select(func.max(Memory.turn_index)).where(Memory.tenant_id == tenant_id, Memory.session_id == session_id)
    )
    return 0 if last is None else last + 1


def turns_around(db: Session, tenant_id: uuid.UUID, anchors: Iterable[tuple[str, int]], window: int) -> list[Memory]:
    """Dialogue turns within `window` of each (session, turn index), in session and turn order."""
    near = [
        (Memory.session_id == session_id) & Memory.turn_index.between(turn - window, turn + window)
        for session_id, turn in anchors
    ]
    if not near:
        return []
    return list(
        db.scalars(
            select(Memory)
            .where(Memory.tenant_id == tenant_id, Memory.type == "dialogue", or_(*near))
            .order_by(Memory.session_id, Memory.turn_index)
        )
    )


def insert_new(db: Session, rows: list[dict[str, Any]]) -> dict[str, uuid.UUID]:
    """Insert rows, skipping any whose content hash the tenant already has; returns the inserted memories' ids by
    content hash."""
    if not rows:
        return {}
    # executemany form: one cached statement, batched into multi-row INSERTs by SQLAlchemy's insertmanyvalues,
    # rather than a new 100-row statement compiled for every write.
    inserted = db.execute(
        insert(Memory)
        .on_conflict_do_nothing(constraint="uq_memories_tenant_content_hash")
        .returning(Memory.content_hash, Memory.id),
        rows,
    )
    return {content_hash: memory_id for content_hash, memory_id in inserted}


def insert_preserving_ids(db: Session, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert rows with their own ids (import); rows whose id or content is already stored are skipped."""
    if not rows:
        return set()
    return set(db.scalars(insert(Memory).on_conflict_do_nothing().returning(Memory.id), rows))


def add_links(db: Session, tenant_id: uuid.UUID, pairs: Iterable[tuple[uuid.UUID, uuid.UUID, str]]) -> int:
    rows = [{"tenant_id": tenant_id, "source_id": s, "derived_id": d, "relation": r} for s, d, r in pairs]
    if not rows:
        return 0
    result = db.execute(insert(MemoryLink).values(rows).on_conflict_do_nothing().returning(MemoryLink.source_id))
    return len(result.all())


def source_ids_of(
    db: Session, tenant_id: uuid.UUID, derived_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    if not derived_ids:
        return found
    parameters = {"tenant_id": tenant_id, "ids": list(derived_ids)}

    def build() -> Select[uuid.UUID, uuid.UUID]:
        return (
            select(MemoryLink.derived_id, MemoryLink.source_id)
            .where(
                MemoryLink.tenant_id == bindparam("tenant_id"),
                id_in(MemoryLink.derived_id, derived_ids, "ids"),
                MemoryLink.relation == literal_column("'evidence'"),
            )
            .order_by(MemoryLink.derived_id, MemoryLink.source_id)
        )

    for derived, source in _statements.execute(db, "source_ids_of", build, parameters):
        found.setdefault(derived, []).append(source)
    return found


def links_of(
    db: Session, tenant_id: uuid.UUID, derived_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    if not derived_ids:
        return []
    rows = db.execute(
        select(MemoryLink.source_id, MemoryLink.derived_id, MemoryLink.relation)
        .where(MemoryLink.tenant_id == tenant_id, MemoryLink.derived_id.in_(list(derived_ids)))
        .order_by(MemoryLink.derived_id, MemoryLink.source_id)
    )
    return list(rows)


def close_validity(
    db: Session, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], at: datetime | ColumnElement[datetime]
) -> None:
    if ids:
        db.execute(
            update(Memory)
            .where(Memory.tenant_id == tenant_id, Memory.id.in_(list(ids)), Memory.valid_to.is_(None))
            .values(valid_to=at, updated_at=func.now())
        )


def add_versions(db: Session, tenant_id: uuid.UUID, versions: Iterable[dict[str, Any]]) -> None:
    rows = [{"tenant_id": tenant_id, **v} for v in versions]
    if rows:
        db.execute(insert(MemoryVersion).on_conflict_do_nothing(), rows)


def versions_of(db: Session, tenant_id: uuid.UUID, memory_ids: Sequence[uuid.UUID]) -> list[MemoryVersion]:
    if not memory_ids:
        return []
    return list(
        db.scalars(
            select(MemoryVersion)
            .where(MemoryVersion.tenant_id == tenant_id, MemoryVersion.memory_id.in_(list(memory_ids)))
            .order_by(MemoryVersion.memory_id, MemoryVersion.version)
        )
    )


def page(db: Session, where: MemoryFilter, *, after_seq: int | None, limit: int, ascending: bool) -> list[Memory]:
    query = where.apply(select(Memory))
    if after_seq is not None:
        query = query.where(Memory.seq > after_seq if ascending else Memory.seq < after_seq)
    query = query.order_by(Memory.seq.asc() if ascending else Memory.seq.desc()).limit(limit)
    return list(db.scalars(query))


def delete_one(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> bool:
    result = db.execute(delete(Memory).where(Memory.tenant_id == tenant_id, Memory.id == memory_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def scope_and_derived_ids(db: Session, where: MemoryFilter) -> tuple[list[uuid.UUID], int]:
    """Ids of the memories in scope plus every memory derived from them (transitively); and how many of
    them were reached only through derivation."""
    in_scope = list(db.scalars(where.apply(select(Memory.id))))
    if not in_scope:
        return [], 0
    derived = db.execute(
        text("""
            WITH RECURSIVE reach(id) AS (
                SELECT unnest(CAST(:ids AS uuid[]))
              UNION
                SELECT l.derived_id FROM memory_links l JOIN reach r ON l.source_id = r.id
                WHERE l.tenant_id = :tenant_id
            )
            SELECT id FROM reach
        """),
        {"ids": in_scope, "tenant_id": where.tenant_id},
    ).scalars()
    everything = list(set(derived))
    return everything, len(everything) - len(in_scope)


def count_links_touching(db: Session, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(MemoryLink)
            .where(
                MemoryLink.tenant_id == tenant_id,
                MemoryLink.source_id.in_(list(ids)) | MemoryLink.derived_id.in_(list(ids)),
            )
        )
        or 0
    )


def count_history_versions(db: Session, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> int:
    """How many versions the histories of these memories hold: versions 1 to its current one, each."""
    return int(
        db.scalar(
            select(func.coalesce(func.sum(Memory.version), 0)).where(
                Memory.tenant_id == tenant_id, id_in(Memory.id, list(ids))
            )
        )
        or 0
    )


def delete_many(db: Session, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> int:
    """Delete memories; their links and history go with them (ON DELETE CASCADE)."""
    result = db.execute(delete(Memory).where(Memory.tenant_id == tenant_id, Memory.id.in_(list(ids))))
    return int(result.rowcount)  # type: ignore[attr-defined]

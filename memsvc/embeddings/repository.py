"""SQL for embedding spaces, stored vectors and each tenant's search and re-embedding spaces."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, Uuid, bindparam, delete, exists, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from memsvc.core.db import Statements, id_in
from memsvc.embeddings.encoding import Column
from memsvc.embeddings.profiles import StorageProfile
from memsvc.memories.repository import restating_level
from memsvc.models import EmbeddingFit, EmbeddingSpace, Memory, MemoryEmbedding, PendingEmbedding, Tenant


def register_space(db: Session, model_id: str, model_path: str | None, dim: int, profile: StorageProfile) -> int:
    """The space of this model configuration and storage, created with its HNSW index if new (a definer
    function: only the schema owner may create indexes)."""
    space_id = db.scalar(
        text(
            "SELECT memsvc_embedding_space(CAST(:model_id AS text), CAST(:model_path AS text), CAST(:dim AS integer),"
            " CAST(:storage AS text), CAST(:index_kind AS text), CAST(:index_dim AS integer))"
        ),
        {
            "model_id": model_id,
            "model_path": model_path,
            "dim": dim,
            "storage": profile.storage,
            "index_kind": profile.index_kind,
            "index_dim": profile.index_dim(dim),
        },
    )
    return int(space_id)


def get_space(db: Session, space_id: int) -> EmbeddingSpace | None:
    return db.get(EmbeddingSpace, space_id)


def newest_space_id(db: Session, storages: Sequence[str]) -> int | None:
    """The most recently registered space with one of these storages."""
    return db.scalar(select(func.max(EmbeddingSpace.id)).where(EmbeddingSpace.storage.in_(list(storages))))


def tenant_spaces(
    db: Session, tenant_id: uuid.UUID, *, lock: bool = False, exclusive: bool = False
) -> tuple[int | None, int | None]:
    """(search space, re-embedding target) of the tenant. With `lock`, the tenant row is held in share mode until
    commit, so the spaces cannot switch while vectors for them are being written; `exclusive` waits for those
    writers instead, and keeps new ones out until commit."""
    query = select(Tenant.embedding_space_id, Tenant.next_embedding_space_id).where(Tenant.id == tenant_id)
    if lock:
        query = query.with_for_update(read=not exclusive, key_share=exclusive)
    row = db.execute(query).one()
    return row[0], row[1]


def adopt_space_if_unset(db: Session, tenant_id: uuid.UUID, space_id: int) -> None:
    db.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.embedding_space_id.is_(None))
        .values(embedding_space_id=space_id)
    )


def chosen_profiles(db: Session) -> list[str | None]:
    """The storage profiles tenants chose (None: the service default)."""
    return list(db.scalars(select(Tenant.storage_profile).distinct()))


def tenants_not_on(db: Session, space_id: int, storage_profile: str | None) -> list[uuid.UUID]:
    """Tenants with this chosen profile whose search space or re-embedding target differs from `space_id`."""
    return list(
        db.scalars(
            select(Tenant.id).where(
                Tenant.storage_profile.is_(None)
                if storage_profile is None
                else Tenant.storage_profile == storage_profile,
                Tenant.embedding_space_id.is_distinct_from(space_id)
                | (
                    Tenant.next_embedding_space_id.is_not(None)
                    & Tenant.next_embedding_space_id.is_distinct_from(space_id)
                ),
            )
        )
    )


def set_target(db: Session, tenant_id: uuid.UUID, space_id: int) -> Literal["adopted", "reembed", "cancelled"] | None:
    """Point the tenant at `space_id`: a tenant without vectors adopts it for search at once ("adopted"), one
    searching another space starts moving to it ("reembed"), one already searching it drops any other target
    ("cancelled"). None when there was nothing to change. Conditional updates: concurrent callers agree."""
    tenant = Tenant.id == tenant_id
    if db.execute(
        update(Tenant).where(tenant, Tenant.embedding_space_id.is_(None)).values(embedding_space_id=space_id)
    ).rowcount:  # type: ignore[attr-defined]
        return "adopted"
    if db.execute(
        update(Tenant)
        .where(tenant, Tenant.embedding_space_id != space_id, Tenant.next_embedding_space_id.is_distinct_from(space_id))
        .values(next_embedding_space_id=space_id)
    ).rowcount:  # type: ignore[attr-defined]
        return "reembed"
    if db.execute(
        update(Tenant)
        .where(tenant, Tenant.embedding_space_id == space_id, Tenant.next_embedding_space_id.is_not(None))
        .values(next_embedding_space_id=None)
    ).rowcount:  # type: ignore[attr-defined]
        return "cancelled"
    return None


def drop_target(db: Session, tenant_id: uuid.UUID, space_id: int) -> None:
    db.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.next_embedding_space_id == space_id)
        .values(next_embedding_space_id=None)
    )


def set_chosen_profile(db: Session, tenant_id: uuid.UUID, storage_profile: str | None) -> None:
    db.execute(update(Tenant).where(Tenant.id == tenant_id).values(storage_profile=storage_profile))


def chosen_profile(db: Session, tenant_id: uuid.UUID) -> str | None:
    return db.scalar(select(Tenant.storage_profile).where(Tenant.id == tenant_id))


@dataclass(frozen=True)
class SearchState:
    """What every search of a tenant reads first, in one round trip."""

    space_id: int | None  # the space searched
    storage_profile: str | None  # the profile the tenant chose
    defaults: dict[str, Any] | None  # its search defaults
    restates: bool  # whether consolidation has written summaries or facts (which restate memories) for it yet


def search_state(db: Session, tenant_id: uuid.UUID) -> SearchState:
    parameters = {"tenant_id": tenant_id}
    row = _statements.execute(db, "search_state", _search_state_statement, parameters).one()
    return SearchState(row[0], row[1], row[2], bool(row[3]))


def _search_state_statement() -> Select[Any]:
    tenant_id = bindparam("tenant_id", type_=Uuid)
    restating = select(Memory.id).where(Memory.tenant_id == tenant_id, restating_level(Memory.consolidation_level))
    return select(
        Tenant.embedding_space_id,
        Tenant.storage_profile,
        Tenant.search_defaults,
        restating.limit(literal_column("1")).exists(),
    ).where(Tenant.id == tenant_id)


_statements = Statements()


def store_vectors(
    db: Session, tenant_id: uuid.UUID, space_id: int, memory_ids: Sequence[uuid.UUID], column: Column, values: list[Any]
) -> None:
    """Upsert keyed by (memory, space): a redelivered batch overwrites its rows, it never adds any. `values` are
    already encoded for the space's `column`."""
    rows = [
        {"memory_id": memory_id, "space_id": space_id, "tenant_id": tenant_id, column: value}
        for memory_id, value in zip(memory_ids, values, strict=True)
    ]
    statement = insert(MemoryEmbedding)
    db.execute(
        statement.on_conflict_do_update(
            index_elements=[MemoryEmbedding.memory_id, MemoryEmbedding.space_id],
            set_={column: getattr(statement.excluded, column), "created_at": func.now()},
        ),
        rows,
    )


def delete_vectors(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> None:
    db.execute(
        delete(MemoryEmbedding).where(MemoryEmbedding.tenant_id == tenant_id, MemoryEmbedding.memory_id == memory_id)
    )


def delete_space_vectors(db: Session, tenant_id: uuid.UUID, space_id: int) -> int:
    result = db.execute(
        delete(MemoryEmbedding).where(MemoryEmbedding.tenant_id == tenant_id, MemoryEmbedding.space_id == space_id)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_other_spaces(db: Session, tenant_id: uuid.UUID, keep_space_id: int) -> int:
    result = db.execute(
        delete(MemoryEmbedding).where(MemoryEmbedding.tenant_id == tenant_id, MemoryEmbedding.space_id != keep_space_id)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _embedded() -> Any:
    """The memory is done: no longer queued for embedding (pending, or failed)."""
    return ~exists().where(PendingEmbedding.memory_id == Memory.id)


def _lacks_vector_in(space_id: int) -> Any:
    return ~exists().where(MemoryEmbedding.memory_id == Memory.id, MemoryEmbedding.space_id == space_id)


def claim_unembedded(db: Session, tenant_id: uuid.UUID, space_id: int, after_seq: int, limit: int) -> list[Memory]:
    """Lock up to `limit` embedded memories (in insertion order after `after_seq`) without a vector in `space_id`.
    Pending ones are left to their embed job, which writes every live space; rows others hold are skipped."""
    return list(
        db.scalars(
            select(Memory)
            .where(
                Memory.tenant_id == tenant_id,
                _embedded(),
                Memory.seq > after_seq,
                _lacks_vector_in(space_id),
            )
            .order_by(Memory.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def switch_if_complete(db: Session, tenant_id: uuid.UUID, space_id: int) -> bool:
    """Make `space_id` the tenant's search space if it is still the target and every embedded memory has a vector
    there. The tenant row is locked first, so no batch for the old spaces can commit in between."""
    target = db.scalar(
        select(Tenant.next_embedding_space_id).where(Tenant.id == tenant_id).with_for_update(key_share=True)
    )
    if target != space_id:
        return False
    missing = db.scalar(
        select(Memory.id).where(Memory.tenant_id == tenant_id, _embedded(), _lacks_vector_in(space_id)).limit(1)
    )
    if missing is not None:
        return False
    db.execute(
        update(Tenant).where(Tenant.id == tenant_id).values(embedding_space_id=space_id, next_embedding_space_id=None)
    )
    return True


def count_vectors(db: Session, tenant_id: uuid.UUID, space_id: int) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(MemoryEmbedding)
            .where(MemoryEmbedding.tenant_id == tenant_id, MemoryEmbedding.space_id == space_id)
        )
        or 0
    )


def count_embedded_memories(db: Session, tenant_id: uuid.UUID) -> int:
    return int(db.scalar(select(func.count()).where(Memory.tenant_id == tenant_id, _embedded())) or 0)


def search_model_id(db: Session, tenant_id: uuid.UUID) -> str | None:
    """The model behind the tenant's searches (None before its first embedding)."""
    return db.scalar(
        select(EmbeddingSpace.model_id)
        .join(Tenant, Tenant.embedding_space_id == EmbeddingSpace.id)
        .where(Tenant.id == tenant_id)
    )


def stored_values(
    db: Session, tenant_id: uuid.UUID, space_id: int, column: Column, memory_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Any]:
    """The stored (encoded) values of these memories in a space, by memory id."""
    rows: Any = db.execute(
        select(MemoryEmbedding.memory_id, getattr(MemoryEmbedding, column)).where(
            MemoryEmbedding.tenant_id == tenant_id,
            MemoryEmbedding.space_id == space_id,
            id_in(MemoryEmbedding.memory_id, memory_ids),
        )
    )
    return dict(rows.all())


def latest_fit_version(db: Session, tenant_id: uuid.UUID, space_id: int) -> int | None:
    return db.scalar(
        select(func.max(EmbeddingFit.version)).where(
            EmbeddingFit.tenant_id == tenant_id, EmbeddingFit.space_id == space_id
        )
    )


def get_fit(db: Session, tenant_id: uuid.UUID, space_id: int, version: int) -> EmbeddingFit | None:
    return db.get(EmbeddingFit, (tenant_id, space_id, version))


def add_fit(db: Session, fit: EmbeddingFit) -> None:
    db.add(fit)
    db.flush()


def lock_fitting(db: Session, tenant_id: uuid.UUID, space_id: int) -> None:
    """Serialise fitting per (tenant, space) until commit, so concurrent jobs agree on one fit."""
    db.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(CAST(:key AS text)))"), {"key": f"fit:{tenant_id}:{space_id}"}
    )


def sample_memories(db: Session, tenant_id: uuid.UUID, limit: int) -> list[Memory]:
    """The tenant's most recent embedded memories: a fitting sample that follows what it stores now."""
    return list(
        db.scalars(
            select(Memory).where(Memory.tenant_id == tenant_id, _embedded()).order_by(Memory.seq.desc()).limit(limit)
        )
    )

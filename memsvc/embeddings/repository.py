"""SQL for embedding spaces, stored vectors and each tenant's search and re-embedding spaces."""

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from memsvc.models import EmbeddingSpace, Memory, MemoryEmbedding, Tenant


def register_space(db: Session, model_id: str, model_path: str | None, dim: int) -> int:
    """The space of this model configuration, created with its HNSW index if new (a definer function: only the
    schema owner may create indexes)."""
    space_id = db.scalar(
        text(
            "SELECT memsvc_embedding_space(CAST(:model_id AS text), CAST(:model_path AS text), CAST(:dim AS integer))"
        ),
        {"model_id": model_id, "model_path": model_path, "dim": dim},
    )
    return int(space_id)


def get_space(db: Session, space_id: int) -> EmbeddingSpace | None:
    return db.get(EmbeddingSpace, space_id)


def newest_space_id(db: Session) -> int | None:
    return db.scalar(select(func.max(EmbeddingSpace.id)))


def tenant_spaces(db: Session, tenant_id: uuid.UUID, *, lock: bool = False) -> tuple[int | None, int | None]:
    """(search space, re-embedding target) of the tenant. With `lock`, the tenant row is held in share mode until
    commit, so the spaces cannot switch while vectors for them are being written."""
    query = select(Tenant.embedding_space_id, Tenant.next_embedding_space_id).where(Tenant.id == tenant_id)
    if lock:
        query = query.with_for_update(read=True)
    row = db.execute(query).one()
    return row[0], row[1]


def adopt_space_if_unset(db: Session, tenant_id: uuid.UUID, space_id: int) -> None:
    db.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.embedding_space_id.is_(None))
        .values(embedding_space_id=space_id)
    )


def tenants_not_on(db: Session, space_id: int) -> list[uuid.UUID]:
    """Tenants whose search space or re-embedding target differs from `space_id`."""
    return list(
        db.scalars(
            select(Tenant.id).where(
                Tenant.embedding_space_id.is_distinct_from(space_id)
                | (
                    Tenant.next_embedding_space_id.is_not(None)
                    & Tenant.next_embedding_space_id.is_distinct_from(space_id)
                )
            )
        )
    )


def set_target(db: Session, tenant_id: uuid.UUID, space_id: int) -> str | None:
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


def store_vectors(
    db: Session, tenant_id: uuid.UUID, space_id: int, memory_ids: Sequence[uuid.UUID], vectors: np.ndarray
) -> None:
    """Upsert keyed by (memory, space): a redelivered batch overwrites its rows, it never adds any."""
    rows = [
        {"memory_id": memory_id, "space_id": space_id, "tenant_id": tenant_id, "embedding": vector}
        for memory_id, vector in zip(memory_ids, vectors, strict=True)
    ]
    statement = insert(MemoryEmbedding)
    db.execute(
        statement.on_conflict_do_update(
            index_elements=[MemoryEmbedding.memory_id, MemoryEmbedding.space_id],
            set_={"embedding": statement.excluded.embedding, "created_at": func.now()},
        ),
        rows,
    )


def delete_vectors(db: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID) -> None:
    db.execute(
        delete(MemoryEmbedding).where(MemoryEmbedding.tenant_id == tenant_id, MemoryEmbedding.memory_id == memory_id)
    )


def delete_other_spaces(db: Session, tenant_id: uuid.UUID, keep_space_id: int) -> int:
    result = db.execute(
        delete(MemoryEmbedding).where(MemoryEmbedding.tenant_id == tenant_id, MemoryEmbedding.space_id != keep_space_id)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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
                Memory.embedding_status == "done",
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
        select(Memory.id)
        .where(Memory.tenant_id == tenant_id, Memory.embedding_status == "done", _lacks_vector_in(space_id))
        .limit(1)
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
    return int(
        db.scalar(select(func.count()).where(Memory.tenant_id == tenant_id, Memory.embedding_status == "done")) or 0
    )


def search_model_id(db: Session, tenant_id: uuid.UUID) -> str | None:
    """The model behind the tenant's searches (None before its first embedding)."""
    return db.scalar(
        select(EmbeddingSpace.model_id)
        .join(Tenant, Tenant.embedding_space_id == EmbeddingSpace.id)
        .where(Tenant.id == tenant_id)
    )


def vectors_of(
    db: Session, tenant_id: uuid.UUID, space_id: int, memory_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[float]]:
    rows: Any = db.execute(
        select(MemoryEmbedding.memory_id, MemoryEmbedding.embedding).where(
            MemoryEmbedding.tenant_id == tenant_id,
            MemoryEmbedding.space_id == space_id,
            MemoryEmbedding.memory_id.in_(list(memory_ids)),
        )
    )
    return {memory_id: [float(v) for v in _values(vector)] for memory_id, vector in rows}


def _values(vector: Any) -> Any:
    return vector.to_list() if hasattr(vector, "to_list") else vector

"""Dense vector search in SQL: pgvector HNSW, one index per embedding space, over float vectors (cosine) or the
sign bits of byte codes (Hamming)."""

import uuid
from typing import Any

import numpy as np
from pgvector.sqlalchemy import BIT, HALFVEC, VECTOR
from sqlalchemy import cast, func, literal_column, select, text
from sqlalchemy.orm import Session

from memsvc.embeddings.encoding import SpaceEncoding
from memsvc.memories.repository import MemoryFilter
from memsvc.models import EmbeddingSpace, Memory, MemoryEmbedding

MIN_EF_SEARCH = 200
MAX_EF_SEARCH = 1000


def nearest(
    db: Session, where: MemoryFilter, space: EmbeddingSpace, encoding: SpaceEncoding, query: np.ndarray, limit: int
) -> list[tuple[uuid.UUID, Any]]:
    """The `limit` memories (among those `where` selects) nearest to `query` (in the space's coordinates) by the
    space's HNSW index, best first, as (id, index distance) for float storages and (id, stored code) for byte
    codes, whose candidates the caller rescores."""
    # Iterative index scans keep reading the HNSW graph until enough rows pass the tenant/scope filters
    # (pgvector >= 0.8); relaxed order is restored by the outer ORDER BY (or by rescoring).
    db.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    # pgvector's default (40) found 91% of the true top 10 at 100k memories (bench/results/quantization-ef.md);
    # a wider search costs a few ms against the ~20 ms of embedding the query. ef_search tops out at 1000; past it
    # the iterative scan keeps going until `limit` rows are found.
    ef_search = min(MAX_EF_SEARCH, max(MIN_EF_SEARCH, 2 * limit))
    db.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
    k = encoding.index_dim
    # Each space's index is a partial index on this expression: the planner matches it only against the same
    # expression and a literal space id (a bound parameter would not prove the index predicate).
    distance: Any
    if encoding.column == "embedding":
        distance = cast(MemoryEmbedding.embedding, HALFVEC(k)).cosine_distance(query)
    elif encoding.column == "embedding_f32":
        distance = cast(MemoryEmbedding.embedding_f32, VECTOR(k)).cosine_distance(query)
    else:
        bits = "".join("1" if value > 0 else "0" for value in query)
        sign_bits = cast(func.memsvc_sign_bits(MemoryEmbedding.codes, literal_column(str(k))), BIT(k))
        distance = sign_bits.op("<~>")(cast(bits, BIT(k)))
    payload = distance.label("distance") if encoding.column != "codes" else MemoryEmbedding.codes
    candidates = (
        where.apply(select(MemoryEmbedding.memory_id, payload).join(Memory, Memory.id == MemoryEmbedding.memory_id))
        .where(
            MemoryEmbedding.space_id == literal_column(str(int(space.id))),
            MemoryEmbedding.tenant_id == where.tenant_id,
        )
        .order_by(distance)
        .limit(limit)
    )
    return [(memory_id, value) for memory_id, value in db.execute(candidates)]


def memories_by_id(db: Session, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, Memory]:
    rows = db.scalars(select(Memory).where(Memory.tenant_id == tenant_id, Memory.id.in_(ids)))
    return {memory.id: memory for memory in rows}


def pending_text_matches(db: Session, where: MemoryFilter, query: str, limit: int) -> list[tuple[Memory, float]]:
    """Memories not embedded yet whose text matches `query` (Postgres full-text), best first, with a rank in
    [0, 1): a write is findable the moment it is acknowledged."""
    tsquery = func.websearch_to_tsquery("english", query)
    rank = func.ts_rank_cd(Memory.content_tsv, tsquery, 32).label("rank")  # 32: rank / (rank + 1)
    rows: Any = db.execute(
        where.apply(select(Memory, rank))
        .where(Memory.embedding_status == "pending", Memory.content_tsv.bool_op("@@")(tsquery))
        .order_by(rank.desc(), Memory.seq)
        .limit(limit)
    )
    return [(memory, float(r)) for memory, r in rows]

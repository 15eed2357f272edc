"""Dense vector search in SQL (pgvector HNSW over halfvec, cosine distance, one index per embedding space)."""

from typing import Any

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import cast, func, literal_column, select, text
from sqlalchemy.orm import Session

from memsvc.memories.repository import MemoryFilter
from memsvc.models import EmbeddingSpace, Memory, MemoryEmbedding


def nearest(
    db: Session, where: MemoryFilter, space: EmbeddingSpace, query_vector: np.ndarray, top_k: int
) -> list[tuple[Memory, float]]:
    """The `top_k` memories closest to `query_vector` in `space` among those `where` selects, with cosine
    similarity."""
    # Iterative index scans keep reading the HNSW graph until enough rows pass the tenant/scope filters
    # (pgvector >= 0.8); relaxed order is restored by the outer ORDER BY on the exact distance.
    db.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    db.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(max(40, 2 * top_k))})
    # The space's index is a partial index on this cast: the planner matches it only against the same expression
    # and a literal space id (a bound parameter would not prove the index predicate).
    distance = cast(MemoryEmbedding.embedding, HALFVEC(space.dim)).cosine_distance(query_vector).label("distance")
    candidates = (
        where.apply(
            select(MemoryEmbedding.memory_id.label("id"), distance).join(Memory, Memory.id == MemoryEmbedding.memory_id)
        )
        .where(
            MemoryEmbedding.space_id == literal_column(str(int(space.id))),
            MemoryEmbedding.tenant_id == where.tenant_id,
        )
        .order_by(distance)
        .limit(top_k)
        .subquery()
    )
    rows: Any = db.execute(
        select(Memory, candidates.c.distance)
        .join(candidates, Memory.id == candidates.c.id)
        .order_by(candidates.c.distance, Memory.seq)
    )
    return [(memory, 1.0 - float(dist)) for memory, dist in rows]


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

"""Search in SQL: nearest vectors (pgvector HNSW, one index per embedding space, over float vectors by cosine or
the sign bits of byte codes by Hamming; or an exact scan of a small filtered set), full-text matches weighted by
word, and what ranking reads of its candidates."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pgvector.sqlalchemy import BIT, HALFVEC, VECTOR
from sqlalchemy import Float, Select, Text, bindparam, cast, column, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from memsvc.core.db import SESSION_SETTINGS, Statements, id_in
from memsvc.embeddings.encoding import SpaceEncoding
from memsvc.memories.repository import MemoryFilter
from memsvc.models import EmbeddingSpace, Memory, MemoryEmbedding, PendingEmbedding

MIN_EF_SEARCH = 200
MAX_EF_SEARCH = 1000
# What the API's connections start with (memsvc.app): the default search's index scan (top_k 10 at the default
# profile's 16x oversampling: 160 candidates) then needs no statement of its own to set them.
CONNECTION_SETTINGS = {"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": "320"}


def nearest(
    db: Session,
    where: MemoryFilter,
    space: EmbeddingSpace,
    encoding: SpaceEncoding,
    query: np.ndarray,
    limit: int,
) -> list[tuple[uuid.UUID, Any]]:
    """The `limit` memories (among those `where` selects) nearest to `query` (in the space's coordinates) by the
    space's HNSW index, best first, as (id, distance) for float storages and (id, stored code) for byte codes,
    whose candidates the caller rescores."""
    # Iterative index scans keep reading the HNSW graph until enough rows pass the tenant/scope filters
    # (pgvector >= 0.8); relaxed order is restored by the outer ORDER BY (or by rescoring). pgvector's default
    # ef_search (40) found 91% of the true top 10 at 100k memories (bench/results/quantization-ef.md); a wider
    # search costs a few ms. ef_search tops out at 1000; past it the iterative scan keeps going until `limit` rows
    # are found. Set for this transaction, unless the connection started with them.
    ef_search = min(MAX_EF_SEARCH, max(MIN_EF_SEARCH, 2 * limit))
    wanted = {"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": str(ef_search)}
    started_with = db.connection().info.get(SESSION_SETTINGS, {})
    if any(started_with.get(name) != value for name, value in wanted.items()):
        db.execute(
            text("SELECT set_config('hnsw.iterative_scan', :scan, true), set_config('hnsw.ef_search', :ef, true)"),
            {"scan": wanted["hnsw.iterative_scan"], "ef": wanted["hnsw.ef_search"]},
        )
    parameters = {**where.parameters(), "query": _query_parameter(encoding, query), "limit": limit}

    def build() -> Select[Any]:
        # Each space's index is a partial index on the distance expression: the planner matches it only against
        # the same expression and a literal space id (a bound parameter would not prove the index predicate).
        distance = _distance(encoding)
        return (
            where.apply(
                select(MemoryEmbedding.memory_id, _payload(encoding, distance)).join(
                    Memory, Memory.id == MemoryEmbedding.memory_id
                )
            )
            .where(_in_space(space), MemoryEmbedding.tenant_id == bindparam("where_tenant_id"))
            .order_by(distance)
            .limit(bindparam("limit"))
        )

    key = ("nearest", where.shape(), space.id, encoding.column, encoding.index_dim)
    return [(memory_id, value) for memory_id, value in _statements.execute(db, key, build, parameters)]


def nearest_if_few(
    db: Session,
    where: MemoryFilter,
    space: EmbeddingSpace,
    encoding: SpaceEncoding,
    query: np.ndarray,
    limit: int,
    few: int,
) -> list[tuple[uuid.UUID, Any]] | None:
    """As `nearest`, but by scoring every selected memory, when `where` selects at most `few` of them; None when
    it selects more. One statement: the selection (read through the filters' own indexes, up to one past `few`),
    its size, and, if small enough, its nearest. A filtered HNSW scan stops short on a very selective filter and
    reads deep on a selective one; a small set is cheaper scored whole."""
    parameters = {
        **where.parameters(),
        "query": _query_parameter(encoding, query),
        "limit": limit,
        "few": few,
        "past_few": few + 1,
    }

    def build() -> Select[Any]:
        # not the indexed expression: the planner reads the selection and sorts
        distance = _distance(encoding) + literal_column("0.0", Float)
        selected = (
            where.apply(select(Memory.id)).limit(bindparam("past_few")).cte("selected").prefix_with("MATERIALIZED")
        )
        size = select(func.count().label("n")).select_from(selected).subquery("size")
        scored = (
            select(MemoryEmbedding.memory_id, _payload(encoding, distance))
            .join(selected, selected.c.id == MemoryEmbedding.memory_id)
            .where(
                _in_space(space),
                MemoryEmbedding.tenant_id == bindparam("where_tenant_id"),
                size.c.n <= bindparam("few"),
            )
            .order_by(distance)
            .limit(bindparam("limit"))
            .lateral("scored")
        )
        return select(size.c.n, scored.c.memory_id, scored.c.value).select_from(
            size.outerjoin(scored, literal_column("true"))
        )

    key = ("nearest_if_few", where.shape(), space.id, encoding.column, encoding.index_dim)
    rows = _statements.execute(db, key, build, parameters).all()
    if rows[0].n > few:
        return None
    return [(row.memory_id, row.value) for row in rows if row.memory_id is not None]


def _distance(encoding: SpaceEncoding) -> Any:
    """The distance to the query (parameter `query`, see _query_parameter) as the space's index orders by it:
    cosine over float vectors, Hamming over the sign bits of byte codes."""
    k = encoding.index_dim
    if encoding.column == "embedding":
        return cast(MemoryEmbedding.embedding, HALFVEC(k)).cosine_distance(bindparam("query", type_=HALFVEC(k)))
    if encoding.column == "embedding_f32":
        return cast(MemoryEmbedding.embedding_f32, VECTOR(k)).cosine_distance(bindparam("query", type_=VECTOR(k)))
    sign_bits = cast(func.memsvc_sign_bits(MemoryEmbedding.codes, literal_column(str(k))), BIT(k))
    return sign_bits.op("<~>")(cast(bindparam("query", type_=Text), BIT(k)))


def _query_parameter(encoding: SpaceEncoding, query: np.ndarray) -> Any:
    """The query as `_distance` compares it: its vector, or for byte codes its sign bits."""
    if encoding.column != "codes":
        return query
    return ((np.asarray(query) > 0).astype(np.uint8) + ord("0")).tobytes().decode("ascii")


def _payload(encoding: SpaceEncoding, distance: Any) -> Any:
    """What `nearest` returns of each hit: its distance, or for byte codes the codes to rescore."""
    return (distance if encoding.column != "codes" else MemoryEmbedding.codes).label("value")


def _in_space(space: EmbeddingSpace) -> Any:
    return MemoryEmbedding.space_id == literal_column(str(int(space.id)))


def vectors_of(
    db: Session, tenant_id: uuid.UUID, space: EmbeddingSpace, encoding: SpaceEncoding, ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, Any]]:
    """The stored values of these memories in the space (those embedded there)."""
    if not ids:
        return []
    rows = db.execute(
        select(MemoryEmbedding.memory_id, getattr(MemoryEmbedding, encoding.column)).where(
            MemoryEmbedding.tenant_id == tenant_id,
            MemoryEmbedding.space_id == space.id,
            id_in(MemoryEmbedding.memory_id, ids),
        )
    )
    return [(memory_id, value) for memory_id, value in rows]


@dataclass(frozen=True)
class RankingFacts:
    """What ranking reads of a candidate memory (the whole memory is read for the hits only)."""

    seq: int
    occurred_at: datetime
    entities: list[str]
    consolidation_level: str | None
    stored: Any = None  # its stored value in the space searched, when asked for and embedded there
    lexical: float | None = None  # the share of the query words' weight it matches, when asked for and any


def ranking_facts(
    db: Session,
    where: MemoryFilter,
    ids: list[uuid.UUID],
    *,
    stored_in: tuple[EmbeddingSpace, SpaceEncoding] | None = None,
    weighted_words: list[tuple[str, float]] | None = None,
) -> dict[uuid.UUID, RankingFacts]:
    """Of these memories, those `where` selects (candidates found by the rankings are; evidence reached through
    the hierarchy may not be). With `stored_in`, their stored values in that space; with `weighted_words`, their
    share of the words' weight (as text_matches scores it): what the rankings that did not find them leave out,
    read in the same statement."""
    parameters = {**where.parameters(), "ids": ids}
    if weighted_words is not None:
        parameters |= _word_parameters(weighted_words)

    def build() -> Select[Any]:
        columns: list[Any] = [Memory.id, Memory.seq, Memory.occurred_at, Memory.entities, Memory.consolidation_level]
        if stored_in is not None:
            columns.append(getattr(MemoryEmbedding, stored_in[1].column))
        if weighted_words is not None:
            columns.append(_matched_weight(Memory))
        query: Any = where.apply(select(*columns)).where(id_in(Memory.id, ids, "ids"))
        if stored_in is not None:
            query = query.outerjoin(
                MemoryEmbedding,
                (MemoryEmbedding.memory_id == Memory.id)
                & _in_space(stored_in[0])
                & (MemoryEmbedding.tenant_id == bindparam("where_tenant_id")),
            )
        return query

    stored_key = (stored_in[0].id, stored_in[1].column) if stored_in is not None else None
    key = ("facts", where.shape(), stored_key, weighted_words is not None)
    total = sum(weight for _, weight in weighted_words or []) or 1.0
    facts = {}
    for row in _statements.execute(db, key, build, parameters):
        memory_id, seq, at, entities, level, *extra = row
        stored = extra.pop(0) if stored_in is not None else None
        matched = extra.pop(0) if weighted_words is not None else 0.0
        lexical = min(1.0, float(matched) / total) if matched else None
        facts[memory_id] = RankingFacts(seq, at, entities, level, stored, lexical)
    return facts


def memories_by_id(db: Session, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, Memory]:
    parameters = {"tenant_id": tenant_id, "ids": ids}

    def build() -> Select[Any]:
        return select(Memory).where(Memory.tenant_id == bindparam("tenant_id"), id_in(Memory.id, ids, "ids"))

    rows = _statements.execute(db, "memories_by_id", build, parameters).scalars()
    return {memory.id: memory for memory in rows}


def word_frequencies(
    db: Session, where: MemoryFilter, words: list[str], sample: int
) -> tuple[int, list[int | None], float]:
    """Document frequencies in a sample, the newest `sample` memories `where` selects (a fixed sample, so the same
    store ranks the same way every time): how many were read, how many of those contain each word (after
    stemming), None for a word the text search drops (a stopword); and the planner's estimate of the memories
    table's rows (all tenants; -1 before the table was first analyzed)."""
    # One statement of one shape whatever the words (an array parameter). Each word's tsquery is made once
    # (materialized).
    parameters = {**where.parameters(), "words": words, "sample": sample}

    def build() -> Select[Any]:
        sampled = (
            where.apply(select(Memory.search_tsv.label("tsv")))
            .order_by(Memory.seq.desc())
            .limit(bindparam("sample"))
            .cte("sampled")
        )
        listed = (
            func.unnest(bindparam("words", type_=ARRAY(Text)))
            .table_valued("word", with_ordinality="position")
            .render_derived()
        )
        queries = (
            select(listed.c.position, _tsquery(listed.c.word).label("tsq"))
            .cte("word_queries")
            .prefix_with("MATERIALIZED")
        )
        containing = select(func.count()).select_from(sampled).where(sampled.c.tsv.bool_op("@@")(queries.c.tsq))
        read = select(func.count()).select_from(sampled)
        table_rows = text("(SELECT reltuples FROM pg_class WHERE oid = 'memories'::regclass)")
        return select(
            func.numnode(queries.c.tsq),  # 0: nothing left after stopwords
            containing.scalar_subquery(),
            read.scalar_subquery(),
            table_rows,
        ).order_by(queries.c.position)

    rows = _statements.execute(db, ("word_frequencies", where.shape()), build, parameters).all()
    frequencies = [int(count) if lexemes else None for lexemes, count, _, _ in rows]
    return int(rows[0][2]), frequencies, float(rows[0][3] if rows[0][3] is not None else -1)


def text_matches(
    db: Session,
    where: MemoryFilter,
    weighted_words: list[tuple[str, float]],
    limit: int,
    *,
    drivers: list[str] | None = None,
    pending_only: bool = False,
    among: list[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, float]]:
    """Memories whose indexed text (content, speaker, title, trigger, steps) contains any of the `drivers` (all the
    words when None), best first by the summed weights (IDF) of all the words they contain, then by fewest distinct
    words; with the share of the total weight matched, in [0, 1]. With drivers, their matches are read through the
    text index; without, the memories `where` selects (few: a user's, say) or `among` are read and matched."""
    # websearch syntax never fails to parse: user text cannot produce a tsquery syntax error.
    driving = drivers if drivers is not None else [word for word, _ in weighted_words]
    through_index = drivers is not None and among is None
    parameters = {
        **where.parameters(),
        **_word_parameters(weighted_words),
        "any_word": " or ".join(driving),
        "limit": limit,
    }
    if among is not None:
        parameters["among"] = among

    def build() -> Select[Any]:
        any_driver = _tsquery(bindparam("any_word", type_=Text))
        rows: Any = Memory
        if through_index:
            # The tenant's rows matching through the GIN index (migration 0007: under RLS a plain `@@` condition
            # reads the whole table).
            rows = aliased(
                Memory, func.memsvc_text_rows(any_driver).table_valued(*_MEMORY_COLUMNS), adapt_on_names=True
            )
        matched = _matched_weight(rows)
        # Ties (the same words matched) go to the memory with fewer distinct words: one about those words rather
        # than mentioning them among others. Cover density (ts_rank_cd) ordered them as well and cost 45% of the
        # query.
        breadth = func.length(rows.search_tsv)
        query = where.apply(select(rows.id, matched), rows)
        if rows is Memory:
            query = query.where(Memory.search_tsv.bool_op("@@")(any_driver))
        if pending_only:
            queued = select(PendingEmbedding.memory_id).where(
                PendingEmbedding.tenant_id == bindparam("where_tenant_id"), PendingEmbedding.error.is_(None)
            )
            query = query.where(rows.id.in_(queued))  # a few, by the queue's partial index
        if among is not None:
            query = query.where(id_in(rows.id, among, "among"))
        return query.order_by(matched.desc(), breadth, rows.seq).limit(bindparam("limit"))

    key = ("text_matches", where.shape(), through_index, pending_only, among is not None)
    found = _statements.execute(db, key, build, parameters)
    total = sum(weight for _, weight in weighted_words) or 1.0
    return [(memory_id, min(1.0, float(m) / total)) for memory_id, m in found]


def _matched_weight(rows: Any) -> Any:
    """The summed weights of the words a row's text contains, as column `matched`. The words and weights are array
    parameters (`_word_parameters`): one statement shape whatever the words (see word_frequencies)."""
    listed = (
        func.unnest(bindparam("words", type_=ARRAY(Text)), bindparam("weights", type_=ARRAY(Float)))
        .table_valued("word", "weight")
        .render_derived()
    )
    queries = (
        select(_tsquery(listed.c.word).label("tsq"), listed.c.weight).cte("word_queries").prefix_with("MATERIALIZED")
    )
    return (
        select(func.coalesce(func.sum(queries.c.weight), literal_column("0.0", Float)))
        .where(rows.search_tsv.bool_op("@@")(queries.c.tsq))
        .scalar_subquery()
        .label("matched")
    )


def _word_parameters(weighted_words: list[tuple[str, float]]) -> dict[str, Any]:
    return {"words": [word for word, _ in weighted_words], "weights": [weight for _, weight in weighted_words]}


def _tsquery(words: Any) -> Any:
    """`words` as a full-text query (websearch syntax), in the configuration the memories' text is indexed in."""
    return func.websearch_to_tsquery(literal_column("'english'"), words)


_statements = Statements()
_MEMORY_COLUMNS = [column(c.name, c.type) for c in Memory.__table__.columns]

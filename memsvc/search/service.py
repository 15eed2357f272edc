import uuid
from datetime import UTC, datetime
from itertools import zip_longest

import numpy as np
from sqlalchemy.orm import Session

from memsvc.embeddings import codecs
from memsvc.embeddings import repository as embeddings
from memsvc.embeddings.encoding import FitNeeded
from memsvc.embeddings.profiles import StorageProfile, parse_profile
from memsvc.embeddings.service import EmbedderFor, encoding_of, space_of
from memsvc.memories import repository as memory_repository
from memsvc.memories import service as memories
from memsvc.memories.repository import MemoryFilter
from memsvc.models import EmbeddingSpace, Memory
from memsvc.search import repository
from memsvc.search.schemas import MatchKind, SearchHit, SearchRequest, SearchResponse


def search(db: Session, tenant_id: uuid.UUID, request: SearchRequest, embedder_for: EmbedderFor) -> SearchResponse:
    """Dense search over the tenant's embedded memories in the requested scope, best first, interleaved with
    lexical matches among memories still waiting for their embedding. Dense search uses the tenant's search
    space (during a model change, the old model until the new one is complete)."""
    where = MemoryFilter(
        tenant_id=tenant_id,
        user_id=request.user_id,
        agent_id=request.agent_id,
        session_id=request.session_id,
        types=[t.value for t in request.types or []],
        metadata=request.filters,
        occurred_after=request.occurred_after,
        occurred_before=request.occurred_before,
        valid_at=None if request.include_expired else (request.as_of or datetime.now(UTC)),
    )
    dense: list[tuple[Memory, float, MatchKind]] = [
        (m, s, "dense") for m, s in _dense(db, tenant_id, where, request, embedder_for)
    ]
    lexical: list[tuple[Memory, float, MatchKind]] = [
        (m, s, "lexical") for m, s in repository.pending_text_matches(db, where, request.query, request.top_k)
    ]
    # The two lists never share a memory; taking them rank by rank keeps a just-written memory from being
    # crowded out by embedded ones until its own embedding lands.
    merged = [hit for pair in zip_longest(dense, lexical) for hit in pair if hit is not None][: request.top_k]
    found = [m for m, _, _ in merged]
    context = _dialogue_context(db, tenant_id, found, request.context_window)
    public = memories.to_public(db, where.tenant_id, found + [turn for turns in context for turn in turns])
    by_id = {p.id: p for p in public}
    return SearchResponse(
        hits=[
            SearchHit(memory=by_id[m.id], score=score, matched_by=kind, context=[by_id[t.id] for t in turns])
            for (m, score, kind), turns in zip(merged, context, strict=True)
        ]
    )


def _dialogue_context(db: Session, tenant_id: uuid.UUID, hits: list[Memory], window: int) -> list[list[Memory]]:
    """For each hit, the dialogue turns within `window` of it in its session (none for other hits)."""
    anchors = {
        (m.session_id, m.turn_index)
        for m in hits
        if window and m.type == "dialogue" and m.session_id is not None and m.turn_index is not None
    }
    turns = memory_repository.turns_around(db, tenant_id, anchors, window) if anchors else []
    return [
        [
            t
            for t in turns
            if (m.session_id, m.turn_index) in anchors
            and t.session_id == m.session_id
            and t.id != m.id
            and abs((t.turn_index or 0) - (m.turn_index or 0)) <= window
        ]
        for m in hits
    ]


def _dense(
    db: Session, tenant_id: uuid.UUID, where: MemoryFilter, request: SearchRequest, embedder_for: EmbedderFor
) -> list[tuple[Memory, float]]:
    hits: list[tuple[Memory, float]] = []
    space_id, chosen = embeddings.search_state(db, tenant_id)
    while space_id is not None:
        space = space_of(db, space_id)
        hits = _search_space(db, tenant_id, where, space, request, embedder_for, chosen)
        if len(hits) == request.top_k:
            break
        # Fewer hits than asked: the tenant may have switched to a new model or storage (and dropped the old
        # vectors) since its space was read. If so, search the new space.
        latest = embeddings.tenant_spaces(db, tenant_id)[0]
        space_id = latest if latest != space_id else None
    return hits


def _search_space(
    db: Session,
    tenant_id: uuid.UUID,
    where: MemoryFilter,
    space: EmbeddingSpace,
    request: SearchRequest,
    embedder_for: EmbedderFor,
    chosen: str | None,
) -> list[tuple[Memory, float]]:
    """Float storages: the HNSW index ranks by exact cosine of the stored vectors. Byte codes: two stages, the
    Hamming index over their sign bits gives `oversample × top_k` candidates, rescored by the exact query's
    cosine with their decoded codes (binary alone: by the Hamming estimate of the cosine)."""
    try:
        encoding = encoding_of(db, tenant_id, space)
    except FitNeeded:
        return []  # nothing is stored there yet
    query = encoding.reduce(embedder_for(space).embed([request.query]))[0]
    profile = encoding.profile
    if encoding.column != "codes":
        rows = repository.nearest(db, where, space, encoding, query, request.top_k)
        scored = [(memory_id, 1.0 - float(distance)) for memory_id, distance in rows]
    else:
        limit = request.top_k * (_oversample(chosen, profile, request) if profile.rescored else 1)
        rows = repository.nearest(db, where, space, encoding, query, limit)
        if not rows:
            return []
        codes = np.frombuffer(b"".join(code for _, code in rows), dtype=np.uint8).reshape(len(rows), -1)
        if profile.rescored:
            scores = codecs.cosine_scores(query, encoding.decode(codes))
        else:
            scores = codecs.hamming_scores(query, codes, encoding.index_dim)
        scored = [(memory_id, float(score)) for (memory_id, _), score in zip(rows, scores, strict=True)]
    best = sorted(scored, key=lambda hit: -hit[1])[: request.top_k]
    found = repository.memories_by_id(db, tenant_id, [memory_id for memory_id, _ in best])
    hits = [(found[memory_id], score) for memory_id, score in best if memory_id in found]
    return sorted(hits, key=lambda hit: (-hit[1], hit[0].seq))


def _oversample(chosen: str | None, stored: StorageProfile, request: SearchRequest) -> int:
    """The request's oversampling, else the tenant's chosen profile's if it is the storage searched, else the
    storage's default."""
    if request.oversample is not None:
        return request.oversample
    profile = parse_profile(chosen) if chosen else None
    return profile.oversample if profile is not None and profile.storage == stored.storage else stored.oversample

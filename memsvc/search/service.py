import uuid
from datetime import UTC, datetime
from itertools import zip_longest

from sqlalchemy.orm import Session

from memsvc.embeddings import repository as embeddings
from memsvc.embeddings.service import EmbedderFor
from memsvc.memories import service as memories
from memsvc.memories.repository import MemoryFilter
from memsvc.models import Memory
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
    public = memories.to_public(db, where.tenant_id, [m for m, _, _ in merged])
    return SearchResponse(
        hits=[
            SearchHit(memory=p, score=score, matched_by=kind)
            for p, (_, score, kind) in zip(public, merged, strict=True)
        ]
    )


def _dense(
    db: Session, tenant_id: uuid.UUID, where: MemoryFilter, request: SearchRequest, embedder_for: EmbedderFor
) -> list[tuple[Memory, float]]:
    hits: list[tuple[Memory, float]] = []
    space_id = embeddings.tenant_spaces(db, tenant_id)[0]
    while space_id is not None:
        space = embeddings.get_space(db, space_id)
        assert space is not None  # spaces are never deleted
        hits = repository.nearest(db, where, space, embedder_for(space).embed([request.query])[0], request.top_k)
        if len(hits) == request.top_k:
            break
        # Fewer hits than asked: the tenant may have switched to a new model (and dropped the old vectors)
        # since its space was read. If so, search the new space.
        latest = embeddings.tenant_spaces(db, tenant_id)[0]
        space_id = latest if latest != space_id else None
    return hits

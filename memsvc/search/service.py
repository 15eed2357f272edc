import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from memsvc.memories import service as memories
from memsvc.memories.repository import MemoryFilter
from memsvc.memories.service import TextEmbedder
from memsvc.search import repository
from memsvc.search.schemas import SearchHit, SearchRequest, SearchResponse


def search(db: Session, tenant_id: uuid.UUID, request: SearchRequest, embedder: TextEmbedder) -> SearchResponse:
    """Dense search over the tenant's memories in the requested scope, best first."""
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
    query_vector = embedder.embed([request.query])[0]
    found = repository.nearest(db, where, query_vector, request.top_k)
    public = memories.to_public(db, where.tenant_id, [m for m, _ in found])
    return SearchResponse(hits=[SearchHit(memory=p, score=s) for p, (_, s) in zip(public, found, strict=True)])

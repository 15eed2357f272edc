from fastapi import APIRouter, Request

from memsvc.core.deps import DbDep, ReadsOnly, TenantDep
from memsvc.core.errors import Conflict, problem_responses
from memsvc.search import service
from memsvc.search.schemas import SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", operation_id="search-search", responses=problem_responses(Conflict), dependencies=[ReadsOnly])
def search(body: SearchRequest, request: Request, db: DbDep, tenant: TenantDep) -> SearchResponse:
    """Find the memories that best answer `query` within the caller's tenant and the given filters: dense,
    lexical, entity and time rankings fused (hybrid), or one of the first two alone; optionally reranked,
    diversified, weighted by recency and cut at a calibrated `min_score`."""
    return service.search(
        db, tenant.tenant_id, body, request.app.state.embedders.for_space, request.app.state.reranker_for
    )

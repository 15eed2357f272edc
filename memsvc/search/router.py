from fastapi import APIRouter, Request

from memsvc.core.deps import DbDep, TenantDep
from memsvc.core.errors import problem_responses
from memsvc.search import service
from memsvc.search.schemas import SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", operation_id="search-search", responses=problem_responses())
def search(body: SearchRequest, request: Request, db: DbDep, tenant: TenantDep) -> SearchResponse:
    """Find the memories closest in meaning to `query` within the caller's tenant and the given scope."""
    return service.search(db, tenant.tenant_id, body, request.app.state.embedders.for_space)

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from memsvc.core.db import ping
from memsvc.core.errors import ServiceUnavailable, problem_responses
from memsvc.core.migrate import current_revision, head_revision, schema_behind

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="ok")


class Readiness(BaseModel):
    status: str = Field(description="ready")
    migration: str | None = Field(description="Schema revision the database is at.")


@router.get("/healthz", operation_id="health-live")
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", operation_id="health-ready", responses=problem_responses(ServiceUnavailable))
def readyz(request: Request) -> Readiness:
    """The database answers, its schema has the code's migrations (or a newer release's: an upgrade migrates before
    its pods replace these, which keep serving meanwhile), and the embedding model is registered."""
    engine = request.app.state.engine
    ping(engine)
    current = current_revision(engine)
    if schema_behind(current):
        raise ServiceUnavailable(f"database schema at {current}, code expects {head_revision()}: run `memsvc migrate`")
    try:
        request.app.state.adopt_embedding_model()
    except Exception as exc:
        raise ServiceUnavailable(f"could not register the embedding model: {type(exc).__name__}") from exc
    return Readiness(status="ready", migration=current)

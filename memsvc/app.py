"""The FastAPI application: routers, error handling, body limit, and the process-wide resources."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from memsvc import __version__
from memsvc.core.body_limit import BodySizeLimitMiddleware
from memsvc.core.db import make_engine, make_session_factory, pgvector_version, require_pgvector
from memsvc.core.errors import install_error_handlers, serve_problem_schemas_as_problem_json
from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import get_embedder
from memsvc.health.router import router as health_router
from memsvc.jobs.dispatch import CeleryDispatcher, InProcessWorker
from memsvc.jobs.router import router as jobs_router
from memsvc.memories.router import router as memories_router
from memsvc.memories.service import TextEmbedder
from memsvc.portability.router import router as portability_router
from memsvc.search.router import router as search_router
from memsvc.tenants.router import router as tenants_router


def create_app(settings: Settings, database_url: str, embedder: TextEmbedder | None = None) -> FastAPI:
    """Build the app against `database_url` (already migrated). The embedder defaults to the process-wide one."""
    engine = make_engine(database_url, app_role=settings.app_role)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with engine.connect() as conn:
            require_pgvector(pgvector_version(conn), "installed in this database")
        if app.state.embedder is None:
            app.state.embedder = get_embedder()  # load the model before the first request, not during it
        worker = None
        if settings.broker_url:
            app.state.dispatcher = CeleryDispatcher(settings)
        else:
            worker = InProcessWorker(app.state.session_factory, lambda: app.state.embedder, settings)
            app.state.dispatcher = worker
            worker.start()
        yield
        if worker is not None:
            worker.stop()
        engine.dispose()

    app = FastAPI(
        title="memsvc",
        version=__version__,
        description="Long-term memory for AI agents: episodic, dialogue, semantic and procedural memories.",
        lifespan=lifespan,
        generate_unique_id_function=lambda route: (
            route.operation_id or route.name if isinstance(route, APIRoute) else route.name
        ),
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.embedder = embedder
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = serve_problem_schemas_as_problem_json(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    for router in (health_router, tenants_router, memories_router, jobs_router, search_router, portability_router):
        app.include_router(router)
    return app

"""The FastAPI application: routers, error handling, body limit, and the process-wide resources."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from memsvc import __version__
from memsvc.audit.router import router as audit_router
from memsvc.consolidation.router import router as consolidation_router
from memsvc.core.body_limit import BodySizeLimitMiddleware
from memsvc.core.db import make_engine, make_session_factory, pgvector_version, require_pgvector
from memsvc.core.errors import install_error_handlers, serve_problem_schemas_as_problem_json
from memsvc.core.metrics import install_metrics
from memsvc.core.ratelimit import build_rate_limiter
from memsvc.core.request_id import RequestIdMiddleware
from memsvc.core.settings import Settings
from memsvc.core.tracing import install_tracing
from memsvc.embeddings.embedder import Embedder, EmbedderPool
from memsvc.embeddings.service import FitSampling, ModelConfig, adopt_configured_space
from memsvc.health.router import router as health_router
from memsvc.jobs.dispatch import CeleryDispatcher, InProcessWorker, enqueue_after_commit
from memsvc.jobs.router import router as jobs_router
from memsvc.memories.router import router as memories_router
from memsvc.portability.router import router as portability_router
from memsvc.search import repository as search_repository
from memsvc.search.router import router as search_router
from memsvc.search.service import reranker_loader
from memsvc.tenants.router import router as tenants_router

log = logging.getLogger(__name__)


def create_app(settings: Settings, database_url: str, embedder: Embedder | None = None) -> FastAPI:
    """Build the app against `database_url` (already migrated). `embedder`: the configured model, already
    loaded (tests share one); by default the app loads it at start."""
    engine = make_engine(
        database_url,
        app_role=settings.app_role,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        pool_timeout_s=settings.db_pool_timeout_s,
        session_settings=search_repository.CONNECTION_SETTINGS,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with engine.connect() as conn:
            require_pgvector(pgvector_version(conn), "installed in this database")
        embedders.configured()  # load the model before the first request, not during it
        worker = None
        if settings.broker_url:
            app.state.dispatcher = CeleryDispatcher(settings)
        else:
            worker = InProcessWorker(app.state.session_factory, embedders.for_space, settings)
            app.state.dispatcher = worker
        try:
            adopt_embedding_model()
        except Exception as exc:  # e.g. not migrated yet: /readyz reports it and tries again
            log.warning("embedding model not registered yet: %s", exc)
        # Only now: the worker's first sweep must see every tenant pointed at this configuration, not run a
        # model change that this start-up is about to cancel.
        if worker is not None:
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
    app.state.rate_limiter = build_rate_limiter(settings)
    embedders = EmbedderPool(settings, configured=embedder)
    app.state.embedders = embedders
    app.state.reranker_for = reranker_loader(settings.reranker_path)
    app.state.embedding_space_id = None

    def adopt_embedding_model() -> None:
        """Register the configured model's space (new tenants start on it) and, if it is new, start re-embedding
        every tenant into it: the API's configuration decides the model. Done once, at start or on /readyz."""
        if app.state.embedding_space_id is not None:
            return
        space_id, reembedding = adopt_configured_space(app.state.session_factory, model_config())
        for tenant_id, job_id in reembedding:
            enqueue_after_commit(app.state.dispatcher, tenant_id, job_id, "reembed")
        app.state.embedding_space_id = space_id

    def model_config() -> ModelConfig:
        configured = embedders.configured()
        return ModelConfig(
            configured.model_id,
            settings.embedding_model_path,
            configured.dim,
            settings.storage_profile,
            FitSampling.of(settings),
        )

    app.state.adopt_embedding_model = adopt_embedding_model
    app.state.model_config = model_config
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = serve_problem_schemas_as_problem_json(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    if settings.metrics_enabled:  # outside the body limit, so that its 413s are timed too
        install_metrics(app, queue_depths=lambda: app.state.dispatcher.queue_depths())
    install_tracing(app, settings, engine)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost
    routers = (
        health_router,
        tenants_router,
        audit_router,
        memories_router,
        jobs_router,
        search_router,
        consolidation_router,
        portability_router,
    )
    for router in routers:
        app.include_router(router)
    return app

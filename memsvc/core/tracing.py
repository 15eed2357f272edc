"""Optional OpenTelemetry tracing of the API: a server span per request, named by its route template, with a
child span per SQL statement, exported over OTLP/HTTP. Off by default; when off, nothing of the OpenTelemetry SDK
or its instrumentations is imported (they come with the `otel` extra, which a default install lacks)."""

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy import Engine

from memsvc.core.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

log = logging.getLogger(__name__)

# Scraped or probed every few seconds: spans of these would drown the requests worth tracing.
UNTRACED_URLS = "/metrics,/healthz,/readyz"


class TracingUnavailable(RuntimeError):
    pass


def install_tracing(
    app: FastAPI, settings: Settings, engine: Engine, processor: "SpanProcessor | None" = None
) -> "TracerProvider | None":
    """When `settings.otel_enabled`, trace the app's requests and `engine`'s statements into a tracer provider
    of this app (not the process-global one), returned and kept as `app.state.tracer_provider`; None when off.
    `processor`: where the spans go; by default a batching OTLP/HTTP exporter to `settings.otel_endpoint`."""
    if not settings.otel_enabled:
        return None
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            "MEMSVC_OTEL_ENABLED needs the OpenTelemetry packages: pip install 'memsvc[otel]'"
        ) from exc

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    if processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint))
    provider.add_span_processor(processor)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=UNTRACED_URLS)
    _trace_statements(engine, provider)
    app.state.tracer_provider = provider
    return provider


def _trace_statements(engine: Engine, provider: "TracerProvider") -> None:
    """A span per statement of this engine only. SQLAlchemyInstrumentor().instrument() would also patch every
    create_engine of the process (and needs greenlet for SQLAlchemy's asyncio module, unused here)."""
    try:
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    except ImportError:
        log.info("opentelemetry-instrumentation-sqlalchemy is not installed: requests are traced without their SQL")
        return
    from opentelemetry.metrics import NoOpMeterProvider

    # Connection-pool metrics are Prometheus's job here (memsvc.core.metrics), so that counter goes nowhere.
    pool_usage = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    EngineTracer(provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine, pool_usage)

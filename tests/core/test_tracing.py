"""Optional OpenTelemetry tracing: enabled, a request gives a server span named by its route template, with its SQL
as child spans of the same trace; disabled (the default), no span and no OpenTelemetry SDK imported at all."""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from memsvc.app import create_app
from memsvc.core.settings import Settings
from memsvc.core.tracing import install_tracing
from memsvc.embeddings.embedder import Embedder
from tests.conftest import create_tenant


@pytest.fixture
def exported(
    settings: Settings, database_url: str, embedder: Embedder
) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    """An app tracing into memory instead of an OTLP collector."""
    exporter = InMemorySpanExporter()
    app = create_app(settings, database_url, embedder=embedder)
    enabled = settings.model_copy(update={"otel_enabled": True, "otel_service_name": "memsvc-test"})
    install_tracing(app, enabled, app.state.engine, processor=SimpleSpanProcessor(exporter))
    with TestClient(app) as client:
        yield client, exporter


def test_a_request_gives_a_server_span_named_by_its_route_with_its_sql_as_children(
    exported: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = exported
    tenant = create_tenant(client)
    exporter.clear()

    missing = uuid.uuid4()
    assert client.get(f"/v1/memories/{missing}", headers=tenant.headers).status_code == 404

    spans = exporter.get_finished_spans()
    [server] = [span for span in spans if span.kind == SpanKind.SERVER]
    assert server.name == "GET /v1/memories/{memory_id}"
    assert server.attributes is not None and server.attributes["http.route"] == "/v1/memories/{memory_id}"
    assert server.resource.attributes["service.name"] == "memsvc-test"
    assert server.context is not None
    statements = [
        span
        for span in spans
        if span.kind == SpanKind.CLIENT and span.attributes and span.attributes.get("db.system") == "postgresql"
    ]
    assert statements, [span.name for span in spans]
    assert {span.context.trace_id for span in statements if span.context} == {server.context.trace_id}

    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER] == [server]


def test_create_app_installs_tracing_when_enabled(settings: Settings, database_url: str, embedder: Embedder) -> None:
    # Unreachable collector: nothing is sent, since no request is made.
    enabled = settings.model_copy(update={"otel_enabled": True, "otel_endpoint": "http://127.0.0.1:9/v1/traces"})
    app = create_app(enabled, database_url, embedder=embedder)
    assert isinstance(app.state.tracer_provider, TracerProvider)
    assert app._is_instrumented_by_opentelemetry  # type: ignore[attr-defined]
    app.state.tracer_provider.shutdown()


def test_disabled_tracing_traces_nothing_and_imports_no_opentelemetry_sdk(database_url: str) -> None:
    # FastAPI imports the OpenTelemetry API (its native telemetry, idle without a provider), and redis-py imports
    # the SDK's metrics when the SDK is installed; what tracing would bring, the SDK's tracer, the exporter and the
    # instrumentations, must stay out, and the app must not be instrumented.
    script = """
import json, sys
from memsvc.app import create_app
from memsvc.core.settings import Settings
app = create_app(Settings(database_url=sys.argv[1]), sys.argv[1])
loaded = [m for m in sys.modules if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.instrumentation",
                                                  "opentelemetry.exporter"))]
traced = getattr(app, "_is_instrumented_by_opentelemetry", False)
print(json.dumps({"loaded": loaded, "provider": hasattr(app.state, "tracer_provider"), "traced": traced}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, database_url], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"loaded": [], "provider": False, "traced": False}

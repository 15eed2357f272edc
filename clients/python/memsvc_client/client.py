"""`MemoryClient`: the synchronous client. `AsyncMemoryClient` (async_client.py) is its twin, method for method."""

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from memsvc_client import _requests as calls
from memsvc_client._requests import NOT_GIVEN, Call, Id, NotGiven
from memsvc_client._retry import retry_after_exception, retry_after_status, retry_delay
from memsvc_client.errors import ConnectionFailed, JobTimeout, error_from_response
from memsvc_client.models import (
    AuditList,
    ConsolidateAccepted,
    Expansion,
    ExportRecord,
    ForgetReport,
    Fusion,
    FusionWeights,
    Health,
    Hierarchy,
    ImportReport,
    Job,
    JobKind,
    JobList,
    JobStatus,
    KeyCreated,
    KeyList,
    ListOrder,
    Memory,
    MemoryHistory,
    MemoryList,
    MemoryType,
    Message,
    NewMemory,
    Readiness,
    Role,
    SearchDefaults,
    SearchMode,
    SearchResponse,
    StorageProfileList,
    Tenant,
    TenantList,
    TenantRateLimit,
    TenantStorage,
    WriteResponse,
)
from memsvc_client.pagination import Page

M = TypeVar("M", bound=BaseModel)


class Memories:
    """Memories: store, read, list, change, delete, history, forget a scope."""

    def __init__(self, client: "MemoryClient") -> None:
        self._client = client

    def add(
        self, *, memories: Sequence[NewMemory | Mapping[str, Any]], idempotency_key: str | None = None
    ) -> WriteResponse:
        """Store 1–1000 memories. Answered at once; embedding runs as the returned `job_id` (`jobs.wait`). An
        exact duplicate in its scope returns the existing id. Retries reuse one Idempotency-Key (yours, if given),
        so a retried write is stored once."""
        return self._client._request(calls.memories_add(memories, idempotency_key), WriteResponse)

    def get(self, memory_id: Id) -> Memory:
        """One memory by id."""
        return self._client._request(calls.memories_get(memory_id), Memory)

    def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        types: Sequence[MemoryType] | None = None,
        occurred_after: datetime | None = None,
        occurred_before: datetime | None = None,
        valid_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        order: ListOrder | None = None,
    ) -> Page[Memory]:
        """A page of memories matching the filters (newest first unless `order="asc"`); iterating the page goes
        on through every later page. `limit` is the page size."""
        call = calls.memories_list(
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            types=types,
            occurred_after=occurred_after,
            occurred_before=occurred_before,
            valid_at=valid_at,
            metadata=metadata,
            limit=limit,
            cursor=cursor,
            order=order,
        )
        return self._client._page(call)

    def update(
        self,
        memory_id: Id,
        *,
        content: str | NotGiven = NOT_GIVEN,
        metadata: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        occurred_at: datetime | NotGiven = NOT_GIVEN,
        valid_from: datetime | None | NotGiven = NOT_GIVEN,
        valid_to: datetime | None | NotGiven = NOT_GIVEN,
        role: Role | None | NotGiven = NOT_GIVEN,
        speaker: str | None | NotGiven = NOT_GIVEN,
        title: str | None | NotGiven = NOT_GIVEN,
        steps: Sequence[str] | None | NotGiven = NOT_GIVEN,
        trigger: str | None | NotGiven = NOT_GIVEN,
    ) -> Memory:
        """Change the fields given (None clears a field) as a new version. Not retried once the request may have
        arrived: a replay would add a version."""
        changes = {
            "content": content,
            "metadata": metadata,
            "occurred_at": occurred_at,
            "valid_from": valid_from,
            "valid_to": valid_to,
            "role": role,
            "speaker": speaker,
            "title": title,
            "steps": steps,
            "trigger": trigger,
        }
        return self._client._request(calls.memories_update(memory_id, changes), Memory)

    def delete(self, memory_id: Id) -> None:
        """Delete one memory with its links, history and embedding."""
        self._client._send(calls.memories_delete(memory_id))

    def history(self, memory_id: Id) -> MemoryHistory:
        """Every version of a memory, oldest first."""
        return self._client._request(calls.memories_history(memory_id), MemoryHistory)

    def forget(
        self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None
    ) -> ForgetReport:
        """Forget a scope: its memories, what was derived from them, links, history, embeddings; returns counts."""
        call = calls.memories_forget(user_id=user_id, agent_id=agent_id, session_id=session_id)
        return self._client._request(call, ForgetReport)


class Sessions:
    """Dialogue: turns appended to a session in order, and read back in turn order."""

    def __init__(self, client: "MemoryClient") -> None:
        self._client = client

    def add_messages(
        self,
        session_id: str,
        *,
        messages: Sequence[Message | Mapping[str, Any]],
        user_id: str | None = None,
        agent_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResponse:
        """Append dialogue turns to a session; each becomes a dialogue memory numbered in order."""
        call = calls.sessions_add_messages(
            session_id, messages=messages, user_id=user_id, agent_id=agent_id, idempotency_key=idempotency_key
        )
        return self._client._request(call, WriteResponse)

    def list_messages(self, session_id: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Memory]:
        """A page of the session's turns in turn order; iterating goes on through every later page."""
        return self._client._page(calls.sessions_list_messages(session_id, limit=limit, cursor=cursor))


class Jobs:
    """Background work: embedding, re-encoding, consolidation."""

    def __init__(self, client: "MemoryClient") -> None:
        self._client = client

    def get(self, job_id: Id) -> Job:
        """A job's state and per-item counts."""
        return self._client._request(calls.jobs_get(job_id), Job)

    def list(
        self, *, kind: JobKind | None = None, status: JobStatus | None = None, limit: int | None = None
    ) -> JobList:
        """The tenant's recent jobs, newest first (at most `limit`, ≤ 100; this list has no further pages)."""
        return self._client._request(calls.jobs_list(kind=kind, status=status, limit=limit), JobList)

    def wait(self, job_id: Id, *, timeout: float = 300.0, poll_interval: float = 0.5) -> Job:
        """Poll the job until it is done or failed and return it; `JobTimeout` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.status in ("done", "failed"):
                return job
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeout(job, timeout)
            time.sleep(min(poll_interval, left))


class Admin:
    """Tenants, API keys, storage profiles and search defaults (the client's key must be the admin key)."""

    def __init__(self, client: "MemoryClient") -> None:
        self._client = client

    def create_tenant(self, *, name: str, storage_profile: str | None = None) -> Tenant:
        """Create a tenant, on the service's default storage profile or the one named."""
        return self._client._request(calls.admin_create_tenant(name=name, storage_profile=storage_profile), Tenant)

    def list_tenants(self) -> TenantList:
        """All tenants, oldest first."""
        return self._client._request(calls.admin_list_tenants(), TenantList)

    def create_key(self, tenant_id: Id, *, name: str | None = None) -> KeyCreated:
        """A new API key for the tenant; its secret (`key`) is in this answer only."""
        return self._client._request(calls.admin_create_key(tenant_id, name=name), KeyCreated)

    def revoke_key(self, key_id: Id) -> None:
        """Revoke an API key: requests with it get 401 from now on."""
        self._client._send(calls.admin_revoke_key(key_id))

    def list_keys(self, tenant_id: Id) -> KeyList:
        """The tenant's keys, active and revoked, oldest first (prefixes, never secrets)."""
        return self._client._request(calls.admin_list_keys(tenant_id), KeyList)

    def get_rate_limit(self, tenant_id: Id) -> TenantRateLimit:
        """Requests per minute each of the tenant's keys may make (None: the service default)."""
        return self._client._request(calls.admin_get_rate_limit(tenant_id), TenantRateLimit)

    def set_rate_limit(self, tenant_id: Id, *, requests_per_minute: int | None) -> TenantRateLimit:
        """Set the tenant's requests per minute per key (None: back to the service default)."""
        call = calls.admin_set_rate_limit(tenant_id, requests_per_minute=requests_per_minute)
        return self._client._request(call, TenantRateLimit)

    def list_audit(
        self,
        *,
        tenant_id: Id | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AuditList:
        """One page of the audit log, newest first; pass its `next_cursor` as `cursor` for the next."""
        call = calls.admin_list_audit(
            tenant_id=tenant_id, action=action, since=since, until=until, limit=limit, cursor=cursor
        )
        return self._client._request(call, AuditList)

    def list_storage_profiles(self) -> StorageProfileList:
        """The storage profiles offered for the configured embedding model, with their bytes per memory."""
        return self._client._request(calls.admin_list_storage_profiles(), StorageProfileList)

    def get_storage_profile(self, tenant_id: Id) -> TenantStorage:
        """The tenant's storage profile, and any re-encoding in progress."""
        return self._client._request(calls.admin_get_storage_profile(tenant_id), TenantStorage)

    def set_storage_profile(self, tenant_id: Id, *, profile: str | None) -> TenantStorage:
        """Move the tenant to a storage profile (None: the service default), re-encoding in the background
        (`job_id`) when it has embeddings already."""
        return self._client._request(calls.admin_set_storage_profile(tenant_id, profile=profile), TenantStorage)

    def get_search_defaults(self, tenant_id: Id) -> SearchDefaults:
        """The options the tenant's searches get when a request leaves them out (None: built-in)."""
        return self._client._request(calls.admin_get_search_defaults(tenant_id), SearchDefaults)

    def set_search_defaults(
        self,
        tenant_id: Id,
        *,
        mode: SearchMode | None = None,
        weights: FusionWeights | Mapping[str, float] | None = None,
        fusion: Fusion | None = None,
        parse_time: bool | None = None,
        recency_half_life_days: float | None = None,
        diversity: float | None = None,
        min_score: float | None = None,
        rerank: bool | None = None,
        hierarchy: Hierarchy | None = None,
    ) -> SearchDefaults:
        """Replace the tenant's search defaults; an option left out goes back to the built-in default."""
        defaults = {
            "mode": mode,
            "weights": weights,
            "fusion": fusion,
            "parse_time": parse_time,
            "recency_half_life_days": recency_half_life_days,
            "diversity": diversity,
            "min_score": min_score,
            "rerank": rerank,
            "hierarchy": hierarchy,
        }
        return self._client._request(calls.admin_set_search_defaults(tenant_id, defaults), SearchDefaults)


class HealthChecks:
    """Liveness and readiness (no key needed)."""

    def __init__(self, client: "MemoryClient") -> None:
        self._client = client

    def live(self) -> Health:
        """The process is up."""
        return self._client._request(calls.health_live(), Health)

    def ready(self) -> Readiness:
        """The database answers at the current migration and the embedding model is registered."""
        return self._client._request(calls.health_ready(), Readiness)


class MemoryClient:
    """Synchronous client for a memsvc service.

    `base_url` defaults to $MEMSVC_URL (else http://127.0.0.1:8000), `api_key` to $MEMSVC_API_KEY (a tenant key,
    or the admin key for `admin`). `timeout` is per attempt, in seconds. A failed call is retried up to
    `max_retries` times with jittered exponential backoff, honouring Retry-After, when retrying is safe: see
    the package README. Use it as a context manager, or call `close()`."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = calls.DEFAULT_TIMEOUT_S,
        max_retries: int = calls.DEFAULT_MAX_RETRIES,
    ) -> None:
        self.base_url = calls.base_url_from(base_url)
        self.api_key = calls.api_key_from(api_key)
        self.timeout = timeout
        self.max_retries = max_retries
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=calls.default_headers(self.api_key))
        self.memories = Memories(self)
        self.sessions = Sessions(self)
        self.jobs = Jobs(self)
        self.admin = Admin(self)
        self.health = HealthChecks(self)

    def search(
        self,
        *,
        query: str,
        top_k: int | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        types: Sequence[MemoryType] | None = None,
        filters: Mapping[str, Any] | None = None,
        occurred_after: datetime | None = None,
        occurred_before: datetime | None = None,
        as_of: datetime | None = None,
        mode: SearchMode | None = None,
        weights: FusionWeights | Mapping[str, float] | None = None,
        fusion: Fusion | None = None,
        parse_time: bool | None = None,
        recency_half_life_days: float | None = None,
        diversity: float | None = None,
        min_score: float | None = None,
        rerank: bool | None = None,
        hierarchy: Hierarchy | None = None,
        expand: Sequence[Expansion] | None = None,
        evidence_limit: int | None = None,
        context_window: int | None = None,
        include_expired: bool | None = None,
        entities: Sequence[str] | None = None,
        now: datetime | None = None,
        oversample: int | None = None,
    ) -> SearchResponse:
        """The memories that best answer `query` in the given scope and filters, best first. An option left
        None takes the tenant's default, else the built-in one (see the service README's Search section)."""
        options = {
            "query": query,
            "top_k": top_k,
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "types": types,
            "filters": filters,
            "occurred_after": occurred_after,
            "occurred_before": occurred_before,
            "as_of": as_of,
            "mode": mode,
            "weights": weights,
            "fusion": fusion,
            "parse_time": parse_time,
            "recency_half_life_days": recency_half_life_days,
            "diversity": diversity,
            "min_score": min_score,
            "rerank": rerank,
            "hierarchy": hierarchy,
            "expand": expand,
            "evidence_limit": evidence_limit,
            "context_window": context_window,
            "include_expired": include_expired,
            "entities": entities,
            "now": now,
            "oversample": oversample,
        }
        return self._request(calls.search(options), SearchResponse)

    def consolidate(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        backend: str | None = None,
    ) -> ConsolidateAccepted:
        """Start consolidating a scope's history into summaries and facts linked to their evidence; returns the
        job (`jobs.wait`)."""
        call = calls.consolidate(user_id=user_id, agent_id=agent_id, session_id=session_id, backend=backend)
        return self._request(call, ConsolidateAccepted)

    def export(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        types: Sequence[MemoryType] | None = None,
    ) -> Iterator[ExportRecord]:
        """Every memory of the tenant (or of one scope), oldest first, streamed as the iteration reads it: the
        request is sent when the iteration starts."""
        call = calls.export(user_id=user_id, agent_id=agent_id, session_id=session_id, types=types)
        response = self._send(call, stream=True)
        try:
            for line in response.iter_lines():
                if line.strip():
                    yield ExportRecord.model_validate_json(line)
        finally:
            response.close()

    def import_records(self, *, records: Iterable[ExportRecord | Mapping[str, Any]]) -> ImportReport:
        """Restore exported records: ids, history, links and embeddings come back as they were; records whose
        memory exists already are skipped."""
        return self._request(calls.import_records(records), ImportReport)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> "MemoryClient":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _request(self, call: Call, model: type[M]) -> M:
        return model.model_validate_json(self._send(call).content)

    def _page(self, call: Call) -> Page[Memory]:
        page = self._request(call, MemoryList)
        return Page(page.data, page.next_cursor, lambda cursor: self._page(call.with_cursor(cursor)))

    def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """Send the call, retrying as _retry allows; returns a successful response or raises."""
        attempt = 0
        while True:
            request = self._http.build_request(
                call.route.method,
                call.url,
                params=call.params,
                json=call.json,
                content=call.content,
                headers=call.headers(),
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt < self.max_retries and retry_after_exception(call.route, exc):
                    time.sleep(retry_delay(attempt))
                    attempt += 1
                    continue
                raise ConnectionFailed(f"{call.route.method} {self.base_url}{call.url}: {exc!r}") from exc
            if response.is_success:
                return response
            if attempt < self.max_retries and retry_after_status(call.route, response.status_code):
                response.close()
                time.sleep(retry_delay(attempt, response.headers))
                attempt += 1
                continue
            response.read()
            response.close()
            raise error_from_response(response)

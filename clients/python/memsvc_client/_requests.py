"""What each client method sends: path, query, body and headers, built once here for both clients, so that the
sync and async twins differ only in how they wait."""

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from memsvc_client._routes import ROUTES, Route
from memsvc_client._version import __version__
from memsvc_client.errors import REQUEST_ID_HEADER
from memsvc_client.models import ExportRecord, Message, NewMemory

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 2
NDJSON = "application/x-ndjson"

Id = uuid.UUID | str


class NotGiven:
    """Marks an argument left out, where None would mean something (PATCH sends None as null)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


def base_url_from(given: str | None) -> str:
    return given or os.environ.get("MEMSVC_URL") or DEFAULT_BASE_URL


def api_key_from(given: str | None) -> str | None:
    return given or os.environ.get("MEMSVC_API_KEY") or None


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": f"memsvc-client/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _path_segment(value: str) -> str:
    """`value` as one path segment: "/" and every other reserved character percent-encoded, and "." too, so that
    a session id such as ".." is not read as a dot segment and normalised away on the way."""
    return quote(value, safe="").replace(".", "%2E")


@dataclass(frozen=True)
class Call:
    """One request, ready to send as many times as retries need. A write's Idempotency-Key and the call's
    X-Request-ID are chosen here, once, so that every retry carries the same key, and the server's logs and an
    error's `request_id` name the call, not one attempt."""

    route: Route
    path_params: Mapping[str, str] = field(default_factory=dict)
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    idempotency_key: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def url(self) -> str:
        return self.route.path.format(**{name: _path_segment(value) for name, value in self.path_params.items()})

    def headers(self) -> dict[str, str]:
        headers = {REQUEST_ID_HEADER: self.request_id}
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return headers

    def with_cursor(self, cursor: str) -> "Call":
        params = (*((k, v) for k, v in self.params if k != "cursor"), ("cursor", cursor))
        return replace(self, params=params, request_id=uuid.uuid4().hex)  # a new request: its own id


def _call(
    operation_id: str,
    path_params: Mapping[str, Id] | None = None,
    params: list[tuple[str, str]] | None = None,
    *,
    json: Any = None,
    content: bytes | None = None,
    content_type: str | None = None,
    idempotency_key: str | None = None,
) -> Call:
    route = ROUTES[operation_id]
    if route.method != "GET" and idempotency_key is None:
        idempotency_key = str(uuid.uuid4())
    return Call(
        route,
        {name: str(value) for name, value in (path_params or {}).items()},
        tuple(params or ()),
        json=json,
        content=content,
        content_type=content_type,
        idempotency_key=idempotency_key,
    )


def _query(**values: Any) -> list[tuple[str, str]]:
    """Query parameters, leaving out None; a sequence repeats its name, a mapping is sent as JSON."""
    params: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            params.append((name, json.dumps(to_jsonable_python(value))))
        elif isinstance(value, list | tuple):
            params.extend((name, _text(item)) for item in value)
        else:
            params.append((name, _text(value)))
    return params


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _body(**values: Any) -> dict[str, Any]:
    """A JSON body of the given values, leaving out None (the server's default applies)."""
    return {name: _jsonable(value) for name, value in values.items() if value is not None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        # None fields are left out like None arguments; FusionWeights has none, so all four weights are sent.
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return to_jsonable_python(value)


# Memories


def memories_add(memories: Sequence[NewMemory | Mapping[str, Any]], idempotency_key: str | None) -> Call:
    return _call("memories-create", json=_body(memories=list(memories)), idempotency_key=idempotency_key)


def memories_list(
    *,
    user_id: str | None,
    agent_id: str | None,
    session_id: str | None,
    types: Sequence[str] | None,
    occurred_after: datetime | None,
    occurred_before: datetime | None,
    valid_at: datetime | None,
    metadata: Mapping[str, Any] | None,
    limit: int | None,
    cursor: str | None,
    order: str | None,
) -> Call:
    params = _query(
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        type=list(types) if types is not None else None,
        occurred_after=occurred_after,
        occurred_before=occurred_before,
        valid_at=valid_at,
        metadata=metadata,
        limit=limit,
        cursor=cursor,
        order=order,
    )
    return _call("memories-list", params=params)


def memories_get(memory_id: Id) -> Call:
    return _call("memories-get", {"memory_id": memory_id})


def memories_update(memory_id: Id, changes: Mapping[str, Any]) -> Call:
    # Only the fields given are sent: the server changes exactly those, and a None given is a null to store.
    body = {name: to_jsonable_python(value) for name, value in changes.items() if not isinstance(value, NotGiven)}
    return _call("memories-update", {"memory_id": memory_id}, json=body)


def memories_delete(memory_id: Id) -> Call:
    return _call("memories-delete", {"memory_id": memory_id})


def memories_history(memory_id: Id) -> Call:
    return _call("memories-history", {"memory_id": memory_id})


def memories_forget(*, user_id: str | None, agent_id: str | None, session_id: str | None) -> Call:
    return _call("memories-forget", params=_query(user_id=user_id, agent_id=agent_id, session_id=session_id))


# Sessions


def sessions_add_messages(
    session_id: str,
    *,
    messages: Sequence[Message | Mapping[str, Any]],
    user_id: str | None,
    agent_id: str | None,
    idempotency_key: str | None,
) -> Call:
    body = _body(user_id=user_id, agent_id=agent_id, messages=list(messages))
    return _call("sessions-append_messages", {"session_id": session_id}, json=body, idempotency_key=idempotency_key)


def sessions_list_messages(session_id: str, *, limit: int | None, cursor: str | None) -> Call:
    return _call("sessions-list_messages", {"session_id": session_id}, _query(limit=limit, cursor=cursor))


# Search, jobs, consolidation, portability


def search(options: Mapping[str, Any]) -> Call:
    return _call("search-search", json=_body(**options))


def jobs_get(job_id: Id) -> Call:
    return _call("jobs-get", {"job_id": job_id})


def jobs_list(*, kind: str | None, status: str | None, limit: int | None) -> Call:
    return _call("jobs-list", params=_query(kind=kind, status=status, limit=limit))


def consolidate(*, user_id: str | None, agent_id: str | None, session_id: str | None, backend: str | None) -> Call:
    return _call(
        "consolidation-consolidate",
        json=_body(user_id=user_id, agent_id=agent_id, session_id=session_id, backend=backend),
    )


def export(*, user_id: str | None, agent_id: str | None, session_id: str | None, types: Sequence[str] | None) -> Call:
    params = _query(
        user_id=user_id, agent_id=agent_id, session_id=session_id, type=list(types) if types is not None else None
    )
    return _call("portability-export", params=params)


def import_records(records: Iterable[ExportRecord | Mapping[str, Any]]) -> Call:
    lines = [
        # exclude_unset: a record read from an export is written back exactly as it came, unknown fields included.
        record.model_dump_json(exclude_unset=True)
        if isinstance(record, ExportRecord)
        else json.dumps(to_jsonable_python(record))
        for record in records
    ]
    return _call("portability-import", content="".join(line + "\n" for line in lines).encode(), content_type=NDJSON)


# Admin


def admin_create_tenant(*, name: str, storage_profile: str | None) -> Call:
    return _call("admin-create_tenant", json=_body(name=name, storage_profile=storage_profile))


def admin_list_tenants() -> Call:
    return _call("admin-list_tenants")


def admin_create_key(tenant_id: Id, *, name: str | None) -> Call:
    return _call("admin-create_key", {"tenant_id": tenant_id}, json=_body(name=name))


def admin_revoke_key(key_id: Id) -> Call:
    return _call("admin-revoke_key", {"key_id": key_id})


def admin_list_keys(tenant_id: Id) -> Call:
    return _call("admin-list_keys", {"tenant_id": tenant_id})


def admin_get_rate_limit(tenant_id: Id) -> Call:
    return _call("admin-get_rate_limit", {"tenant_id": tenant_id})


def admin_set_rate_limit(tenant_id: Id, *, requests_per_minute: int | None) -> Call:
    # The body always names the limit: null is meaningful (back to the service default).
    return _call("admin-set_rate_limit", {"tenant_id": tenant_id}, json={"requests_per_minute": requests_per_minute})


def admin_list_audit(
    *,
    tenant_id: Id | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    cursor: str | None,
) -> Call:
    params = _query(tenant_id=tenant_id, action=action, since=since, until=until, limit=limit, cursor=cursor)
    return _call("admin-list_audit", params=params)


def admin_list_storage_profiles() -> Call:
    return _call("admin-list_storage_profiles")


def admin_get_storage_profile(tenant_id: Id) -> Call:
    return _call("admin-get_storage_profile", {"tenant_id": tenant_id})


def admin_set_storage_profile(tenant_id: Id, *, profile: str | None) -> Call:
    # The body always names the profile: null is meaningful (back to the service default).
    return _call("admin-set_storage_profile", {"tenant_id": tenant_id}, json={"profile": profile})


def admin_get_search_defaults(tenant_id: Id) -> Call:
    return _call("admin-get_search_defaults", {"tenant_id": tenant_id})


def admin_set_search_defaults(tenant_id: Id, defaults: Mapping[str, Any]) -> Call:
    return _call("admin-set_search_defaults", {"tenant_id": tenant_id}, json=_body(**defaults))


# Health


def health_live() -> Call:
    return _call("health-live")


def health_ready() -> Call:
    return _call("health-ready")

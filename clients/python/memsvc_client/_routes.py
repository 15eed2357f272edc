"""Every route of the service, by OpenAPI operation id, with the client method that calls it.

`replayable`: sending the request again after it may already have reached the server does no harm (reads,
PUTs, writes the server deduplicates by Idempotency-Key, imports that skip what exists). A call that is not
replayable is retried only when the request certainly never arrived or was refused unprocessed (see _retry)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    operation_id: str
    method: str
    path: str
    client_method: str
    replayable: bool


ROUTES: dict[str, Route] = {
    route.operation_id: route
    for route in (
        Route("health-live", "GET", "/healthz", "health.live", True),
        Route("health-ready", "GET", "/readyz", "health.ready", True),
        Route("memories-create", "POST", "/v1/memories", "memories.add", True),
        Route("memories-list", "GET", "/v1/memories", "memories.list", True),
        Route("memories-get", "GET", "/v1/memories/{memory_id}", "memories.get", True),
        # Each PATCH is a new version: a replay would add one more.
        Route("memories-update", "PATCH", "/v1/memories/{memory_id}", "memories.update", False),
        # A replay after the first delete landed would answer 404.
        Route("memories-delete", "DELETE", "/v1/memories/{memory_id}", "memories.delete", False),
        Route("memories-history", "GET", "/v1/memories/{memory_id}/history", "memories.history", True),
        Route("memories-forget", "DELETE", "/v1/memories", "memories.forget", True),
        Route("sessions-append_messages", "POST", "/v1/sessions/{session_id}/messages", "sessions.add_messages", True),
        Route("sessions-list_messages", "GET", "/v1/sessions/{session_id}/messages", "sessions.list_messages", True),
        Route("search-search", "POST", "/v1/search", "search", True),
        Route("jobs-get", "GET", "/v1/jobs/{job_id}", "jobs.get", True),
        Route("jobs-list", "GET", "/v1/jobs", "jobs.list", True),
        # Consolidation is idempotent on the server: a second job finds the history consolidated and writes nothing.
        Route("consolidation-consolidate", "POST", "/v1/consolidate", "consolidate", True),
        Route("portability-export", "GET", "/v1/export", "export", True),
        Route("portability-import", "POST", "/v1/import", "import_records", True),
        # A replay would meet its own tenant name (409).
        Route("admin-create_tenant", "POST", "/v1/tenants", "admin.create_tenant", False),
        Route("admin-list_tenants", "GET", "/v1/tenants", "admin.list_tenants", True),
        # A replay would create a second key.
        Route("admin-create_key", "POST", "/v1/tenants/{tenant_id}/keys", "admin.create_key", False),
        Route("admin-list_keys", "GET", "/v1/tenants/{tenant_id}/keys", "admin.list_keys", True),
        Route("admin-revoke_key", "DELETE", "/v1/keys/{key_id}", "admin.revoke_key", True),
        Route("admin-get_rate_limit", "GET", "/v1/tenants/{tenant_id}/rate-limit", "admin.get_rate_limit", True),
        Route("admin-set_rate_limit", "PUT", "/v1/tenants/{tenant_id}/rate-limit", "admin.set_rate_limit", True),
        Route("admin-list_audit", "GET", "/v1/audit", "admin.list_audit", True),
        Route("admin-list_storage_profiles", "GET", "/v1/storage-profiles", "admin.list_storage_profiles", True),
        Route(
            "admin-get_storage_profile",
            "GET",
            "/v1/tenants/{tenant_id}/storage-profile",
            "admin.get_storage_profile",
            True,
        ),
        Route(
            "admin-set_storage_profile",
            "PUT",
            "/v1/tenants/{tenant_id}/storage-profile",
            "admin.set_storage_profile",
            True,
        ),
        Route(
            "admin-get_search_defaults",
            "GET",
            "/v1/tenants/{tenant_id}/search-defaults",
            "admin.get_search_defaults",
            True,
        ),
        Route(
            "admin-set_search_defaults",
            "PUT",
            "/v1/tenants/{tenant_id}/search-defaults",
            "admin.set_search_defaults",
            True,
        ),
    )
}

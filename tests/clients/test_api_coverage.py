"""The SDK covers the service's whole API: every operation the app serves has a client method calling its route,
the sync and async twins have identical signatures, and requests and models carry every field the server's
schemas define. A route or field added to the server without the SDK fails here."""

import inspect
from typing import Any

import pytest
from memsvc_client import AsyncMemoryClient, MemoryClient, models
from memsvc_client._routes import ROUTES

from memsvc.portability.schemas import ExportRecord as ServerExportRecord
from tests.clients.conftest import AppFactory

RESOURCES = ("memories", "sessions", "jobs", "admin", "health")


@pytest.fixture(scope="module")
def openapi(make_app: AppFactory) -> dict[str, Any]:
    return make_app().openapi()


def operations(openapi: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (method.upper(), path)
        for path, methods in openapi["paths"].items()
        for method, op in methods.items()
    }


def resolve(client: object, dotted: str) -> Any:
    target = client
    for name in dotted.split("."):
        target = getattr(target, name)
    return target


def public_methods(owner: object) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(owner, callable)
        if not name.startswith("_") and name not in RESOURCES
    }


def component(openapi: dict[str, Any], name: str) -> set[str]:
    return set(openapi["components"]["schemas"][name]["properties"])


def keyword_params(method: Any, *leave_out: str) -> set[str]:
    return {name for name in inspect.signature(method).parameters if name not in leave_out}


def query_params(openapi: dict[str, Any], path: str, method: str = "get") -> set[str]:
    return {p["name"] for p in openapi["paths"][path][method].get("parameters", []) if p["in"] == "query"}


def test_every_operation_of_the_service_has_a_client_method_on_its_route(openapi):
    assert {op: (r.method, r.path) for op, r in ROUTES.items()} == operations(openapi)
    sync, concurrent = MemoryClient(base_url="http://127.0.0.1:9"), AsyncMemoryClient(base_url="http://127.0.0.1:9")
    for route in ROUTES.values():
        assert callable(resolve(sync, route.client_method)), route
        assert callable(resolve(concurrent, route.client_method)), route
    sync.close()


def test_the_twins_have_the_same_methods_with_identical_keyword_only_signatures():
    sync, concurrent = MemoryClient(base_url="http://127.0.0.1:9"), AsyncMemoryClient(base_url="http://127.0.0.1:9")
    owners = [(sync, concurrent)] + [(getattr(sync, r), getattr(concurrent, r)) for r in RESOURCES]
    for sync_owner, async_owner in owners:
        sync_methods, async_methods = public_methods(sync_owner), public_methods(async_owner)
        assert sync_methods.keys() == async_methods.keys()
        for name, method in sync_methods.items():
            twin = async_methods[name]
            assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name
            assert inspect.signature(method).parameters == inspect.signature(twin).parameters, name
            params = list(inspect.signature(method).parameters.values())
            # Only the id of the thing acted on may be positional; every option is keyword-only.
            positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
            assert len(positional) <= 1 and all(p.endswith("_id") for p in positional), name
    assert inspect.signature(MemoryClient).parameters == inspect.signature(AsyncMemoryClient).parameters
    sync.close()


def test_every_request_field_and_query_parameter_is_an_argument(openapi):
    client = MemoryClient(base_url="http://127.0.0.1:9")
    assert keyword_params(client.search) == component(openapi, "SearchRequest")
    assert keyword_params(client.memories.update, "memory_id") == component(openapi, "MemoryUpdate")
    assert keyword_params(client.admin.set_search_defaults, "tenant_id") == component(openapi, "SearchDefaults")
    assert keyword_params(client.admin.set_storage_profile, "tenant_id") == component(openapi, "StorageProfileChoice")
    assert keyword_params(client.admin.create_tenant) == component(openapi, "TenantCreate")
    assert keyword_params(client.admin.create_key, "tenant_id") == component(openapi, "KeyCreate")
    assert keyword_params(client.admin.set_rate_limit, "tenant_id") == component(openapi, "RateLimitChoice")
    assert keyword_params(client.admin.list_audit) == query_params(openapi, "/v1/audit")
    assert keyword_params(client.consolidate) == component(openapi, "ConsolidateRequest")
    assert keyword_params(client.sessions.add_messages, "session_id", "idempotency_key") == component(
        openapi, "MessagesAppend"
    )
    assert keyword_params(client.memories.add, "idempotency_key") == component(openapi, "MemoryBatchCreate")
    assert set(models.NewMemory.model_fields) == component(openapi, "MemoryCreate")
    assert set(models.Message.model_fields) == component(openapi, "Message")
    assert set(models.FusionWeights.model_fields) == component(openapi, "FusionWeights")

    # `types` is the repeated `type` query parameter: plural like search's `types`.
    def as_query(names: set[str]) -> set[str]:
        return {"type" if name == "types" else name for name in names}

    assert as_query(keyword_params(client.memories.list)) == query_params(openapi, "/v1/memories")
    assert keyword_params(client.memories.forget) == query_params(openapi, "/v1/memories", "delete")
    assert as_query(keyword_params(client.export)) == query_params(openapi, "/v1/export")
    assert keyword_params(client.jobs.list) == query_params(openapi, "/v1/jobs")
    assert keyword_params(client.sessions.list_messages, "session_id") == query_params(
        openapi, "/v1/sessions/{session_id}/messages"
    )
    client.close()


@pytest.mark.parametrize(
    ("model", "schema"),
    [
        (models.Memory, "MemoryPublic"),
        (models.MemoryList, "MemoryList"),
        (models.WriteResult, "WriteResult"),
        (models.WriteResponse, "WriteResponse"),
        (models.MemoryVersion, "MemoryVersionPublic"),
        (models.MemoryHistory, "MemoryHistory"),
        (models.ForgetReport, "ForgetReport"),
        (models.ForgetScope, "ForgetScope"),
        (models.ItemError, "ItemError"),
        (models.EmbeddingSpace, "EmbeddingSpacePublic"),
        (models.Job, "JobPublic"),
        (models.JobList, "JobList"),
        (models.HitScores, "HitScores"),
        (models.SearchHit, "SearchHit"),
        (models.TimeWindow, "TimeWindow"),
        (models.SearchResponse, "SearchResponse"),
        (models.SearchDefaults, "SearchDefaults"),
        (models.ConsolidateAccepted, "ConsolidateAccepted"),
        (models.ImportReport, "ImportReport"),
        (models.Tenant, "TenantPublic"),
        (models.TenantList, "TenantList"),
        (models.KeyCreated, "KeyCreated"),
        (models.KeyPublic, "KeyPublic"),
        (models.KeyList, "KeyList"),
        (models.TenantRateLimit, "TenantRateLimit"),
        (models.AuditEntry, "AuditEntryPublic"),
        (models.AuditList, "AuditList"),
        (models.TenantStorage, "TenantStorage"),
        (models.StorageProfileInfo, "StorageProfileInfo"),
        (models.StorageProfileList, "StorageProfileList"),
        (models.Health, "Health"),
        (models.Readiness, "Readiness"),
        (models.FieldError, "FieldError"),
        (models.Problem, "Problem"),
    ],
)
def test_response_models_have_the_fields_of_the_server_schemas(openapi, model, schema):
    assert set(model.model_fields) == component(openapi, schema)


def test_export_records_have_the_fields_of_the_server_export_lines():
    # Export is NDJSON, outside the OpenAPI components: compare with the server's model itself.
    assert set(models.ExportRecord.model_fields) == set(ServerExportRecord.model_fields)

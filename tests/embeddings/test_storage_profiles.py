"""Storage profiles through the API: what each stores, choosing one, changing it online (search stays on the old
storage until the new one is complete, and a storage change needs no model), fitted profiles (PCA, int8) with
their versioned fits, export/import of byte codes, and bad input."""

import json
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from memsvc.app import create_app
from memsvc.core.settings import Settings
from memsvc.embeddings import service as embeddings
from tests.conftest import ADMIN, TenantHandle, add_memories, assert_problem, create_tenant, wait_for_job
from tests.workers.conftest import UNREACHABLE_BROKER, owner_rows

PEOPLE = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jade", "Kofi", "Lena"]
THINGS = [
    "grows tomatoes on the balcony",
    "is learning the cello",
    "cycles to work every day",
    "is allergic to peanuts",
    "collects vintage postcards",
    "runs a book club on Thursdays",
    "is training for a marathon",
    "keeps bees in the garden",
    "speaks fluent Portuguese",
    "repairs old radios",
]
# 120 distinct facts: enough to fit PCA to 96 dimensions (25% of 384) and int8 scales.
FACTS = [f"{person} {thing}." for person in PEOPLE for thing in THINGS]


def search(client: TestClient, tenant: TenantHandle, query: str, **extra: object) -> list[dict]:
    response = client.post("/v1/search", json={"query": query, "user_id": "u1", **extra}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["hits"])


def set_profile(client: TestClient, tenant: TenantHandle, profile: str | None) -> dict:
    response = client.put(f"/v1/tenants/{tenant.id}/storage-profile", json={"profile": profile}, headers=ADMIN)
    assert response.status_code == 202, response.text
    return dict(response.json())


def stored(database_url: str, tenant: TenantHandle) -> list[tuple]:
    """(storage, which column holds the value, its size in bytes) of each stored vector of the tenant."""
    return owner_rows(
        database_url,
        "SELECT s.storage, CASE WHEN e.codes IS NOT NULL THEN 'codes' WHEN e.embedding IS NOT NULL THEN 'halfvec' "
        "ELSE 'vector' END, COALESCE(octet_length(e.codes), 0) FROM memory_embeddings e "
        "JOIN embedding_spaces s ON s.id = e.space_id WHERE e.tenant_id = :t ORDER BY e.memory_id",
        t=tenant.id,
    )


def test_catalog_lists_profiles_with_their_bytes_per_memory(client, tenant):
    response = client.get("/v1/storage-profiles", headers=ADMIN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_id"], body["dim"], body["default"]) == ("all-MiniLM-L6-v2", 384, "fp8-e4m3-x16")
    profiles = {p["name"]: p for p in body["data"]}
    assert profiles["float32"]["bytes_per_memory"] == 1536
    assert profiles["float16"]["bytes_per_memory"] == 768
    # Byte codes carry their sign bits first: the binary candidate index costs no extra bytes.
    assert (profiles["fp8-e4m3-x16"]["bytes_per_memory"], profiles["fp8-e4m3-x16"]["index"]) == (384, "binary")
    assert profiles["fp8-e4m3-x16"]["compression"] == 4.0
    assert profiles["binary"]["bytes_per_memory"] == 48 and profiles["binary"]["oversample"] is None
    assert profiles["pca50-fp8-e4m3-x16"]["bytes_per_memory"] == 192 and profiles["pca50-fp8-e4m3-x16"]["fitted"]
    assert profiles["pca50-fp8-e4m3-x16"]["compression"] == 8.0
    assert_problem(client.get("/v1/storage-profiles", headers=tenant.headers), 403)


@pytest.mark.parametrize("name", ["float12", "float16-x8", "pca0-fp8", "pca100-fp8", "fp8-x0", "fp8-x65", "x" * 41])
def test_an_invalid_profile_name_is_a_422_problem(client, tenant, name):
    body = assert_problem(
        client.post("/v1/tenants", json={"name": "p-" + uuid.uuid4().hex, "storage_profile": name}, headers=ADMIN), 422
    )
    assert "profile" in json.dumps(body).lower() or "40 characters" in body["detail"]
    assert_problem(client.put(f"/v1/tenants/{tenant.id}/storage-profile", json={"profile": name}, headers=ADMIN), 422)


def test_a_fitted_profile_cannot_start_a_tenant_or_serve_a_tenant_with_too_few_memories(client, tenant):
    refused = client.post(
        "/v1/tenants", json={"name": "p-" + uuid.uuid4().hex, "storage_profile": "pca50-fp8"}, headers=ADMIN
    )
    assert "write memories, then change its profile" in assert_problem(refused, 409)["detail"]
    add_memories(client, tenant, *({"content": fact} for fact in FACTS[:5]))

    too_few = client.put(f"/v1/tenants/{tenant.id}/storage-profile", json={"profile": "int8"}, headers=ADMIN)

    assert "needs at least 256 embedded memories; this tenant has 5" in assert_problem(too_few, 409)["detail"]
    state = client.get(f"/v1/tenants/{tenant.id}/storage-profile", headers=ADMIN).json()
    assert (state["profile"], state["chosen"], state["searching"], state["moving_to"]) == (
        "fp8-e4m3-x16",
        False,
        "fp8-e4m3",
        None,
    )


@pytest.mark.parametrize(
    ("profile", "column", "size"),
    [
        ("float32", "vector", 0),
        ("float16", "halfvec", 0),
        ("fp8", "codes", 384),
        ("fp8-e5m2", "codes", 384),
        ("binary", "codes", 48),
    ],
)
def test_each_profile_stores_its_own_encoding(client, database_url, profile, column, size):
    tenant = create_tenant(client, storage_profile=profile)
    add_memories(client, tenant, *({"content": fact} for fact in FACTS[:4]))

    rows = stored(database_url, tenant)

    storage = "fp8-e4m3" if profile == "fp8" else profile
    assert rows == [(storage, column, size)] * 4
    assert search(client, tenant, "who is allergic to peanuts", top_k=1)[0]["memory"]["content"] == FACTS[3]


@pytest.fixture
def parked_client(settings, database_url, embedder) -> Iterator[TestClient]:
    """An API whose jobs are accepted but never run (its broker is unreachable): a change stays in progress."""
    app = create_app(settings.model_copy(update={"broker_url": UNREACHABLE_BROKER}), database_url, embedder=embedder)
    with TestClient(app, raise_server_exceptions=False) as parked:
        yield parked


def _no_model(_space: object) -> object:
    raise AssertionError("a storage change of the same model must not run the model")


def test_online_change_searches_the_old_storage_until_the_new_one_is_complete(client, parked_client, database_url):
    tenant = create_tenant(client, storage_profile="float16")
    add_memories(client, tenant, *({"content": fact} for fact in FACTS[:30]))
    question = "who keeps bees"
    before = [h["memory"]["id"] for h in search(client, tenant, question, top_k=5)]

    change = set_profile(parked_client, tenant, None)  # back to following the service default (fp8)

    assert (change["outcome"], change["profile"], change["chosen"]) == ("reencoding", "fp8-e4m3-x16", False)
    assert (change["searching"], change["moving_to"]) == ("float16", "fp8-e4m3")
    # Meanwhile search answers from the float16 vectors, unchanged.
    assert [h["memory"]["id"] for h in search(parked_client, tenant, question, top_k=5)] == before
    assert {row[0] for row in stored(database_url, tenant)} == {"float16"}

    # The job re-encodes the stored float16 vectors: no model call (the embedder given here would fail).
    factory = parked_client.app.state.session_factory
    written = embeddings.run_job(factory, uuid.UUID(tenant.id), uuid.UUID(change["job_id"]), _no_model, 8)

    assert written == 30
    state = client.get(f"/v1/tenants/{tenant.id}/storage-profile", headers=ADMIN).json()
    assert (state["searching"], state["moving_to"]) == ("fp8-e4m3", None)
    assert stored(database_url, tenant) == [("fp8-e4m3", "codes", 384)] * 30  # the float16 vectors are gone
    after = search(client, tenant, question, top_k=5)
    assert after[0]["memory"]["id"] == before[0]
    assert len(set(before) & {h["memory"]["id"] for h in after}) >= 4
    job = client.get(f"/v1/jobs/{change['job_id']}", headers=tenant.headers).json()
    assert (job["kind"], job["status"], job["embedding_space"]["storage"]) == ("reembed", "done", "fp8-e4m3")


def test_changing_only_the_oversampling_needs_no_reencoding(client, tenant):
    add_memories(client, tenant, *({"content": fact} for fact in FACTS[:3]))  # on the default, fp8

    change = set_profile(client, tenant, "fp8-x4")

    assert (change["outcome"], change["job_id"], change["profile"]) == ("unchanged", None, "fp8-e4m3-x4")
    assert len(search(client, tenant, "who repairs radios", top_k=3, oversample=1)) == 3
    assert_problem(client.post("/v1/search", json={"query": "x", "oversample": 65}, headers=tenant.headers), 422)


@pytest.fixture
def fitting_client(settings, database_url, embedder) -> Iterator[TestClient]:
    """An API that lets fitted profiles start from 16 embedded memories (the default asks for 256)."""
    app = create_app(settings.model_copy(update={"profile_fit_min_sample": 16}), database_url, embedder=embedder)
    with TestClient(app, raise_server_exceptions=False) as fitting:
        yield fitting


def fits(database_url: str, tenant: TenantHandle) -> list[tuple]:
    return owner_rows(
        database_url,
        "SELECT s.storage, f.version, f.sample_size, octet_length(f.pca_components) > 0, f.int8_scales IS NOT NULL "
        "FROM embedding_fits f JOIN embedding_spaces s ON s.id = f.space_id WHERE f.tenant_id = :t "
        "ORDER BY f.created_at",
        t=tenant.id,
    )


def _move_and_wait(client: TestClient, tenant: TenantHandle, profile: str) -> None:
    change = set_profile(client, tenant, profile)
    assert change["outcome"] == "reencoding", change
    wait_for_job(client, tenant, change["job_id"])


def test_fitted_profiles_are_fitted_on_the_tenant_and_refitted_when_it_comes_back(fitting_client, database_url):
    client = fitting_client
    tenant = create_tenant(client)
    add_memories(client, tenant, *({"content": fact} for fact in FACTS))

    _move_and_wait(client, tenant, "pca25-fp8")

    # PCA to 96 of 384 dimensions, float8: 96 bytes a memory, 16x smaller than float32.
    assert stored(database_url, tenant) == [("pca25-fp8-e4m3", "codes", 96)] * len(FACTS)
    assert fits(database_url, tenant) == [("pca25-fp8-e4m3", 1, len(FACTS), True, False)]
    hits = search(client, tenant, "which of them keeps bees, Hana?", top_k=3)
    assert "Hana keeps bees in the garden." in [h["memory"]["content"] for h in hits]

    _move_and_wait(client, tenant, "int8")
    assert stored(database_url, tenant) == [("int8", "codes", 384)] * len(FACTS)
    hits = search(client, tenant, "Does Goran speak Portuguese?", top_k=1)
    assert hits[0]["memory"]["content"] == "Goran speaks fluent Portuguese."

    _move_and_wait(client, tenant, "pca25-fp8")  # back: fitted anew on what the tenant stores now
    assert [row[:2] for row in fits(database_url, tenant)] == [
        ("pca25-fp8-e4m3", 1),
        ("int8", 1),
        ("pca25-fp8-e4m3", 2),
    ]
    assert stored(database_url, tenant) == [("pca25-fp8-e4m3", "codes", 96)] * len(FACTS)

    # New writes are encoded with the tenant's fit straight away.
    [new_id] = add_memories(client, tenant, {"content": "Mira sails a small boat on the lake every weekend."})
    hits = search(client, tenant, "who goes sailing", top_k=1)
    assert hits[0]["memory"]["id"] == new_id


def test_the_default_profile_must_need_no_fit_and_is_stored_by_its_canonical_name():
    with pytest.raises(ValidationError, match="fitted on each tenant's own embeddings"):
        Settings(storage_profile="pca50-fp8")
    with pytest.raises(ValidationError, match="unknown storage profile"):
        Settings(storage_profile="float12")
    assert Settings(storage_profile="fp8").storage_profile == "fp8-e4m3-x16"


def test_export_of_byte_codes_carries_their_decoded_values_and_imports_without_the_model(client, embedder):
    source = create_tenant(client, storage_profile="fp8")
    add_memories(client, source, *({"content": fact} for fact in FACTS[:4]))
    lines = [json.loads(line) for line in client.get("/v1/export", headers=source.headers).text.splitlines()]
    exact = embedder.embed([line["content"] for line in lines])
    for line, vector in zip(lines, exact, strict=True):
        decoded = np.asarray(line["embedding"])
        assert decoded.shape == (384,)
        assert float(decoded @ vector / np.linalg.norm(decoded)) > 0.995  # float8 keeps the direction

    target = create_tenant(client, storage_profile="float16")
    body = "\n".join(json.dumps({**line, "id": str(uuid.uuid4())}) for line in lines).encode()
    report = client.post("/v1/import", content=body, headers={**target.headers, "Content-Type": "application/x-ndjson"})

    assert report.status_code == 201, report.text
    assert (report.json()["imported"], report.json()["reembedded"]) == (4, 0)
    hits = search(client, target, "who cycles to work", top_k=1)
    assert (hits[0]["memory"]["content"], hits[0]["matched_by"][0]) == (FACTS[2], "dense")


def test_an_imported_embedding_with_nan_or_inf_is_a_422_problem(client, tenant):
    add_memories(client, tenant, {"content": FACTS[0]})
    [line] = [json.loads(text) for text in client.get("/v1/export", headers=tenant.headers).text.splitlines()]
    headers = {**tenant.headers, "Content-Type": "application/x-ndjson"}
    for bad in (float("nan"), float("inf")):
        broken = {**line, "id": str(uuid.uuid4()), "embedding": [bad] + line["embedding"][1:]}
        body = json.dumps(broken).encode()  # Python writes NaN and Infinity, as some exporters do

        response = client.post("/v1/import", content=body, headers=headers)

        assert "embedding has NaN or infinite values" in assert_problem(response, 422)["detail"]


def test_a_filtered_search_on_byte_codes_still_fills_top_k_at_one_percent_selectivity(client):
    tenant = create_tenant(client, storage_profile="fp8")
    common = [{"content": f"{fact} (note {i})", "user_id": "crowd"} for i, fact in enumerate(FACTS * 4)]
    rare = [{"content": fact, "user_id": "rare"} for fact in FACTS[:5]]
    add_memories(client, tenant, *common, *rare)  # 485 memories, 5 (1%) in the filtered scope

    hits = search(client, tenant, "hobbies", user_id="rare", top_k=5)

    assert sorted(h["memory"]["content"] for h in hits) == sorted(FACTS[:5])


def test_a_restart_keeps_each_tenant_on_its_chosen_profile(client, settings, database_url, embedder):
    chosen = create_tenant(client, storage_profile="binary")
    add_memories(client, chosen, {"content": FACTS[0]})

    with TestClient(create_app(settings, database_url, embedder=embedder)) as restarted:
        state = restarted.get(f"/v1/tenants/{chosen.id}/storage-profile", headers=ADMIN).json()

    assert (state["profile"], state["chosen"], state["searching"], state["moving_to"]) == (
        "binary",
        True,
        "binary",
        None,
    )
    assert client.get("/v1/jobs", params={"kind": "reembed"}, headers=chosen.headers).json()["data"] == []

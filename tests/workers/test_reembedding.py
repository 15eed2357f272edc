"""A model change without downtime: the API is reconfigured to a second model (the same weights truncated to
256 dimensions, under a new name); a real worker re-embeds every memory in the background while searches keep
answering from the old vectors, then search switches, with no dimension mismatch at any point."""

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from memsvc.app import create_app
from memsvc.core.migrate import upgrade_to_head
from tests.conftest import _fresh_database, create_tenant, wait_for_job
from tests.workers.conftest import WorkerProcess, owner_rows, write

pytestmark = pytest.mark.slow

OLD_MODEL, NEW_MODEL = "all-MiniLM-L6-v2", "all-MiniLM-L6-v2-256d"
FACTS = [f"Reading list item {n}: a book about topic number {n}." for n in range(400)]
NEEDLE = "Olga keeps her spare house key under the blue flowerpot."


def search(client: TestClient, tenant, query: str) -> list[dict]:
    response = client.post("/v1/search", json={"query": query, "user_id": "u1", "top_k": 5}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["hits"])


def vectors_by_space(database_url: str, tenant_id: str) -> dict[tuple[str, int], int]:
    """Stored vectors per (model, dimension) for the tenant, read from what is stored: the default storage's float8
    codes take one byte per dimension."""
    rows = owner_rows(
        database_url,
        "SELECT s.model_id, COALESCE(octet_length(e.codes), vector_dims(e.embedding)), count(*) "
        "FROM memory_embeddings e "
        "JOIN embedding_spaces s ON s.id = e.space_id WHERE e.tenant_id = :t GROUP BY 1, 2",
        t=tenant_id,
    )
    return {(model, dims): int(n) for model, dims, n in rows}


def test_model_change_reembeds_in_the_background_while_search_keeps_answering(
    pg_server_url, settings, embedder, broker_url, tmp_path: Path
):
    database_url = _fresh_database(pg_server_url)
    upgrade_to_head(database_url)
    old = settings.model_copy(update={"database_url": database_url})
    with TestClient(create_app(old, database_url, embedder=embedder)) as client:
        tenant = create_tenant(client)
        answer = write(client, tenant, [NEEDLE, *FACTS])
        wait_for_job(client, tenant, answer["job_id"], timeout=120)
    needle_id = answer["results"][0]["id"]
    assert vectors_by_space(database_url, tenant.id) == {(OLD_MODEL, 384): 401}

    new = old.model_copy(update={"embedding_model_id": NEW_MODEL, "embedding_dim": 256, "broker_url": broker_url})
    with TestClient(create_app(new, database_url)) as client:
        [job] = client.get("/v1/jobs", params={"kind": "reembed"}, headers=tenant.headers).json()["data"]
        assert job["status"] == "queued" and job["embedding_space"] == {
            "model_id": NEW_MODEL,
            "dim": 256,
            "storage": "fp8-e4m3",
        }
        assert (job["total"], job["done"], job["pending"]) == (401, 0, 401)
        # No worker yet: the old vectors answer, with the old model embedding the query.
        [hit, *_] = search(client, tenant, "where is the spare key")
        assert hit["memory"]["id"] == needle_id and hit["memory"]["embedding_model"] == OLD_MODEL
        # A write during the change is embedded into every space live when its job runs.
        during = write(client, tenant, ["Pavel's bicycle lock code is 3-1-4."])

        worker = WorkerProcess(
            database_url,
            broker_url,
            tmp_path / "worker.log",
            batch_size=8,
            extra_env={"MEMSVC_EMBEDDING_MODEL_ID": NEW_MODEL, "MEMSVC_EMBEDDING_DIM": "256"},
        )
        try:
            searched_mid_way, deadline = 0, time.monotonic() + 240
            while (job := client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json())["status"] != "done":
                assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
                [hit, *_] = search(client, tenant, "where is the spare key")
                assert hit["memory"]["id"] == needle_id and hit["matched_by"][0] == "dense"
                searched_mid_way += 0 < job["done"] < job["total"]

            assert searched_mid_way > 0, "no search ran while the re-embedding was part-way"
            assert job["total"] == job["done"] and job["done"] >= 401 and job["pending"] == job["failed"] == 0
            [hit, *_] = search(client, tenant, "where is the spare key")
            assert hit["memory"]["id"] == needle_id and hit["memory"]["embedding_model"] == NEW_MODEL
            wait_for_job(client, tenant, during["job_id"], timeout=120)
            [hit, *_] = search(client, tenant, "bicycle lock code")
            assert hit["memory"]["id"] == during["results"][0]["id"] and hit["matched_by"][0] == "dense"
        finally:
            worker.stop()
    # Every memory has exactly one vector, in the new space; the old ones are gone.
    assert vectors_by_space(database_url, tenant.id) == {(NEW_MODEL, 256): 402}

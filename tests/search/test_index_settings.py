"""The HNSW scan settings a search needs: the API's connections start with the default search's, so that search
sends no statement to set them; any other search sets its own for its transaction only."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from memsvc.search.repository import CONNECTION_SETTINGS
from tests.conftest import TenantHandle, add_memories, create_tenant


def _searched(client: TestClient, tenant: TenantHandle, top_k: int) -> list[str]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = client.app.state.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.post("/v1/search", json={"query": "hiking boots", "top_k": top_k}, headers=tenant.headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    assert response.json()["hits"], "the index scan found the memories"
    return [s for s in statements if "hnsw.ef_search" in s]


@pytest.fixture(scope="module")
def stored(client: TestClient) -> TenantHandle:
    tenant = create_tenant(client)
    add_memories(client, tenant, *[{"content": f"Bought hiking boots, pair number {i}"} for i in range(30)])
    return tenant


def test_connections_start_with_the_default_searchs_scan_settings(client: TestClient, stored: TenantHandle) -> None:
    with client.app.state.session_factory() as db:  # type: ignore[attr-defined]
        db.execute(text("SELECT '[1,2]'::vector"))  # pgvector's settings exist once its library is loaded
        for name, value in CONNECTION_SETTINGS.items():
            assert db.execute(text("SELECT current_setting(:name)"), {"name": name}).scalar() == value
    assert _searched(client, stored, top_k=10) == []


def test_a_wider_search_sets_its_own_for_its_transaction_only(client: TestClient, stored: TenantHandle) -> None:
    assert len(_searched(client, stored, top_k=50)) == 1  # 800 candidates: ef_search 1000
    with client.app.state.session_factory() as db:  # type: ignore[attr-defined]
        db.execute(text("SELECT '[1,2]'::vector"))
        # a pooled connection, maybe the one that searched: back to what it started with
        assert db.execute(text("SELECT current_setting('hnsw.ef_search')")).scalar() == "320"

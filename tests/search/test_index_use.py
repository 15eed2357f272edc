"""The dense ranking's statement, reused with new parameters for every search (memsvc.core.db.Statements), still
matches its space's partial HNSW index on every storage profile: the planner can order by the index only when
the statement has the index's own distance expression and a literal space id."""

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, text

from tests.conftest import TenantHandle, add_memories


def _nearest_statement(client: TestClient, tenant: TenantHandle) -> tuple[str, Any]:
    """The statement (and its parameters) a search across the whole store orders its candidates by distance with."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    engine = client.app.state.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(2):  # the second search reuses the statement the first one built
            response = client.post("/v1/search", json={"query": "hiking boots"}, headers=tenant.headers)
            assert response.status_code == 200, response.text
    finally:
        event.remove(engine, "before_cursor_execute", record)
    nearest = [(s, p) for s, p in sent if "memory_embeddings" in s and "ORDER BY" in s and "selected" not in s]
    assert len(nearest) == 2 and nearest[0][0] == nearest[1][0]
    return nearest[1]


def test_the_reused_dense_statement_is_answered_through_the_spaces_hnsw_index(
    client: TestClient, tenant: TenantHandle
) -> None:
    add_memories(client, tenant, *[{"content": f"Bought hiking boots, pair number {i}"} for i in range(20)])
    statement, parameters = _nearest_statement(client, tenant)
    with client.app.state.session_factory() as db:  # type: ignore[attr-defined]
        # A store this small is cheaper read whole and sorted: the plan shows whether the index can order it.
        db.execute(text("SET LOCAL enable_seqscan = off"))
        db.execute(text("SET LOCAL enable_sort = off"))
        plan = "\n".join(row[0] for row in db.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters))
    assert "ix_memory_embeddings_hnsw_" in plan, plan

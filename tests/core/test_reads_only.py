"""Routes that only read end their transaction with COMMIT (memsvc.core.deps.ReadsOnly). psycopg drops all of a
connection's prepared statements on ROLLBACK, so reads that always ended that way were parsed and planned again
on every request; ended with COMMIT, a statement run often enough is prepared once per connection."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from memsvc.app import create_app
from tests.conftest import TenantHandle, add_memories

REPEATS = 8  # psycopg prepares a statement on its fifth run on a connection


def _prepared_statements(engine: Engine) -> list[str]:
    """The statements prepared on the pool's idle connections (all checked out at once, so each is seen)."""
    held = [engine.connect() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
    try:
        return [
            statement
            for conn in held
            for statement in conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars()
        ]
    finally:
        for conn in held:
            conn.close()


def _prepared_after_repeats(
    new_app: Callable[[], Any], tenant: TenantHandle, method: str, path: str, **request: Any
) -> list[str]:
    """Send the same request REPEATS times to a fresh app, then read the statements its connections prepared."""
    app = new_app()
    with TestClient(app) as own:
        for _ in range(REPEATS):
            answer = own.request(method, path, headers=tenant.headers, **request)
            assert answer.status_code == 200, answer.text
        return _prepared_statements(app.state.engine)


def test_repeated_searches_and_listings_run_prepared_statements(
    client: TestClient, tenant: TenantHandle, settings: Any, database_url: str, embedder: Any
) -> None:
    add_memories(client, tenant, {"content": "Bought hiking boots for the Alps"}, {"content": "Sold the old tent"})

    def new_app() -> Any:
        return create_app(settings, database_url, embedder=embedder)

    searched = _prepared_after_repeats(
        new_app, tenant, "POST", "/v1/search", json={"query": "hiking boots", "user_id": "u1"}
    )
    listed = _prepared_after_repeats(new_app, tenant, "GET", "/v1/memories", params={"user_id": "u1"})

    assert any("memory_embeddings" in s for s in searched), searched  # the dense ranking's
    assert any("websearch_to_tsquery" in s for s in searched), searched  # the lexical ranking's
    assert any("api_keys" in s for s in searched), searched  # authentication's, in the same transaction
    assert any("FROM memories" in s for s in listed), listed

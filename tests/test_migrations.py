"""The schema comes only from Alembic, and memsvc refuses clearly to run where pgvector is missing or too old."""

import os
import subprocess
import sys

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, text

from memsvc.app import create_app
from memsvc.core.db import PgvectorMissing, require_pgvector, sqlalchemy_url
from memsvc.core.migrate import head_revision, upgrade_to_head
from memsvc.core.settings import Settings
from tests.conftest import _fresh_database

# Every machine of this project's kind runs a stock Postgres 15 without pgvector: the real "missing" case.
PLAIN_POSTGRES_URL = os.environ.get("MEMSVC_TEST_PLAIN_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def test_migrations_create_the_schema_with_rls_and_hnsw(pg_server_url: str) -> None:
    url = _fresh_database(pg_server_url)
    upgrade_to_head(url)
    upgrade_to_head(url)  # a second run is a no-op
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
        tables = set(inspect(conn).get_table_names())
        assert {"tenants", "api_keys", "memories", "memory_links", "memory_versions"} <= tables
        forced = dict(
            conn.execute(
                text(
                    "SELECT relname, relforcerowsecurity FROM pg_class WHERE relname IN "
                    "('memories', 'memory_links', 'memory_versions', 'idempotency_records')"
                )
            ).all()
        )
        assert forced == dict.fromkeys(("memories", "memory_links", "memory_versions", "idempotency_records"), True)
        index = conn.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_memories_embedding_hnsw'"))
        assert "hnsw" in index and "halfvec_cosine_ops" in index
    engine.dispose()


def test_too_old_or_missing_pgvector_is_refused_with_a_clear_message() -> None:
    with pytest.raises(PgvectorMissing, match=r"needs >= 0\.7"):
        require_pgvector((0, 6, 2), "installed")
    with pytest.raises(PgvectorMissing, match="pgvector is not installed"):
        require_pgvector(None, "installed")
    require_pgvector((0, 8, 1), "installed")


def test_app_refuses_to_start_on_a_database_without_the_vector_extension(pg_server_url: str) -> None:
    from fastapi.testclient import TestClient

    url = _fresh_database(pg_server_url)
    app = create_app(Settings(database_url=url, admin_key="x"), url, embedder=object())  # type: ignore[arg-type]
    with pytest.raises(PgvectorMissing, match="vector"), TestClient(app):
        pass


def test_migrate_command_on_a_server_without_pgvector_fails_clearly() -> None:
    with psycopg.connect(PLAIN_POSTGRES_URL, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is None
    env = {**os.environ, "MEMSVC_DATABASE_URL": PLAIN_POSTGRES_URL}
    done = subprocess.run(
        [sys.executable, "-m", "memsvc", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "pgvector is not available on this Postgres server" in done.stderr
    assert "Traceback" not in done.stderr


def test_orm_models_and_migrations_agree(database_url: str) -> None:
    """A model changed without a migration (or the reverse) shows up here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from memsvc.models import Base

    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()

"""The schema comes only from Alembic, and memsvc refuses clearly to run where pgvector is missing or too old."""

import hashlib
import os
import subprocess
import sys

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import ProgrammingError

from memsvc.app import create_app
from memsvc.core.db import PgvectorMissing, require_pgvector, sqlalchemy_url
from memsvc.core.migrate import head_revision, include_in_autogenerate, upgrade_to_head
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
        assert {"embedding_spaces", "memory_embeddings"} <= tables
        forced = dict(
            conn.execute(
                text(
                    "SELECT relname, relforcerowsecurity FROM pg_class WHERE relname IN "
                    "('memories', 'memory_links', 'memory_versions', 'idempotency_records', 'memory_embeddings', "
                    "'pending_embeddings')"
                )
            ).all()
        )
        tenant_tables = (
            "memories",
            "memory_links",
            "memory_versions",
            "idempotency_records",
            "memory_embeddings",
            "pending_embeddings",
        )
        assert forced == dict.fromkeys(tenant_tables, True)
        # Registering an embedding space creates its own HNSW index over vectors of its dimension, or over the
        # sign bits of its byte codes (read in place: no stored bits column).
        register = "SELECT memsvc_embedding_space('some-model', :path, 8, :storage, :kind, :k)"
        space = conn.scalar(text(register), {"path": None, "storage": "float16", "kind": "float16", "k": 8})
        again = {"path": "/models/x", "storage": "float16", "kind": "float16", "k": 8}
        assert conn.scalar(text(register), again) == space
        index = conn.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
            {"name": f"ix_memory_embeddings_hnsw_{space}"},
        )
        assert "hnsw" in index and "halfvec(8)" in index and "halfvec_cosine_ops" in index
        assert f"WHERE (space_id = {space})" in index
        codes = conn.scalar(text(register), {"path": None, "storage": "pca50-fp8-e4m3", "kind": "binary", "k": 4})
        assert codes != space
        index = conn.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
            {"name": f"ix_memory_embeddings_hnsw_{codes}"},
        )
        assert "bit_hamming_ops" in index and "bit(4)" in index and "codes" in index
        with pytest.raises(ProgrammingError, match="unknown index kind"):
            conn.scalar(text(register), {"path": None, "storage": "x", "kind": "'; DROP TABLE x; --", "k": 4})
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
    app = create_app(Settings(database_url=url, admin_key="x"), url)
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
        context = MigrationContext.configure(conn, opts={"include_object": include_in_autogenerate})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_upgrade_moves_stored_vectors_into_their_space_and_downgrade_brings_them_back(pg_server_url: str) -> None:
    from alembic import command

    from memsvc.core.migrate import alembic_config

    url = _fresh_database(pg_server_url)
    command.upgrade(alembic_config(url), "0002_jobs")
    engine = create_engine(sqlalchemy_url(url))
    vector = "[" + ",".join(["0.5"] * 384) + "]"
    with engine.begin() as conn:
        tenant = conn.scalar(text("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'old') RETURNING id"))
        conn.execute(
            text(
                "INSERT INTO memories (id, tenant_id, user_id, type, content, content_hash, embedding, "
                "embedding_model, embedding_status) VALUES (gen_random_uuid(), :t, 'u', 'semantic', 'x', 'h', "
                "CAST(:v AS halfvec), 'all-MiniLM-L6-v2', 'done')"
            ),
            {"t": tenant, "v": vector},
        )

    upgrade_to_head(url)
    with engine.connect() as conn:
        moved = conn.execute(
            text(
                "SELECT s.model_id, s.dim, t.embedding_space_id = s.id, e.embedding::text FROM memory_embeddings e "
                "JOIN embedding_spaces s ON s.id = e.space_id JOIN tenants t ON t.id = e.tenant_id"
            )
        ).all()
        assert [tuple(row) for row in moved] == [("all-MiniLM-L6-v2", 384, True, vector)]
        assert conn.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix_memory_embeddings_hnsw_%'"))

    command.downgrade(alembic_config(url), "0002_jobs")
    with engine.connect() as conn:
        restored = conn.execute(text("SELECT embedding::text, embedding_model FROM memories")).all()
        assert [tuple(row) for row in restored] == [(vector, "all-MiniLM-L6-v2")]
    engine.dispose()


def test_embedding_queue_upgrade_queues_what_was_not_embedded_and_downgrade_restores_the_statuses(
    pg_server_url: str,
) -> None:
    from alembic import command

    from memsvc.core.migrate import alembic_config

    url = _fresh_database(pg_server_url)
    command.upgrade(alembic_config(url), "0011_audit_and_rate_limits")
    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        tenant = conn.scalar(text("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'old') RETURNING id"))
        for content, status, error in [("a", "pending", None), ("b", "failed", "model gone"), ("c", "done", None)]:
            conn.execute(
                text(
                    "INSERT INTO memories (id, tenant_id, user_id, type, content, content_hash, embedding_status, "
                    "embedding_error) VALUES (gen_random_uuid(), :t, 'u', 'semantic', :c, :h, :s, :e)"
                ),
                {"t": tenant, "c": content, "h": content, "s": status, "e": error},
            )
    statuses = text(
        "SELECT m.content, CASE WHEN p.error IS NULL THEN 'pending' ELSE 'failed' END, p.error, "
        "p.seq = m.seq FROM memories m JOIN pending_embeddings p ON p.memory_id = m.id ORDER BY m.content"
    )

    upgrade_to_head(url)
    with engine.connect() as conn:
        queued = [tuple(row) for row in conn.execute(statuses)]
        columns = {c["name"] for c in inspect(conn).get_columns("memories")}
    command.downgrade(alembic_config(url), "0011_audit_and_rate_limits")
    with engine.connect() as conn:
        restored = conn.execute(text("SELECT content, embedding_status, embedding_error FROM memories ORDER BY 1"))
        restored_rows = [tuple(row) for row in restored]
    engine.dispose()

    assert queued == [("a", "pending", None, True), ("b", "failed", "model gone", True)]
    assert not {"embedding_status", "embedding_error"} & columns
    assert restored_rows == [("a", "pending", None), ("b", "failed", "model gone"), ("c", "done", None)]


def test_content_hash_upgrade_stores_the_digest_bytes_and_downgrade_the_hex(pg_server_url: str) -> None:
    from alembic import command

    from memsvc.core.migrate import alembic_config

    url = _fresh_database(pg_server_url)
    command.upgrade(alembic_config(url), "0012_embedding_queue")
    engine = create_engine(sqlalchemy_url(url))
    digest = "ab" * 32
    with engine.begin() as conn:
        tenant = conn.scalar(text("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'old') RETURNING id"))
        for content, stored in [("hex", digest), ("odd", "made-up")]:
            conn.execute(
                text(
                    "INSERT INTO memories (id, tenant_id, user_id, type, content, content_hash) "
                    "VALUES (gen_random_uuid(), :t, 'u', 'semantic', :c, :h)"
                ),
                {"t": tenant, "c": content, "h": stored},
            )
    hashes = text("SELECT content, content_hash FROM memories ORDER BY content")

    upgrade_to_head(url)
    with engine.connect() as conn:
        upgraded = [tuple(row) for row in conn.execute(hashes)]
    command.downgrade(alembic_config(url), "0012_embedding_queue")
    with engine.connect() as conn:
        downgraded = [tuple(row) for row in conn.execute(hashes)]
    engine.dispose()

    assert upgraded == [("hex", bytes.fromhex(digest)), ("odd", hashlib.sha256(b"made-up").digest())]
    assert downgraded == [("hex", digest), ("odd", hashlib.sha256(b"made-up").hexdigest())]


def test_seq_is_unique_by_its_identity_without_an_index_of_its_own(pg_server_url: str) -> None:
    from alembic import command

    from memsvc.core.migrate import alembic_config

    url = _fresh_database(pg_server_url)
    upgrade_to_head(url)
    engine = create_engine(sqlalchemy_url(url))
    seq_indexes = text("SELECT count(*) FROM pg_indexes WHERE tablename = 'memories' AND indexdef LIKE '%(seq)'")
    insert_memory = "INSERT INTO memories (id, tenant_id, user_id, type, content, content_hash{}) VALUES " + (
        "(gen_random_uuid(), :t, 'u', 'semantic', :c, sha256(convert_to(:c, 'UTF8')){})"
    )
    with engine.begin() as conn:
        tenant = conn.scalar(text("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 't') RETURNING id"))
        for content in ("one", "two"):
            conn.execute(text(insert_memory.format("", "")), {"t": tenant, "c": content})
        assert conn.scalar(text("SELECT count(DISTINCT seq) FROM memories")) == 2
        assert conn.scalar(seq_indexes) == 0
    with pytest.raises(ProgrammingError, match="GENERATED ALWAYS"), engine.begin() as conn:
        conn.execute(text(insert_memory.format(", seq", ", 1")), {"t": tenant, "c": "three"})

    command.downgrade(alembic_config(url), "0013_content_hash_bytes")
    with engine.connect() as conn:
        assert conn.scalar(seq_indexes) == 1
    upgrade_to_head(url)
    engine.dispose()


def test_downgrade_refuses_while_vectors_use_a_storage_the_old_schema_lacks(pg_server_url: str) -> None:
    from alembic import command

    from memsvc.core.migrate import alembic_config

    url = _fresh_database(pg_server_url)
    upgrade_to_head(url)
    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.execute(text("SELECT memsvc_embedding_space('m', NULL, 16, 'fp8-e4m3', 'binary', 16)"))
    with pytest.raises(RuntimeError, match="move every tenant to the float16 profile"):
        command.downgrade(alembic_config(url), "0003_embedding_spaces")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
    engine.dispose()


def test_retrieval_upgrade_extracts_entities_of_stored_memories_and_indexes_their_speaker(pg_server_url: str) -> None:
    from alembic import command

    from memsvc.core.migrate import alembic_config

    url = _fresh_database(pg_server_url)
    command.upgrade(alembic_config(url), "0004_storage_profiles")
    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        tenant = conn.scalar(text("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'old') RETURNING id"))
        conn.execute(
            text(
                "INSERT INTO memories (id, tenant_id, user_id, type, content, content_hash, speaker) "
                "VALUES (gen_random_uuid(), :t, 'u', 'dialogue', 'I met Priya in Lisbon.', 'h', 'Bob')"
            ),
            {"t": tenant},
        )

    upgrade_to_head(url)
    with engine.connect() as conn:
        entities, by_speaker = conn.execute(
            text("SELECT entities, search_tsv @@ websearch_to_tsquery('english', 'bob') FROM memories")
        ).one()
        assert entities == ["bob", "priya", "lisbon"] and by_speaker

    command.downgrade(alembic_config(url), "0004_storage_profiles")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT content_tsv @@ websearch_to_tsquery('english', 'lisbon') FROM memories"))
    engine.dispose()

"""Core schema: tenants, API keys, memories with halfvec embeddings, links, history, idempotency; RLS.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy.dialects import postgresql

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"
TENANT_TABLES = ("memories", "memory_links", "memory_versions", "idempotency_records")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    # The service acts as this non-owner role (SET ROLE on connect) so that row-level security binds it.
    op.execute(f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} NOLOGIN;
          END IF;
          IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
            EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
          END IF;
        END $$;
    """)
    op.execute("""
        CREATE FUNCTION memsvc_current_tenant() RETURNS uuid LANGUAGE sql STABLE AS
        $$ SELECT NULLIF(current_setting('memsvc.tenant_id', true), '')::uuid $$
    """)

    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_api_keys_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])

    op.create_table(
        "memories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("agent_id", sa.String(256)),
        sa.Column("session_id", sa.String(256)),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True)),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32)),
        sa.Column("speaker", sa.String(256)),
        sa.Column("turn_index", sa.Integer()),
        sa.Column("title", sa.String(512)),
        sa.Column("steps", postgresql.JSONB()),
        sa.Column("trigger", sa.Text()),
        sa.Column("embedding", HALFVEC(384)),
        sa.Column("embedding_model", sa.String(200)),
        sa.Column("embedding_status", sa.String(16), server_default="pending", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_memories"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_memories_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("seq", name="uq_memories_seq"),
        sa.UniqueConstraint("tenant_id", "content_hash", name="uq_memories_tenant_content_hash"),
        sa.CheckConstraint("type IN ('episodic', 'dialogue', 'semantic', 'procedural')", name="ck_memories_type_known"),
        sa.CheckConstraint(
            "embedding_status IN ('pending', 'done', 'failed')", name="ck_memories_embedding_status_known"
        ),
        sa.CheckConstraint(
            "user_id IS NOT NULL OR agent_id IS NOT NULL OR session_id IS NOT NULL", name="ck_memories_has_scope"
        ),
    )
    op.create_index("ix_memories_tenant_user", "memories", ["tenant_id", "user_id"])
    op.create_index("ix_memories_tenant_agent", "memories", ["tenant_id", "agent_id"])
    op.create_index("ix_memories_tenant_session_turn", "memories", ["tenant_id", "session_id", "turn_index"])
    op.create_index("ix_memories_tenant_seq", "memories", ["tenant_id", "seq"])
    op.create_index(
        "ix_memories_embedding_hnsw",
        "memories",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "halfvec_cosine_ops"},
    )

    op.create_table(
        "memory_links",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("derived_id", sa.Uuid(), nullable=False),
        sa.Column("relation", sa.String(32), server_default="evidence", nullable=False),
        sa.PrimaryKeyConstraint("source_id", "derived_id", name="pk_memory_links"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_memory_links_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["memories.id"], name="fk_memory_links_source_id_memories", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["derived_id"], ["memories.id"], name="fk_memory_links_derived_id_memories", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_memory_links_tenant_id", "memory_links", ["tenant_id"])
    op.create_index("ix_memory_links_derived_id", "memory_links", ["derived_id"])

    op.create_table(
        "memory_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("memory_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_memory_versions"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_memory_versions_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["memory_id"], ["memories.id"], name="fk_memory_versions_memory_id_memories", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("memory_id", "version", name="uq_memory_versions_memory_version"),
    )
    op.create_index("ix_memory_versions_tenant_id", "memory_versions", ["tenant_id"])

    op.create_table(
        "idempotency_records",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_records"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_idempotency_records_tenant_id_tenants", ondelete="CASCADE"
        ),
    )

    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"""
            CREATE POLICY tenant_isolation ON {table}
            USING (tenant_id = memsvc_current_tenant())
            WITH CHECK (tenant_id = memsvc_current_tenant())
        """)
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    # Tenants and keys are read before any tenant is known (key lookup), so they sit outside RLS.
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, api_keys TO {APP_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_current_tenant() TO {APP_ROLE}")


def downgrade() -> None:
    for table in ("idempotency_records", "memory_versions", "memory_links", "memories", "api_keys", "tenants"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS memsvc_current_tenant()")

"""Embedding spaces: vectors move to `memory_embeddings`, one row per (memory, model configuration), each space
with its own HNSW index, so a new model can be filled in the background while search uses the old one.

Revision ID: 0003_embedding_spaces
Revises: 0002_jobs
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import HALFVEC

revision = "0003_embedding_spaces"
down_revision = "0002_jobs"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"
# Every stored vector so far came from the bundled model at its native dimension.
LEGACY_MODEL, LEGACY_DIM = "all-MiniLM-L6-v2", 384

PENDING_MEMORY_JOBS = """
    SELECT DISTINCT m.tenant_id, m.job_id FROM memories m
    WHERE m.embedding_status = 'pending' AND m.job_id IS NOT NULL AND m.updated_at < now() - older_than
"""
STALLED_REEMBED_JOBS = """
    SELECT j.tenant_id, j.id FROM jobs j
    WHERE j.kind = 'reembed' AND j.status IN ('queued', 'running') AND j.updated_at < now() - older_than
"""


# Registering a space creates its HNSW index (a partial index on the vectors cast to the space's dimension),
# which only the table owner may do: the app calls this definer function at start-up. The advisory lock
# keeps two processes starting together from racing on the same space.
EMBEDDING_SPACE_FUNCTION = """
    CREATE FUNCTION memsvc_embedding_space(p_model_id text, p_model_path text, p_dim integer)
    RETURNS smallint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
    DECLARE
        space smallint;
        index_name text;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('memsvc_embedding_space'));
        SELECT id INTO space FROM embedding_spaces WHERE model_id = p_model_id AND dim = p_dim;
        IF space IS NULL THEN
            INSERT INTO embedding_spaces (model_id, model_path, dim)
            VALUES (p_model_id, p_model_path, p_dim) RETURNING id INTO space;
        ELSE
            UPDATE embedding_spaces SET model_path = p_model_path
            WHERE id = space AND model_path IS DISTINCT FROM p_model_path;
        END IF;
        index_name := 'ix_memory_embeddings_hnsw_' || space;
        -- Checked first: CREATE INDEX IF NOT EXISTS would lock the table against writes even when it exists.
        IF to_regclass(index_name) IS NULL THEN
            EXECUTE format(
                'CREATE INDEX %I ON memory_embeddings USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops) '
                'WITH (m = 16, ef_construction = 64) WHERE space_id = %s',
                index_name, p_dim, space);
        END IF;
        RETURN space;
    END $$
"""


def _unfinished_jobs_function(body: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION memsvc_unfinished_jobs(older_than interval)
        RETURNS TABLE (tenant_id uuid, job_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$ {body} $$
    """


def upgrade() -> None:
    op.create_table(
        "embedding_spaces",
        sa.Column("id", sa.SmallInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("model_path", sa.Text()),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_embedding_spaces"),
        sa.UniqueConstraint("model_id", "dim", name="uq_embedding_spaces_model_id_dim"),
        sa.CheckConstraint("dim BETWEEN 1 AND 4000", name="ck_embedding_spaces_dim_indexable"),
    )
    op.create_table(
        "memory_embeddings",
        sa.Column("memory_id", sa.Uuid(), nullable=False),
        sa.Column("space_id", sa.SmallInteger(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("embedding", HALFVEC(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("memory_id", "space_id", name="pk_memory_embeddings"),
        sa.ForeignKeyConstraint(
            ["memory_id"], ["memories.id"], name="fk_memory_embeddings_memory_id_memories", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["space_id"], ["embedding_spaces.id"], name="fk_memory_embeddings_space_id_embedding_spaces"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_memory_embeddings_tenant_id_tenants", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_memory_embeddings_space_id_tenant_id", "memory_embeddings", ["space_id", "tenant_id"])
    op.execute("ALTER TABLE memory_embeddings ENABLE ROW LEVEL SECURITY")
    op.execute("""
        CREATE POLICY tenant_isolation ON memory_embeddings
        USING (tenant_id = memsvc_current_tenant())
        WITH CHECK (tenant_id = memsvc_current_tenant())
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON memory_embeddings TO {APP_ROLE}")
    # Spaces are service-wide configuration: the app reads them; they are added only through the function below.
    op.execute(f"GRANT SELECT ON embedding_spaces TO {APP_ROLE}")

    for column in ("embedding_space_id", "next_embedding_space_id"):
        op.add_column("tenants", sa.Column(column, sa.SmallInteger()))
        op.create_foreign_key(f"fk_tenants_{column}_embedding_spaces", "tenants", "embedding_spaces", [column], ["id"])
    op.add_column("jobs", sa.Column("embedding_space_id", sa.SmallInteger()))
    op.create_foreign_key(
        "fk_jobs_embedding_space_id_embedding_spaces", "jobs", "embedding_spaces", ["embedding_space_id"], ["id"]
    )
    op.create_check_constraint("ck_jobs_kind_known", "jobs", "kind IN ('embed', 'reembed')")

    op.execute(EMBEDDING_SPACE_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION memsvc_embedding_space(text, text, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_embedding_space(text, text, integer) TO {APP_ROLE}")

    # Re-embedding jobs are unfinished while they are queued or running; a stalled one is enqueued again.
    op.execute(_unfinished_jobs_function(PENDING_MEMORY_JOBS + " UNION " + STALLED_REEMBED_JOBS))

    _move_vectors_to_spaces()
    op.drop_index("ix_memories_embedding_hnsw", table_name="memories")
    op.drop_column("memories", "embedding")
    op.drop_column("memories", "embedding_model")
    op.execute("ALTER TABLE memory_embeddings FORCE ROW LEVEL SECURITY")


def _move_vectors_to_spaces() -> None:
    # The owner is subject to the forced policies: lift them for the copy, which spans all tenants.
    op.execute("ALTER TABLE memories NO FORCE ROW LEVEL SECURITY")
    op.execute(f"""
        SELECT memsvc_embedding_space(model, NULL, {LEGACY_DIM}) FROM (
            SELECT DISTINCT COALESCE(embedding_model, '{LEGACY_MODEL}') AS model
            FROM memories WHERE embedding IS NOT NULL
        ) models
    """)
    op.execute(f"""
        INSERT INTO memory_embeddings (memory_id, space_id, tenant_id, embedding, created_at)
        SELECT m.id, s.id, m.tenant_id, m.embedding, m.updated_at
        FROM memories m JOIN embedding_spaces s
          ON s.model_id = COALESCE(m.embedding_model, '{LEGACY_MODEL}') AND s.dim = {LEGACY_DIM}
        WHERE m.embedding IS NOT NULL
    """)
    # Each tenant searches the space most of its vectors are in; the start-up reconciliation re-embeds the rest.
    op.execute("""
        UPDATE tenants t SET embedding_space_id = (
            SELECT e.space_id FROM memory_embeddings e WHERE e.tenant_id = t.id
            GROUP BY e.space_id ORDER BY count(*) DESC, e.space_id LIMIT 1
        )
    """)
    op.execute("ALTER TABLE memories FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute("ALTER TABLE memories NO FORCE ROW LEVEL SECURITY")
    op.add_column("memories", sa.Column("embedding_model", sa.String(200)))
    op.add_column("memories", sa.Column("embedding", HALFVEC(LEGACY_DIM)))
    op.execute(f"""
        UPDATE memories m SET embedding = e.embedding::halfvec({LEGACY_DIM}), embedding_model = s.model_id
        FROM tenants t, memory_embeddings e, embedding_spaces s
        WHERE t.id = m.tenant_id AND e.memory_id = m.id AND e.space_id = t.embedding_space_id
          AND s.id = e.space_id AND s.dim = {LEGACY_DIM}
    """)
    op.execute("ALTER TABLE memories FORCE ROW LEVEL SECURITY")
    op.create_index(
        "ix_memories_embedding_hnsw",
        "memories",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "halfvec_cosine_ops"},
    )
    op.execute(_unfinished_jobs_function(PENDING_MEMORY_JOBS))
    op.execute("DROP FUNCTION memsvc_embedding_space(text, text, integer)")
    op.drop_constraint("ck_jobs_kind_known", "jobs", type_="check")
    op.drop_constraint("fk_jobs_embedding_space_id_embedding_spaces", "jobs", type_="foreignkey")
    op.drop_column("jobs", "embedding_space_id")
    for column in ("embedding_space_id", "next_embedding_space_id"):
        op.drop_constraint(f"fk_tenants_{column}_embedding_spaces", "tenants", type_="foreignkey")
        op.drop_column("tenants", column)
    op.drop_table("memory_embeddings")
    op.drop_table("embedding_spaces")

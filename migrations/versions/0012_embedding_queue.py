"""The embedding queue: a memory's embedding state leaves the memory row.

- `pending_embeddings`: one row per memory waiting for its vectors (`error` set: its job gave up on it), written
  with the memory and deleted once its vectors are stored. Until now the worker set `memories.embedding_status`
  to `done`, an update of the wide memory row that, touching an indexed column, added an entry to each of the
  table's thirteen indexes and left the old row behind: after ingest through the API, the memories table and
  its indexes took about 1,234 bytes a memory against 954 for the same memories imported with their vectors
  (bench/results/search_latency.json). A memory's status is now read from the queue (done: not queued).
- `memories.embedding_status`, `memories.embedding_error` and `ix_memories_pending` go; `memsvc_stale_jobs`
  finds pending memories in the queue.

Revision ID: 0012_embedding_queue
Revises: 0011_audit_and_rate_limits
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_embedding_queue"
down_revision = "0011_audit_and_rate_limits"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"

STALE_JOBS = """
    CREATE OR REPLACE FUNCTION memsvc_stale_jobs(older_than interval)
    RETURNS TABLE (tenant_id uuid, job_id uuid, kind text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
        {pending_memory_jobs}
        UNION
        SELECT j.tenant_id, j.id, j.kind FROM jobs j
        WHERE j.kind IN ('embed', 'reembed', 'consolidate') AND j.status IN ('queued', 'running')
          AND j.updated_at < now() - older_than
    $$
"""

QUEUED_MEMORY_JOBS = """
    SELECT DISTINCT m.tenant_id, m.job_id, j.kind
    FROM pending_embeddings p JOIN memories m ON m.id = p.memory_id JOIN jobs j ON j.id = m.job_id
    WHERE p.error IS NULL AND p.queued_at < now() - older_than
"""

PENDING_MEMORY_JOBS = """
    SELECT DISTINCT m.tenant_id, m.job_id, j.kind FROM memories m JOIN jobs j ON j.id = m.job_id
    WHERE m.embedding_status = 'pending' AND m.updated_at < now() - older_than
"""


def upgrade() -> None:
    op.create_table(
        "pending_embeddings",
        sa.Column("memory_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["memory_id"], ["memories.id"], name="fk_pending_embeddings_memory_id_memories", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_pending_embeddings_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("memory_id", name="pk_pending_embeddings"),
    )
    op.create_index(
        "ix_pending_embeddings_tenant_seq",
        "pending_embeddings",
        ["tenant_id", "seq"],
        postgresql_where=sa.text("error IS NULL"),
    )
    # The copy spans all tenants: the owner is subject to the forced policy on memories, lift it meanwhile.
    op.execute("ALTER TABLE memories NO FORCE ROW LEVEL SECURITY")
    op.execute("""
        INSERT INTO pending_embeddings (memory_id, tenant_id, seq, error, queued_at)
        SELECT id, tenant_id, seq, CASE WHEN embedding_status = 'failed' THEN coalesce(embedding_error, '') END,
               updated_at
        FROM memories WHERE embedding_status <> 'done'
    """)
    op.execute("ALTER TABLE memories FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE pending_embeddings ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE pending_embeddings FORCE ROW LEVEL SECURITY")
    op.execute("""
        CREATE POLICY tenant_isolation ON pending_embeddings
        USING (tenant_id = memsvc_current_tenant())
        WITH CHECK (tenant_id = memsvc_current_tenant())
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON pending_embeddings TO {APP_ROLE}")
    op.execute(STALE_JOBS.format(pending_memory_jobs=QUEUED_MEMORY_JOBS))
    op.drop_index("ix_memories_pending", table_name="memories")
    op.drop_constraint("ck_memories_embedding_status_known", "memories", type_="check")
    op.drop_column("memories", "embedding_error")
    op.drop_column("memories", "embedding_status")


def downgrade() -> None:
    op.add_column(
        "memories",
        sa.Column("embedding_status", sa.String(16), server_default="done", nullable=False),
    )
    op.alter_column("memories", "embedding_status", server_default="pending")
    op.add_column("memories", sa.Column("embedding_error", sa.Text(), nullable=True))
    op.create_check_constraint(
        "ck_memories_embedding_status_known", "memories", "embedding_status IN ('pending', 'done', 'failed')"
    )
    op.execute("ALTER TABLE memories NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE pending_embeddings NO FORCE ROW LEVEL SECURITY")
    op.execute("""
        UPDATE memories m
        SET embedding_status = CASE WHEN p.error IS NULL THEN 'pending' ELSE 'failed' END, embedding_error = p.error
        FROM pending_embeddings p WHERE p.memory_id = m.id
    """)
    op.execute("ALTER TABLE memories FORCE ROW LEVEL SECURITY")
    op.create_index(
        "ix_memories_pending",
        "memories",
        ["tenant_id", "seq"],
        postgresql_where=sa.text("embedding_status = 'pending'"),
    )
    op.execute(STALE_JOBS.format(pending_memory_jobs=PENDING_MEMORY_JOBS))
    op.drop_table("pending_embeddings")

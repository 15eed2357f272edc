"""Background embedding: jobs, pending memories, lexical index for not-yet-embedded memories, sweeper function.

Revision ID: 0002_jobs
Revises: 0001_core
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_jobs"
down_revision = "0001_core"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_jobs_tenant_id_tenants", ondelete="CASCADE"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_jobs_status_known"),
    )
    op.create_index("ix_jobs_tenant_id", "jobs", ["tenant_id"])

    op.add_column("memories", sa.Column("job_id", sa.Uuid()))
    op.add_column("memories", sa.Column("embedding_error", sa.Text()))
    op.add_column(
        "memories",
        sa.Column(
            "content_tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', content)", persisted=True),
        ),
    )
    op.create_foreign_key("fk_memories_job_id_jobs", "memories", "jobs", ["job_id"], ["id"], ondelete="SET NULL")
    op.create_index("ix_memories_job_id", "memories", ["job_id"])
    op.create_index("ix_memories_content_tsv", "memories", ["content_tsv"], postgresql_using="gin")
    # Finding unfinished work is the sweeper's hot query: keep a small index of only the pending rows.
    op.create_index(
        "ix_memories_pending",
        "memories",
        ["tenant_id", "seq"],
        postgresql_where=sa.text("embedding_status = 'pending'"),
    )

    op.execute("ALTER TABLE jobs ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE jobs FORCE ROW LEVEL SECURITY")
    op.execute("""
        CREATE POLICY tenant_isolation ON jobs
        USING (tenant_id = memsvc_current_tenant())
        WITH CHECK (tenant_id = memsvc_current_tenant())
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO {APP_ROLE}")
    # The sweeper must find unfinished work of every tenant; this definer function reveals only ids, and the
    # work itself is then done in a session bound to each tenant.
    op.execute("""
        CREATE FUNCTION memsvc_unfinished_jobs(older_than interval)
        RETURNS TABLE (tenant_id uuid, job_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT DISTINCT m.tenant_id, m.job_id FROM memories m
            WHERE m.embedding_status = 'pending' AND m.job_id IS NOT NULL
              AND m.updated_at < now() - older_than
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION memsvc_unfinished_jobs(interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_unfinished_jobs(interval) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS memsvc_unfinished_jobs(interval)")
    op.drop_index("ix_memories_pending", table_name="memories")
    op.drop_index("ix_memories_content_tsv", table_name="memories")
    op.drop_index("ix_memories_job_id", table_name="memories")
    op.drop_constraint("fk_memories_job_id_jobs", "memories", type_="foreignkey")
    op.drop_column("memories", "content_tsv")
    op.drop_column("memories", "embedding_error")
    op.drop_column("memories", "job_id")
    op.drop_table("jobs")

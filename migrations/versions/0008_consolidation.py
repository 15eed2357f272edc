"""Consolidation: memories derived from a scope's history (segment, session and profile summaries, facts), the
segments already consolidated, and consolidation jobs.

- `memories.consolidation_level`: segment | session | profile for a summary, fact for an extracted fact; NULL
  for what a client wrote. Consolidation reads only the latter as history.
- `consolidated_segments`: one row per consolidated unit (a segment of history, or a roll-up), keyed by the
  hash of the memories it came from, so re-running on the same history writes nothing new; with the unit's
  memory embedding (HMT's M_n), the scope's long-term cache that later segments recall from.
- `jobs.params` / `jobs.result`: what a consolidation job was asked (scope, backend) and what it did (segments,
  tokens in and out, wall time).
- The sweeper's function now also returns stalled consolidation jobs, and each job's kind, so it can send each
  to its queue.

Revision ID: 0008_consolidation
Revises: 0007_text_rows
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_consolidation"
down_revision = "0007_text_rows"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"

PENDING_MEMORY_JOBS = """
    SELECT DISTINCT m.tenant_id, m.job_id, j.kind FROM memories m JOIN jobs j ON j.id = m.job_id
    WHERE m.embedding_status = 'pending' AND m.updated_at < now() - older_than
"""
STALLED_JOBS = """
    SELECT j.tenant_id, j.id, j.kind FROM jobs j
    WHERE j.kind IN ('reembed', 'consolidate') AND j.status IN ('queued', 'running')
      AND j.updated_at < now() - older_than
"""


def upgrade() -> None:
    op.add_column("memories", sa.Column("consolidation_level", sa.String(16)))
    op.create_check_constraint(
        "ck_memories_consolidation_level_known",
        "memories",
        "consolidation_level IN ('segment', 'session', 'profile', 'fact')",
    )
    op.add_column("jobs", sa.Column("params", postgresql.JSONB()))
    op.add_column("jobs", sa.Column("result", postgresql.JSONB()))
    op.drop_constraint("ck_jobs_kind_known", "jobs", type_="check")
    op.create_check_constraint("ck_jobs_kind_known", "jobs", "kind IN ('embed', 'reembed', 'consolidate')")
    op.create_table(
        "consolidated_segments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("scope_key", sa.String(1024), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("memory_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.String(256)),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("memory_embedding", postgresql.ARRAY(sa.REAL()), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_consolidated_segments_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["memory_id"], ["memories.id"], name="fk_consolidated_segments_memory_id_memories", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "scope_key", "level", "source_hash", name="pk_consolidated_segments"),
    )
    op.create_index("ix_consolidated_segments_memory_id", "consolidated_segments", ["memory_id"])
    op.execute("ALTER TABLE consolidated_segments ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE consolidated_segments FORCE ROW LEVEL SECURITY")
    op.execute("""
        CREATE POLICY tenant_isolation ON consolidated_segments
        USING (tenant_id = memsvc_current_tenant())
        WITH CHECK (tenant_id = memsvc_current_tenant())
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON consolidated_segments TO {APP_ROLE}")

    op.execute(f"""
        CREATE FUNCTION memsvc_stale_jobs(older_than interval)
        RETURNS TABLE (tenant_id uuid, job_id uuid, kind text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            {PENDING_MEMORY_JOBS} UNION {STALLED_JOBS}
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION memsvc_stale_jobs(interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_stale_jobs(interval) TO {APP_ROLE}")
    op.execute("DROP FUNCTION memsvc_unfinished_jobs(interval)")


def downgrade() -> None:
    op.execute("""
        CREATE FUNCTION memsvc_unfinished_jobs(older_than interval)
        RETURNS TABLE (tenant_id uuid, job_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT DISTINCT m.tenant_id, m.job_id FROM memories m
            WHERE m.embedding_status = 'pending' AND m.job_id IS NOT NULL AND m.updated_at < now() - older_than
            UNION
            SELECT j.tenant_id, j.id FROM jobs j
            WHERE j.kind = 'reembed' AND j.status IN ('queued', 'running') AND j.updated_at < now() - older_than
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION memsvc_unfinished_jobs(interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_unfinished_jobs(interval) TO {APP_ROLE}")
    op.execute("DROP FUNCTION memsvc_stale_jobs(interval)")
    op.execute("DELETE FROM jobs WHERE kind = 'consolidate'")
    op.drop_constraint("ck_jobs_kind_known", "jobs", type_="check")
    op.create_check_constraint("ck_jobs_kind_known", "jobs", "kind IN ('embed', 'reembed')")
    op.execute("DROP TABLE consolidated_segments")
    op.drop_column("jobs", "result")
    op.drop_column("jobs", "params")
    op.drop_constraint("ck_memories_consolidation_level_known", "memories", type_="check")
    op.drop_column("memories", "consolidation_level")

"""Audit log, and per-tenant rate limits.

- `audit_log`: one row per administrative action or deletion (who, which tenant and scope, when, counts). It sits
  outside row-level security, like `tenants` and `api_keys`, because admin actions have no tenant; the service
  role may only INSERT and SELECT it, so no request can rewrite or erase the record. It keeps no foreign key to
  `tenants`: the record of a tenant's deletions outlives the tenant.
- `tenants.rate_limit_per_minute`: requests per minute each of the tenant's API keys may make; NULL follows the
  service default (`MEMSVC_RATE_LIMIT_PER_MINUTE`).
- `memsvc_stale_jobs` also returns `embed` jobs left queued or running with nothing pending: their memories were
  embedded by another job's batch after their own message was lost (a killed worker held it, or the broker
  restarted), so no pending memory pointed the sweeper at them and they stayed `queued` for good. Run again,
  such a job finds nothing to do and is marked done.

Revision ID: 0011_audit_and_rate_limits
Revises: 0010_procedures_and_recall
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_audit_and_rate_limits"
down_revision = "0010_procedures_and_recall"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"

PENDING_MEMORY_JOBS = """
    SELECT DISTINCT m.tenant_id, m.job_id, j.kind FROM memories m JOIN jobs j ON j.id = m.job_id
    WHERE m.embedding_status = 'pending' AND m.updated_at < now() - older_than
"""


def _stale_jobs_function(stalled_kinds: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION memsvc_stale_jobs(older_than interval)
        RETURNS TABLE (tenant_id uuid, job_id uuid, kind text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            {PENDING_MEMORY_JOBS}
            UNION
            SELECT j.tenant_id, j.id, j.kind FROM jobs j
            WHERE j.kind IN ({stalled_kinds}) AND j.status IN ('queued', 'running')
              AND j.updated_at < now() - older_than
        $$
    """


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        # "admin", or the acting tenant key's public prefix.
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        # What the action applied to: a scope filter, a key id, a memory id, a profile name...
        sa.Column("target", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        # How many rows of each kind it created, changed or removed.
        sa.Column("counts", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_tenant_id_id", "audit_log", ["tenant_id", "id"])
    op.execute(f"GRANT SELECT, INSERT ON audit_log TO {APP_ROLE}")
    op.add_column("tenants", sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True))
    op.create_check_constraint("ck_tenants_rate_limit_per_minute_positive", "tenants", "rate_limit_per_minute > 0")
    op.execute(_stale_jobs_function("'embed', 'reembed', 'consolidate'"))


def downgrade() -> None:
    op.execute(_stale_jobs_function("'reembed', 'consolidate'"))
    op.drop_constraint("ck_tenants_rate_limit_per_minute_positive", "tenants", type_="check")
    op.drop_column("tenants", "rate_limit_per_minute")
    op.drop_table("audit_log")

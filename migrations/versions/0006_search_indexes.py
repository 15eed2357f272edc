"""Search paths that use their indexes: full-text candidates through the GIN index under row-level security,
and an index for time filters.

Under RLS, Postgres evaluates a query's own conditions only after the policy's unless their operators are
LEAKPROOF, and the full-text match (`tsvector @@ tsquery`) is not: every search's text match read the whole
memories table (46 ms at 100,000 memories) instead of the GIN index (2 ms). This definer function does the
index lookup for the tenant in context, the same tenant the policy admits, and returns only ids; the search
then reads those rows under RLS as before. Run by a role that bypasses RLS (the migrating superuser) it uses the
index; by one that does not, it stays correct and only as slow as before.

Time filters (`occurred_after`/`occurred_before`, and the window a query names) read the tenant's memories by
`occurred_at`: 24 ms to count a month of 100,000 memories by a scan, under 1 ms by the index.

Revision ID: 0006_search_indexes
Revises: 0005_retrieval
Create Date: 2026-11-29
"""

from alembic import op

revision = "0006_search_indexes"
down_revision = "0005_retrieval"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION memsvc_text_candidates(query tsquery) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT id FROM memories WHERE tenant_id = memsvc_current_tenant() AND search_tsv @@ query
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION memsvc_text_candidates(tsquery) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_text_candidates(tsquery) TO {APP_ROLE}")
    op.create_index("ix_memories_tenant_occurred_at", "memories", ["tenant_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_memories_tenant_occurred_at", table_name="memories")
    op.execute("DROP FUNCTION memsvc_text_candidates(tsquery)")

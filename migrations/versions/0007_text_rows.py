"""Full-text candidates as whole rows: the search filters and scores them without reading each one again.

0006's `memsvc_text_candidates` returned ids, which the search then looked up one by one through the primary key
under RLS: for a query whose rarest words match 6,000 of 100,000 memories, 12 of the query's 23 ms. This
function returns the matching rows of the tenant in context (the rows the policy admits: it is a definer
function, so the search filters its output itself), and replaces the id-only one.

Revision ID: 0007_text_rows
Revises: 0006_search_indexes
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007_text_rows"
down_revision = "0006_search_indexes"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"


def upgrade() -> None:
    # ROWS: the planner's guess of a set-returning function's size (default 1000); the search keeps its
    # candidates near 2,000 (memsvc.search.service.LEXICAL_SCAN_BUDGET).
    op.execute("""
        CREATE FUNCTION memsvc_text_rows(query tsquery) RETURNS SETOF memories
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 2000 AS $$
            SELECT * FROM memories WHERE tenant_id = memsvc_current_tenant() AND search_tsv @@ query
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION memsvc_text_rows(tsquery) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_text_rows(tsquery) TO {APP_ROLE}")
    op.execute("DROP FUNCTION memsvc_text_candidates(tsquery)")


def downgrade() -> None:
    op.execute("""
        CREATE FUNCTION memsvc_text_candidates(query tsquery) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT id FROM memories WHERE tenant_id = memsvc_current_tenant() AND search_tsv @@ query
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION memsvc_text_candidates(tsquery) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_text_candidates(tsquery) TO {APP_ROLE}")
    op.execute("DROP FUNCTION memsvc_text_rows(tsquery)")

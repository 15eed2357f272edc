"""Automatic consolidation: the users whose unconsolidated history is long enough, or has been idle long enough.

Read by the sweeper across tenants (hence a definer function, like memsvc_stale_jobs): per (tenant, user), the
history (dialogue turns and events clients wrote) newer than the user scope's last consolidated segment, its
size in words (estimated as characters / 6) and its newest write; users with a consolidation job queued or
running are left out, so a sweep never doubles one.

Revision ID: 0009_auto_consolidation
Revises: 0008_consolidation
Create Date: 2026-11-29
"""

from alembic import op

revision = "0009_auto_consolidation"
down_revision = "0008_consolidation"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"


def upgrade() -> None:
    # The scope key is memsvc.consolidation.service.Scope.key of a user scope: json.dumps([user, None, None]).
    op.execute("""
        CREATE FUNCTION memsvc_consolidation_due(min_words integer, idle interval)
        RETURNS TABLE (tenant_id uuid, user_id text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            WITH consolidated AS (
                SELECT c.tenant_id, c.scope_key, max(c.last_seq) AS last_seq
                FROM consolidated_segments c WHERE c.level = 'segment'
                GROUP BY c.tenant_id, c.scope_key
            ), waiting AS (
                SELECT m.tenant_id, m.user_id, sum(length(m.content)) / 6 AS words, max(m.created_at) AS newest
                FROM memories m
                LEFT JOIN consolidated c
                  ON c.tenant_id = m.tenant_id AND c.scope_key = json_build_array(m.user_id, NULL, NULL)::text
                WHERE m.user_id IS NOT NULL AND m.consolidation_level IS NULL
                  AND m.type IN ('dialogue', 'episodic') AND m.seq > coalesce(c.last_seq, 0)
                GROUP BY m.tenant_id, m.user_id
            )
            SELECT w.tenant_id, w.user_id FROM waiting w
            WHERE ((min_words > 0 AND w.words >= min_words) OR (idle > interval '0' AND w.newest < now() - idle))
              AND NOT EXISTS (
                  SELECT 1 FROM jobs j
                  WHERE j.tenant_id = w.tenant_id AND j.kind = 'consolidate' AND j.status IN ('queued', 'running')
                    AND j.params -> 'scope' ->> 'user_id' = w.user_id
              )
        $$
    """)
    op.execute("REVOKE ALL ON FUNCTION memsvc_consolidation_due(integer, interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION memsvc_consolidation_due(integer, interval) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION memsvc_consolidation_due(integer, interval)")

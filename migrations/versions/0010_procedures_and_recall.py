"""Procedures learned from history, and learned memory recall.

- `memories.consolidation_level` may be `procedure`: a procedural memory consolidation wrote from a how-to
  sequence that recurred in a scope's history. Each how-to sequence found is recorded in `consolidated_segments`
  at level `episode` (its memory: the one holding the steps; its embedding: the steps'), so that a recurrence is
  recognised across jobs.
- `ix_memories_consolidated`: a scope's consolidated memories, read apart from the history by search with
  `hierarchy: evidence`.
- `recall_projections`: per scope, the query and key projections (Wq, Wk) that `memsvc consolidation
  train-recall` fitted on the scope's own segments, used by its later consolidations instead of identity.

Revision ID: 0010_procedures_and_recall
Revises: 0009_auto_consolidation
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_procedures_and_recall"
down_revision = "0009_auto_consolidation"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"


def upgrade() -> None:
    op.drop_constraint("ck_memories_consolidation_level_known", "memories", type_="check")
    op.create_check_constraint(
        "ck_memories_consolidation_level_known",
        "memories",
        "consolidation_level IN ('segment', 'session', 'profile', 'fact', 'procedure')",
    )
    op.create_index(
        "ix_memories_consolidated",
        "memories",
        ["tenant_id", "seq"],
        postgresql_where=sa.text("consolidation_level IS NOT NULL"),
    )
    op.create_table(
        "recall_projections",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("scope_key", sa.String(1024), nullable=False),
        sa.Column("input_dim", sa.Integer(), nullable=False),
        sa.Column("projected_dim", sa.Integer(), nullable=False),
        # Wq then Wk, float32 little-endian, row-major: 2 x input_dim x projected_dim values.
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("accuracy_before", sa.Float(), nullable=False),
        sa.Column("accuracy_after", sa.Float(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_recall_projections_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "scope_key", name="pk_recall_projections"),
    )
    op.execute("ALTER TABLE recall_projections ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE recall_projections FORCE ROW LEVEL SECURITY")
    op.execute("""
        CREATE POLICY tenant_isolation ON recall_projections
        USING (tenant_id = memsvc_current_tenant())
        WITH CHECK (tenant_id = memsvc_current_tenant())
    """)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON recall_projections TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP TABLE recall_projections")
    op.drop_index("ix_memories_consolidated", table_name="memories")
    op.execute("DELETE FROM consolidated_segments WHERE level = 'episode'")
    op.execute("DELETE FROM memories WHERE consolidation_level = 'procedure'")
    op.drop_constraint("ck_memories_consolidation_level_known", "memories", type_="check")
    op.create_check_constraint(
        "ck_memories_consolidation_level_known",
        "memories",
        "consolidation_level IN ('segment', 'session', 'profile', 'fact')",
    )

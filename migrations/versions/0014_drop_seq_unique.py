"""Drop the unique index on `memories.seq`.

`seq` is an identity column (GENERATED ALWAYS), so Postgres already gives every memory its own value; every read by
`seq` is within a tenant and goes through ix_memories_tenant_seq. The unique index checked nothing the identity
does not, and took 25 bytes a memory (bench/results/compare-steps/storage/10k-before-seq-index.md).

Revision ID: 0014_drop_seq_unique
Revises: 0013_content_hash_bytes
Create Date: 2026-11-30
"""

from alembic import op

revision = "0014_drop_seq_unique"
down_revision = "0013_content_hash_bytes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("uq_memories_seq", "memories", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint("uq_memories_seq", "memories", ["seq"])

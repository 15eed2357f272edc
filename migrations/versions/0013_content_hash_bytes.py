"""`memories.content_hash` as the digest's 32 bytes rather than 64 hex characters.

The dedupe hash sits in every memory row and in the unique index on (tenant_id, content_hash); as bytes it takes
half the room in both. The code still handles it as hex text (memsvc.models.memory.HexDigest), and exports keep
writing hex. A stored value that is not a SHA-256 in hex (an import could set any text before the import schema
asked for one) becomes the SHA-256 of that text: still one value per distinct text, so dedupe holds.

The column's type change rewrites the table and rebuilds its indexes, under an exclusive lock: on a large store,
run it in a maintenance window.

Revision ID: 0013_content_hash_bytes
Revises: 0012_embedding_queue
Create Date: 2026-11-30
"""

from alembic import op

revision = "0013_content_hash_bytes"
down_revision = "0012_embedding_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE memories ALTER COLUMN content_hash TYPE bytea USING
            CASE WHEN content_hash ~ '^[0-9a-f]{64}$' THEN decode(content_hash, 'hex')
                 ELSE sha256(convert_to(content_hash, 'UTF8')) END
    """)


def downgrade() -> None:
    op.execute("ALTER TABLE memories ALTER COLUMN content_hash TYPE varchar(64) USING encode(content_hash, 'hex')")

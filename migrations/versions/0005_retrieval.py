"""Retrieval that resists interference: a lexical index over a memory's text *and* its context (speaker, a
procedure's title, trigger and steps), entities extracted at write time (GIN-indexed for boosts and filters),
and per-tenant search defaults.

Revision ID: 0005_retrieval
Revises: 0004_storage_profiles
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_retrieval"
down_revision = "0004_storage_profiles"
branch_labels = None
depends_on = None

# Speaker and procedure fields are indexed with the content, so "what did Alice say" matches Alice's turns
# lexically; generated columns may only read their own row, which is all this needs.
SEARCH_TSV = (
    "to_tsvector('english', coalesce(speaker, '') || ' ' || coalesce(title, '') || ' ' || coalesce(trigger, '') "
    "|| ' ' || content || ' ' || coalesce(steps::text, ''))"
)
BACKFILL_BATCH = 1000
# Search plans join memories to their vectors and filter both: planned on a bulk-loaded table's stale statistics
# (a fresh table looks empty) the join turns quadratic. Analyze after 2% change instead of the default 10%.
ANALYZED_TABLES = ("memories", "memory_embeddings")
ANALYZE_SOONER = "autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200"


def upgrade() -> None:
    op.drop_index("ix_memories_content_tsv", table_name="memories")
    op.drop_column("memories", "content_tsv")
    op.add_column(
        "memories",
        sa.Column("search_tsv", postgresql.TSVECTOR(), sa.Computed(SEARCH_TSV, persisted=True), nullable=True),
    )
    op.create_index("ix_memories_search_tsv", "memories", ["search_tsv"], postgresql_using="gin")
    op.add_column(
        "memories",
        sa.Column("entities", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    )
    op.create_index("ix_memories_entities", "memories", ["entities"], postgresql_using="gin")
    op.add_column("tenants", sa.Column("search_defaults", postgresql.JSONB(), nullable=True))
    for table in ANALYZED_TABLES:
        op.execute(f"ALTER TABLE {table} SET ({ANALYZE_SOONER})")
    _backfill_entities()


def _backfill_entities() -> None:
    """Entities of the memories written before this revision, extracted the way new writes are."""
    from memsvc.search.entities import memory_entities

    bind = op.get_bind()
    last_seq = -1
    while True:
        rows = bind.execute(
            sa.text("SELECT seq, content, speaker, title FROM memories WHERE seq > :after ORDER BY seq LIMIT :n"),
            {"after": last_seq, "n": BACKFILL_BATCH},
        ).all()
        if not rows:
            return
        found = [{"seq": row.seq, "entities": memory_entities(row.content, row.speaker, row.title)} for row in rows]
        named = [row for row in found if row["entities"]]
        if named:
            bind.execute(sa.text("UPDATE memories SET entities = :entities WHERE seq = :seq"), named)
        last_seq = rows[-1].seq


def downgrade() -> None:
    for table in ANALYZED_TABLES:
        op.execute(f"ALTER TABLE {table} RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)")
    op.drop_column("tenants", "search_defaults")
    op.drop_index("ix_memories_entities", table_name="memories")
    op.drop_column("memories", "entities")
    op.drop_index("ix_memories_search_tsv", table_name="memories")
    op.drop_column("memories", "search_tsv")
    op.add_column(
        "memories",
        sa.Column(
            "content_tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', content)", persisted=True),
            nullable=True,
        ),
    )
    op.create_index("ix_memories_content_tsv", "memories", ["content_tsv"], postgresql_using="gin")

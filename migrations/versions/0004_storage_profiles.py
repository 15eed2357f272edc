"""Storage profiles: an embedding space is a model configuration *and* a storage (codec, optional PCA), so a
tenant can move between profiles the way it moves between models. Vectors are stored as float32 (`vector`),
float16 (`halfvec`) or a byte code (float8, int8, binary) whose sign bits a Hamming HNSW index reads in place.
Fitted encoding parameters (PCA basis, int8 scales) are kept per tenant and space, versioned.

Revision ID: 0004_storage_profiles
Revises: 0003_embedding_spaces
Create Date: 2026-11-29
"""

import importlib

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects import postgresql

revision = "0004_storage_profiles"
down_revision = "0003_embedding_spaces"
branch_labels = None
depends_on = None

APP_ROLE = "memsvc_app"
LEGACY_STORAGE = "float16"

# The sign bits at the head of a byte code, as the bit string pgvector's Hamming operators take. Plain SQL so
# the planner inlines it, both in the index expression and in queries, and matches the two.
SIGN_BITS_FUNCTION = """
    CREATE FUNCTION memsvc_sign_bits(codes bytea, k integer) RETURNS varbit
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
    $$ SELECT substring(('x' || encode(substring(codes FROM 1 FOR (k + 7) / 8), 'hex'))::varbit FROM 1 FOR k) $$
"""

# Registers a (model, dimension, storage) space and creates its partial HNSW index, which only the table owner
# may do. The index kind picks one of three fixed templates; names and numbers are quoted by format().
EMBEDDING_SPACE_FUNCTION = """
    CREATE FUNCTION memsvc_embedding_space(
        p_model_id text, p_model_path text, p_dim integer, p_storage text, p_index_kind text, p_index_dim integer
    ) RETURNS smallint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
    DECLARE
        space smallint;
        index_name text;
        indexed text;
    BEGIN
        IF p_index_dim NOT BETWEEN 1 AND p_dim THEN
            RAISE EXCEPTION 'index dimension % is outside 1..%', p_index_dim, p_dim;
        END IF;
        indexed := CASE p_index_kind
            WHEN 'float32' THEN format('(embedding_f32::vector(%s)) vector_cosine_ops', p_index_dim)
            WHEN 'float16' THEN format('(embedding::halfvec(%s)) halfvec_cosine_ops', p_index_dim)
            WHEN 'binary' THEN format('(memsvc_sign_bits(codes, %1$s)::bit(%1$s)) bit_hamming_ops', p_index_dim)
        END;
        IF indexed IS NULL THEN
            RAISE EXCEPTION 'unknown index kind %', p_index_kind;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext('memsvc_embedding_space'));
        SELECT id INTO space FROM embedding_spaces
        WHERE model_id = p_model_id AND dim = p_dim AND storage = p_storage;
        IF space IS NULL THEN
            INSERT INTO embedding_spaces (model_id, model_path, dim, storage)
            VALUES (p_model_id, p_model_path, p_dim, p_storage) RETURNING id INTO space;
        ELSE
            UPDATE embedding_spaces SET model_path = p_model_path
            WHERE id = space AND model_path IS DISTINCT FROM p_model_path;
        END IF;
        index_name := 'ix_memory_embeddings_hnsw_' || space;
        -- Checked first: CREATE INDEX IF NOT EXISTS would lock the table against writes even when it exists.
        IF to_regclass(index_name) IS NULL THEN
            EXECUTE format(
                'CREATE INDEX %I ON memory_embeddings USING hnsw (%s) WITH (m = 16, ef_construction = 64) '
                'WHERE space_id = %s', index_name, indexed, space);
        END IF;
        RETURN space;
    END $$
"""
NEW_SIGNATURE = "memsvc_embedding_space(text, text, integer, text, text, integer)"
OLD_SIGNATURE = "memsvc_embedding_space(text, text, integer)"


def upgrade() -> None:
    op.add_column(
        "embedding_spaces", sa.Column("storage", sa.String(40), server_default=LEGACY_STORAGE, nullable=False)
    )
    op.drop_constraint("uq_embedding_spaces_model_id_dim", "embedding_spaces", type_="unique")
    op.create_unique_constraint(
        "uq_embedding_spaces_model_id_dim_storage", "embedding_spaces", ["model_id", "dim", "storage"]
    )

    op.alter_column("memory_embeddings", "embedding", nullable=True)
    op.add_column("memory_embeddings", sa.Column("embedding_f32", VECTOR()))
    op.add_column("memory_embeddings", sa.Column("codes", postgresql.BYTEA()))
    op.create_check_constraint(
        "ck_memory_embeddings_one_encoding", "memory_embeddings", "num_nonnulls(embedding, embedding_f32, codes) = 1"
    )

    op.create_table(
        "embedding_fits",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("space_id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("pca_mean", postgresql.BYTEA()),
        sa.Column("pca_components", postgresql.BYTEA()),
        sa.Column("explained_variance", sa.Float()),
        sa.Column("int8_scales", postgresql.BYTEA()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "space_id", "version", name="pk_embedding_fits"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_embedding_fits_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["space_id"], ["embedding_spaces.id"], name="fk_embedding_fits_space_id_embedding_spaces"
        ),
    )
    op.execute("ALTER TABLE embedding_fits ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE embedding_fits FORCE ROW LEVEL SECURITY")
    op.execute("""
        CREATE POLICY tenant_isolation ON embedding_fits
        USING (tenant_id = memsvc_current_tenant())
        WITH CHECK (tenant_id = memsvc_current_tenant())
    """)
    op.execute(f"GRANT SELECT, INSERT, DELETE ON embedding_fits TO {APP_ROLE}")

    # The profile a tenant chose; NULL follows the service default.
    op.add_column("tenants", sa.Column("storage_profile", sa.String(40)))

    op.execute(SIGN_BITS_FUNCTION)
    op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
    op.execute(EMBEDDING_SPACE_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {NEW_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {NEW_SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    # Only float16 vectors fit the older schema; refusing beats silently dropping the others' vectors.
    other = op.get_bind().scalar(sa.text(f"SELECT count(*) FROM embedding_spaces WHERE storage <> '{LEGACY_STORAGE}'"))
    if other:
        raise RuntimeError(
            f"{other} embedding space(s) use a storage other than {LEGACY_STORAGE}: "
            f"move every tenant to the {LEGACY_STORAGE} profile and delete those spaces before downgrading"
        )
    previous = importlib.import_module("migrations.versions.0003_embedding_spaces")
    op.execute(f"DROP FUNCTION {NEW_SIGNATURE}")
    op.execute(previous.EMBEDDING_SPACE_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {OLD_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {OLD_SIGNATURE} TO {APP_ROLE}")
    op.execute("DROP FUNCTION memsvc_sign_bits(bytea, integer)")
    op.drop_column("tenants", "storage_profile")
    op.drop_table("embedding_fits")
    op.drop_constraint("ck_memory_embeddings_one_encoding", "memory_embeddings", type_="check")
    op.drop_column("memory_embeddings", "codes")
    op.drop_column("memory_embeddings", "embedding_f32")
    op.alter_column("memory_embeddings", "embedding", nullable=False)
    op.drop_constraint("uq_embedding_spaces_model_id_dim_storage", "embedding_spaces", type_="unique")
    op.create_unique_constraint("uq_embedding_spaces_model_id_dim", "embedding_spaces", ["model_id", "dim"])
    op.drop_column("embedding_spaces", "storage")

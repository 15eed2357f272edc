"""Postgres row-level security, checked below the application: as the app role, with no tenant filter in SQL,
only the rows of the tenant named in `memsvc.tenant_id` exist."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import text

from tests.conftest import add_memories

APP_ROLE = "memsvc_app"
TENANT_TABLES = ("memories", "memory_versions", "memory_links", "idempotency_records")


@contextmanager
def app_role_connection(database_url: str, tenant_id: str | None = None) -> Iterator[psycopg.Connection]:
    """A direct connection that acts as the service's role, optionally scoped to one tenant (session-wide)."""
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"SET ROLE {APP_ROLE}")
        if tenant_id is not None:
            conn.execute("SELECT set_config('memsvc.tenant_id', %s, false)", (tenant_id,))
        yield conn


@contextmanager
def owner_connection(database_url: str) -> Iterator[psycopg.Connection]:
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        yield conn


def memory_ids(conn: psycopg.Connection) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT id FROM memories")}


def tenant_ids_in(conn: psycopg.Connection, table: str) -> list[str]:
    return [str(row[0]) for row in conn.execute(f"SELECT tenant_id FROM {table}")]


def populate(client, tenant) -> list[str]:
    """Rows in every tenant-owned table: memories, an evidence link, a second version, an idempotency record."""
    [source] = add_memories(client, tenant, {"content": f"Fact for {tenant.name}."})
    [derived] = add_memories(client, tenant, {"content": f"Derived for {tenant.name}.", "source_ids": [source]})
    patched = client.patch(f"/v1/memories/{source}", json={"metadata": {"v": 2}}, headers=tenant.headers)
    assert patched.status_code == 200, patched.text
    [idem] = add_memories(
        client, tenant, {"content": f"Idempotent for {tenant.name}."}, headers={"Idempotency-Key": "k-" + tenant.name}
    )
    return [source, derived, idem]


def test_app_role_sees_only_the_rows_of_the_tenant_in_context(client, database_url, tenant, other_tenant):
    ours = add_memories(client, tenant, {"content": "Ours one."}, {"content": "Ours two."})
    theirs = add_memories(client, other_tenant, {"content": "Theirs."})

    with app_role_connection(database_url, tenant.id) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == APP_ROLE
        assert memory_ids(conn) == set(ours)
        assert set(tenant_ids_in(conn, "memories")) == {tenant.id}
        # Even asking for the other tenant's rows by id finds nothing.
        assert conn.execute("SELECT count(*) FROM memories WHERE id = %s", (theirs[0],)).fetchone()[0] == 0

        conn.execute("SELECT set_config('memsvc.tenant_id', %s, false)", (other_tenant.id,))
        assert memory_ids(conn) == set(theirs)


def test_owner_sees_all_tenants_but_app_role_without_tenant_sees_no_rows(client, database_url, tenant, other_tenant):
    ours = add_memories(client, tenant, {"content": "Ours."})
    theirs = add_memories(client, other_tenant, {"content": "Theirs."})

    with owner_connection(database_url) as conn:
        assert {*ours, *theirs} <= memory_ids(conn)
    with app_role_connection(database_url) as conn:
        for table in TENANT_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        conn.execute("SELECT set_config('memsvc.tenant_id', '', false)")
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 0


def test_app_role_does_not_bypass_row_level_security(database_url):
    with owner_connection(database_url) as conn:
        bypass, superuser = conn.execute(
            "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
        ).fetchone()
        forced = dict(
            conn.execute(
                "SELECT relname, relforcerowsecurity AND relrowsecurity FROM pg_class WHERE relname = ANY(%s)",
                (list(TENANT_TABLES),),
            ).fetchall()
        )

    assert (bypass, superuser) == (False, False)
    assert forced == dict.fromkeys(TENANT_TABLES, True)


def test_inserting_a_row_for_another_tenant_is_rejected(client, database_url, tenant, other_tenant):
    add_memories(client, tenant, {"content": "Ours."})

    with app_role_connection(database_url, tenant.id) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO memories (id, tenant_id, user_id, type, content, content_hash) "
                "VALUES (%s, %s, 'u1', 'semantic', 'planted', %s)",
                (str(uuid.uuid4()), other_tenant.id, uuid.uuid4().hex),
            )
        # The same insert for the tenant in context is allowed (the policy, not a missing grant, refused it).
        conn.execute(
            "INSERT INTO memories (id, tenant_id, user_id, type, content, content_hash) "
            "VALUES (%s, %s, 'u1', 'semantic', 'allowed', %s)",
            (str(uuid.uuid4()), tenant.id, uuid.uuid4().hex),
        )

    with app_role_connection(database_url, other_tenant.id) as conn:
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 0


def test_moving_a_row_to_another_tenant_is_rejected(client, database_url, tenant, other_tenant):
    [ours] = add_memories(client, tenant, {"content": "Ours."})

    with app_role_connection(database_url, tenant.id) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("UPDATE memories SET tenant_id = %s WHERE id = %s", (other_tenant.id, ours))
        assert memory_ids(conn) == {ours}


def test_other_tenants_rows_cannot_be_updated_or_deleted(client, database_url, tenant, other_tenant):
    [theirs] = add_memories(client, other_tenant, {"content": "Theirs, untouched."})

    with app_role_connection(database_url, tenant.id) as conn:
        assert conn.execute("UPDATE memories SET content = 'hijacked' WHERE id = %s", (theirs,)).rowcount == 0
        assert conn.execute("DELETE FROM memories WHERE id = %s", (theirs,)).rowcount == 0
        assert conn.execute("DELETE FROM memories").rowcount == 0

    got = client.get(f"/v1/memories/{theirs}", headers=other_tenant.headers)
    assert got.status_code == 200
    assert got.json()["content"] == "Theirs, untouched."


@pytest.mark.parametrize("table", ["memory_versions", "memory_links", "idempotency_records"])
def test_history_links_and_idempotency_records_are_filtered_too(client, database_url, tenant, other_tenant, table):
    populate(client, tenant)
    populate(client, other_tenant)

    with owner_connection(database_url) as conn:
        everyone = set(tenant_ids_in(conn, table))
    assert {tenant.id, other_tenant.id} <= everyone
    with app_role_connection(database_url, tenant.id) as conn:
        seen = tenant_ids_in(conn, table)

    assert seen, f"{table} has rows for the tenant in context"
    assert set(seen) == {tenant.id}


def test_versions_and_links_rows_match_what_the_tenant_wrote(client, database_url, tenant, other_tenant):
    source, derived, idem = populate(client, tenant)
    populate(client, other_tenant)

    with app_role_connection(database_url, tenant.id) as conn:
        versions = sorted((str(m), v) for m, v in conn.execute("SELECT memory_id, version FROM memory_versions"))
        links = [(str(s), str(d)) for s, d in conn.execute("SELECT source_id, derived_id FROM memory_links")]
        keys = [row[0] for row in conn.execute("SELECT key FROM idempotency_records")]

    assert versions == [(source, 1)]  # the version its PATCH replaced; current versions are the memory rows
    assert links == [(source, derived)]
    assert keys == ["k-" + tenant.name]


def test_app_engine_connections_act_as_the_app_role(client):
    engine = client.app.state.engine

    with engine.connect() as conn:
        current, session_user = conn.execute(text("SELECT current_user, session_user")).one()

    assert current == APP_ROLE
    assert session_user != APP_ROLE


def test_app_engine_without_tenant_context_sees_no_memories(client, tenant):
    add_memories(client, tenant, {"content": "Exists, but not without a tenant context."})

    with client.app.state.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM memories")).scalar_one() == 0


def test_tenant_context_set_by_the_app_is_transaction_local(client, tenant):
    ours = add_memories(client, tenant, {"content": "Visible inside the transaction only."})
    engine = client.app.state.engine

    with engine.connect() as conn:
        conn.execute(text("SELECT set_config('memsvc.tenant_id', :t, true)"), {"t": tenant.id})
        assert {str(i) for i in conn.execute(text("SELECT id FROM memories")).scalars()} == set(ours)
        conn.commit()
        # A new transaction on the same pooled connection carries no tenant over.
        assert conn.execute(text("SELECT count(*) FROM memories")).scalar_one() == 0


def test_text_candidates_function_returns_only_the_tenant_in_context(client, database_url, tenant, other_tenant):
    # A definer function (migration 0007) reads the full-text index past RLS: it must scope itself.
    ours = add_memories(client, tenant, {"content": "Pelicans nest on the island."})
    theirs = add_memories(client, other_tenant, {"content": "Pelicans fish at dawn."})
    candidates = "SELECT id FROM memsvc_text_rows(websearch_to_tsquery('english', 'pelicans'))"

    with app_role_connection(database_url, tenant.id) as conn:
        assert {str(row[0]) for row in conn.execute(candidates)} == set(ours)
        conn.execute("SELECT set_config('memsvc.tenant_id', %s, false)", (other_tenant.id,))
        assert {str(row[0]) for row in conn.execute(candidates)} == set(theirs)
    with app_role_connection(database_url) as conn:
        assert conn.execute(candidates).fetchall() == []

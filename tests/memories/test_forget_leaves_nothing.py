"""Forgetting a user leaves nothing of them: not in any table (found by scanning every column of every table of the
schema as the database owner, so a table added later is covered without changing this test), not in search,
reads, history, export or the jobs listing. Only the audit log's receipt names the scope, with counts and no
content. Another user of the same tenant keeps everything."""

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from memsvc.consolidation import repository as consolidation_repository
from memsvc.consolidation.service import Scope
from memsvc.core.db import tenant_session
from tests.conftest import ADMIN, TenantHandle, add_memories, wait_for_job
from tests.core.test_rls import owner_connection

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "uuid", "ARRAY", "tsvector")
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def scan(conn: psycopg.Connection, needle: str) -> dict[tuple[str, str], int]:
    """How many rows of each (table, column) of the public schema hold `needle`: as text (case-insensitively,
    in text, JSON, uuid, array and tsvector columns) or as bytes (its UTF-8, and a UUID's 16 raw bytes)."""
    columns = conn.execute(
        """
        SELECT c.table_name, c.column_name, c.data_type
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
          AND (c.data_type = ANY(%s) OR c.data_type = 'bytea')
        """,
        (list(TEXT_TYPES),),
    ).fetchall()
    assert {"memories", "memory_versions", "memory_embeddings", "jobs", "audit_log"} <= {t for t, _, _ in columns}
    raw_uuid = _uuid_hex(needle)
    hits: dict[tuple[str, str], int] = {}
    for table, column, data_type in columns:
        if data_type == "bytea":
            condition = "position(convert_to(%(needle)s, 'UTF8') IN \"{c}\") > 0"
            if raw_uuid is not None:
                condition += " OR position(decode(%(raw)s, 'hex') IN \"{c}\") > 0"
        else:
            condition = 'strpos(lower(CAST("{c}" AS text)), lower(%(needle)s)) > 0'
        query = f'SELECT count(*) FROM public."{table}" WHERE {condition.format(c=column)}'
        [count] = conn.execute(query, {"needle": needle, "raw": raw_uuid}).fetchone()  # type: ignore[misc]
        if count:
            hits[(table, column)] = count
    return hits


def _uuid_hex(value: str) -> str | None:
    try:
        return uuid.UUID(value).hex
    except ValueError:
        return None


def write(client: Any, tenant: TenantHandle, items: Iterable[dict[str, Any]], headers: dict[str, str] | None = None):
    return add_memories(client, tenant, *items, headers=headers)


def search_hits(client: Any, tenant: TenantHandle, query: str, mode: str, **scope: Any) -> list[dict[str, Any]]:
    body = {"query": query, "top_k": 100, "mode": mode, "min_score": 0, **scope}
    response = client.post("/v1/search", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["hits"])


def listed(client: Any, tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/memories", params={"limit": 500, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_forgetting_a_user_leaves_nothing_of_them_anywhere(client, tenant, database_url, monkeypatch):
    from memsvc.consolidation import service as consolidation

    # Segments of 4 turns: the session below makes two segments, a session summary and a profile.
    monkeypatch.setattr(consolidation.ConsolidationConfig, "of", classmethod(lambda cls, s: cls(segment_items=4)))
    tag = uuid.uuid4().hex[:10]
    user, session, marker = f"user-{tag}", f"session-{tag}", f"qzx{tag}"
    other, other_marker = f"other-{tag}", f"kvw{tag}"
    idempotency_key = f"idem-{tag}"
    said = [
        ("Dana", f"I keep my spare key {marker} under the blue flowerpot."),
        ("Bot", f"Noted, the spare key {marker} is under the blue flowerpot."),
        ("Dana", f"My locker combination at the gym is {marker} 4-8-15."),
        ("Bot", f"Got it, gym locker combination {marker} 4-8-15."),
        ("Dana", f"Next week I fly to Reykjavik for the {marker} conference."),
        ("Bot", f"Have a good trip to Reykjavik for {marker}."),
        ("Dana", f"My sister Lena lives in Tromso and breeds {marker} huskies."),
        ("Bot", f"Huskies in Tromso with {marker}, lovely."),
    ]
    appended = client.post(
        f"/v1/sessions/{session}/messages",
        json={
            "user_id": user,
            "messages": [
                {
                    "role": "user" if who == "Dana" else "assistant",
                    "name": who,
                    "content": text,
                    "timestamp": (START + timedelta(minutes=n)).isoformat(),
                    "metadata": {"marker": marker},
                }
                for n, (who, text) in enumerate(said)
            ],
        },
        headers={**tenant.headers, "Idempotency-Key": idempotency_key},
    )
    assert appended.status_code == 202, appended.text
    wait_for_job(client, tenant, appended.json()["job_id"])
    turns = [r["id"] for r in appended.json()["results"]]
    episode, fact, procedure = write(
        client,
        tenant,
        [
            {
                "type": "episodic",
                "user_id": user,
                "content": f"Dana ran the {marker} half marathon in Oslo.",
                "occurred_at": "2024-04-20T08:00:00Z",
                "metadata": {"marker": marker, "kind": "race"},
            },
            {"type": "semantic", "user_id": user, "content": f"Dana is allergic to {marker} shellfish."},
            {
                "type": "procedural",
                "user_id": user,
                "title": f"Water Dana's {marker} orchids",
                "trigger": f"When Dana travels ({marker})",
                "steps": [f"Fill the {marker} can", "Water each orchid lightly"],
                "content": f"How to water Dana's {marker} orchids.",
            },
        ],
    )
    (linked,) = write(
        client,
        tenant,
        [{"user_id": user, "content": f"Dana avoids {marker} seafood restaurants.", "source_ids": [fact, episode]}],
    )
    patched = client.patch(
        f"/v1/memories/{fact}",
        json={"content": f"Dana is severely allergic to {marker} shellfish.", "metadata": {"marker": marker}},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    wait_for_job(client, tenant, patched.json()["job_id"])
    accepted = client.post("/v1/consolidate", json={"user_id": user}, headers=tenant.headers)
    assert accepted.status_code == 202, accepted.text
    consolidate_job = accepted.json()["job_id"]
    consolidated = wait_for_job(client, tenant, consolidate_job)
    assert consolidated["result"]["segments"] >= 2 and consolidated["result"]["summaries"] >= 1
    factory = client.app.state.session_factory
    with tenant_session(factory, uuid.UUID(tenant.id)) as db:  # what `memsvc train-recall` keeps for a scope
        consolidation_repository.save_recall_projection(
            db,
            {
                "tenant_id": uuid.UUID(tenant.id),
                "scope_key": Scope(user_id=user).key,
                "input_dim": 2,
                "projected_dim": 2,
                "weights": bytes(32),
                "segments": 2,
                "accuracy_before": 0.1,
                "accuracy_after": 0.2,
            },
        )
        db.commit()
    survivors = write(
        client,
        tenant,
        [
            {"user_id": other, "content": f"Omar collects {other_marker} stamps.", "metadata": {"m": other_marker}},
            {"type": "episodic", "user_id": other, "content": f"Omar visited {other_marker} Lisbon."},
        ],
    )
    (other_derived,) = write(
        client, tenant, [{"user_id": other, "content": f"Omar likes {other_marker} travel.", "source_ids": survivors}]
    )
    survivors.append(other_derived)
    # A changed memory keeps the version it replaced in its history: one of the other user's has one.
    repatched = client.patch(
        f"/v1/memories/{survivors[0]}", json={"content": f"Omar collects {other_marker} coins."}, headers=tenant.headers
    )
    assert repatched.status_code == 200, repatched.text
    wait_for_job(client, tenant, repatched.json()["job_id"])

    mine = listed(client, tenant, user_id=user)
    forgotten = {m["id"] for m in mine}
    levels = {m["consolidation_level"] for m in mine}
    assert {*turns, episode, fact, procedure, linked} < forgotten and {"segment", "session", "profile"} <= levels
    assert all(m["embedding_status"] == "done" for m in mine)
    with owner_connection(database_url) as conn:
        assert scan(conn, marker).keys() >= {("memories", "content"), ("memory_versions", "snapshot")}
        assert scan(conn, user).keys() >= {("jobs", "params"), ("consolidated_segments", "scope_key")}
        assert ("recall_projections", "scope_key") in scan(conn, user)
        assert ("idempotency_records", "response") in scan(conn, turns[0])
        survivors_before = _rows_of(conn, survivors)
    for mode in ("dense", "lexical", "hybrid"):  # so that finding nothing afterwards means something
        assert {h["memory"]["id"] for h in search_hits(client, tenant, said[2][1], mode)} & forgotten, mode

    response = client.delete("/v1/memories", params={"user_id": user}, headers=tenant.headers)

    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["memories"] == len(forgotten) and receipt["derived"] == 0
    assert receipt["links"] >= 2 and receipt["versions"] > len(forgotten)
    assert (receipt["recall_projections"], receipt["jobs"], receipt["idempotency_records"]) == (1, 1, 1)
    assert receipt["scope"] == {"user_id": user, "agent_id": None, "session_id": None}

    # (a) Nothing in any table, except the receipt naming the user (scope and counts, no content).
    needles = [user, session, marker, idempotency_key, consolidate_job, *forgotten, *(text for _, text in said)]
    with owner_connection(database_url) as conn:
        for needle in needles:
            hits = scan(conn, needle)
            if needle == user:
                assert hits == {("audit_log", "target"): 1}, hits
                [(entry_id, target, counts)] = conn.execute(
                    "SELECT id, target, counts FROM audit_log WHERE target ->> 'user_id' = %s", (user,)
                ).fetchall()
                assert entry_id == receipt["receipt_id"] and target == receipt["scope"]
                assert counts["memories"] == len(forgotten)
            else:
                assert hits == {}, (needle, hits)
        left = conn.execute(
            "SELECT count(*) FROM memory_embeddings WHERE memory_id = ANY(CAST(%s AS uuid[]))", (list(forgotten),)
        )
        assert left.fetchone()[0] == 0
        assert _rows_of(conn, survivors) == survivors_before  # the other user keeps rows, history and vectors
        assert all(vectors > 0 for vectors, _ in survivors_before.values())
        assert survivors_before[survivors[0]][1] == 1

    # (b) Search, by any mode and with the exact forgotten words, finds none of it; the other user is found.
    for mode in ("dense", "lexical", "hybrid"):
        for _, text in said[:3]:
            hits = search_hits(client, tenant, text, mode)
            assert not {h["memory"]["id"] for h in hits} & forgotten, mode
            assert marker not in json.dumps(hits)
        assert search_hits(client, tenant, f"Dana {marker}", mode, user_id=user) == []
        found = search_hits(client, tenant, f"Omar collects {other_marker} stamps.", mode)
        assert {h["memory"]["id"] for h in found} & set(survivors), mode

    # (c) Reads and history: 404.
    for memory_id in forgotten:
        assert client.get(f"/v1/memories/{memory_id}", headers=tenant.headers).status_code == 404
        assert client.get(f"/v1/memories/{memory_id}/history", headers=tenant.headers).status_code == 404
    assert listed(client, tenant, user_id=user) == [] and listed(client, tenant, session_id=session) == []
    messages = client.get(f"/v1/sessions/{session}/messages", headers=tenant.headers)
    assert messages.status_code == 200 and messages.json()["data"] == []

    # (d) Export of the whole tenant.
    exported = client.get("/v1/export", headers=tenant.headers)
    assert exported.status_code == 200
    records = [json.loads(line) for line in exported.text.splitlines() if line]
    assert {r["id"] for r in records} == set(survivors)
    for needle in (user, session, marker):
        assert needle not in exported.text

    # (e) Jobs: the forgotten scope's consolidation is gone; no listed job names it.
    assert client.get(f"/v1/jobs/{consolidate_job}", headers=tenant.headers).status_code == 404
    jobs = client.get("/v1/jobs", params={"limit": 100}, headers=tenant.headers)
    assert jobs.status_code == 200 and jobs.json()["count"] > 0
    for needle in (user, session, marker):
        assert needle not in jobs.text

    # The audit log holds the one receipt, without content.
    audit = client.get("/v1/audit", params={"tenant_id": tenant.id, "action": "memories.forget"}, headers=ADMIN)
    assert [e["id"] for e in audit.json()["data"]] == [receipt["receipt_id"]]
    assert marker not in audit.text and session not in audit.text


def _rows_of(conn: psycopg.Connection, ids: list[str]) -> dict[str, tuple[int, int]]:
    """(vectors, kept history versions) of each of these memories that still exists."""
    rows = conn.execute(
        """
        SELECT m.id::text,
               (SELECT count(*) FROM memory_embeddings e WHERE e.memory_id = m.id),
               (SELECT count(*) FROM memory_versions v WHERE v.memory_id = m.id)
        FROM memories m WHERE m.id = ANY(CAST(%s AS uuid[]))
        """,
        (ids,),
    ).fetchall()
    return {memory_id: (vectors, versions) for memory_id, vectors, versions in rows}

"""Learned memory recall for a scope: `memsvc consolidation train-recall` and what consolidation does with it."""

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

from memsvc.consolidation import repository
from memsvc.consolidation.recall import RecallProjection
from memsvc.consolidation.service import Scope
from memsvc.consolidation.training import MIN_PAIRS, predecessors, recall_accuracy, train_scope_recall
from memsvc.core.db import tenant_session
from memsvc.core.errors import Unprocessable
from tests.conftest import add_memories, create_tenant
from tests.consolidation.test_consolidate_api import TRIP, add_dialogue, consolidate

DIM = 32
SESSIONS = 6


def test_a_segment_continues_the_previous_segment_of_its_session() -> None:
    assert predecessors(["a", "a", None, "b", "a", "b", None]) == [None, 0, None, None, 1, 3, None]


def test_recall_accuracy_counts_predecessors_ranked_first() -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[2] = vectors[0]  # segment 2 is closest to segment 0 ...
    vectors[3] = vectors[1]  # ... and segment 3 to segment 1
    assert recall_accuracy(vectors, [None, None, 0, 1], [2, 3], None) == 1.0
    assert recall_accuracy(vectors, [None, None, 1, 0], [2, 3], None) == 0.0


def interleaved_sessions(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Segment embeddings of SESSIONS sessions taking turns; a segment's embedding is the previous segment of its
    session under a fixed rotation, plus noise, so cosine similarity alone does not find the segment it continues."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(np.random.default_rng(42).normal(size=(DIM, DIM)))
    vectors = np.zeros((count, DIM), dtype=np.float32)
    for i in range(count):
        base = vectors[i - SESSIONS] @ rotation if i >= SESSIONS else rng.normal(size=DIM)
        noisy = base + 0.08 * rng.normal(size=DIM)
        vectors[i] = noisy / np.linalg.norm(noisy)
    return vectors, [f"s{i % SESSIONS}" for i in range(count)]


def record_segments(factory, tenant_id: uuid.UUID, scope: Scope, summaries: list[str], vectors: np.ndarray, sessions):
    with tenant_session(factory, tenant_id) as db:
        for n, (summary, vector, session) in enumerate(zip(summaries, vectors, sessions, strict=True)):
            repository.record(
                db,
                {
                    "tenant_id": tenant_id,
                    "scope_key": scope.key,
                    "level": "segment",
                    "source_hash": f"{n:064d}",
                    "memory_id": uuid.UUID(summary),
                    "session_id": session,
                    "first_seq": n,
                    "last_seq": n,
                    "memory_embedding": vector.tolist(),
                    "backend": "extractive",
                },
            )
        db.commit()


def test_training_keeps_a_projection_that_recalls_better_than_identity(client) -> None:
    factory = client.app.state.session_factory
    tenant = create_tenant(client)
    tenant_id, scope = uuid.UUID(tenant.id), Scope(user_id="alice")
    summaries = add_memories(client, tenant, *({"content": f"summary {n}", "user_id": "alice"} for n in range(72)))
    vectors, sessions = interleaved_sessions(len(summaries), seed=1)
    record_segments(factory, tenant_id, scope, summaries, vectors, sessions)

    trained = train_scope_recall(factory, tenant_id, scope, steps=200)
    assert trained.segments == 72 and trained.trained_pairs + trained.held_out_pairs == 72 - SESSIONS
    assert trained.held_out_pairs >= 10
    assert trained.accuracy_before < 0.3 < trained.accuracy_after
    assert trained.kept
    with tenant_session(factory, tenant_id) as db:
        stored = repository.recall_projection(db, tenant_id, scope.key)
        assert stored is not None and (stored.input_dim, stored.projected_dim) == (DIM, DIM)
        assert stored.accuracy_after == pytest.approx(trained.accuracy_after, abs=1e-4)
        projection = RecallProjection.from_bytes(stored.weights, DIM, DIM)
    assert recall_accuracy(vectors, predecessors(sessions), list(range(60, 72)), projection) > 0.3

    other = create_tenant(client)  # another tenant's scope of the same name has nothing to learn from
    with pytest.raises(Unprocessable, match=f"needs {MIN_PAIRS}"):
        train_scope_recall(factory, uuid.UUID(other.id), scope)

    # Learned from alice's history, the projection goes when she is forgotten.
    forgotten = client.delete("/v1/memories", params={"user_id": "alice"}, headers=tenant.headers)
    assert forgotten.status_code == 200, forgotten.text
    assert forgotten.json()["recall_projections"] == 1
    with tenant_session(factory, tenant_id) as db:
        assert repository.recall_projection(db, tenant_id, scope.key) is None


def test_consolidation_recalls_through_a_stored_projection(client, embedder) -> None:
    factory = client.app.state.session_factory
    tenant = create_tenant(client)
    tenant_id, scope = uuid.UUID(tenant.id), Scope(user_id="alice")
    add_dialogue(client, tenant, "trip", TRIP, day=0)
    dim = embedder.dim
    identity = RecallProjection.identity(dim)
    with tenant_session(factory, tenant_id) as db:
        repository.save_recall_projection(
            db,
            {
                "tenant_id": tenant_id,
                "scope_key": scope.key,
                "input_dim": dim,
                "projected_dim": dim,
                "weights": identity.to_bytes(),
                "segments": 0,
                "accuracy_before": 0.0,
                "accuracy_after": 0.0,
            },
        )
        db.commit()
    job = consolidate(client, tenant, user_id="alice")
    assert job["status"] == "done" and job["result"]["segments"] >= 1


def test_the_command_names_what_is_missing(client, database_url: str) -> None:
    tenant = create_tenant(client)
    env = {**os.environ, "MEMSVC_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "memsvc", "consolidation", "train-recall", tenant.id]
    no_scope = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert no_scope.returncode == 2 and "--user" in no_scope.stderr
    too_little = subprocess.run([*command, "--user", "alice"], env=env, capture_output=True, text=True, timeout=120)
    assert too_little.returncode == 1 and f"needs {MIN_PAIRS}" in too_little.stderr
    assert "Traceback" not in too_little.stderr

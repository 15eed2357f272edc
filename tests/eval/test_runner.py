"""An evaluation run end to end through the real API (app, Postgres, worker, model): ingest rung by rung,
query, score; scoping by user, exact duplicates, scenes."""

import pytest
from fastapi.testclient import TestClient

from memsvc.eval.client import EvalClient
from memsvc.eval.dataset import Dataset, Document, Query
from memsvc.eval.runner import RunOptions, run
from tests.conftest import TenantHandle

CORE = [
    Document("a1", "Alice's cat is called Miso.", user_id="alice"),
    Document("a2", "Alice moved to Porto in March.", user_id="alice"),
    Document("a3", "Alice works as a nurse at the city hospital.", user_id="alice"),
    Document("b1", "Bob's cat is called Pepper.", user_id="bob"),  # Alice's cat query: a near miss elsewhere
    Document("b2", "Bob moved to Lisbon in May.", user_id="bob"),
    Document("b3", "Bob's sister is a nurse too.", user_id="bob"),
    Document("a4", "Alice's cat is called Miso.", user_id="alice"),  # exact duplicate of a1: stored once
]
DISTRACTORS = [
    Document(f"d{n}", f"Carol noted item {n} on her shopping list: {thing}.", user_id="carol")
    for n, thing in enumerate(["apples", "bread", "soap", "rice", "tea", "milk"])
]
QUERIES = [
    Query("q1", "What is the name of Alice's cat?", gold=("a1",), type="single", answer="Miso",
          user_id="alice", hard_negatives=("b1",)),
    Query("q2", "Where did Alice move, and what is her job?", gold=("a2", "a3"), type="multi",
          user_id="alice", hard_negatives=("b2", "b3")),
    Query("q3", "What is Alice's cat called?", gold=("a4",), type="single", user_id="alice"),
]  # fmt: skip
DATASET = Dataset("toy", CORE + DISTRACTORS, QUERIES, ladder=[len(CORE), len(CORE) + len(DISTRACTORS)])


@pytest.fixture
def eval_client(client: TestClient, tenant: TenantHandle) -> EvalClient:
    return EvalClient(TestClient(client.app, headers=tenant.headers))


def test_run_scores_every_rung_through_the_api(eval_client):
    rungs = run(DATASET, eval_client, RunOptions(progress=False))

    assert [r["corpus_size"] for r in rungs] == [7, 13]
    for rung in rungs:
        overall = rung["evidence_access"]["overall"]
        assert (overall["queries"], overall["single_source"], overall["multi_source"]) == (3, 2, 1)
        # Searching Alice's own memories: the gold comes first, Bob's near misses never appear.
        assert overall["R@1"] == 1.0 and overall["SR@10"] == 1.0 and overall["FR@10"] == 1.0
        assert overall["intrusion@10"] == 0.0
        assert set(rung["evidence_access"]) == {"single", "multi", "overall"}
        assert rung["latency"]["p50_ms"] > 0 and rung["latency"]["p95_ms"] >= rung["latency"]["p50_ms"]
        assert rung["answer_quality"]["queries"] == 1 and rung["answer_quality"]["token_f1"] > 0


def test_global_scope_lets_other_users_near_misses_intrude(eval_client):
    [rung] = run(
        Dataset("toy", CORE, QUERIES, ladder=[len(CORE)]), eval_client, RunOptions(scope="global", progress=False)
    )

    # Bob's "cat is called Pepper" / "moved to Lisbon" now compete with Alice's memories.
    assert rung["evidence_access"]["overall"]["intrusion@10"] > 0


def test_a_scene_restricts_the_ranking_to_its_candidates(eval_client):
    scene = Query("q", "What is the name of Alice's cat?", gold=("a1",), user_id="alice", candidates=("a2", "a3"))

    [rung] = run(Dataset("toy", CORE, [scene], ladder=[len(CORE)]), eval_client, RunOptions(progress=False))

    # The gold is outside the scene, so it cannot be returned: the ranking holds only a2 and a3.
    assert rung["evidence_access"]["overall"]["SR@10"] == 0.0 and rung["evidence_access"]["overall"]["MRR"] == 0.0

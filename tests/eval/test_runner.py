"""An evaluation run end to end through the real API (app, Postgres, worker, model): ingest rung by rung,
query, score; scoping by user, exact duplicates, scenes, search variants on the same data, the dataset's `now`;
and how hits (with their evidence) become a ranking of document ids."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from memsvc.eval.client import EvalClient, Hit
from memsvc.eval.dataset import Dataset, Document, Query
from memsvc.eval.metrics import score_query
from memsvc.eval.runner import RunOptions, document_ranking, request_fields, run, run_variants
from memsvc.eval.variants import DEFAULT_VARIANT, SearchVariant
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


def test_variants_search_the_same_ingested_data_with_their_own_fields(eval_client):
    semantic = SearchVariant("semantic", {"types": ["semantic"]})
    procedural = SearchVariant("procedural", {"types": ["procedural"]})

    by_variant = run_variants(DATASET, eval_client, RunOptions(progress=False), [semantic, procedural])

    assert list(by_variant) == ["semantic", "procedural"]
    for rung_semantic, rung_procedural in zip(by_variant["semantic"], by_variant["procedural"], strict=True):
        assert rung_semantic["corpus_size"] == rung_procedural["corpus_size"]
        assert rung_semantic["ingest_s"] == rung_procedural["ingest_s"]  # one ingest per rung, shared
        assert rung_semantic["evidence_access"]["overall"]["SR@10"] == 1.0
        # Every document is semantic, so the procedural-only search finds nothing: the fields reached the server.
        assert rung_procedural["evidence_access"]["overall"]["SR@10"] == 0.0


def test_two_variants_of_one_name_are_refused(eval_client):
    with pytest.raises(ValueError, match="'a' is used twice"):
        run_variants(DATASET, eval_client, RunOptions(progress=False), [SearchVariant("a"), SearchVariant("a")])


def test_searches_send_the_datasets_now_unless_the_variant_overrides_it():
    may = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    dated = Dataset("toy", CORE, QUERIES, now=may)

    assert request_fields(DATASET, DEFAULT_VARIANT) == {}
    assert request_fields(dated, DEFAULT_VARIANT) == {"now": "2023-05-08T13:56:00+00:00"}
    assert request_fields(dated, SearchVariant("v", {"mode": "dense"})) == {
        "now": "2023-05-08T13:56:00+00:00",
        "mode": "dense",
    }
    assert request_fields(dated, SearchVariant("v", {"now": "2024-01-01T00:00:00Z"})) == {"now": "2024-01-01T00:00:00Z"}
    assert request_fields(dated, SearchVariant("v", {"now": None, "parse_time": False})) == {"parse_time": False}


def test_a_dated_dataset_is_searched_from_its_now(eval_client):
    dated = Dataset("toy", CORE, QUERIES, ladder=[len(CORE)], now=datetime(2023, 5, 8, tzinfo=UTC))

    [rung] = run(dated, eval_client, RunOptions(progress=False))

    assert rung["evidence_access"]["overall"]["SR@10"] == 1.0


# --- hits to document ids ----------------------------------------------------------------------------------------

STORED = {"m-a1": ["a1", "a4"], "m-a2": ["a2"], "m-a3": ["a3"], "m-b1": ["b1"]}  # a4 is a1's exact duplicate


def test_a_hit_counts_the_documents_stored_as_its_memory_gold_first():
    ranking = document_ranking([Hit("m-a1", 0.9), Hit("m-b1", 0.5)], STORED, gold={"a4"})

    assert ranking == [("a4", 0.9), ("a1", 0.9), ("b1", 0.5)]


def test_evidence_of_a_summary_counts_at_the_summarys_position():
    summary = Hit("m-summary", 0.8, evidence=("m-a2", "m-a3"))  # a summary is no document itself

    ranking = document_ranking([Hit("m-b1", 0.9), summary, Hit("m-a1", 0.4)], STORED, gold={"a3"})

    assert [doc_id for doc_id, _ in ranking] == ["b1", "a2", "a3", "a1", "a4"]
    assert dict(ranking)["a3"] == 0.8  # scored through its summary
    scores = score_query(Query("q", "?", gold=("a2", "a3")), ranking, k=3)
    assert scores.fr_at_k == 1.0 and scores.sr_at_k == 1.0


def test_evidence_follows_the_hits_own_documents_and_each_id_keeps_its_first_position():
    hits = [
        Hit("m-a2", 0.9, evidence=("m-a3", "m-a2", "m-unknown")),  # cites itself and a memory that is no document
        Hit("m-a3", 0.7),  # already counted through the first hit's evidence
        Hit("m-b1", 0.6, evidence=("m-a1",)),
    ]

    ranking = document_ranking(hits, STORED, gold=set())

    assert ranking == [("a2", 0.9), ("a3", 0.9), ("b1", 0.6), ("a1", 0.6), ("a4", 0.6)]


def test_hits_without_evidence_rank_as_before():
    assert document_ranking([Hit("m-a3", 0.9, evidence=()), Hit("m-x", 0.5)], STORED, gold=set()) == [("a3", 0.9)]


def test_a_consolidating_run_consolidates_each_user_with_enough_history_after_each_rung(eval_client, monkeypatch):
    import memsvc.eval.runner as runner

    monkeypatch.setattr(runner, "CONSOLIDATED_HISTORY", 3)  # alice and bob (3 each), not carol at the first rung
    events = [replace(doc, type="episodic") for doc in DATASET.documents]  # history: what consolidation reads
    rungs = run(replace(DATASET, documents=events), eval_client, RunOptions(progress=False, consolidate="extractive"))

    first, second = (rung["consolidation"] for rung in rungs)
    assert first["backend"] == "extractive" and first["users"] == 2 and first["segments"] == 2
    assert second["users"] == 3 and second["segments"] == 1  # only carol's history is new
    assert second["summaries"] >= 1 and second["run_s"] >= 0
    # Searching with expand=evidence still localizes the gold documents, summaries in the way or not.
    searched = run_variants(
        DATASET, eval_client, RunOptions(progress=False), [SearchVariant("expand", {"expand": ["evidence"]})]
    )
    assert searched["expand"][-1]["evidence_access"]["overall"]["SR@10"] == 1.0

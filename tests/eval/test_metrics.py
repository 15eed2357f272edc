"""Hand-checked toy rankings for the evidence-access metrics; each expected number is worked out in a comment."""

import math

import pytest

from memsvc.eval.dataset import Query
from memsvc.eval.metrics import (
    QueryScores,
    aggregate,
    latency_summary,
    percentile,
    ranked_ids,
    score_query,
)


def ranking(*ids: str) -> list[tuple[str, float]]:
    """A ranking in the given order, with strictly decreasing scores."""
    return [(doc_id, 1.0 - i / 100) for i, doc_id in enumerate(ids)]


def fillers(n: int, prefix: str = "n") -> list[str]:
    """`n` distinct non-gold ids."""
    return [f"{prefix}{i}" for i in range(1, n + 1)]


# --- single-source ---------------------------------------------------------------------------------------------


def test_single_source_hit_at_1() -> None:
    query = Query(id="q", text="?", gold=("a",))
    scores = score_query(query, ranking("a", "b", "c"))
    # a at rank 1: R@1 = 1, SR = 1/1, nDCG = (1/log2 2) / (1/log2 2) = 1, MRR = 1/1; FR undefined for one gold id.
    assert scores == QueryScores(
        k=10, r_at_1=1.0, sr_at_k=1.0, fr_at_k=None, ndcg_at_k=1.0, mrr=1.0, intrusion_at_k=0.0, returned=3
    )


def test_single_source_hit_at_3() -> None:
    query = Query(id="q", text="?", gold=("a",))
    scores = score_query(query, ranking("x", "y", "a", "z"))
    # a at rank 3: R@1 = 0, SR = 1, nDCG = (1/log2 4) / 1 = 0.5, MRR = 1/3.
    assert scores.r_at_1 == 0.0
    assert scores.sr_at_k == pytest.approx(1.0)
    assert scores.fr_at_k is None
    assert scores.ndcg_at_k == pytest.approx(0.5)
    assert scores.mrr == pytest.approx(1 / 3)
    assert scores.returned == 4


# --- multi-source ----------------------------------------------------------------------------------------------


def test_multi_source_partial_coverage() -> None:
    query = Query(id="q", text="?", gold=("a", "b", "c"))
    scores = score_query(query, ranking("a", "x", "b", "y"))
    # a at 1, b at 3, c never returned: SR = 2/3, FR = 0, MRR = 1; R@1 undefined for several gold ids.
    # DCG = 1/log2 2 + 1/log2 4 = 1.5; IDCG = 1/log2 2 + 1/log2 3 + 1/log2 4 (three gold ids).
    assert scores.r_at_1 is None
    assert scores.sr_at_k == pytest.approx(2 / 3)
    assert scores.fr_at_k == 0.0
    assert scores.mrr == pytest.approx(1.0)
    assert scores.ndcg_at_k == pytest.approx(1.5 / (1 + 1 / math.log2(3) + 0.5))


def test_multi_source_full_coverage() -> None:
    query = Query(id="q", text="?", gold=("a", "b"))
    scores = score_query(query, ranking("x", "a", "b"))
    # a at 2, b at 3: SR = 1, FR = 1, MRR = 1/2.
    # DCG = 1/log2 3 + 1/log2 4; IDCG = 1/log2 2 + 1/log2 3.
    assert scores.r_at_1 is None
    assert scores.sr_at_k == pytest.approx(1.0)
    assert scores.fr_at_k == 1.0
    assert scores.mrr == pytest.approx(0.5)
    assert scores.ndcg_at_k == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))


def test_multi_source_gold_item_just_outside_top_k() -> None:
    query = Query(id="q", text="?", gold=("a", "b"))
    scores = score_query(query, ranking("a", *fillers(9), "b"))
    # a at 1, b at 11 (outside the top 10): SR = 1/2, FR = 0; MRR still counts a at 1.
    assert scores.sr_at_k == pytest.approx(0.5)
    assert scores.fr_at_k == 0.0
    assert scores.mrr == pytest.approx(1.0)


# --- ranking normalisation -------------------------------------------------------------------------------------


def test_ties_keep_the_system_order() -> None:
    query = Query(id="q", text="?", gold=("a",))
    # Same score: x came first, so a is at rank 2 -> R@1 = 0, MRR = 1/2.
    tied = score_query(query, [("x", 0.5), ("a", 0.5)])
    assert tied.r_at_1 == 0.0
    assert tied.mrr == pytest.approx(0.5)
    # Same scores, other order: a is at rank 1 -> R@1 = 1, MRR = 1.
    tied_other_way = score_query(query, [("a", 0.5), ("x", 0.5)])
    assert tied_other_way.r_at_1 == 1.0
    assert tied_other_way.mrr == pytest.approx(1.0)


def test_scores_never_reorder_the_ranking() -> None:
    query = Query(id="q", text="?", gold=("a",))
    # a has the higher score but the system put it second: it stays at rank 2.
    scores = score_query(query, [("x", 0.1), ("a", 0.9)])
    assert scores.r_at_1 == 0.0
    assert scores.mrr == pytest.approx(0.5)
    assert ranked_ids([("x", 0.1), ("a", 0.9), ("y", 0.9)]) == ["x", "a", "y"]


def test_duplicates_count_once_at_first_position() -> None:
    assert ranked_ids(ranking("x", "a", "x", "a", "b")) == ["x", "a", "b"]
    query = Query(id="q", text="?", gold=("a", "b"))
    scores = score_query(query, ranking("x", "a", "a", "b"))
    # Deduplicated: x, a, b -> a at 2, b at 3: SR = 1, FR = 1, MRR = 1/2; 3 distinct ids returned.
    assert scores.sr_at_k == pytest.approx(1.0)
    assert scores.fr_at_k == 1.0
    assert scores.mrr == pytest.approx(0.5)
    assert scores.returned == 3


def test_duplicate_gold_id_in_ranking_is_not_counted_twice() -> None:
    query = Query(id="q", text="?", gold=("a", "b"))
    scores = score_query(query, ranking("a", "a"))
    # Only a was found (twice): SR = 1/2, not 2/2; FR = 0. DCG = 1/log2 2 = 1; IDCG = 1 + 1/log2 3.
    assert scores.sr_at_k == pytest.approx(0.5)
    assert scores.fr_at_k == 0.0
    assert scores.ndcg_at_k == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert scores.returned == 1


def test_duplicate_does_not_push_gold_out_of_top_10() -> None:
    query = Query(id="q", text="?", gold=("g",))
    # Raw positions: n1..n9, n1 again at 10, g at 11. Deduplicated: n1..n9, g -> g at rank 10.
    # SR = 1 (it would be 0 if the duplicate kept position 10), MRR = 1/10, nDCG = 1/log2 11, 10 distinct ids.
    scores = score_query(query, ranking(*fillers(9), "n1", "g"))
    assert scores.sr_at_k == pytest.approx(1.0)
    assert scores.mrr == pytest.approx(0.1)
    assert scores.ndcg_at_k == pytest.approx(1 / math.log2(11))
    assert scores.returned == 10


def test_duplicate_gold_ids_in_query_count_once() -> None:
    query = Query(id="q", text="?", gold=("a", "a"))
    scores = score_query(query, ranking("a"))
    # Gold deduplicates to {a}: a single-source query, R@1 = 1, SR = 1/1, FR undefined.
    assert scores.r_at_1 == 1.0
    assert scores.sr_at_k == pytest.approx(1.0)
    assert scores.fr_at_k is None


# --- missing ids and short rankings ----------------------------------------------------------------------------


def test_ids_not_in_corpus_still_take_positions() -> None:
    query = Query(id="q", text="?", gold=("a",))
    scores = score_query(query, ranking("ghost-1", "ghost-2", "a"))
    # The unknown ids occupy ranks 1 and 2: a at 3 -> R@1 = 0, MRR = 1/3, nDCG = 1/log2 4 = 0.5.
    assert scores.r_at_1 == 0.0
    assert scores.mrr == pytest.approx(1 / 3)
    assert scores.ndcg_at_k == pytest.approx(0.5)
    assert scores.returned == 3


def test_gold_ids_never_returned() -> None:
    query = Query(id="q", text="?", gold=("a", "b"))
    scores = score_query(query, ranking("x", "y"))
    # Nothing found: SR = 0, FR = 0, nDCG = 0, MRR = 0.
    assert scores == QueryScores(
        k=10, r_at_1=None, sr_at_k=0.0, fr_at_k=0.0, ndcg_at_k=0.0, mrr=0.0, intrusion_at_k=0.0, returned=2
    )


def test_empty_ranking() -> None:
    query = Query(id="q", text="?", gold=("a",))
    assert score_query(query, []) == QueryScores(
        k=10, r_at_1=0.0, sr_at_k=0.0, fr_at_k=None, ndcg_at_k=0.0, mrr=0.0, intrusion_at_k=0.0, returned=0
    )


def test_fewer_than_10_returned() -> None:
    query = Query(id="q", text="?", gold=("a", "b"), hard_negatives=("h",))
    scores = score_query(query, ranking("h", "a", "b"))
    # 3 returned: a at 2, b at 3 -> SR = 1, FR = 1, MRR = 1/2.
    # Intrusion divides by k = 10, not by the 3 returned: 1/10.
    assert scores.sr_at_k == pytest.approx(1.0)
    assert scores.fr_at_k == 1.0
    assert scores.mrr == pytest.approx(0.5)
    assert scores.intrusion_at_k == pytest.approx(0.1)
    assert scores.returned == 3


# --- hard negatives --------------------------------------------------------------------------------------------


def test_hard_negative_intrusion() -> None:
    query = Query(id="q", text="?", gold=("a",), hard_negatives=("h1", "h2", "h3"))
    # h1 at 1 (and again at 3, dropped), h2 at 4, h3 at 12 (outside the top 10):
    # deduplicated: h1, a, h2, n1..n8, h3 -> h1 and h2 in the top 10 -> intrusion = 2/10.
    scores = score_query(query, ranking("h1", "a", "h1", "h2", *fillers(8), "h3"))
    assert scores.intrusion_at_k == pytest.approx(0.2)
    assert scores.mrr == pytest.approx(0.5)
    assert scores.returned == 12


def test_gold_tagged_as_hard_negative_is_not_intrusion() -> None:
    query = Query(id="q", text="?", gold=("a",), hard_negatives=("a", "h"))
    scores = score_query(query, ranking("a", "h"))
    # a is gold, so only h intrudes: 1/10.
    assert scores.intrusion_at_k == pytest.approx(0.1)


# --- nDCG and k ------------------------------------------------------------------------------------------------


def test_ndcg_against_hand_computation() -> None:
    query = Query(id="q", text="?", gold=("a", "b", "c"))
    # a at 2, b at 4, c at 12 (outside the top 10).
    scores = score_query(query, ranking("x", "a", "y", "b", *fillers(7), "c"))
    dcg = 1 / math.log2(2 + 1) + 1 / math.log2(4 + 1)
    ideal_dcg = 1 / math.log2(1 + 1) + 1 / math.log2(2 + 1) + 1 / math.log2(3 + 1)
    assert scores.ndcg_at_k == pytest.approx(dcg / ideal_dcg)
    assert scores.ndcg_at_k == pytest.approx(0.4982, abs=1e-4)  # 1.0616 / 2.1309


def test_ndcg_ideal_is_capped_at_k_gold_items() -> None:
    query = Query(id="q", text="?", gold=("a", "b", "c"))
    scores = score_query(query, ranking("a", "b", "c"), k=2)
    # k = 2: a and b fill the top 2, the ideal DCG counts only min(3, 2) = 2 gold items -> nDCG = 1.
    # SR = 2/3 (c outside the top 2), FR = 0, intrusion divided by 2.
    assert scores.k == 2
    assert scores.ndcg_at_k == pytest.approx(1.0)
    assert scores.sr_at_k == pytest.approx(2 / 3)
    assert scores.fr_at_k == 0.0


def test_k_parameter_cuts_the_ranking() -> None:
    query = Query(id="q", text="?", gold=("a",), hard_negatives=("h",))
    scores = score_query(query, ranking("h", "x", "a"), k=2)
    # Top 2 = h, x: SR = 0, nDCG = 0, intrusion = 1/2; MRR looks at the whole ranking: 1/3.
    assert scores.sr_at_k == 0.0
    assert scores.ndcg_at_k == 0.0
    assert scores.intrusion_at_k == pytest.approx(0.5)
    assert scores.mrr == pytest.approx(1 / 3)


def test_invalid_k_raises() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        score_query(Query(id="q", text="?", gold=("a",)), ranking("a"), k=0)


def test_empty_gold_raises() -> None:
    with pytest.raises(ValueError, match="empty gold set"):
        score_query(Query(id="q", text="?", gold=()), ranking("a"))


# --- aggregation -----------------------------------------------------------------------------------------------


def test_aggregate_per_type_and_overall() -> None:
    single_hit = Query(id="q1", text="?", gold=("a",), type="temporal", hard_negatives=("h",))
    multi_partial = Query(id="q2", text="?", gold=("a", "b"), type="temporal")
    single_miss = Query(id="q3", text="?", gold=("a",), type="entity")
    results = [
        # q1: R@1 1, SR 1, nDCG 1, MRR 1, intrusion 1/10.
        (single_hit, score_query(single_hit, ranking("a", "h"))),
        # q2: SR 1/2, FR 0, nDCG (1/log2 3)/(1 + 1/log2 3), MRR 1/2, intrusion 0.
        (multi_partial, score_query(multi_partial, ranking("x", "a"))),
        # q3: R@1 0, SR 0, nDCG 0, MRR 0, intrusion 0.
        (single_miss, score_query(single_miss, ranking("x"))),
    ]
    report = aggregate(results)
    assert list(report) == ["entity", "temporal", "overall"]

    q2_ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # DCG = 1/log2 3 at rank 2, IDCG = 1 + 1/log2 3

    # entity: only q3, single-source, so FR@10 is defined for no query.
    assert report["entity"] == {
        "R@1": 0.0,
        "SR@10": 0.0,
        "FR@10": None,
        "nDCG@10": 0.0,
        "MRR": 0.0,
        "intrusion@10": 0.0,
        "queries": 1,
        "single_source": 1,
        "multi_source": 0,
    }
    # temporal: R@1 over q1 only = 1; FR@10 over q2 only = 0; the rest over q1 and q2.
    temporal = report["temporal"]
    assert temporal["R@1"] == pytest.approx(1.0)
    assert temporal["FR@10"] == pytest.approx(0.0)
    assert temporal["SR@10"] == pytest.approx((1 + 0.5) / 2)
    assert temporal["nDCG@10"] == pytest.approx((1 + q2_ndcg) / 2)
    assert temporal["MRR"] == pytest.approx((1 + 0.5) / 2)
    assert temporal["intrusion@10"] == pytest.approx((0.1 + 0) / 2)
    assert (temporal["queries"], temporal["single_source"], temporal["multi_source"]) == (2, 1, 1)
    # overall: R@1 over q1, q3 = (1 + 0)/2; FR@10 over q2 = 0; the rest over all three.
    overall = report["overall"]
    assert overall["R@1"] == pytest.approx(0.5)
    assert overall["FR@10"] == pytest.approx(0.0)
    assert overall["SR@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert overall["nDCG@10"] == pytest.approx((1 + q2_ndcg + 0) / 3)
    assert overall["MRR"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert overall["intrusion@10"] == pytest.approx(0.1 / 3)
    assert (overall["queries"], overall["single_source"], overall["multi_source"]) == (3, 2, 1)


def test_aggregate_only_multi_source_has_no_r_at_1() -> None:
    query = Query(id="q", text="?", gold=("a", "b"))
    report = aggregate([(query, score_query(query, ranking("a", "b")))])
    assert list(report) == ["all", "overall"]
    assert report["overall"]["R@1"] is None
    assert report["overall"]["FR@10"] == pytest.approx(1.0)


def test_aggregate_of_nothing() -> None:
    assert aggregate([]) == {
        "overall": {
            "R@1": None,
            "SR@10": None,
            "FR@10": None,
            "nDCG@10": None,
            "MRR": None,
            "intrusion@10": None,
            "queries": 0,
            "single_source": 0,
            "multi_source": 0,
        }
    }


def test_aggregate_keys_follow_k() -> None:
    query = Query(id="q", text="?", gold=("a",))
    report = aggregate([(query, score_query(query, ranking("a"), k=5))])
    assert set(report["overall"]) == {
        "R@1",
        "SR@5",
        "FR@5",
        "nDCG@5",
        "MRR",
        "intrusion@5",
        "queries",
        "single_source",
        "multi_source",
    }


def test_aggregate_rejects_mixed_k() -> None:
    query = Query(id="q", text="?", gold=("a",))
    with pytest.raises(ValueError, match="different k"):
        aggregate([(query, score_query(query, ranking("a"))), (query, score_query(query, ranking("a"), k=5))])


def test_aggregate_rejects_type_named_overall() -> None:
    query = Query(id="q", text="?", gold=("a",), type="overall")
    with pytest.raises(ValueError, match="reserved"):
        aggregate([(query, score_query(query, ranking("a")))])


# --- latency ---------------------------------------------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    # Sorted 1..5. p50: rank ceil(0.5 * 5) = 3 -> 3. p95: rank ceil(4.75) = 5 -> 5. p0 -> minimum; p100 -> maximum.
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 5.0
    # 1..20: p95 is rank ceil(19.0) = 19 -> 19 (not 20); p50 is rank 10 -> 10.
    twenty = [float(v) for v in range(20, 0, -1)]
    assert percentile(twenty, 95) == 19.0
    assert percentile(twenty, 50) == 10.0


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


def test_latency_summary_rounds_to_a_tenth() -> None:
    # Two values: p50 is rank ceil(1.0) = 1 -> 10.04 -> 10.0; p95 is rank ceil(1.9) = 2 -> 20.06 -> 20.1.
    assert latency_summary([20.06, 10.04]) == {"p50_ms": 10.0, "p95_ms": 20.1}
    with pytest.raises(ValueError):
        latency_summary([])

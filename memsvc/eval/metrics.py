"""Evidence-access metrics for one ranking per query, and their aggregation: the EverMemBench-S decoupled
metrics (R@1 for single-source queries, SR@k and FR@k for multi-source coverage) plus nDCG@k, MRR and hard-negative
intrusion@k. Pure functions over `Query` objects and rankings; no I/O.

A ranking is what the system returned for one query: (document_id, score) pairs, best first. Before scoring it is
normalised the same way everywhere (see `ranked_ids`):

- duplicates of a document id count once, at their first (best) position; later copies are dropped and do not take
  a position, so a repeated id cannot push a gold item out of the top k;
- ids that are not documents of the corpus are still positions in the ranking: they take a slot and never match;
- the system's order is authoritative: ties in score keep that order, and scores are never used to reorder.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from memsvc.eval.dataset import Query

OVERALL = "overall"


@dataclass(frozen=True)
class QueryScores:
    """Scores of one query's ranking at cut-off `k`. A metric that does not apply to the query is None: `r_at_1`
    is defined only for single-source queries, `fr_at_k` only for multi-source ones."""

    k: int
    r_at_1: float | None  # 1.0 if the top-1 id is gold (single-source only)
    sr_at_k: float  # share of the gold set found in the top k
    fr_at_k: float | None  # 1.0 if the whole gold set is in the top k (multi-source only)
    ndcg_at_k: float  # binary relevance; ideal DCG over min(|gold|, k) gold items
    mrr: float  # 1 / rank of the first gold id anywhere in the ranking, 0.0 if none
    intrusion_at_k: float  # hard negatives in the top k, divided by k (always k, even if fewer were returned)
    returned: int  # distinct ids returned


def ranked_ids(ranking: Sequence[tuple[str, float]]) -> list[str]:
    """The ranking's document ids in the system's order, each id once, at its first position. Scores are ignored:
    equal scores keep the system's order and no pair is moved."""
    return list(dict.fromkeys(doc_id for doc_id, _score in ranking))


def score_query(query: Query, ranking: Sequence[tuple[str, float]], *, k: int = 10) -> QueryScores:
    """Score one query's ranking (normalised as `ranked_ids` describes) against its gold evidence.

    Raises ValueError if the query has no gold ids or `k` is not positive."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    gold = set(query.gold)
    if not gold:
        raise ValueError(f"query {query.id!r} has an empty gold set")
    # A document tagged both gold and hard negative is a data error; counting it as gold avoids penalising a hit.
    hard_negatives = set(query.hard_negatives) - gold

    ids = ranked_ids(ranking)
    top_k = ids[:k]
    found_in_top_k = gold.intersection(top_k)

    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc_id in enumerate(top_k, start=1) if doc_id in gold)
    ideal_dcg = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    first_gold_rank = next((rank for rank, doc_id in enumerate(ids, start=1) if doc_id in gold), None)
    multi_source = len(gold) > 1

    return QueryScores(
        k=k,
        r_at_1=None if multi_source else float(bool(ids) and ids[0] in gold),
        sr_at_k=len(found_in_top_k) / len(gold),
        fr_at_k=float(found_in_top_k == gold) if multi_source else None,
        ndcg_at_k=dcg / ideal_dcg,
        mrr=1.0 / first_gold_rank if first_gold_rank is not None else 0.0,
        intrusion_at_k=sum(1 for doc_id in top_k if doc_id in hard_negatives) / k,
        returned=len(ids),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [value for value in values if value is not None]
    return sum(defined) / len(defined) if defined else None


def _summarise(results: Sequence[tuple[Query, QueryScores]], k: int) -> dict[str, float | int | None]:
    scores = [query_scores for _query, query_scores in results]
    multi = sum(1 for query, _scores in results if query.multi_source)
    return {
        "R@1": _mean([s.r_at_1 for s in scores]),
        f"SR@{k}": _mean([s.sr_at_k for s in scores]),
        f"FR@{k}": _mean([s.fr_at_k for s in scores]),
        f"nDCG@{k}": _mean([s.ndcg_at_k for s in scores]),
        "MRR": _mean([s.mrr for s in scores]),
        f"intrusion@{k}": _mean([s.intrusion_at_k for s in scores]),
        "queries": len(results),
        "single_source": len(results) - multi,
        "multi_source": multi,
    }


def aggregate(results: Sequence[tuple[Query, QueryScores]]) -> dict[str, dict[str, float | int | None]]:
    """Per query type (sorted by name) and "overall": the mean of each metric over the queries where it is defined
    (None where it is defined for none) under the report keys "R@1", "SR@10", "FR@10", "nDCG@10", "MRR",
    "intrusion@10" (the number is the scores' k), and the counts "queries", "single_source", "multi_source".

    Raises ValueError if the scores were computed with different k, or a query type is named "overall"."""
    ks = {query_scores.k for _query, query_scores in results}
    if len(ks) > 1:
        raise ValueError(f"scores were computed with different k: {sorted(ks)}")
    k = ks.pop() if ks else 10

    by_type: dict[str, list[tuple[Query, QueryScores]]] = {}
    for query, query_scores in results:
        if query.type == OVERALL:
            raise ValueError(f"query {query.id!r} has type {OVERALL!r}, which is reserved for the overall summary")
        by_type.setdefault(query.type, []).append((query, query_scores))

    report = {query_type: _summarise(by_type[query_type], k) for query_type in sorted(by_type)}
    report[OVERALL] = _summarise(results, k)
    return report


def percentile(values_ms: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 <= q <= 100) of `values_ms`: the smallest value with at least q% of
    the values at or below it (q=0 gives the minimum). Raises ValueError on no values or q out of range."""
    if not values_ms:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    ordered = sorted(values_ms)
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    """Median and 95th-percentile latency (nearest rank), in milliseconds rounded to 0.1: "p50_ms", "p95_ms".
    Raises ValueError on no values."""
    return {
        "p50_ms": round(percentile(values_ms, 50), 1),
        "p95_ms": round(percentile(values_ms, 95), 1),
    }

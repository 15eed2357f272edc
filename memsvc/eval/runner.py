"""One evaluation run: ingest a dataset rung by rung through the REST API, run every query after each rung,
and score evidence access (which documents come back) apart from answer quality."""

import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from tqdm import tqdm

from memsvc.eval import answers, metrics
from memsvc.eval.client import EvalClient
from memsvc.eval.dataset import Dataset, Query
from memsvc.eval.judge import LlmJudge

Scope = Literal["user", "global"]


@dataclass(frozen=True)
class RunOptions:
    scope: Scope = "user"  # user: a query searches its own user's memories; global: the whole tenant
    top_k: int = 10
    candidates_top_k: int = 100  # queries restricted to a scene fetch this many, then keep the scene's
    batch_size: int = 200
    progress: bool = True
    llm: LlmJudge | None = None  # answerer and judge; None = offline answer quality only


def run(dataset: Dataset, client: EvalClient, options: RunOptions) -> list[dict[str, Any]]:
    """Every rung of the ladder, smallest first: corpus size, evidence access per query type and overall,
    client-side search latency, and offline answer quality."""
    evidence_ids: dict[str, list[str]] = {}  # memory id -> documents stored as it (exact duplicates share one)
    texts = {doc.id: doc.text for doc in dataset.documents}
    ingested = 0
    rungs: list[dict[str, Any]] = []
    for size in dataset.rungs():
        started = time.perf_counter()
        _ingest(dataset, ingested, size, client, options, evidence_ids)
        ingest_s = time.perf_counter() - started
        ingested = size
        rungs.append(_evaluate(dataset, size, client, options, evidence_ids, texts) | {"ingest_s": round(ingest_s, 1)})
    return rungs


def _ingest(
    dataset: Dataset,
    start: int,
    stop: int,
    client: EvalClient,
    options: RunOptions,
    evidence_ids: dict[str, list[str]],
) -> None:
    docs = dataset.documents[start:stop]
    jobs: list[str] = []
    with tqdm(total=len(docs), desc=f"ingest to {stop}", unit="mem", disable=not options.progress) as bar:
        for offset in range(0, len(docs), options.batch_size):
            batch = docs[offset : offset + options.batch_size]
            memory_ids, job_id = client.write(batch)
            for memory_id, doc in zip(memory_ids, batch, strict=True):
                evidence_ids.setdefault(memory_id, []).append(doc.id)
            jobs.append(job_id)
            bar.update(len(batch))
    client.wait_for_jobs(jobs)  # evidence access is measured on embedded memories, not the lexical fallback


def _evaluate(
    dataset: Dataset,
    size: int,
    client: EvalClient,
    options: RunOptions,
    evidence_ids: dict[str, list[str]],
    texts: dict[str, str],
) -> dict[str, Any]:
    scored: list[tuple[Query, metrics.QueryScores]] = []
    latencies: list[float] = []
    f1: list[float] = []
    em: list[float] = []
    judged: list[int] = []
    for query in tqdm(dataset.queries, desc=f"queries at {size}", unit="q", disable=not options.progress):
        ranking, latency_ms = _ranking(query, client, options, evidence_ids)
        latencies.append(latency_ms)
        scored.append((query, metrics.score_query(query, ranking, k=options.top_k)))
        if query.answer:
            retrieved = [texts[doc_id] for doc_id, _ in ranking[: options.top_k]]
            predicted = answers.extractive_answer(query.text, retrieved)
            f1.append(answers.token_f1(predicted, query.answer))
            em.append(answers.exact_match(predicted, query.answer))
            if options.llm is not None:
                llm_answer = options.llm.answer(query.text, retrieved)
                judged.append(options.llm.judge(query.text, query.answer, llm_answer))
    quality: dict[str, Any] = {
        "method": answers.METHOD,
        "queries": len(f1),
        "token_f1": round(statistics.fmean(f1), 4) if f1 else None,
        "exact_match": round(statistics.fmean(em), 4) if em else None,
    }
    if options.llm is not None:
        quality["llm_judge"] = {
            "model": options.llm.endpoint.model,
            "endpoint": options.llm.endpoint.url,
            "queries": len(judged),
            "mean_score_0_5": round(statistics.fmean(judged), 3) if judged else None,
        }
    return {
        "corpus_size": size,
        "evidence_access": metrics.aggregate(scored),
        "latency": metrics.latency_summary(latencies),
        "answer_quality": quality,
    }


def _ranking(
    query: Query, client: EvalClient, options: RunOptions, evidence_ids: dict[str, list[str]]
) -> tuple[list[tuple[str, float]], float]:
    """The query's ranking in document ids, best first, restricted to its scene when it has one."""
    top_k = options.candidates_top_k if query.candidates is not None else options.top_k
    user_id = query.user_id if options.scope == "user" else None
    hits, latency_ms = client.search(query.text, top_k, user_id)
    # Identical documents are stored as one memory, so each of their ids is returned at its position: the one
    # this query asks for goes first.
    gold = set(query.gold)
    ranking = [
        (doc_id, hit.score)
        for hit in hits
        for doc_id in sorted(evidence_ids.get(hit.memory_id, []), key=lambda d: d not in gold)
    ]
    if query.candidates is not None:
        scene = set(query.candidates)
        ranking = [(doc_id, score) for doc_id, score in ranking if doc_id in scene]
    return ranking, latency_ms


def describe(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "documents": len(dataset.documents),
        "queries": len(dataset.queries),
        "query_types": dict(sorted(Counter(q.type for q in dataset.queries).items())),
        "ladder": dataset.rungs(),
    }

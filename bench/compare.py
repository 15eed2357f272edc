"""memsvc side by side with what users would pick instead, on the same machine, data, Postgres and embedder.

    .venv/bin/python bench/compare.py                    # 10,000 and 100,000 memories (run it on a quiet machine)
    .venv/bin/python bench/compare.py --sizes 2000       # a smoke run, a few minutes

The systems (each gets the same synthetic corpus, bench/search_latency.py's, written through its own write path):
- memsvc: a throw-away `memsvc serve` (default settings and storage profile, embedded Postgres), one tenant;
  the memories go in through POST /v1/memories, 500 a request, and are searchable once their embed jobs are done.
- mem0: the open-source library (`mem0ai`) with its pgvector store, in a database of its own on the same
  Postgres: `infer=False` (each message stored as a memory, no LLM call), its HuggingFace embedder loading the
  same bundled model (sentence-transformers on torch). One `add` per run of a user's documents (500 at most),
  searched with `search(filters={"user_id": ...})` in-process.
- pgvector: the floor a hand-rolled solution gets. One plain table in a database of its own on memsvc's embedded
  Postgres: text, user, float32 `vector(384)` with an HNSW index (cosine, pgvector's defaults) and a b-tree on
  the user, searched with pgvector's iterative scans. The documents are embedded in batches by the same model
  through the same ONNX Runtime encoder and inserted; searchable once inserted (the index is built as rows
  arrive, as a live system's would be).

For each: ingest throughput (memories per second from the first write until everything is searchable; then,
untimed, ANALYZE of its database, as autovacuum would soon run after a bulk load); search
latency p50/p95/p99 as the client sees it, the query's embedding included, one request at a time (memsvc over
HTTP on loopback, the others in-process); storage (table and index bytes from Postgres, per memory); and evidence
access (SR@10, FR@10, R@1 on the dataset's queries, each searched within its user, as the eval harness scores
them). Writes bench/results/compare.{json,md,png}: the figures, the ratios memsvc/peer against the issue's
targets, and a plot of each figure by corpus size.
"""

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import search_latency as prepare  # noqa: E402  (bench/, this script's folder)

ROOT = prepare.ROOT
sys.path.insert(0, str(ROOT))

from memsvc.eval.client import EvalClient, create_tenant_key  # noqa: E402
from memsvc.eval.dataset import Dataset, Document, Query  # noqa: E402
from memsvc.eval.metrics import aggregate, score_query  # noqa: E402
from memsvc.eval.server import EmbeddedServer  # noqa: E402

TOP_K = 10
WRITE_BATCH = 500
WARMUP = 10  # searches before the measured ones, per system
# Every table that grows with the memories; the embedding queue too, whose index pages stay allocated (for reuse)
# after it drains.
MEMSVC_TABLES = ("memories", "memory_embeddings", "pending_embeddings", "memory_links", "memory_versions")


@dataclass(frozen=True)
class Relation:
    """One table (its heap with TOAST, free-space and visibility maps) or one of its indexes, with its bytes."""

    name: str
    table: str
    kind: str  # "table" or "index"
    bytes: int


class System(Protocol):
    """One memory store under test, already started."""

    name: str

    def ingest(self, documents: Sequence[Document]) -> None:
        """Write the documents; return once every one of them is searchable."""

    def search(self, query: Query, now: datetime | None) -> list[str]:
        """The document ids of the top TOP_K hits, best first, searched within the query's user."""

    def storage(self) -> list[Relation]:
        """The tables holding the memories and their indexes, with their bytes."""

    def database(self) -> str:
        """The URL of the database holding its tables."""


@dataclass
class Measured:
    system: str
    memories: int
    ingest_s: float
    latencies_ms: list[float]
    scores: dict[str, Any]
    storage: list[Relation]

    def figures(self) -> dict[str, Any]:
        tables: dict[str, int] = {}
        for relation in self.storage:
            tables[relation.table] = tables.get(relation.table, 0) + relation.bytes
        largest_first = sorted(self.storage, key=lambda r: -r.bytes)
        return {
            "system": self.system,
            "memories": self.memories,
            "ingest_s": round(self.ingest_s, 1),
            "ingest_per_s": round(self.memories / self.ingest_s, 1),
            "search": prepare.summary(self.latencies_ms),
            "storage_bytes": tables,
            "storage_relations": [
                {"relation": r.name, "table": r.table, "kind": r.kind, "bytes": r.bytes} for r in largest_first
            ],
            "bytes_per_memory": round(sum(tables.values()) / self.memories, 1),
            "evidence": {key: self.scores["overall"][key] for key in ("R@1", "SR@10", "FR@10", "queries")},
        }


# ---- the systems


class Memsvc:
    """memsvc as its users run it: its own server, its REST API."""

    name = "memsvc"

    def __init__(self, server: EmbeddedServer, api_key: str) -> None:
        self._server = server
        self._http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=600)
        self._client = EvalClient(self._http)
        self._document_of: dict[str, str] = {}

    def ingest(self, documents: Sequence[Document]) -> None:
        jobs = []
        for start in range(0, len(documents), WRITE_BATCH):
            batch = documents[start : start + WRITE_BATCH]
            ids, job = self._client.write(batch)
            jobs.append(job)
            for memory_id, document in zip(ids, batch, strict=True):
                self._document_of.setdefault(memory_id, document.id)  # an exact duplicate is one memory
        self._client.wait_for_jobs(jobs)

    def search(self, query: Query, now: datetime | None) -> list[str]:
        fields = {"now": now.isoformat()} if now is not None else {}
        hits, _ = self._client.search(query.text, TOP_K, query.user_id, fields)
        return [self._document_of.get(hit.memory_id, hit.memory_id) for hit in hits]

    def storage(self) -> list[Relation]:
        return _relation_bytes(self.database(), MEMSVC_TABLES)

    def database(self) -> str:
        url = prepare.database_url(self._server)
        assert url is not None, "the embedded server's database must be reachable"
        return url

    def close(self) -> None:
        self._http.close()


class PlainPgvector:
    """The floor: one float32 vector table with an HNSW index, queried directly."""

    name = "pgvector"

    def __init__(self, server_url: str, embedder: Any) -> None:
        import psycopg
        from pgvector.psycopg import register_vector

        self._embedder = embedder
        self.url = _with_database(server_url, _new_database(server_url, "floor_"))
        self._conn = psycopg.connect(self.url, autocommit=True)
        self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        # A filtered HNSW scan otherwise stops after ef_search (40) nearest of all users and returns what is left
        # of them; pgvector's documented fix, which a hand-rolled table needs as soon as it has a WHERE.
        self._conn.execute("SET hnsw.iterative_scan = strict_order")
        register_vector(self._conn)
        self._conn.execute(
            f"CREATE TABLE memories (id bigserial PRIMARY KEY, document_id text NOT NULL, user_id text NOT NULL, "
            f"content text NOT NULL, embedding vector({embedder.dim}) NOT NULL)"
        )
        self._conn.execute("CREATE INDEX ON memories USING hnsw (embedding vector_cosine_ops)")
        self._conn.execute("CREATE INDEX ON memories (user_id)")

    def ingest(self, documents: Sequence[Document]) -> None:
        for start in range(0, len(documents), WRITE_BATCH):
            batch = documents[start : start + WRITE_BATCH]
            vectors = self._embedder.embed([d.text for d in batch])
            with (
                self._conn.cursor() as cursor,
                cursor.copy(
                    "COPY memories (document_id, user_id, content, embedding) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["text", "text", "text", "vector"])
                for document, vector in zip(batch, vectors, strict=True):
                    copy.write_row((document.id, document.user_id, document.text, vector))

    def search(self, query: Query, now: datetime | None) -> list[str]:
        vector = self._embedder.embed([query.text])[0]
        rows = self._conn.execute(
            "SELECT document_id FROM memories WHERE user_id = %s ORDER BY embedding <=> %s LIMIT %s",
            (query.user_id, vector, TOP_K),
        ).fetchall()
        return [row[0] for row in rows]

    def storage(self) -> list[Relation]:
        return _relation_bytes(self.url, ("memories",))

    def database(self) -> str:
        return self.url

    def close(self) -> None:
        self._conn.close()


class Mem0:
    """mem0 open-source (`mem0ai`) as its docs set it up for pgvector, minus the LLM: `infer=False` stores each
    message as a memory. Its own HuggingFace embedder (sentence-transformers on torch) loads the same bundled
    all-MiniLM-L6-v2; the LLM client is configured (mem0 requires one) but never called."""

    name = "mem0"

    def __init__(self, server_url: str, model_path: str, history_path: Path) -> None:
        import os

        os.environ.setdefault("MEM0_TELEMETRY", "False")  # it would post usage events to a remote host
        from mem0 import Memory

        database = _new_database(server_url, "mem0_")
        self.url = _with_database(server_url, database)
        self._memory = Memory.from_config(
            {
                "vector_store": {
                    "provider": "pgvector",
                    "config": {
                        "connection_string": _libpq(self.url),
                        "collection_name": "memories",
                        "embedding_model_dims": 384,
                        "hnsw": True,
                    },
                },
                "embedder": {"provider": "huggingface", "config": {"model": model_path, "embedding_dims": 384}},
                "llm": {"provider": "openai", "config": {"api_key": "never-called", "model": "gpt-4.1-nano"}},
                "history_db_path": str(history_path),
            }
        )
        self._document_of: dict[str, str] = {}

    def ingest(self, documents: Sequence[Document]) -> None:
        """One `add` per run of consecutive documents of one user, up to WRITE_BATCH messages: mem0's bulk path
        (each message still gets its own embedding call and INSERT)."""
        start = 0
        while start < len(documents):
            user = documents[start].user_id
            end = start
            while end < len(documents) and end - start < WRITE_BATCH and documents[end].user_id == user:
                end += 1
            batch = documents[start:end]
            added = self._memory.add(
                [{"role": "user", "content": d.text} for d in batch], user_id=user or "anonymous", infer=False
            )["results"]
            for memory, document in zip(added, batch, strict=True):
                self._document_of[memory["id"]] = document.id
            start = end

    def search(self, query: Query, now: datetime | None) -> list[str]:
        found = self._memory.search(query.text, top_k=TOP_K, filters={"user_id": query.user_id or "anonymous"})
        return [self._document_of.get(hit["id"], hit["id"]) for hit in found["results"]]

    def storage(self) -> list[Relation]:
        return _relation_bytes(self.url, None)

    def database(self) -> str:
        return self.url

    def close(self) -> None:
        self._memory.vector_store.connection_pool.close()


# ---- the run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100k", help="corpus sizes, comma-separated (1m with --million)")
    parser.add_argument("--million", action="store_true", help="also 1,000,000 memories")
    parser.add_argument("--searches", type=int, default=240, help="measured searches per system (queries cycled)")
    prepare.add_corpus_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_at, clock = datetime.now(UTC), time.perf_counter()
    sizes = [prepare.parse_size(s) for s in args.sizes.split(",") if s.strip()] + ([1_000_000] if args.million else [])
    runs = []
    for size in sizes:
        dataset, spec = prepare.load_dataset(size, args.seed, args.people)
        prepare.say(f"size {size}: {len(dataset.documents)} documents, {len(dataset.queries)} queries ({spec})")
        runs.append({"size": size, "spec": spec, "systems": [m.figures() for m in compare(dataset, args.searches)]})
    result = {
        "benchmark": "compare",
        **prepare.run_header("compare.py", argv, started_at, clock),
        "environment": prepare.machine(),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, args.out / "compare.png")
    result["plot"] = "compare.png"
    for run in result["runs"]:
        run["ratios"] = ratios(run)
    (args.out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "compare.md").write_text(markdown(result))
    prepare.say(f"wrote {args.out / 'compare.json'}, .md and .png")
    return 0


def compare(dataset: Dataset, searches: int) -> list[Measured]:
    """Every system on this dataset, one after the other, on one embedded Postgres."""
    from memsvc.core.settings import Settings
    from memsvc.embeddings.embedder import build_embedder, default_model_path

    measured = []
    with EmbeddedServer({"RATE_LIMIT_PER_MINUTE": "0"}) as server:
        key = create_tenant_key(server.url, server.admin_key, "compare")
        memsvc = Memsvc(server, key)
        measured.append(measure(memsvc, dataset, searches))
        memsvc.close()
        url = prepare.database_url(server)
        assert url is not None, "the embedded server's database must be reachable"
        with tempfile.TemporaryDirectory(prefix="compare-mem0-") as history:
            mem0 = Mem0(url, default_model_path(), Path(history) / "history.db")
            measured.append(measure(mem0, dataset, searches))
            mem0.close()
        floor = PlainPgvector(url, build_embedder(Settings()))
        measured.append(measure(floor, dataset, searches))
        floor.close()
    return measured


def measure(system: System, dataset: Dataset, searches: int) -> Measured:
    prepare.say(f"{system.name}: ingesting {len(dataset.documents)} documents")
    started = time.perf_counter()
    system.ingest(dataset.documents)
    ingest_s = time.perf_counter() - started
    prepare.say(f"{system.name}: searchable after {ingest_s:.1f} s")
    _analyze(system.database())  # every system's planner statistics as autovacuum would soon have them
    queries = dataset.queries
    for query in queries[:WARMUP]:
        system.search(query, dataset.now)
    latencies, rankings = [], {}
    for i in range(searches):
        query = queries[i % len(queries)]
        started = time.perf_counter()
        ranked = system.search(query, dataset.now)
        latencies.append((time.perf_counter() - started) * 1000)
        rankings.setdefault(query.id, ranked)
    scored = [
        (q, score_query(q, [(doc, 1.0 / (rank + 1)) for rank, doc in enumerate(rankings[q.id])], k=TOP_K))
        for q in queries
        if q.id in rankings
    ]
    return Measured(system.name, len(dataset.documents), ingest_s, latencies, aggregate(scored), system.storage())


def _relation_bytes(url: str, tables: Sequence[str] | None) -> list[Relation]:
    """Bytes of each of `tables` (None: every table of the database's public schema) and of each of their
    indexes; together their pg_total_relation_size."""
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # the visibility map and free space as a settled system has them
        if tables is None:
            tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        relations = []
        for table in tables:
            heap = conn.execute("SELECT pg_table_size(%s)", (table,)).fetchone()
            relations.append(Relation(table, table, "table", int(heap[0])))
            indexes = conn.execute(
                "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
                "WHERE indrelid = %s::regclass",
                (table,),
            )
            relations += [Relation(name, table, "index", int(size)) for name, size in indexes]
        return relations


def _analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("ANALYZE")


def _new_database(server_url: str, prefix: str) -> str:
    import psycopg

    database = prefix + uuid.uuid4().hex[:8]
    with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    return database


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _libpq(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://…`) as libpq reads it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# The targets, as (figure, how memsvc's figure compares with the peer's, the bound on memsvc / peer).
TARGETS: dict[str, list[tuple[str, str, float]]] = {
    "pgvector": [("search p95", "≤", 1.0), ("bytes per memory", "≤", 0.35), ("SR@10", "≥", 1.0), ("FR@10", "≥", 1.0)],
    "mem0": [("search p95", "≤", 0.5), ("ingest /s", "≥", 2.0), ("SR@10", "≥", 1.0), ("FR@10", "≥", 1.0)],
}


def figure(system: dict[str, Any], name: str) -> float | None:
    return {
        "ingest /s": system["ingest_per_s"],
        "search p95": system["search"]["p95_ms"],
        "bytes per memory": system["bytes_per_memory"],
        "SR@10": system["evidence"]["SR@10"],
        "FR@10": system["evidence"]["FR@10"],
    }[name]


def ratios(run: dict[str, Any]) -> list[dict[str, Any]]:
    """memsvc / peer for every target of this run, and whether it is met."""
    systems = {s["system"]: s for s in run["systems"]}
    ours = systems["memsvc"]
    rows = []
    for peer, targets in TARGETS.items():
        if peer not in systems:
            continue
        for name, sense, bound in targets:
            mine, theirs = figure(ours, name), figure(systems[peer], name)
            ratio = mine / theirs if mine is not None and theirs else None
            met = ratio is not None and (ratio <= bound if sense == "≤" else ratio >= bound)
            rows.append({"peer": peer, "figure": name, "target": f"{sense} {bound}×", "ratio": ratio, "met": met})
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# memsvc side by side: mem0 and the plain pgvector floor",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started_at']}; CPU {result['environment']['cpu_model']}, {result['environment']['nproc']} "
        "cores. Same synthetic corpus, embedding model (all-MiniLM-L6-v2, the bundled weights) and Postgres for "
        "every system; searches one at a time, each within its query's user, the query's embedding included. "
        "Storage: table and index bytes in Postgres (mem0 also keeps a history in SQLite, not counted).",
        "",
        "- memsvc: `memsvc serve` with its defaults, written through POST /v1/memories (500 a request), "
        "searchable once embedded; searched through POST /v1/search on loopback.",
        "- mem0: `mem0ai` with its pgvector store (HNSW), `infer=False`, its HuggingFace embedder (torch); "
        "one `add` per run of a user's documents; `search` with the user as filter. Without the `nlp` extra: its "
        "spaCy model is a download at run time.",
        "- pgvector: a float32 `vector(384)` table with HNSW (cosine, defaults) and a b-tree on the user, "
        "iterative scans on; embedded in batches by the ONNX encoder memsvc uses; searched in-process.",
    ]
    for run in result["runs"]:
        lines += [
            "",
            f"## {run['size']:,} memories (`{run['spec']}`)",
            "",
            "| system | ingest /s | search p50 / p95 / p99 ms | bytes / memory | SR@10 | FR@10 | R@1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in run["systems"]:
            ms, ev = s["search"], s["evidence"]
            lines.append(
                f"| {s['system']} | {s['ingest_per_s']} | {ms['p50_ms']} / {ms['p95_ms']} / {ms['p99_ms']} | "
                f"{s['bytes_per_memory']:,.0f} | {_fmt(ev['SR@10'])} | {_fmt(ev['FR@10'])} | {_fmt(ev['R@1'])} |"
            )
        lines += ["", "| memsvc / peer | figure | ratio | target | met |", "|---|---|---|---|---|"]
        for r in ratios(run):
            ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}×"
            lines.append(f"| {r['peer']} | {r['figure']} | {ratio} | {r['target']} | {'yes' if r['met'] else 'no'} |")
        lines += ["", *storage_breakdown(run)]
    if result.get("plot"):
        lines += ["", f"![memsvc, mem0 and pgvector by corpus size]({result['plot']})"]
    return "\n".join(lines) + "\n"


def storage_breakdown(run: dict[str, Any]) -> list[str]:
    """Each system's bytes per memory by table and index, largest first (what is under 1 B a memory left out)."""
    lines = [
        "Where the bytes go (bytes per memory; a table's row is its heap with TOAST, an index's row the index):",
        "",
        "| system | relation | kind | bytes / memory |",
        "|---|---|---|---|",
    ]
    for s in run["systems"]:
        for r in s.get("storage_relations", []):
            per_memory = r["bytes"] / s["memories"]
            if per_memory >= 1:
                lines.append(f"| {s['system']} | {r['relation']} | {r['kind']} | {per_memory:,.0f} |")
    return lines


def plot(result: dict[str, Any], path: Path) -> None:
    """One panel per figure, the systems' bars side by side at each corpus size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("ingest /s", "memories / s (higher is better)"),
        ("search p95", "search p95, ms (lower is better)"),
        ("bytes per memory", "bytes / memory (lower is better)"),
        ("SR@10", "SR@10 (higher is better)"),
    ]
    runs = result["runs"]
    names = [s["system"] for s in runs[0]["systems"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    width = 0.8 / len(names)
    for ax, (name, title) in zip(axes, panels, strict=True):
        for i, system in enumerate(names):
            values = [figure(next(s for s in r["systems"] if s["system"] == system), name) or 0 for r in runs]
            ax.bar([x + i * width for x in range(len(runs))], values, width, label=system)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(runs))])
        ax.set_xticklabels([f"{r['size']:,}" for r in runs])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("memories")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())

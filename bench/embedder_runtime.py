"""The embedder on CPU through each runtime, same bundled weights: one query at a time, and documents in batches.

    .venv/bin/python bench/embedder_runtime.py

Queries are the synthetic dataset's (as searches embed them: one text per call); documents are its first
--documents memories' texts, embedded in batches of the service's default batch size. Both runtimes embed the
same texts; the largest difference between their vectors is reported too. Writes
bench/results/embedder_runtime.{json,md}.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memsvc.core.settings import Settings  # noqa: E402
from memsvc.embeddings.embedder import Embedder, configured_spec  # noqa: E402
from memsvc.eval.synthetic import load_synthetic  # noqa: E402


def query_latencies(embedder: Embedder, queries: list[str], rounds: int) -> list[float]:
    for text in queries[:10]:
        embedder.embed([text])  # warm-up
    latencies = []
    for i in range(rounds):
        started = time.perf_counter()
        embedder.embed([queries[i % len(queries)]])
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=500, help="single-query calls timed per runtime")
    parser.add_argument("--documents", type=int, default=2048, help="documents embedded per runtime")
    parser.add_argument("--device", default="cpu", help="cpu (torch and ONNX Runtime) or cuda (torch; GPU)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    # memsvc runs ONNX Runtime on CPU only; on a GPU the torch model is what it loads
    runtimes = ("torch", "onnx") if args.device == "cpu" else ("torch",)
    name = "embedder_runtime" if args.device == "cpu" else f"embedder_runtime_{args.device}"

    settings = Settings()
    dataset = load_synthetic("seed=7,people=12,ladder=10000")
    queries = [q.text for q in dataset.queries]
    documents = [d.text for d in dataset.documents[: args.documents]]
    rows, vectors = {}, {}
    for runtime in runtimes:
        started = time.perf_counter()
        embedder = Embedder(configured_spec(settings), settings.embedding_batch_size, args.device, runtime)
        load_s = time.perf_counter() - started
        assert embedder.runtime == runtime, f"{runtime} was asked for, {embedder.runtime} loaded"
        latencies = sorted(query_latencies(embedder, queries, args.queries))
        embedder.embed(documents[: settings.embedding_batch_size])  # a GPU's first batch pays its kernels' set-up
        started = time.perf_counter()
        vectors[runtime] = embedder.embed(documents)
        docs_s = len(documents) / (time.perf_counter() - started)
        rows[runtime] = {
            "load_s": round(load_s, 2),
            "query_p50_ms": round(statistics.median(latencies), 2),
            "query_p95_ms": round(latencies[int(0.95 * len(latencies))], 2),
            "documents_per_s": round(docs_s, 1),
        }
        print(runtime, rows[runtime], flush=True)
    difference = float(np.abs(vectors["onnx"] - vectors["torch"]).max()) if "onnx" in vectors else None
    result = {
        "command": "python bench/embedder_runtime.py " + " ".join(sys.argv[1:]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": settings.embedding_model_id,
        "device": args.device,
        "queries_timed": args.queries,
        "documents": len(documents),
        "batch_size": settings.embedding_batch_size,
        "runtimes": rows,
        "max_abs_difference": difference,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    compared = (
        f"Largest difference between the two runtimes' vector components: {difference:.1e}. Load: torch loads "
        "first and pays the libraries' imports; onnx's load includes exporting the weights to ONNX."
        if difference is not None
        else f"Load includes moving the weights to {args.device}."
    )
    lines = [
        f"# Embedder runtimes on {args.device.upper()}",
        "",
        f"Run {result['started_at']} with `{result['command'].strip()}`; {os.cpu_count()} CPUs, {result['model']}.",
        f"Single-query latency over {args.queries} synthetic queries (one text per call, as a search embeds);",
        f"throughput over {len(documents)} synthetic memories in batches of {result['batch_size']}.",
        compared,
        "",
        "| runtime | load s | query p50 ms | query p95 ms | documents/s |",
        "|---|---|---|---|---|",
    ]
    for runtime, row in rows.items():
        lines.append(f"| {runtime} | " + " | ".join(str(value) for value in row.values()) + " |")
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

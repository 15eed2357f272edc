"""bench/compare.py at a reduced size: every system (memsvc, mem0, plain pgvector) ingests the same corpus through
its own write path, answers the same queries, and the report carries each one's figures, memsvc's ratios to its
peers against the targets, and the plot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_compare_bench_measures_every_system_on_the_same_corpus(tmp_path: Path) -> None:
    command = [sys.executable, "bench/compare.py", "--sizes", "600", "--searches", "30", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((tmp_path / "compare.json").read_text())
    [run] = report["runs"]
    assert run["size"] == 600
    systems = {s["system"]: s for s in run["systems"]}
    assert set(systems) == {"memsvc", "mem0", "pgvector"}
    for name, figures in systems.items():
        assert figures["memories"] == 600, name
        assert figures["ingest_per_s"] > 0, name
        search = figures["search"]
        assert search["requests"] == 30 and 0 < search["p50_ms"] <= search["p95_ms"] <= search["p99_ms"], name
        assert figures["bytes_per_memory"] > 0, name
        evidence = figures["evidence"]
        assert evidence["queries"] > 0, name
        assert 0 < evidence["SR@10"] <= 1, name  # the synthetic queries' evidence is found, by both
    # The same queries were scored for every system.
    assert len({s["evidence"]["queries"] for s in systems.values()}) == 1
    assert set(systems["memsvc"]["storage_bytes"]) == {
        "memories",
        "memory_embeddings",
        "pending_embeddings",
        "memory_links",
        "memory_versions",
    }

    # Where the bytes go: each table's heap and each of its indexes
    for name, figures in systems.items():
        relations = figures["storage_relations"]
        heaps = sorted(r["relation"] for r in relations if r["kind"] == "table")
        assert heaps == sorted(figures["storage_bytes"]), name
        assert any(r["kind"] == "index" and r["bytes"] > 0 for r in relations), name
    memsvc_relations = {r["relation"] for r in systems["memsvc"]["storage_relations"]}
    assert {"memories", "memory_embeddings", "ix_memories_search_tsv", "pk_memories"} <= memsvc_relations
    assert any(r.startswith("ix_memory_embeddings_hnsw") for r in memsvc_relations)

    # memsvc's ratio to each peer for every target, with whether it is met
    targets = {(r["peer"], r["figure"]) for r in run["ratios"]}
    assert ("pgvector", "search p95") in targets and ("mem0", "ingest /s") in targets
    for r in run["ratios"]:
        assert r["ratio"] > 0 and isinstance(r["met"], bool), r
    page = (tmp_path / "compare.md").read_text()
    assert all(f"| {name} |" in page for name in systems)
    assert "| mem0 | ingest /s |" in page
    assert "| memsvc | memory_embeddings | table |" in page
    assert (tmp_path / "compare.png").stat().st_size > 10_000

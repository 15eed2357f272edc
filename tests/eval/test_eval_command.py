"""`memsvc eval` as a user runs it: a small synthetic ladder against memsvc servers it starts itself, two server
configurations side by side, each searched with two search variants on the same ingested data (one run covers
both, since starting a server and ingesting is most of the cost); the reports land on disk."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CONFIGURATIONS = ["minilm-384", "minilm-128"]
VARIANTS = ["dense", "fused"]


def test_eval_command_runs_configurations_and_search_variants_on_a_synthetic_ladder(tmp_path: Path):
    out = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable, "-m", "memsvc", "eval", "--format", "synthetic",
            "--data", "seed=3,people=3,ladder=300/600", "--out", str(out), "--no-progress",
            "--compare", "minilm-384", "--compare", "minilm-128:EMBEDDING_DIM=128,EMBEDDING_MODEL_ID=minilm-128",
            "--search", "dense:mode=dense,parse_time=false",
            "--search", 'fused:weights.dense=1,weights.lexical=0.5,expand=["evidence"]',
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["ladder"] == [300, 600]
    assert report["dataset"]["now"] == "2025-01-01T00:00:00+00:00"
    runs = {run["config"]["name"]: run for run in report["runs"]}
    assert list(runs) == [f"{c}/{v}" for c in CONFIGURATIONS for v in VARIANTS]
    assert runs["minilm-128/dense"]["config"]["settings"] == {
        "EMBEDDING_DIM": "128",
        "EMBEDDING_MODEL_ID": "minilm-128",
    }
    assert runs["minilm-384/fused"]["config"]["search_fields"] == {
        "weights": {"dense": 1, "lexical": 0.5},
        "expand": ["evidence"],
    }
    for run in runs.values():
        assert [rung["corpus_size"] for rung in run["rungs"]] == [300, 600]
        for rung in run["rungs"]:
            overall = rung["evidence_access"]["overall"]
            assert overall["queries"] == report["dataset"]["queries"] > 0
            assert 0 < overall["SR@10"] <= 1 and 0 <= overall["intrusion@10"] <= 1
            assert rung["latency"]["p95_ms"] > 0
    for configuration in CONFIGURATIONS:  # each server ingested once and was searched twice
        dense, fused = (runs[f"{configuration}/{v}"]["rungs"] for v in VARIANTS)
        assert [r["ingest_s"] for r in dense] == [r["ingest_s"] for r in fused]
    markdown = (out / "report.md").read_text()
    assert "| corpus | R@1 | SR@10 | FR@10 |" in markdown and "## minilm-128/fused" in markdown
    assert (out / "access_vs_scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

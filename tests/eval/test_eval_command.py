"""`memsvc eval` as a user runs it: a small synthetic ladder against a memsvc it starts itself, and a second
server configuration side by side; the reports land on disk."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_eval_command_runs_the_synthetic_ladder_against_two_configurations(tmp_path: Path):
    out = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable, "-m", "memsvc", "eval", "--format", "synthetic",
            "--data", "seed=3,people=3,ladder=300/600", "--out", str(out), "--no-progress",
            "--compare", "minilm-384", "--compare", "minilm-128:EMBEDDING_DIM=128,EMBEDDING_MODEL_ID=minilm-128",
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["ladder"] == [300, 600]
    assert [run["config"]["name"] for run in report["runs"]] == ["minilm-384", "minilm-128"]
    assert report["runs"][1]["config"]["settings"] == {"EMBEDDING_DIM": "128", "EMBEDDING_MODEL_ID": "minilm-128"}
    for run in report["runs"]:
        assert [rung["corpus_size"] for rung in run["rungs"]] == [300, 600]
        for rung in run["rungs"]:
            overall = rung["evidence_access"]["overall"]
            assert overall["queries"] == report["dataset"]["queries"] > 0
            assert 0 < overall["SR@10"] <= 1 and 0 <= overall["intrusion@10"] <= 1
            assert rung["latency"]["p95_ms"] > 0
    markdown = (out / "report.md").read_text()
    assert "| corpus | R@1 | SR@10 | FR@10 |" in markdown and "minilm-128 SR@10" in markdown
    assert (out / "access_vs_scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_command_runs_search_variants_on_the_same_ingested_data(tmp_path: Path):
    out = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable, "-m", "memsvc", "eval", "--format", "synthetic",
            "--data", "seed=3,people=3,ladder=300", "--out", str(out), "--no-progress",
            "--search", "dense:mode=dense,parse_time=false",
            "--search", 'fused:weights.dense=1,weights.lexical=0.5,expand=["evidence"]',
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["now"] == "2025-01-01T00:00:00+00:00"
    assert [run["config"]["name"] for run in report["runs"]] == ["dense", "fused"]
    assert report["runs"][1]["config"]["search_fields"] == {
        "weights": {"dense": 1, "lexical": 0.5},
        "expand": ["evidence"],
    }
    dense, fused = (run["rungs"][0] for run in report["runs"])
    assert dense["ingest_s"] == fused["ingest_s"]  # ingested once, searched twice
    for rung in (dense, fused):
        assert 0 < rung["evidence_access"]["overall"]["SR@10"] <= 1
    assert "## fused" in (out / "report.md").read_text()

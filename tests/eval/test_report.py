"""Reports of runs that differ by server configuration and search variant: report.json, report.md and the plots."""

import json
from pathlib import Path
from typing import Any

from memsvc.eval.report import markdown, plot_access_by_group, write_reports

PNG = b"\x89PNG\r\n\x1a\n"
DATASET = {
    "name": "toy",
    "documents": 13,
    "queries": 3,
    "query_types": {"multi": 1, "single": 2},
    "with_hard_negatives": 2,
    "ladder": [7, 13],
    "now": "2023-05-08T00:00:00+00:00",
}


def _rung(size: int, sr: float) -> dict[str, Any]:
    overall = {"R@1": 1.0, "SR@10": sr, "FR@10": None, "nDCG@10": sr, "MRR": sr, "intrusion@10": 0.1, "queries": 3}
    return {
        "corpus_size": size,
        "evidence_access": {"overall": overall},
        "latency": {"p50_ms": 12.5, "p95_ms": 30.0},
        "answer_quality": {"method": "offline extractive", "queries": 1, "token_f1": 0.5, "exact_match": 0.0},
        "ingest_s": 1.0,
    }


def _run(server: str, search: str, fields: dict[str, Any], sr: float) -> dict[str, Any]:
    config = {"name": f"{server}/{search}", "server": server, "search": search, "search_fields": fields}
    return {"config": config | {"scope": "user", "settings": {}}, "rungs": [_rung(7, sr), _rung(13, sr / 2)]}


RUNS = [
    _run("plain", "dense", {"mode": "dense", "parse_time": False}, 0.8),
    _run("plain", "hier", {"expand": ["evidence"], "weights": {"entity": 0}}, 0.9),
]


def test_markdown_names_each_runs_search_request_and_the_datas_now():
    text = markdown(DATASET, RUNS)

    assert "## plain/dense" in text and "## plain/hier" in text
    assert 'search: dense ({"mode":"dense","parse_time":false})' in text
    assert 'search: hier ({"expand":["evidence"],"weights":{"entity":0}})' in text
    assert "plain/dense SR@10 | plain/dense FR@10 | plain/hier SR@10" in text
    assert "Searches send now = 2023-05-08T00:00:00+00:00" in text


def test_runs_without_search_variants_read_as_before():
    old_style = [{"config": {"name": "x", "scope": "user", "settings": {}}, "rungs": [_rung(7, 0.5)]}]

    text = markdown({k: v for k, v in DATASET.items() if k != "now"}, old_style)

    assert "search: default (no extra fields)" in text and "Searches send now" not in text


def test_write_reports_writes_every_run(tmp_path: Path):
    files = write_reports(tmp_path, DATASET, RUNS)

    report = json.loads(files[0].read_text())
    assert [run["config"]["search_fields"] for run in report["runs"]] == [r["config"]["search_fields"] for r in RUNS]
    assert files[2].read_bytes()[:8] == PNG


def test_grouped_bars_skip_missing_values(tmp_path: Path):
    path = tmp_path / "bars.png"
    groups: list[tuple[str, list[tuple[str, dict[str, float | None]]]]] = [
        ("locomo\n700", [("dense", {"SR@10": 0.5, "FR@10": 0.2}), ("hybrid", {"SR@10": 0.7, "FR@10": None})]),
        ("mteb\n2,000", [("dense", {"SR@10": 0.9}), ("hybrid", {"SR@10": 0.95, "FR@10": 0.8})]),
    ]

    plot_access_by_group(groups, path)

    assert path.read_bytes()[:8] == PNG

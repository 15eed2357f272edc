"""bench/retrieval_ablation.py: its plan (which server runs which search), the table it makes from the harness's
runs, its outputs; and, slow, a smoke run end to end on the LoCoMo fixture."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from memsvc.eval.variants import SearchVariant, ServerConfiguration

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "retrieval_ablation.py"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ablation() -> ModuleType:
    spec = importlib.util.spec_from_file_location("retrieval_ablation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_are_the_ablation_steps_in_order(ablation: ModuleType):
    assert [row.label for row in ablation.ROWS] == [
        "dense only",
        "lexical only",
        "hybrid, rank fusion",
        "hybrid",
        "+ contextual indexing",
        "+ time parsing",
        "+ entities",
        "consolidated, mixed",
        "+ hierarchy",
        "+ rerank",
    ]
    by_label = {row.label: row for row in ablation.ROWS}
    assert by_label["hybrid"].fields == {"mode": "hybrid", "parse_time": False, "weights": {"entity": 0, "time": 0}}
    assert by_label["hybrid, rank fusion"].fields == by_label["hybrid"].fields | {"fusion": "rrf"}
    assert by_label["+ contextual indexing"].fields == by_label["hybrid"].fields
    assert by_label["consolidated, mixed"].fields == {"parse_time": True, "hierarchy": "mixed"}
    assert by_label["+ hierarchy"].fields == by_label["+ time parsing"].fields  # the default, on consolidated data


def test_plan_without_rerank_runs_nine_rows_on_three_servers(ablation: ModuleType):
    plan = ablation.ablation_plan(rerank=False)

    assert [configuration for configuration, _ in plan] == [
        ServerConfiguration("plain", {"CONTEXTUAL_INDEXING": "false"}),
        ServerConfiguration("contextual", {}),
        ServerConfiguration("consolidated", {}, consolidate="extractive"),
    ]
    assert [variant.name for variant in plan[0][1]] == ["dense only", "lexical only", "hybrid, rank fusion", "hybrid"]
    assert [variant.name for variant in plan[1][1]] == ["+ contextual indexing", "+ time parsing", "+ entities"]
    assert [variant.name for variant in plan[2][1]] == ["consolidated, mixed", "+ hierarchy"]
    assert plan[0][1][0] == SearchVariant("dense only", {"mode": "dense", "parse_time": False})


def test_plan_with_rerank_gives_the_consolidated_server_a_reranker(ablation: ModuleType):
    plan = ablation.ablation_plan(rerank=True, reranker_path="/models/ce")

    assert plan[2][0].settings == {"RERANKER_PATH": "/models/ce"}
    assert plan[2][1][-1] == SearchVariant("+ rerank", {"parse_time": True, "rerank": True})


def _rung(size: int, sr: float, fr: float | None) -> dict[str, Any]:
    overall = {"R@1": sr, "SR@10": sr, "FR@10": fr, "nDCG@10": sr, "MRR": sr, "intrusion@10": 0.0}
    return {"corpus_size": size, "evidence_access": {"overall": overall}, "latency": {"p50_ms": 20.0, "p95_ms": 41.5}}


def _results(ablation: ModuleType, hard_negatives: int) -> list[dict[str, Any]]:
    pairs = [(config, variant) for config, variants in ablation.ablation_plan(False) for variant in variants]
    runs = [
        {
            "config": {"name": f"{configuration.name}/{variant.name}", "server": configuration.name,
                       "search": variant.name, "search_fields": variant.fields},
            "rungs": [_rung(300, 0.5 + 0.05 * i, 0.25), _rung(600, 0.4 + 0.05 * i, None)],
        }
        for i, (configuration, variant) in enumerate(pairs)
    ]  # fmt: skip
    dataset = {
        "name": "toy",
        "documents": 600,
        "queries": 4,
        "query_types": {"a": 4},
        "with_hard_negatives": hard_negatives,
        "ladder": [300, 600],
        "now": None,
    }
    return [{"dataset": dataset, "runs": runs}]


def test_table_has_a_line_per_rung_and_row_and_marks_what_did_not_run(ablation: ModuleType):
    table = ablation.table_rows(_results(ablation, hard_negatives=2))

    assert len(table) == 2 * len(ablation.ROWS)
    assert table[0] == ["toy", 300, "dense only", 0.5, 0.5, 0.25, 0.0, 20.0, 41.5]
    assert table[len(ablation.ROWS) - 1] == ["toy", 300, "+ rerank", *["not run"] * 6]
    second = table[len(ablation.ROWS)]
    assert second[:3] == ["toy", 600, "dense only"] and second[5] is None  # no multi-source queries there


def test_intrusion_is_a_dash_without_hard_negatives(ablation: ModuleType):
    table = ablation.table_rows(_results(ablation, hard_negatives=0))

    assert all(row[6] is None for row in table if row[3] != "not run")


def test_outputs_hold_the_table_command_and_machine(ablation: ModuleType, tmp_path: Path):
    result = {
        "date": "2025-01-01T00:00:00+00:00",
        "command": ablation.command_line(["bench/retrieval_ablation.py", "--quick"]),
        "machine": ablation.machine_facts(),
        "rerank": False,
        "quick": True,
        "rows": [],
        "table_header": list(ablation.TABLE_HEADER),
        "table": ablation.table_rows(_results(ablation, hard_negatives=0)),
        "results": _results(ablation, hard_negatives=0),
    }

    files = ablation.write_results(tmp_path, result)

    assert [f.name for f in files] == ["retrieval_ablation.json", "retrieval_ablation.md", "retrieval_ablation.png"]
    assert json.loads(files[0].read_text())["table"][0][2] == "dense only"
    text = files[1].read_text()
    assert "| dataset | corpus size | row | R@1 | SR@10 | FR@10 | intrusion@10 | p50 ms | p95 ms |" in text
    assert "| toy | 300 | dense only | 0.500 | 0.500 | 0.250 | – | 20.0 | 41.5 |" in text
    assert "| toy | 300 | + rerank | not run |" in text
    assert "bench/retrieval_ablation.py --quick`" in text
    assert f"{result['machine']['nproc']} CPUs (`nproc`)" in text and "client-side" in text
    assert "MEMSVC_CONTEXTUAL_INDEXING=false" in text
    assert files[2].read_bytes()[:8] == PNG


def test_arguments(ablation: ModuleType):
    args = ablation.parse_args(["--datasets", "locomo,mteb", "--quick"])
    assert args.datasets == ["locomo", "mteb"] and args.quick and not args.rerank
    with pytest.raises(SystemExit):
        ablation.parse_args(["--datasets", "locomo,imagenet"])


def test_quick_datasets_are_small(ablation: ModuleType):
    synthetic, locomo, mteb = ablation.load_datasets(["synthetic", "locomo", "mteb"], "ladder=1000/10000", quick=True)

    assert synthetic.rungs() == [300]
    assert len(locomo.queries) == len(mteb.queries) == ablation.QUICK_QUERIES
    assert locomo.now is not None and mteb.now is None
    # Only the conversations the quick queries ask about are ingested, every gold turn among them.
    asked = {query.user_id for query in locomo.queries}
    assert {document.user_id for document in locomo.documents} == asked and len(asked) < 4
    assert {gold for query in locomo.queries for gold in query.gold} <= {d.id for d in locomo.documents}


@pytest.mark.slow
def test_quick_locomo_run_end_to_end(ablation: ModuleType, tmp_path: Path):
    assert ablation.main(["--quick", "--datasets", "locomo", "--out-dir", str(tmp_path), "--no-progress"]) == 0

    result = json.loads((tmp_path / "retrieval_ablation.json").read_text())
    ran = [row for row in result["table"] if row[3] != "not run"]
    assert [row[2] for row in ran] == [row.label for row in ablation.ROWS if not row.needs_rerank]
    assert all(0 <= row[4] <= 1 and row[7] > 0 for row in ran)
    assert (tmp_path / "retrieval_ablation.png").read_bytes()[:8] == PNG

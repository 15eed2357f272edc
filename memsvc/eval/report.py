"""Evaluation output: report.json (everything), report.md (tables), access_vs_scale.png (SR@10 and FR@10
against corpus size, one line per configuration)."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memsvc import __version__

ACCESS_METRICS = ("R@1", "SR@10", "FR@10", "nDCG@10", "MRR", "intrusion@10")


def write_reports(out: Path, dataset: dict[str, Any], runs: Sequence[dict[str, Any]]) -> list[Path]:
    """`runs`: one entry per configuration, {"config": {...}, "rungs": [...]}. Returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "protocol": "EverMemBench-S decoupled: evidence access apart from answer quality",
        "memsvc_version": __version__,
        "dataset": dataset,
        "runs": list(runs),
    }
    files = [out / "report.json", out / "report.md", out / "access_vs_scale.png"]
    files[0].write_text(json.dumps(report, indent=2, default=str) + "\n")
    files[1].write_text(markdown(dataset, runs))
    plot_access_vs_scale(runs, files[2])
    return files


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) <= 1 else f"{value:.1f}"  # metrics in [0, 1]; milliseconds
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def markdown(dataset: dict[str, Any], runs: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"# memsvc eval: {dataset['name']}",
        "",
        f"{dataset['documents']} documents, {dataset['queries']} queries "
        f"({', '.join(f'{t}: {n}' for t, n in dataset['query_types'].items())}); corpus ladder {dataset['ladder']}.",
        "Evidence access (which memories come back) is scored apart from answer quality.",
        "",
    ]
    if len(runs) > 1:
        lines += ["## Configurations side by side (overall)", ""]
        header = ["corpus", *[f"{run['config']['name']} {m}" for run in runs for m in ("SR@10", "FR@10")]]
        rows = [
            [
                rung["corpus_size"],
                *[run["rungs"][i]["evidence_access"]["overall"].get(m) for run in runs for m in ("SR@10", "FR@10")],
            ]
            for i, rung in enumerate(runs[0]["rungs"])
        ]
        lines += _table(header, rows)
    for run in runs:
        config = run["config"]
        lines += [
            f"## {config['name']}",
            "",
            f"Scope: {config['scope']}; service settings: {config['settings'] or 'defaults'}.",
            "",
        ]
        judged = any("llm_judge" in r["answer_quality"] for r in run["rungs"])
        header = ["corpus", *ACCESS_METRICS, "search p50 ms", "p95 ms", "answer F1*", "EM*"]
        header += ["LLM judge 0-5"] if judged else []
        rows = [
            [
                r["corpus_size"],
                *[r["evidence_access"]["overall"].get(m) for m in ACCESS_METRICS],
                r["latency"]["p50_ms"],
                r["latency"]["p95_ms"],
                r["answer_quality"]["token_f1"],
                r["answer_quality"]["exact_match"],
                *([r["answer_quality"].get("llm_judge", {}).get("mean_score_0_5")] if judged else []),
            ]
            for r in run["rungs"]
        ]
        lines += _table(header, rows)
        largest = run["rungs"][-1]
        lines += [f"Per query type at {largest['corpus_size']} documents:", ""]
        type_rows = [
            [query_type, values["queries"], *[values.get(m) for m in ACCESS_METRICS]]
            for query_type, values in largest["evidence_access"].items()
        ]
        lines += _table(["type", "queries", *ACCESS_METRICS], type_rows)
    lines += [f"\\* Answer quality: {runs[0]['rungs'][0]['answer_quality']['method']}." if runs else "", ""]
    return "\n".join(lines)


def plot_access_vs_scale(runs: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, metric in zip(axes, ("SR@10", "FR@10"), strict=True):
        for run in runs:
            points = [
                (r["corpus_size"], r["evidence_access"]["overall"].get(metric))
                for r in run["rungs"]
                if r["evidence_access"]["overall"].get(metric) is not None
            ]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=run["config"]["name"])
        axis.set_xscale("log")
        axis.set_xlabel("corpus size (memories)")
        axis.set_title(metric)
        axis.set_ylim(0, 1.02)
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("evidence access")
    axes[1].legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

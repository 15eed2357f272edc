"""Evaluation output: report.json (everything), report.md (tables), access_vs_scale.png (SR@10 and FR@10
against corpus size, one line per run). A run is one server configuration searched with one search variant."""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memsvc import __version__

ACCESS_METRICS = ("R@1", "SR@10", "FR@10", "nDCG@10", "MRR", "intrusion@10")


def write_reports(out: Path, dataset: dict[str, Any], runs: Sequence[dict[str, Any]]) -> list[Path]:
    """`runs`: one entry per (configuration, search variant), {"config": {...}, "rungs": [...]}. Returns the files
    written."""
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


def cell(value: Any) -> str:
    """A table cell: – for a missing value, metrics in [0, 1] to 3 places, milliseconds to 1."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) <= 1 else f"{value:.1f}"  # metrics in [0, 1]; milliseconds
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines (and a blank line after it); strings are kept, other values go through `cell`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def markdown(dataset: dict[str, Any], runs: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"# memsvc eval: {dataset['name']}",
        "",
        f"{dataset['documents']} documents, {dataset['queries']} queries "
        f"({', '.join(f'{t}: {n}' for t, n in dataset['query_types'].items())}); corpus ladder {dataset['ladder']}.",
        "Evidence access (which memories come back) is scored apart from answer quality.",
        *([f"Searches send now = {dataset['now']} (the data's present)."] if dataset.get("now") else []),
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
        lines += table(header, rows)
    for run in runs:
        config = run["config"]
        lines += [
            f"## {config['name']}",
            "",
            f"Scope: {config['scope']}; service settings: {config['settings'] or 'defaults'}; "
            f"search: {_search_description(config)}.",
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
        lines += table(header, rows)
        largest = run["rungs"][-1]
        lines += [f"Per query type at {largest['corpus_size']} documents:", ""]
        type_rows = [
            [query_type, values["queries"], *[values.get(m) for m in ACCESS_METRICS]]
            for query_type, values in largest["evidence_access"].items()
        ]
        lines += table(["type", "queries", *ACCESS_METRICS], type_rows)
    lines += [f"\\* Answer quality: {runs[0]['rungs'][0]['answer_quality']['method']}." if runs else "", ""]
    return "\n".join(lines)


def _search_description(config: dict[str, Any]) -> str:
    fields = config.get("search_fields") or {}
    described = json.dumps(fields, separators=(",", ":"), default=str) if fields else "no extra fields"
    return f"{config.get('search', 'default')} ({described})"


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
    # The FR@10 panel is empty when no query is multi-source; the legend then goes on the SR@10 one.
    legend_axis = axes[1] if axes[1].get_legend_handles_labels()[0] else axes[0]
    if legend_axis.get_legend_handles_labels()[0]:
        legend_axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_access_by_group(
    groups: Sequence[tuple[str, Sequence[tuple[str, Mapping[str, Any]]]]],
    path: Path,
    metrics: Sequence[str] = ("SR@10", "FR@10"),
) -> None:
    """Grouped bars, one panel per metric: per group (e.g. a dataset at one corpus size) one bar per labelled
    result (e.g. an ablation row), each result a mapping of metric -> value. A missing or None value leaves its
    bar out (FR@10 without multi-source queries, a row not run)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(label for _group, results in groups for label, _values in results))
    width = 0.8 / max(1, len(labels))
    figure, axes = plt.subplots(
        len(metrics),
        1,
        figsize=(max(8.0, 1.6 * len(groups) * max(1, len(labels)) / 4), 3.6 * len(metrics)),
        squeeze=False,
    )
    for axis, metric in zip(axes[:, 0], metrics, strict=True):
        for index, label in enumerate(labels):
            points = [
                (position + (index - (len(labels) - 1) / 2) * width, values[metric])
                for position, (_group, results) in enumerate(groups)
                for result_label, values in results
                if result_label == label and values.get(metric) is not None
            ]
            if points:
                axis.bar(*zip(*points, strict=True), width=width, label=label)
        axis.set_xticks(range(len(groups)), [group for group, _results in groups])
        axis.set_ylabel(metric)
        axis.set_ylim(0, 1.02)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

"""Retrieval ablation: what each part of memsvc search adds to evidence access, one step at a time.

    .venv/bin/python bench/retrieval_ablation.py                          # synthetic 1k/10k, LoCoMo and MTEB fixtures
    .venv/bin/python bench/retrieval_ablation.py --quick --datasets locomo  # smoke run
    .venv/bin/python bench/retrieval_ablation.py --rerank                 # also the cross-encoder row

Runs through the `memsvc eval` harness in-process (memsvc.eval: the same ingest, queries, scoring and latency as
`memsvc eval`). Per dataset, three throw-away memsvc servers: `plain` (MEMSVC_CONTEXTUAL_INDEXING=false: a memory
is embedded as written), `contextual` (the default: speaker, date and neighbouring turns embedded with it) and
`consolidated` (the default, and after each rung every user with 8 or more memories is consolidated by the
extractive backend, so searches can reach evidence through summaries and facts). Each ingests the dataset rung
by rung and runs every query with each of its rows' search requests:

    dense only             plain       mode=dense, parse_time=false
    lexical only           plain       mode=lexical, parse_time=false
    hybrid, rank fusion    plain       the hybrid request with fusion=rrf (reciprocal rank fusion, not the default)
    hybrid                 plain       mode=hybrid, parse_time=false, weights.entity=0, weights.time=0
                                       (default fusion: calibrated relevance)
    + contextual indexing  contextual  the hybrid request
    + time parsing         contextual  parse_time=true (default weights: entity 0, time 2)
    + entities             contextual  parse_time=true, weights.entity=0.5 (measured, not kept by default)
    consolidated, mixed    consolidated  parse_time=true, hierarchy=mixed (summaries and facts are hits like any other)
    + hierarchy            consolidated  parse_time=true (hierarchy=evidence, the default: they bring in their evidence)
    + rerank               consolidated  parse_time=true, hierarchy=evidence, rerank=true  (only with --rerank)

Writes bench/results/retrieval_ablation.{json,md,png}: R@1, SR@10, FR@10, hard-negative intrusion@10 and client-side
p50/p95 search latency per dataset, rung and row.
"""

import argparse
import json
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memsvc import __version__  # noqa: E402
from memsvc.eval import report, runner  # noqa: E402
from memsvc.eval.dataset import Dataset  # noqa: E402
from memsvc.eval.variants import SearchVariant, ServerConfiguration  # noqa: E402

FIXTURES = ROOT / "bench" / "fixtures"
DATASETS = ("synthetic", "locomo", "mteb")
SYNTHETIC_SPEC = "ladder=1000/10000"
QUICK_SYNTHETIC_SPEC = "people=3,ladder=300"
QUICK_QUERIES = 30  # per dataset in a --quick run
METRICS = ("R@1", "SR@10", "FR@10", "intrusion@10")
NOT_RUN = "not run"
PLAIN, CONTEXTUAL, CONSOLIDATED = "plain", "contextual", "consolidated"
DEFAULT_RERANKER = "bundled"  # MEMSVC_RERANKER_PATH of the contextual server with --rerank


@dataclass(frozen=True)
class AblationRow:
    """One step of the ablation: a server configuration and the search request sent to it."""

    label: str
    server: str  # PLAIN or CONTEXTUAL
    fields: dict[str, Any] = field(default_factory=dict)
    needs_rerank: bool = False  # run only with --rerank (the reranker may be unavailable)


_HYBRID = {"mode": "hybrid", "parse_time": False, "weights": {"entity": 0, "time": 0}}
ROWS = (
    AblationRow("dense only", PLAIN, {"mode": "dense", "parse_time": False}),
    AblationRow("lexical only", PLAIN, {"mode": "lexical", "parse_time": False}),
    AblationRow("hybrid, rank fusion", PLAIN, _HYBRID | {"fusion": "rrf"}),
    AblationRow("hybrid", PLAIN, _HYBRID),
    AblationRow("+ contextual indexing", CONTEXTUAL, _HYBRID),
    AblationRow("+ time parsing", CONTEXTUAL, {"parse_time": True}),
    AblationRow("+ entities", CONTEXTUAL, {"parse_time": True, "weights": {"entity": 0.5}}),
    AblationRow("consolidated, mixed", CONSOLIDATED, {"parse_time": True, "hierarchy": "mixed"}),
    AblationRow("+ hierarchy", CONSOLIDATED, {"parse_time": True}),
    AblationRow("+ rerank", CONSOLIDATED, {"parse_time": True, "rerank": True}, True),
)


def server_settings(server: str, rerank: bool, reranker_path: str = DEFAULT_RERANKER) -> dict[str, str]:
    """The MEMSVC_* settings (without the prefix) of the `plain` or `contextual` server."""
    if server == PLAIN:
        return {"CONTEXTUAL_INDEXING": "false"}
    if server in (CONTEXTUAL, CONSOLIDATED):
        return {"RERANKER_PATH": reranker_path} if rerank else {}
    raise ValueError(f"unknown server configuration {server!r}")


def ablation_plan(
    rerank: bool, reranker_path: str = DEFAULT_RERANKER, rows: Sequence[AblationRow] = ROWS
) -> list[tuple[ServerConfiguration, list[SearchVariant]]]:
    """Per server configuration (in the order rows first need it), the rows it serves as search variants named
    by their labels; rows that need the reranker are left out unless `rerank`."""
    plan: dict[str, list[SearchVariant]] = {}
    for row in rows:
        if row.needs_rerank and not rerank:
            continue
        plan.setdefault(row.server, []).append(SearchVariant(row.label, row.fields))
    return [
        (
            ServerConfiguration(
                server,
                server_settings(server, rerank, reranker_path),
                consolidate="extractive" if server == CONSOLIDATED else None,
            ),
            variants,
        )
        for server, variants in plan.items()
    ]


def load_datasets(names: Sequence[str], synthetic_spec: str, quick: bool) -> list[Dataset]:
    """The datasets to run, in the order named. --quick: a tiny synthetic ladder and the first QUICK_QUERIES
    queries of the fixtures."""
    from memsvc.eval.loaders import load_locomo, load_mteb
    from memsvc.eval.synthetic import load_synthetic

    datasets: list[Dataset] = []
    for name in names:
        if name == "synthetic":
            dataset = load_synthetic(QUICK_SYNTHETIC_SPEC if quick else synthetic_spec)
        elif name == "locomo":
            dataset = load_locomo(FIXTURES / "locomo_mini.json")
        elif name == "mteb":
            dataset = load_mteb(FIXTURES / "mteb_mini")
        else:
            raise ValueError(f"unknown dataset {name!r}; expected some of {', '.join(DATASETS)}")
        if quick and name != "synthetic":
            dataset = quick_slice(dataset)
        datasets.append(dataset)
    return datasets


def quick_slice(dataset: Dataset) -> Dataset:
    """The first QUICK_QUERIES queries, and only the documents of the users they ask about when each names its
    user (a LoCoMo conversation is searched within itself, so the other conversations would only cost ingest)."""
    queries = dataset.queries[:QUICK_QUERIES]
    users = {query.user_id for query in queries}
    if None in users:
        return replace(dataset, queries=queries)
    return replace(dataset, queries=queries, documents=[d for d in dataset.documents if d.user_id in users])


# The synthetic ladder's distractors are other users' memories (a crowd): only a search over the whole tenant
# meets them, as EverMemBench-S's shared corpus does. A LoCoMo conversation is searched within itself (its user).
SCOPES: dict[str, runner.Scope] = {"synthetic": "global", "locomo": "user", "mteb": "user"}


def run_dataset(
    dataset: Dataset, scope: runner.Scope, rerank: bool, reranker_path: str, progress: bool
) -> dict[str, Any]:
    """Every row on one dataset: its description and the harness's report runs (one per row that ran)."""
    options = runner.RunOptions(scope=scope, progress=progress)
    runs = runner.run_on_embedded_servers(dataset, ablation_plan(rerank, reranker_path), options)
    return {"dataset": runner.describe(dataset) | {"scope": scope}, "runs": runs}


def table_rows(results: Sequence[Mapping[str, Any]], rows: Sequence[AblationRow] = ROWS) -> list[list[Any]]:
    """The ablation table: per dataset, rung and row (in ROWS order): dataset, corpus size, row, R@1, SR@10,
    FR@10, intrusion@10 (None without hard negatives), p50 ms, p95 ms; a row that did not run says NOT_RUN."""
    table: list[list[Any]] = []
    for result in results:
        dataset = result["dataset"]
        runs = {(run["config"]["server"], run["config"]["search"]): run for run in result["runs"]}
        for index, size in enumerate(dataset["ladder"]):
            for row in rows:
                run = runs.get((row.server, row.label))
                if run is None:
                    table.append([dataset["name"], size, row.label, *[NOT_RUN] * (len(METRICS) + 2)])
                    continue
                rung = run["rungs"][index]
                overall = rung["evidence_access"]["overall"]
                values = [overall.get(metric) for metric in METRICS]
                if not dataset.get("with_hard_negatives"):
                    values[METRICS.index("intrusion@10")] = None
                latency = rung["latency"]
                table.append([dataset["name"], size, row.label, *values, latency["p50_ms"], latency["p95_ms"]])
    return table


TABLE_HEADER = ("dataset", "corpus size", "row", *METRICS, "p50 ms", "p95 ms")


def machine_facts() -> dict[str, Any]:
    """What the latencies were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "memsvc_version": __version__,
    }


def markdown(result: Mapping[str, Any], rows: Sequence[AblationRow] = ROWS) -> str:
    """bench/results/retrieval_ablation.md: the table, how it was made and what each row sends."""
    machine = result["machine"]
    lines = [
        "# Retrieval ablation",
        "",
        f"Run {result['date']} with `{result['command']}`.",
        "",
        f"Machine: {machine['nproc']} CPUs (`nproc`), {machine['cpu_model']}; {machine['platform']}; "
        f"Python {machine['python']}; memsvc {machine['memsvc_version']}.",
        "",
        "Evidence access as `memsvc eval` scores it (EverMemBench-S protocol: R@1 over single-source queries, "
        "SR@10 over all, FR@10 over multi-source ones; intrusion@10 = hard negatives in the top 10 / 10, – where "
        "the dataset marks none). Latency p50/p95 is client-side, per search through HTTP to a local memsvc, "
        f"query embedding included; each row's timed pass follows {runner.RunOptions.warmup_queries} untimed "
        "warm-up searches. Rows on one server search the same ingested memories.",
        "",
        *report.table(TABLE_HEADER, result["table"]),
        "## Rows",
        "",
    ]
    row_lines = [
        [
            row.label,
            f"{row.server} ({_settings(server_settings(row.server, result['rerank']))})",
            json.dumps(row.fields, separators=(", ", ": ")),
            NOT_RUN if row.needs_rerank and not result["rerank"] else "",
        ]
        for row in rows
    ]
    lines += report.table(("row", "server", "search request fields", ""), row_lines)
    lines += ["## Datasets", ""]
    for entry in result["results"]:
        dataset = entry["dataset"]
        types = ", ".join(f"{name}: {count}" for name, count in dataset["query_types"].items())
        lines.append(
            f"- **{dataset['name']}**: {dataset['documents']} documents, {dataset['queries']} queries ({types}); "
            f"{dataset['with_hard_negatives']} with hard negatives; ladder {dataset['ladder']}; "
            f"now = {dataset['now'] or 'server clock'}; searched in scope {dataset.get('scope', 'user')} "
            f"({'the whole tenant' if dataset.get('scope') == 'global' else 'the query user'})."
        )
    return "\n".join([*lines, ""])


def _settings(settings: Mapping[str, str]) -> str:
    return ", ".join(f"MEMSVC_{key}={value}" for key, value in settings.items()) or "defaults"


def plot(result: Mapping[str, Any], path: Path) -> None:
    """SR@10 and FR@10 per row, grouped by dataset and corpus size."""
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for dataset, size, label, *values in result["table"]:
        if values[0] == NOT_RUN:
            continue
        groups.setdefault(f"{dataset}\n{size:,}", []).append((label, dict(zip(METRICS, values, strict=False))))
    report.plot_access_by_group(list(groups.items()), path, metrics=("SR@10", "FR@10"))


def write_results(out_dir: Path, result: Mapping[str, Any]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"retrieval_ablation.{ext}" for ext in ("json", "md", "png")]
    files[0].write_text(json.dumps(result, indent=2, default=str) + "\n")
    files[1].write_text(markdown(result))
    plot(result, files[2])
    return files


def command_line(argv: Sequence[str]) -> str:
    """The command as typed from the working directory: the interpreter, the script and its arguments."""
    interpreter = Path(sys.executable)
    try:
        shown = str(interpreter.relative_to(Path.cwd()))
    except ValueError:
        shown = str(interpreter)
    return shlex.join([shown, *argv])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: synthetic,locomo,mteb")
    parser.add_argument("--synthetic-spec", default=SYNTHETIC_SPEC, help="as `memsvc eval --format synthetic --data`")
    parser.add_argument("--rerank", action="store_true", help="also run the + rerank row (needs a reranker)")
    parser.add_argument("--reranker-path", default=DEFAULT_RERANKER, help="MEMSVC_RERANKER_PATH with --rerank")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_SYNTHETIC_SPEC}, {QUICK_QUERIES} q")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown or not args.datasets:
        parser.error(f"--datasets: expected some of {','.join(DATASETS)}, got {','.join(unknown) or 'none'}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    args = parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    command = command_line(sys.argv if argv is None else ["bench/retrieval_ablation.py", *argv])
    started = datetime.now(UTC)
    datasets = load_datasets(args.datasets, args.synthetic_spec, args.quick)
    results = [
        run_dataset(dataset, SCOPES[name], args.rerank, args.reranker_path, progress=not args.no_progress)
        for name, dataset in zip(args.datasets, datasets, strict=True)
    ]
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": command,
        "machine": machine_facts(),
        "rerank": args.rerank,
        "quick": args.quick,
        "rows": [{"label": r.label, "server": r.server, "fields": r.fields} for r in ROWS],
        "table_header": list(TABLE_HEADER),
        "table": table_rows(results),
        "results": results,
    }
    for path in write_results(args.out_dir, result):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

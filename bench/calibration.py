"""Fit the calibrated relevance of search hits (memsvc/search/calibration.py) on labelled benchmark hits.

    .venv/bin/python bench/calibration.py            # synthetic (2,000 documents) + LoCoMo mini fixture
    .venv/bin/python bench/calibration.py --quick    # smoke run: a few hundred documents, results under /tmp

A throw-away `memsvc serve` (default settings) gets one tenant per dataset; the documents are written through
POST /v1/memories in batches of 200 (as `memsvc eval` writes them) and embedded by the service. Every query then
goes through POST /v1/search with top_k=30, in its user's scope (as `memsvc eval` searches), with the dataset's
`now`, without `min_score`. Each hit gives one labelled example: its dense and lexical scores, and whether its
memory is one of the query's gold documents.

Queries are split 50/50 (per dataset, fixed seed) into a fit half and a held-out half. The logistic model of
`Calibration.relevance` is fitted on the fit half by Newton's method (IRLS) with a small L2 penalty; the
held-out half compares it with the constants calibration.py holds now: log loss, Brier score, a reliability
table and what `score >= t` means at a few thresholds. Writes bench/results/calibration.{json,md}.
"""

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memsvc.eval import report  # noqa: E402
from memsvc.eval.client import EvalClient, create_tenant_key  # noqa: E402
from memsvc.eval.dataset import Dataset  # noqa: E402
from memsvc.eval.server import EmbeddedServer  # noqa: E402
from memsvc.search import calibration  # noqa: E402
from memsvc.search.calibration import Calibration  # noqa: E402

SYNTHETIC_SPEC = "seed=7,people=40,ladder=2000"
QUICK_SYNTHETIC_SPEC = "seed=7,people=3,ladder=200"
LOCOMO_FIXTURE = ROOT / "bench" / "fixtures" / "locomo_mini.json"
TOP_K = 30
BATCH_SIZE = 200
SPLIT_SEED = 20250101
L2 = 1e-3
THRESHOLDS = (0.3, 0.5, 0.7)
CONFIDENT_WRONG_AT = 0.5  # the confidence bar without min_score (memsvc.search.service.CONFIDENCE_BAR)
BINS = 10
# Fewer hits without a dense score than this in the fit half (normally none: the service has embedded every
# memory before the searches) and `no_vector` is fitted on the lexically matched hits with their dense score
# hidden instead, the other constants held fixed.
MIN_NO_VECTOR_HITS = 50
PARAMETERS = ("intercept", "dense", "lexical", "lexical_match", "no_vector")


# ---- data


@dataclass(frozen=True)
class HitRow:
    """One labelled example: a hit of a query, its signals and whether it is gold."""

    dataset: str
    query_id: str
    query_type: str
    rank: int  # 0-based position in the answer (the service's fused order)
    dense: float | None
    lexical: float | None
    server_score: float  # the `score` the service returned (the current constants)
    gold: bool


@dataclass
class Collected:
    """A dataset's labelled hits, with what it took to get them."""

    dataset: Dataset
    rows: list[HitRow]
    memories: int
    ingest_s: float
    search_s: float
    queries_without_hits: int
    gold_not_returned: int  # (query, gold document) pairs whose document is not among the query's hits


def say(message: str) -> None:
    tqdm.write(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr)


def load_datasets(args: argparse.Namespace) -> tuple[list[Dataset], list[str]]:
    """The synthetic dataset and, when its fixture exists, LoCoMo mini; plus notes on what was left out."""
    from memsvc.eval.synthetic import load_synthetic

    notes: list[str] = []
    datasets = [load_synthetic(args.synthetic)]
    locomo = Path(args.locomo)
    if not locomo.is_file():
        note = f"LoCoMo fixture {locomo} does not exist (yet): calibrated on the synthetic dataset alone"
        say(note)
        notes.append(note)
        return datasets, notes
    from memsvc.eval.loaders import load

    dataset = load("locomo", locomo)
    if args.quick:
        dataset = first_users(dataset, 1)
        notes.append("--quick: LoCoMo restricted to its first conversation")
    datasets.append(dataset)
    return datasets, notes


def first_users(dataset: Dataset, count: int) -> Dataset:
    """The documents and queries of the dataset's first `count` users."""
    users = list(dict.fromkeys(d.user_id for d in dataset.documents))[:count]
    return Dataset(
        name=dataset.name,
        documents=[d for d in dataset.documents if d.user_id in users],
        queries=[q for q in dataset.queries if q.user_id in users],
        ladder=[],
        now=getattr(dataset, "now", None),
    )


def ingest(client: EvalClient, dataset: Dataset) -> dict[str, list[str]]:
    """Write every document (batches of BATCH_SIZE) and wait for their embedding; memory id -> document ids
    stored as it (exact duplicates share one memory), as memsvc/eval/runner.py keeps `evidence_ids`."""
    evidence_ids: dict[str, list[str]] = {}
    jobs: list[str] = []
    docs = dataset.documents
    with tqdm(total=len(docs), desc=f"ingest {dataset.name}", unit="doc", file=sys.stderr) as bar:
        for offset in range(0, len(docs), BATCH_SIZE):
            batch = docs[offset : offset + BATCH_SIZE]
            memory_ids, job_id = client.write(batch)
            for memory_id, doc in zip(memory_ids, batch, strict=True):
                evidence_ids.setdefault(memory_id, []).append(doc.id)
            jobs.append(job_id)
            bar.update(len(batch))
    client.wait_for_jobs(jobs)
    return evidence_ids


def search_fields(dataset: Dataset) -> dict[str, Any]:
    """What every search sends besides query, top_k and user: the dataset's present, when it has one."""
    now = getattr(dataset, "now", None)
    return {"now": now.isoformat()} if now is not None else {}


def collect_hits(http: httpx.Client, dataset: Dataset, evidence_ids: dict[str, list[str]]) -> tuple[list[HitRow], int]:
    """Every query's hits as labelled rows, and how many (query, gold) pairs were not among the hits."""
    rows: list[HitRow] = []
    missing = 0
    fields = search_fields(dataset)
    for query in tqdm(dataset.queries, desc=f"search {dataset.name}", unit="q", file=sys.stderr):
        body: dict[str, Any] = {**fields, "query": query.text, "top_k": TOP_K}
        if query.user_id is not None:
            body["user_id"] = query.user_id
        response = http.post("/v1/search", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"POST /v1/search {json.dumps(body)} -> {response.status_code} {response.text[:500]}")
        gold = set(query.gold)
        found: set[str] = set()
        for rank, hit in enumerate(response.json()["hits"]):
            documents = set(evidence_ids.get(hit["memory"]["id"], ()))
            found |= documents
            scores = hit["scores"]
            rows.append(
                HitRow(
                    dataset=dataset.name,
                    query_id=query.id,
                    query_type=query.type,
                    rank=rank,
                    dense=scores["dense"],
                    lexical=scores["lexical"],
                    server_score=float(hit["score"]),
                    gold=bool(documents & gold),
                )
            )
        missing += len(gold - found)
    return rows, missing


def collect(datasets: Sequence[Dataset]) -> tuple[list[Collected], dict[str, Any]]:
    """One server, one tenant per dataset: ingest, then search every query. Also the server's storage profile."""
    collected: list[Collected] = []
    storage: dict[str, Any] = {}
    say("starting memsvc (default settings)")
    with EmbeddedServer({}) as server:
        for dataset in datasets:
            key = create_tenant_key(server.url, server.admin_key, f"calibration-{dataset.name}")
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=300) as http:
                started = time.perf_counter()
                evidence_ids = ingest(EvalClient(http), dataset)
                ingest_s = time.perf_counter() - started
                say(f"{dataset.name}: {len(dataset.documents)} documents as {len(evidence_ids)} memories, embedded")
                started = time.perf_counter()
                rows, missing = collect_hits(http, dataset, evidence_ids)
                search_s = time.perf_counter() - started
            answered = {r.query_id for r in rows}
            collected.append(
                Collected(
                    dataset=dataset,
                    rows=rows,
                    memories=len(evidence_ids),
                    ingest_s=round(ingest_s, 1),
                    search_s=round(search_s, 1),
                    queries_without_hits=sum(1 for q in dataset.queries if q.id not in answered),
                    gold_not_returned=missing,
                )
            )
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
            answer = admin.get("/v1/storage-profiles")
            if answer.status_code == 200:
                storage = {"default_profile": answer.json().get("default"), "model_id": answer.json().get("model_id")}
    return collected, storage


def split_queries(datasets: Sequence[Dataset], seed: int) -> dict[tuple[str, str], str]:
    """(dataset, query id) -> "fit" or "held_out": each dataset's queries shuffled with `seed`, halved."""
    halves: dict[tuple[str, str], str] = {}
    for dataset in datasets:
        ids = sorted(q.id for q in dataset.queries)
        random.Random(f"{seed}/{dataset.name}").shuffle(ids)
        cut = (len(ids) + 1) // 2
        halves.update({(dataset.name, qid): "fit" if i < cut else "held_out" for i, qid in enumerate(ids)})
    return halves


# ---- the model


def design(rows: Sequence[HitRow]) -> np.ndarray:
    """Columns in PARAMETERS order, as `Calibration.relevance` reads its inputs: 1; the dense score (0 when
    unknown); the lexical score (0 without a match); 1 for a lexical match; 1 for an unknown dense score."""
    matrix = np.zeros((len(rows), len(PARAMETERS)))
    for i, r in enumerate(rows):
        matrix[i] = (
            1.0,
            0.0 if r.dense is None else r.dense,
            0.0 if r.lexical is None else r.lexical,
            0.0 if r.lexical is None else 1.0,
            1.0 if r.dense is None else 0.0,
        )
    return matrix


def labels(rows: Sequence[HitRow]) -> np.ndarray:
    return np.array([1.0 if r.gold else 0.0 for r in rows])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def mean_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def newton_logistic(
    x: np.ndarray, y: np.ndarray, l2: float, offset: np.ndarray | None = None, max_steps: int = 100
) -> tuple[np.ndarray, dict[str, Any]]:
    """Weights minimizing the summed log loss + l2/2·|w|² (the first column, the intercept, unpenalized when
    there are several) by Newton's method (IRLS) with step halving; and how it converged."""
    n, k = x.shape
    offset = np.zeros(n) if offset is None else offset
    penalty = np.full(k, l2)
    if k > 1:
        penalty[0] = 0.0

    def objective(w: np.ndarray) -> float:
        return n * mean_log_loss(y, sigmoid(offset + x @ w)) + 0.5 * float(np.sum(penalty * w * w))

    w = np.zeros(k)
    current = objective(w)
    steps = 0
    while steps < max_steps:
        steps += 1
        p = sigmoid(offset + x @ w)
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x.T * (p * (1 - p))) @ x + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(k), gradient)
        scale = 1.0
        while scale > 1e-6 and objective(w - scale * step) > current + 1e-12:
            scale /= 2
        w = w - scale * step
        previous, current = current, objective(w)
        if np.max(np.abs(scale * step)) < 1e-9 or previous - current < 1e-10:
            break
    gradient = x.T @ (sigmoid(offset + x @ w) - y) + penalty * w
    converged = {"newton_steps": steps, "mean_log_loss": round(current / n, 6)}
    return w, converged | {"gradient_norm": float(np.linalg.norm(gradient))}


def fit(rows: Sequence[HitRow]) -> tuple[Calibration, dict[str, Any]]:
    """The five constants on the fit half. With enough hits that have no dense score they are fitted jointly;
    otherwise `no_vector` is unidentifiable from these hits and is fitted second, on the lexically matched hits
    with their dense score hidden (a memory found by its text before it is embedded), the other four fixed."""
    x, y = design(rows), labels(rows)
    unknown = x[:, 4] == 1.0
    details: dict[str, Any] = {"l2": L2, "hits": len(rows), "gold": int(y.sum()), "no_dense_hits": int(unknown.sum())}
    if unknown.sum() >= MIN_NO_VECTOR_HITS:
        w, details["fit"] = newton_logistic(x, y, L2)
        details["standard_errors"] = dict(zip(PARAMETERS, _errors(x, y, w), strict=True))
        details["no_vector_from"] = "joint fit: hits without a dense score"
        return Calibration(**dict(zip(PARAMETERS, map(float, w), strict=True))), details
    main = x[~unknown][:, :4]
    w, details["fit"] = newton_logistic(main, y[~unknown], L2)
    hidden = [r for r in rows if r.lexical is not None and r.dense is not None] + [r for r in rows if r.dense is None]
    hx = design([replace(r, dense=None) for r in hidden])
    offset = hx[:, :4] @ w
    nv, details["no_vector_fit"] = newton_logistic(hx[:, 4:5], labels(hidden), L2, offset=offset)
    details["no_vector_from"] = (
        f"{len(hidden)} lexically matched hits with their dense score hidden (a memory found by its text before "
        f"it is embedded; {int(unknown.sum())} real hits without one), the other four constants fixed"
    )
    errors = _errors(main, y[~unknown], w) + _errors(hx[:, 4:5], labels(hidden), nv, offset)
    details["standard_errors"] = dict(zip(PARAMETERS, errors, strict=True))
    values = [*map(float, w), float(nv[0])]
    return Calibration(**dict(zip(PARAMETERS, values, strict=True))), details


def _errors(x: np.ndarray, y: np.ndarray, w: np.ndarray, offset: np.ndarray | None = None) -> list[float]:
    """Approximate standard errors: square roots of the inverse Hessian's diagonal (summed log loss)."""
    p = sigmoid((0 if offset is None else offset) + x @ w)
    hessian = (x.T * (p * (1 - p))) @ x + L2 * np.eye(x.shape[1])
    return [round(float(v), 4) for v in np.sqrt(np.clip(np.diag(np.linalg.pinv(hessian)), 0, None))]


# ---- held-out figures


def predictions(model: Calibration, rows: Sequence[HitRow]) -> np.ndarray:
    return np.array([model.relevance(r.dense, r.lexical) for r in rows])


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half): how well the score orders gold above the rest."""
    positives, negatives = p[y == 1], p[y == 0]
    if not len(positives) or not len(negatives):
        return None
    order = np.argsort(np.concatenate([positives, negatives]), kind="mergesort")
    values = np.concatenate([positives, negatives])[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    positive_ranks = np.empty(len(values))
    positive_ranks[order] = ranks
    total = positive_ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(total / (len(positives) * len(negatives)))


def reliability(y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """BINS equal-width bins of predicted relevance: count, mean predicted, observed fraction gold."""
    index = np.minimum((p * BINS).astype(int), BINS - 1)
    table = []
    for b in range(BINS):
        inside = index == b
        count = int(inside.sum())
        table.append(
            {
                "bin": f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}",
                "count": count,
                "mean_predicted": round(float(p[inside].mean()), 4) if count else None,
                "observed_gold": round(float(y[inside].mean()), 4) if count else None,
            }
        )
    return table


def expected_calibration_error(table: Sequence[dict[str, Any]]) -> float:
    total = sum(b["count"] for b in table)
    return sum(b["count"] * abs(b["mean_predicted"] - b["observed_gold"]) for b in table if b["count"]) / total


def thresholds(rows: Sequence[HitRow], y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """At each threshold t: precision and recall of `score >= t` for gold hits (recall among the gold hits
    returned), the share of queries with a hit at t or above (confident, as `no_confident_memory` says), and
    the share whose top hit scores t or above while it is not gold (confident but wrong)."""
    by_query: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        by_query.setdefault((r.dataset, r.query_id), []).append(i)
    tops = [min(hits, key=lambda i: rows[i].rank) for hits in by_query.values()]
    queries = len(by_query)
    table = []
    for t in THRESHOLDS:
        kept = p >= t
        confident = sum(1 for hits in by_query.values() if kept[hits].any())
        wrong = sum(1 for i in tops if kept[i] and y[i] == 0)
        table.append(
            {
                "threshold": t,
                "hits_kept": int(kept.sum()),
                "precision": round(float(y[kept].mean()), 4) if kept.any() else None,
                "recall": round(float(y[kept].sum() / y.sum()), 4) if y.sum() else None,
                "queries_confident": round(confident / queries, 4) if queries else None,
                "top1_confident_but_wrong": round(wrong / queries, 4) if queries else None,
            }
        )
    return table


def evaluate(model: Calibration, rows: Sequence[HitRow]) -> dict[str, Any]:
    y, p = labels(rows), predictions(model, rows)
    table = reliability(y, p)
    area = auc(y, p)
    return {
        "hits": len(rows),
        "gold_hits": int(y.sum()),
        "log_loss": round(mean_log_loss(y, p), 4),
        "brier": round(float(np.mean((p - y) ** 2)), 4),
        "ece": round(expected_calibration_error(table), 4),
        "auc": round(area, 4) if area is not None else None,
        "mean_predicted": round(float(p.mean()), 4),
        "observed_gold": round(float(y.mean()), 4),
        "reliability": table,
        "thresholds": thresholds(rows, y, p),
    }


def hidden_dense_view(model: Calibration, rows: Sequence[HitRow]) -> dict[str, Any]:
    """Log loss and Brier on the lexically matched held-out hits scored as if not embedded yet (`no_vector`)."""
    hidden = [r for r in rows if r.lexical is not None]
    if not hidden:
        return {"hits": 0}
    y = labels(hidden)
    p = np.array([model.relevance(None, r.lexical) for r in hidden])
    return {
        "hits": len(hidden),
        "gold_hits": int(y.sum()),
        "log_loss": round(mean_log_loss(y, p), 4),
        "brier": round(float(np.mean((p - y) ** 2)), 4),
        "mean_predicted": round(float(p.mean()), 4),
        "observed_gold": round(float(y.mean()), 4),
    }


def compare(models: dict[str, Calibration], rows: Sequence[HitRow], names: Sequence[str]) -> dict[str, Any]:
    """Held-out figures of each model, overall and per dataset."""
    figures: dict[str, Any] = {}
    for label, model in models.items():
        figures[label] = {
            "all": evaluate(model, rows),
            "by_dataset": {n: evaluate(model, [r for r in rows if r.dataset == n]) for n in names},
            "dense_hidden": hidden_dense_view(model, rows),
        }
    return figures


def transfer(fit_rows: Sequence[HitRow], held_rows: Sequence[HitRow], names: Sequence[str]) -> list[dict[str, Any]]:
    """Whether constants carry over between datasets: fitted on one dataset's fit half, scored on every
    dataset's held-out half."""
    if len(names) < 2:
        return []
    table = []
    for source in [*names, "all"]:
        model, _ = fit([r for r in fit_rows if source in ("all", r.dataset)])
        for target in names:
            figures = evaluate(model, [r for r in held_rows if r.dataset == target])
            table.append(
                {"fitted_on": source, "scored_on": target, "constants": asdict(model)}
                | {k: figures[k] for k in ("log_loss", "brier", "ece")}
            )
    return table


def confident_wrong_by_type(model: Calibration, rows: Sequence[HitRow], threshold: float) -> list[dict[str, Any]]:
    """Per dataset and query type: queries, and those whose top hit scores `threshold` or above but is not gold."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        if r.rank == 0:
            wrong = model.relevance(r.dense, r.lexical) >= threshold and not r.gold
            entry = counts.setdefault((r.dataset, r.query_type), [0, 0])
            entry[0] += 1
            entry[1] += int(wrong)
    return [
        {"dataset": d, "query_type": t, "queries": n, "confident_but_wrong": w, "threshold": threshold}
        for (d, t), (n, w) in sorted(counts.items())
    ]


# ---- report


def paste_line(model: Calibration) -> str:
    values = ", ".join(f"{name}={getattr(model, name):.3f}" for name in PARAMETERS)
    return f"MINILM = Calibration({values})"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The harness's Markdown table, with every number to 3 places (constants and losses exceed 1)."""
    return report.table(header, [[_cell(v) for v in row] for row in rows])


def markdown(result: dict[str, Any]) -> str:
    fitted, current = result["models"]["fitted"], result["models"]["current"]
    held = result["held_out"]
    lines = [
        "# Calibrated relevance: fit and held-out check",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started_at']} on {result['environment']['cpu_count']} CPU cores, "
        f"{result['environment']['platform']}; {result['runtime_s']} s. Server: memsvc defaults "
        f"(storage profile {result['server'].get('default_profile')}, model {result['server'].get('model_id')}).",
        "",
        f"Each query searched with top_k={result['top_k']} in its user's scope, with the dataset's `now`, no "
        "`min_score`; each hit is one example, gold when its memory is one of the query's gold documents. "
        f"Queries split 50/50 per dataset (seed {result['split_seed']}); fitted on the fit half by Newton's "
        f"method (IRLS): summed log loss + {result['fit']['l2']}/2·|w|² (intercept unpenalized).",
        "",
        "## Data",
        "",
    ]
    rows = [
        [
            d["name"],
            d["source"],
            d["documents"],
            d["memories"],
            d["queries"],
            d["fit_queries"],
            d["held_out_queries"],
            d["hits"],
            d["gold_hits"],
            d["gold_not_returned"],
            f"{d['ingest_s']:.1f}",
        ]
        for d in result["datasets"]
    ]
    header = ["dataset", "source", "documents", "memories", "queries", "fit", "held out", "hits", "gold hits"]
    lines += _table([*header, "gold not in top 30", "ingest s"], rows)
    lines += [""] + [f"Note: {n}" for n in result["notes"]]
    lines += [
        "",
        "## Fitted constants",
        "",
        "Ready to paste into memsvc/search/calibration.py:",
        "",
        "```python",
        result["paste_line"],
        "```",
        "",
        f"Current: `{paste_line(Calibration(**current))}`",
        "",
        f"`no_vector`: {result['fit']['no_vector_from']}.",
        "",
    ]
    errors = result["fit"]["standard_errors"]
    lines += _table(
        ["constant", "fitted", "± s.e.", "current"],
        [[name, fitted[name], errors[name], current[name]] for name in PARAMETERS],
    )
    lines += ["", "## Held-out half", ""]
    metric_rows = []
    for scope, label in [("all", "all"), *((n, n) for n in result["dataset_names"])]:
        for model in ("fitted", "current"):
            f = held[model]["all"] if scope == "all" else held[model]["by_dataset"][scope]
            metric_rows.append(
                [label, model, f["hits"], f["gold_hits"], f["log_loss"], f["brier"], f["ece"], f["auc"]]
                + [f["mean_predicted"], f["observed_gold"]]
            )
    header = ["data", "model", "hits", "gold", "log loss", "Brier", "ECE", "AUC", "mean predicted", "observed gold"]
    lines += _table(header, metric_rows)
    lines += [
        "",
        "Scored as if not embedded yet (`no_vector`; the lexically matched held-out hits, dense score hidden): "
        + "; ".join(
            f"{m} log loss {held[m]['dense_hidden'].get('log_loss')}, Brier {held[m]['dense_hidden'].get('brier')}, "
            f"mean predicted {held[m]['dense_hidden'].get('mean_predicted')}"
            for m in ("fitted", "current")
        )
        + f" (observed gold {held['fitted']['dense_hidden'].get('observed_gold')}, "
        f"{held['fitted']['dense_hidden'].get('hits')} hits).",
    ]
    for model in ("fitted", "current"):
        lines += ["", f"### Reliability ({model} constants, all held-out hits)", ""]
        bins = held[model]["all"]["reliability"]
        lines += _table(
            ["predicted", "count", "mean predicted", "observed gold"],
            [[b["bin"], b["count"], b["mean_predicted"], b["observed_gold"]] for b in bins],
        )
    lines += [
        "",
        "### Thresholds (all held-out queries)",
        "",
        "precision / recall: of `score >= t` for gold hits (recall among the gold hits returned in the top 30); "
        "confident: queries with a hit at t or above (`no_confident_memory` false); confident but wrong: queries "
        "whose top hit scores t or above and is not gold.",
        "",
    ]
    threshold_rows = [
        [model, f"{t['threshold']:.1f}", t["hits_kept"], t["precision"], t["recall"], t["queries_confident"]]
        + [t["top1_confident_but_wrong"]]
        for model in ("fitted", "current")
        for t in held[model]["all"]["thresholds"]
    ]
    header = ["model", "t", "hits kept", "precision", "recall", "confident", "confident but wrong"]
    lines += _table(header, threshold_rows)
    wrong = [w for w in result["confident_wrong_by_type"] if w["confident_but_wrong"]]
    lines += [
        "",
        f"Confident but wrong by query type (fitted constants, t = {CONFIDENT_WRONG_AT}; types with none left out):",
        "",
    ]
    lines += _table(
        ["dataset", "query type", "queries", "confident but wrong"],
        [[w["dataset"], w["query_type"], w["queries"], w["confident_but_wrong"]] for w in wrong],
    )
    if result["transfer"]:
        lines += [
            "",
            "### Transfer between datasets",
            "",
            "Fitted on one dataset's fit half (or all), scored on each dataset's held-out half: how far the "
            "constants carry to data they were not fitted on.",
            "",
        ]
        lines += _table(
            ["fitted on", "scored on", "log loss", "Brier", "ECE", "constants (" + ", ".join(PARAMETERS) + ")"],
            [
                [t["fitted_on"], t["scored_on"], t["log_loss"], t["brier"], t["ece"]]
                + [", ".join(f"{v:.2f}" for v in t["constants"].values())]
                for t in result["transfer"]
            ],
        )
    lines += ["", f"Sanity: {result['sanity']}", ""]
    return "\n".join(lines)


# ---- the run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, results under /tmp")
    parser.add_argument(
        "--synthetic",
        default=None,
        help=f"load_synthetic spec (default {SYNTHETIC_SPEC}; with --quick {QUICK_SYNTHETIC_SPEC}). 40 people "
        "rather than the default 12 give 400 labelled queries in the same 2,000 documents",
    )
    parser.add_argument("--locomo", default=str(LOCOMO_FIXTURE), help="LoCoMo JSON file (skipped when missing)")
    parser.add_argument("--seed", type=int, default=SPLIT_SEED, help="seed of the fit/held-out split")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default bench/results)")
    parser.add_argument("--features", type=Path, default=None, help="also write every labelled hit here (NDJSON)")
    args = parser.parse_args(argv)
    if args.synthetic is None:
        args.synthetic = QUICK_SYNTHETIC_SPEC if args.quick else SYNTHETIC_SPEC
    if args.out is None:
        args.out = Path("/tmp/memsvc-bench") if args.quick else ROOT / "bench" / "results"
    return args


def sanity(rows: Sequence[HitRow], current: Calibration) -> str:
    """Whether the service's `score` is the current constants applied to the recorded signals (it should be:
    then the features are the ones the service calibrates on)."""
    if not rows:
        return "no hits"
    gap = max(abs(r.server_score - current.relevance(r.dense, r.lexical)) for r in rows)
    verdict = "matches" if gap < 1e-5 else "DIFFERS from"
    return (
        f"the service's `score` {verdict} the current constants applied to the recorded dense/lexical scores "
        f"(max |difference| {gap:.2g} over {len(rows)} hits); {sum(r.dense is None for r in rows)} hits had no "
        f"dense score, {sum(r.lexical is None for r in rows)} no lexical match"
    )


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    started_at, clock = datetime.now(UTC), time.perf_counter()
    current = calibration.MINILM
    datasets, notes = load_datasets(args)
    for d in datasets:
        say(f"data: {d.name}: {len(d.documents)} documents, {len(d.queries)} queries")
    collected, server = collect(datasets)
    rows = [r for c in collected for r in c.rows]
    halves = split_queries(datasets, args.seed)
    fit_rows = [r for r in rows if halves[(r.dataset, r.query_id)] == "fit"]
    held_rows = [r for r in rows if halves[(r.dataset, r.query_id)] == "held_out"]
    if args.features is not None:
        args.features.parent.mkdir(parents=True, exist_ok=True)
        with args.features.open("w") as out:
            for r in rows:
                out.write(json.dumps({**asdict(r), "half": halves[(r.dataset, r.query_id)]}) + "\n")
    fitted, details = fit(fit_rows)
    say("fitted: " + paste_line(fitted))
    names = [d.name for d in datasets]
    held = compare({"fitted": fitted, "current": current}, held_rows, names)
    for label in ("fitted", "current"):
        f = held[label]["all"]
        say(f"held out, {label}: log loss {f['log_loss']}, Brier {f['brier']}, ECE {f['ece']}, AUC {f['auc']}")
    result: dict[str, Any] = {
        "command": " ".join(["python", "bench/calibration.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "runtime_s": round(time.perf_counter() - clock, 1),
        "environment": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "server": {"settings": "defaults", **server},
        "top_k": TOP_K,
        "split_seed": args.seed,
        "dataset_names": names,
        "datasets": [dataset_summary(c, halves, args) for c in collected],
        "notes": notes,
        "models": {"fitted": asdict(fitted), "current": asdict(current)},
        "paste_line": paste_line(fitted),
        "fit": details,
        "held_out": held,
        "confident_wrong_by_type": confident_wrong_by_type(fitted, held_rows, CONFIDENT_WRONG_AT),
        "transfer": transfer(fit_rows, held_rows, names),
        "sanity": sanity(rows, current),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "calibration.md").write_text(markdown(result))
    say(f"wrote {args.out / 'calibration.json'} and calibration.md")
    print(paste_line(fitted))
    return 0


def dataset_summary(c: Collected, halves: dict[tuple[str, str], str], args: argparse.Namespace) -> dict[str, Any]:
    name = c.dataset.name
    return {
        "name": name,
        "source": f"synthetic {args.synthetic}" if name.startswith("synthetic") else f"locomo {args.locomo}",
        "documents": len(c.dataset.documents),
        "memories": c.memories,
        "queries": len(c.dataset.queries),
        "fit_queries": sum(1 for (d, _), h in halves.items() if d == name and h == "fit"),
        "held_out_queries": sum(1 for (d, _), h in halves.items() if d == name and h == "held_out"),
        "queries_without_hits": c.queries_without_hits,
        "hits": len(c.rows),
        "gold_hits": sum(r.gold for r in c.rows),
        "gold_not_returned": c.gold_not_returned,
        "now": search_fields(c.dataset).get("now"),
        "ingest_s": c.ingest_s,
        "search_s": c.search_s,
    }


if __name__ == "__main__":
    sys.exit(main())

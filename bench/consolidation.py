"""Consolidation backends side by side on the same history: faithfulness and throughput.

    .venv/bin/python bench/consolidation.py                        # extractive on everything, local LM on 12 segments
    .venv/bin/python bench/consolidation.py --local-segments 0     # extractive only
    .venv/bin/python bench/consolidation.py --openai-url http://127.0.0.1:8001/v1 --openai-model m

The history is the LoCoMo-format fixture's conversations (bench/fixtures/locomo_mini.json: dialogue turns with
speakers and session dates), one user per conversation. It is consolidated the way the service consolidates it
(memsvc.consolidation: segments with sensory memory, recall over the conversation's earlier segment summaries,
then the backend), in process, with no database: only the backends are measured. Per backend:

- faithfulness: the share of generated sentences (summary sentences and facts) whose entities and numbers all
  occur in the memories they cite (memsvc.consolidation.faithfulness.support_share, before the service drops the
  rest), and how many it would drop;
- throughput: segments/s and tokens in and out per second (the extractive backend counts words; a language
  model its own tokens), wall time including recall and the embedding calls.

The local LM runs on the first --local-segments segments only (about 8 s each on two CPU cores). Writes
bench/results/consolidation.{json,md}.
"""

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memsvc.consolidation.extractive import ExtractiveBackend  # noqa: E402
from memsvc.consolidation.faithfulness import filter_supported, support_share  # noqa: E402
from memsvc.consolidation.generative import (  # noqa: E402
    GenerativeBackend,
    OpenAICompatible,
    bundled_lm_path,
    local_lm,
)
from memsvc.consolidation.recall import recall  # noqa: E402
from memsvc.consolidation.segments import first_half, segment_history  # noqa: E402
from memsvc.consolidation.types import HistoryItem, Segment, SummaryBackend  # noqa: E402
from memsvc.core.settings import Settings  # noqa: E402
from memsvc.embeddings.embedder import Embedder, build_embedder  # noqa: E402
from memsvc.eval.loaders import load_locomo  # noqa: E402

FIXTURE = ROOT / "bench" / "fixtures" / "locomo_mini.json"


def segments_of(path: Path) -> list[tuple[str, Segment]]:
    """(conversation, segment) in history order, segmented as the service does by default."""
    dataset = load_locomo(path)
    settings = Settings()
    by_user: dict[str, list[HistoryItem]] = {}
    for doc in dataset.documents:
        item = HistoryItem(
            memory_id=_uuid(doc.id),
            text=doc.text,
            type=doc.type,
            occurred_at=doc.occurred_at or datetime(2000, 1, 1, tzinfo=UTC),
            session_id=doc.session_id,
            speaker=doc.speaker,
        )
        by_user.setdefault(doc.user_id, []).append(item)
    return [
        (user, segment)
        for user, items in by_user.items()
        for segment in segment_history(
            items,
            max_items=settings.consolidation_segment_items,
            max_tokens=settings.consolidation_segment_tokens,
            sensory_items=settings.consolidation_sensory_items,
        )
    ]


def run_backend(backend: SummaryBackend, segments: list[tuple[str, Segment]], embedder: Embedder) -> dict[str, Any]:
    """Consolidate `segments` in order, each conversation recalling from its own earlier summaries."""
    embed = embedder.embed
    caches: dict[str, tuple[list[uuid.UUID], list[str], list[np.ndarray]]] = {}
    supported = rejected = written = tokens_in = tokens_out = 0
    shares: list[float] = []
    started = time.perf_counter()
    for user, segment in segments:
        ids, texts, vectors = caches.setdefault(user, ([], [], []))
        matrix = np.vstack(vectors) if vectors else np.zeros((0, embedder.dim), dtype=np.float32)
        represented = embed([" ".join(item.line for item in first_half(segment))])[0]
        recalled, _ = recall(represented, matrix, ids, texts, top=3)
        produced = backend.summarize(segment, recalled)
        sources = {item.memory_id: item.line for item in segment.items}
        kept, dropped = filter_supported(produced, sources)
        count = len(produced.sentences) + len(produced.facts)
        written += count
        rejected += dropped
        supported += count - dropped
        shares.append(support_share(produced, sources))
        tokens_in += produced.tokens_in
        tokens_out += produced.tokens_out
        summary = kept.summary or segment.items[-1].line
        ids.append(_uuid(f"{user}:{len(ids)}"))
        texts.append(summary)
        vectors.append(embed([summary])[0])
    wall = time.perf_counter() - started
    return {
        "backend": backend.name,
        "segments": len(segments),
        "sentences_written": written,
        "sentences_supported": supported,
        "sentences_rejected": rejected,
        "support_share": round(supported / written, 3) if written else None,
        "mean_segment_support_share": round(float(np.mean(shares)), 3) if shares else None,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "wall_s": round(wall, 2),
        "segments_per_s": round(len(segments) / wall, 2) if wall else None,
        "tokens_in_per_s": round(tokens_in / wall, 1) if wall else None,
        "tokens_out_per_s": round(tokens_out / wall, 1) if wall else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FIXTURE, help="LoCoMo-format JSON")
    parser.add_argument("--local-segments", type=int, default=12, help="segments the local LM writes (0: skip it)")
    parser.add_argument("--openai-url", default=None, help="an OpenAI-compatible endpoint to measure too")
    parser.add_argument("--openai-model", default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    settings = Settings()
    embedder = build_embedder(settings)
    segments = segments_of(args.data)
    print(f"{len(segments)} segments from {args.data.name}", flush=True)
    runs = [run_backend(ExtractiveBackend(embedder.embed), segments, embedder)]
    print(runs[-1], flush=True)
    lm_path = settings.consolidation_lm_path or bundled_lm_path()  # as the service picks it
    if args.local_segments and lm_path:
        started = time.perf_counter()
        model = local_lm(str(lm_path))
        load_s = round(time.perf_counter() - started, 1)
        local = GenerativeBackend(model, embedder.embed)
        runs.append(run_backend(local, segments[: args.local_segments], embedder) | {"load_s": load_s})
        print(runs[-1], flush=True)
    if args.openai_url:
        endpoint = GenerativeBackend(OpenAICompatible(args.openai_url, args.openai_model), embedder.embed)
        runs.append(run_backend(endpoint, segments, embedder))
        print(runs[-1], flush=True)

    result = {
        "command": "python bench/consolidation.py " + " ".join(sys.argv[1:]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "data": str(args.data.relative_to(ROOT)) if args.data.is_relative_to(ROOT) else str(args.data),
        "segments": len(segments),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "consolidation.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Consolidation backends: faithfulness and throughput",
        "",
        f"Run {result['started_at']} with `{result['command'].strip()}`; {os.cpu_count()} CPUs, no GPU.",
        f"History: {result['data']}, {len(segments)} segments (default segmentation); each backend consolidates",
        "them in order with recall over the conversation's earlier summaries. Supported: every entity and number",
        "of the sentence occurs in the memories it cites. Tokens: words for extractive, model tokens otherwise.",
        "",
        "| backend | segments | sentences | supported | rejected | support share | segments/s | tokens in/s "
        "| tokens out/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['backend']} | {run['segments']} | {run['sentences_written']} | {run['sentences_supported']} "
            f"| {run['sentences_rejected']} | {run['support_share']} | {run['segments_per_s']} "
            f"| {run['tokens_in_per_s']} | {run['tokens_out_per_s']} | {run['wall_s']} |"
        )
    (args.out / "consolidation.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'consolidation.json'} and consolidation.md")
    return 0


def _uuid(text: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, text)


if __name__ == "__main__":
    sys.exit(main())

"""Learned memory recall for one scope (`memsvc consolidation train-recall`).

Recall ranks a scope's earlier segment summaries by attention; with identity projections that is plain cosine
similarity. Training fits Wq, Wk on the scope's own consolidated segments, self-supervised: each segment should
recall the segment it continues (the previous segment of its session) above the others. The history is split in
time: the earlier pairs train, the later ones are held out, and the projection is kept only when it recalls the
held-out predecessors more often than identity does; consolidation then uses it for that scope. The training
queries are segments' memory embeddings M_n, where consolidation queries with S_n (the embedding of a segment's
first half): both embed the same stretch of conversation, so what ranks one ranks the other.
"""

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from memsvc.consolidation import repository
from memsvc.consolidation.recall import RecallProjection, recall, train_recall
from memsvc.consolidation.service import RECALL_TEMPERATURE, Scope
from memsvc.core.db import tenant_session
from memsvc.core.errors import Unprocessable

MIN_PAIRS = 10  # segments with a predecessor, at least: fewer cannot be split into training and a fair test
HELD_OUT_SHARE = 0.25  # the latest pairs, kept out of training to judge it


@dataclass(frozen=True)
class RecallTraining:
    """What training did for a scope: the pairs it learned from and tested on, and how often recall put the
    held-out segments' predecessors first before (identity) and after training."""

    segments: int
    trained_pairs: int
    held_out_pairs: int
    accuracy_before: float
    accuracy_after: float
    kept: bool  # whether the projection beat identity and is now the scope's
    device: str
    wall_s: float


def predecessors(sessions: Sequence[str | None]) -> list[int | None]:
    """For segments in history order (their sessions given), the index of the segment each continues: the
    previous segment of the same session (None for a session's first, and for segments without a session)."""
    last: dict[str, int] = {}
    found: list[int | None] = []
    for index, session in enumerate(sessions):
        found.append(last.get(session) if session is not None else None)
        if session is not None:
            last[session] = index
    return found


def recall_accuracy(
    vectors: np.ndarray, previous: Sequence[int | None], rows: Sequence[int], projection: RecallProjection | None
) -> float:
    """Share of `rows` whose predecessor recall ranks first among all the segments before them."""
    if not rows:
        return 0.0
    hits = 0
    for row in rows:
        earlier = vectors[:row]
        ids = [uuid.UUID(int=i) for i in range(row)]
        best, _ = recall(
            vectors[row], earlier, ids, [""] * row, top=1, temperature=RECALL_TEMPERATURE, projection=projection
        )
        hits += int(bool(best) and best[0].memory_id.int == previous[row])
    return hits / len(rows)


def train_scope_recall(
    factory: sessionmaker[Session], tenant_id: uuid.UUID, scope: Scope, *, steps: int = 200, dim: int | None = None
) -> RecallTraining:
    """Train the scope's recall projection on its consolidated segments and keep it if it recalls better."""
    started = time.perf_counter()
    with tenant_session(factory, tenant_id) as db:
        segments = repository.recorded_at_level(db, tenant_id, scope.key, "segment")
    previous = predecessors([session for _, session, _ in segments])
    pairs = [row for row, earlier in enumerate(previous) if earlier is not None]
    if len(pairs) < MIN_PAIRS:
        raise Unprocessable(
            f"The scope has {len(pairs)} segments that continue an earlier one; training recall needs {MIN_PAIRS}. "
            "Consolidate more of its history first."
        )
    vectors = np.asarray([vector for _, _, vector in segments], dtype=np.float32)
    cut = pairs[int(len(pairs) * (1 - HELD_OUT_SHARE))]
    held_out = [row for row in pairs if row >= cut]
    trained = train_recall(vectors, [p if row < cut else None for row, p in enumerate(previous)], dim=dim, steps=steps)
    before = recall_accuracy(vectors, previous, held_out, None)
    after = recall_accuracy(vectors, previous, held_out, trained)
    kept = after > before
    if kept:
        with tenant_session(factory, tenant_id) as db:
            repository.save_recall_projection(
                db,
                {
                    "tenant_id": tenant_id,
                    "scope_key": scope.key,
                    "input_dim": trained.input_dim,
                    "projected_dim": trained.projected_dim,
                    "weights": trained.to_bytes(),
                    "segments": len(segments),
                    "accuracy_before": before,
                    "accuracy_after": after,
                },
            )
            db.commit()
    return RecallTraining(
        segments=len(segments),
        trained_pairs=len(pairs) - len(held_out),
        held_out_pairs=len(held_out),
        accuracy_before=round(before, 4),
        accuracy_after=round(after, 4),
        kept=kept,
        device=_device(),
        wall_s=round(time.perf_counter() - started, 3),
    )


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

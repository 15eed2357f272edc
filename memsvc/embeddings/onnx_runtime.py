"""A loaded sentence-transformers model run by ONNX Runtime on CPU: the same weights, exported in memory at load.

On CPU, torch spends most of a short text's embedding in per-module Python dispatch: 7.1 ms for one query on two
cores against 2.1 ms through ONNX Runtime, and 1.7x the throughput on batches of documents
(bench/results/embedder_runtime.md). Only the plain pipeline (a transformer, mean pooling, optional
normalisation) is exported, and only an export whose vectors match torch's on probe texts is used; any other
model stays on torch.
"""

import io
import logging
import warnings
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Checked against torch at load: short and long, one and several texts (padding), punctuation and digits.
PROBE_TEXTS = [
    "What did Alice say about Rome in May?",
    "ok",
    "The deploy failed at 14:05 because the migration 0042 locked the users table; we rolled back and retried.",
]
MAX_PROBE_ERROR = 1e-4  # per component of a normalised vector; float32 round-off is ~1e-7


class OnnxEncoder:
    """Mean-pooled token embeddings of `model`'s transformer, computed by ONNX Runtime. Thread-safe."""

    def __init__(self, model: Any, session: Any) -> None:
        self._tokenizer = model.tokenizer
        self._max_length = int(model.max_seq_length)
        self._session = session
        self._inputs = {i.name for i in session.get_inputs()}

    @classmethod
    def export(cls, model: Any, threads: int = 0) -> "OnnxEncoder | None":
        """The encoder for a loaded SentenceTransformer (`threads` per call; 0: one per core), or None
        (logged) when it is not a plain mean-pooling pipeline, when onnxruntime cannot run it, or when its vectors
        differ from torch's."""
        modules = list(model)
        names = [type(m).__name__ for m in modules]
        if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
            log.info("embedding model %s stays on torch: not a transformer + pooling pipeline", names)
            return None
        if getattr(modules[1], "pooling_mode", None) != "mean":
            log.info("embedding model stays on torch: pooling is not mean")
            return None
        try:
            encoder = cls(model, _session(modules[0].auto_model, model.tokenizer, threads))
            expected = model.encode(
                PROBE_TEXTS, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
            error = float(np.abs(encoder.encode(PROBE_TEXTS) - expected).max())
        except Exception as exc:  # an architecture the exporter or the runtime does not support
            log.warning("embedding model stays on torch: ONNX export failed (%s)", exc)
            return None
        if error > MAX_PROBE_ERROR:
            log.warning("embedding model stays on torch: ONNX vectors differ from torch's by %.2g", error)
            return None
        return encoder

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (call with one batch: texts are padded together)."""
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="np")
        feeds = {name: np.asarray(tokens[name], dtype=np.int64) for name in self._inputs}
        hidden = self._session.run(None, feeds)[0]
        mask = np.asarray(tokens["attention_mask"], dtype=np.float32)[..., None]
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _session(transformer: Any, tokenizer: Any, threads: int) -> Any:
    import onnxruntime
    import torch

    names = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]

    class LastHiddenState(torch.nn.Module):
        """The transformer with positional inputs (in `names` order), as the TorchScript exporter traces."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.transformer(**dict(zip(names, inputs, strict=True))).last_hidden_state

    sample = tokenizer(["hello world"], return_tensors="pt")
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            LastHiddenState().eval(),
            tuple(sample[n] for n in names),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects as well
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle pool threads spin for work by default: with several requests embedding at once that spinning took a
    # third of the server's CPU under load (bench/results/load.md). Without it one thread per query did no better.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

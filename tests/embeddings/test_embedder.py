"""The embedder's two CPU runtimes over the same bundled weights: ONNX Runtime (the default) and torch."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import (
    MAX_PADDING_RATIO,
    Embedder,
    ModelSpec,
    build_embedder,
    default_model_path,
    length_batches,
)

TEXTS = [
    "What did Alice say about Rome in May?",
    "ok",
    "The deploy failed at 14:05 because migration 0042 locked the users table; we rolled back, retried at 14:20 "
    "and it went through. " * 12,  # past the model's 256-token window: truncated the same way by both
    "Ünïcödé, emoji 🦜 and tabs\tare tokenized alike.",
]


@pytest.fixture(scope="module")
def on_torch() -> Embedder:
    return Embedder(ModelSpec("all-MiniLM-L6-v2", None, None), batch_size=3, device="cpu", runtime="torch")


def test_the_default_cpu_runtime_is_onnx_and_gives_torchs_vectors(embedder: Embedder, on_torch: Embedder) -> None:
    assert embedder.runtime == "onnx" and on_torch.runtime == "torch"
    together = embedder.embed(TEXTS)
    expected = on_torch.embed(TEXTS)
    assert together.shape == expected.shape == (len(TEXTS), 384)
    assert np.abs(together - expected).max() < 1e-5
    # One at a time (no padding) or batched with others: the same vectors, in input order.
    one_by_one = np.vstack([embedder.embed([text]) for text in TEXTS])
    assert np.abs(one_by_one - together).max() < 1e-5
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_a_model_onnx_would_not_reproduce_stays_on_torch(tmp_path: Path, on_torch: Embedder) -> None:
    # The bundled weights with CLS pooling instead of mean: not the pipeline the ONNX path computes.
    model = tmp_path / "cls-model"
    shutil.copytree(default_model_path(), model)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))

    cls = Embedder(ModelSpec("cls", str(model), None), batch_size=8, device="cpu")
    assert cls.runtime == "torch"
    vectors = cls.embed(TEXTS[:2])
    assert vectors.shape == (2, 384)
    assert np.abs(vectors - on_torch.embed(TEXTS[:2])).max() > 1e-3  # CLS pooling really is in use


def test_a_truncated_dimension_is_cut_from_the_onnx_vectors_and_renormalised(on_torch: Embedder) -> None:
    short = Embedder(ModelSpec("all-MiniLM-L6-v2", None, 128), batch_size=8, device="cpu")
    assert short.runtime == "onnx" and short.dim == 128
    vectors = short.embed(TEXTS[:2])
    full = on_torch.embed(TEXTS[:2])[:, :128]
    expected = full / np.linalg.norm(full, axis=1, keepdims=True)
    assert vectors.shape == (2, 128) and np.abs(vectors - expected).max() < 1e-5


def test_onnx_threads_sleep_when_idle_and_their_number_is_a_setting(embedder: Embedder) -> None:
    """Idle ONNX Runtime threads spinning for work took a third of the API's CPU under concurrent searches: they
    sleep instead. One thread per core unless configured; any number gives the same vectors."""
    options = embedder._onnx._session.get_session_options()  # type: ignore[union-attr]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 0  # one per core

    one = build_embedder(Settings(embedding_threads=1))
    assert one._onnx._session.get_session_options().intra_op_num_threads == 1  # type: ignore[union-attr]
    assert np.abs(one.embed(TEXTS) - embedder.embed(TEXTS)).max() < 1e-5


def test_batches_group_texts_of_similar_length_so_few_pay_for_the_longest() -> None:
    lengths = [520, 40, 45, 130, 500, 38, 135, 42, 300, 41] * 20
    batches = length_batches(lengths, batch_size=16)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))  # each text once
    for batch in batches:
        assert len(batch) <= 16
        longest, shortest = max(lengths[i] for i in batch), min(lengths[i] for i in batch)
        assert shortest * MAX_PADDING_RATIO >= longest, batch
    # Fixed batches of 16 in length order would pad 16 short texts to the longest, four times over; here the
    # texts padded the most are padded at most 1.5 times their length.
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded <= MAX_PADDING_RATIO * sum(lengths)

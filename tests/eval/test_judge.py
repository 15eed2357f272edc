"""The LLM answer stage against a local OpenAI-compatible endpoint. The endpoint is a stand-in for a remote
LLM service (which cannot run here); it answers like one, deterministically, and records what it was sent."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from memsvc.eval.client import EvalClient
from memsvc.eval.dataset import Dataset, Document, Query
from memsvc.eval.judge import LlmEndpoint, LlmError, LlmJudge
from memsvc.eval.report import markdown
from memsvc.eval.runner import RunOptions, describe, run


class FakeChatEndpoint(BaseHTTPRequestHandler):
    """POST /v1/chat/completions: the judge gets `judge_reply`, the answerer the memory line naming a cat."""

    judge_reply = "Score: 4"
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChatEndpoint.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        if "judge" in system:
            content = FakeChatEndpoint.judge_reply
        else:
            content = next((line[2:] for line in user.splitlines() if "cat" in line), "unknown")
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[LlmEndpoint]:
    FakeChatEndpoint.requests = []
    FakeChatEndpoint.judge_reply = "Score: 4"
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChatEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield LlmEndpoint(f"http://127.0.0.1:{server.server_address[1]}/v1", model="tiny-judge", api_key="sk-test")
    server.shutdown()


def test_answerer_reads_the_memories_and_the_judge_scores_0_to_5(endpoint):
    judge = LlmJudge(endpoint)

    answer = judge.answer("What is the cat called?", ["Bob fixed the fence.", "Alice's cat is called Miso."])
    score = judge.judge("What is the cat called?", "Miso", answer)

    assert answer == "Alice's cat is called Miso." and score == 4
    sent = FakeChatEndpoint.requests
    assert [r["model"] for r in sent] == ["tiny-judge", "tiny-judge"] and sent[0]["temperature"] == 0
    assert sent[0]["auth"] == "Bearer sk-test"
    assert "- Alice's cat is called Miso." in sent[0]["messages"][1]["content"]
    assert "Gold answer: Miso" in sent[1]["messages"][1]["content"]


def test_a_judge_reply_without_a_score_is_an_error_not_a_zero(endpoint):
    FakeChatEndpoint.judge_reply = "I would rather not say."

    with pytest.raises(LlmError, match="no score from 0 to 5"):
        LlmJudge(endpoint).judge("q", "gold", "answer")


def test_an_unreachable_endpoint_is_a_clear_error():
    judge = LlmJudge(LlmEndpoint("http://127.0.0.1:1/v1", model="m", timeout_s=2))

    with pytest.raises(LlmError, match="unreachable"):
        judge.answer("q", [])


def test_run_reports_the_judge_beside_the_offline_scores(client, tenant, endpoint):
    dataset = Dataset(
        "toy",
        [
            Document("a1", "Alice's cat is called Miso.", user_id="alice"),
            Document("a2", "Alice likes rain.", user_id="alice"),
        ],
        [Query("q1", "What is Alice's cat called?", gold=("a1",), answer="Miso", user_id="alice")],
    )

    [rung] = run(
        dataset,
        EvalClient(TestClient(client.app, headers=tenant.headers)),
        RunOptions(progress=False, llm=LlmJudge(endpoint)),
    )

    quality = rung["answer_quality"]
    assert quality["llm_judge"] == {
        "model": "tiny-judge",
        "endpoint": endpoint.url,
        "queries": 1,
        "mean_score_0_5": 4.0,
    }
    assert quality["token_f1"] is not None and "offline extractive" in quality["method"]
    report = markdown(describe(dataset), [{"config": {"name": "x", "scope": "user", "settings": {}}, "rungs": [rung]}])
    assert "LLM judge 0-5" in report

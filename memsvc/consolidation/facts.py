"""What a newly extracted fact is to the scope's current facts: new, a repeat (merged into the one stored), or an
update of one (which it supersedes: the older is closed, not deleted, and the two are linked).

Offline and cheap, so deliberately narrow: a repeat is a fact nearly identical in meaning (cosine ≥
NEAR_DUPLICATE) with the same entities and numbers; an update is a fact close in meaning (≥ SAME_CLAIM) that
shares an entity with the older one (its subject, say "alice") but differs in another entity or a number
("Lisbon" → "Porto", "3 cats" → "4 cats"), and is not older than it. A change in common words ("a dog" → "a
cat") is not caught."""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from memsvc.search.entities import extract_entities

NEAR_DUPLICATE = 0.95
SAME_CLAIM = 0.75
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


@dataclass
class KnownFact:
    memory_id: uuid.UUID
    text: str
    vector: np.ndarray
    occurred_at: datetime


@dataclass(frozen=True)
class Verdict:
    kind: Literal["new", "repeat", "update"]
    fact_id: uuid.UUID | None = None  # the stored fact it repeats or updates


class FactBook:
    """The scope's current facts, as one consolidation job sees them (it adds the ones it writes)."""

    def __init__(self, facts: list[KnownFact]) -> None:
        self._facts = facts

    def judge(self, text: str, vector: np.ndarray, occurred_at: datetime) -> Verdict:
        if not self._facts:
            return Verdict("new")
        similarity = np.vstack([f.vector for f in self._facts]) @ vector
        entities, numbers = claim_terms(text)
        for index in np.argsort(-similarity):
            if similarity[index] < SAME_CLAIM:
                break
            known = self._facts[index]
            known_entities, known_numbers = claim_terms(known.text)
            differs = entities != known_entities or numbers != known_numbers
            if not differs and similarity[index] >= NEAR_DUPLICATE:
                return Verdict("repeat", known.memory_id)
            if differs and entities & known_entities and occurred_at >= known.occurred_at:
                return Verdict("update", known.memory_id)
        return Verdict("new")

    def add(self, fact: KnownFact) -> None:
        self._facts.append(fact)

    def retire(self, memory_id: uuid.UUID) -> None:
        self._facts = [f for f in self._facts if f.memory_id != memory_id]


def claim_terms(text: str) -> tuple[set[str], set[str]]:
    """The entities and numbers a sentence states: what tells a repeat from an update."""
    return set(extract_entities(text)), set(_NUMBER.findall(text))

"""The extractive summary backend: consolidation with no language model, always available.

It writes no words of its own: a summary is a few sentences of the segment itself, chosen for salience and
variety, and facts are the segment's sentences that name something (an entity, a number, a date). Every output
sentence is one sentence of one memory, prefixed with the memory's speaker, and cites exactly that memory, so it is
faithful by construction.

Salience is closeness to the segment's centroid, nudged a little toward the sensory memory and the recalled
memories, so that what the conversation was already about weighs in the choice (HMT's conditioning on sensory and
recalled memory, in embedding space). Selection is maximal marginal relevance (MMR) against the sentences already
chosen and against the recalled memories: what the scope has already consolidated is not said again.
"""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memsvc.consolidation.facts import claim_terms
from memsvc.consolidation.segments import approximate_tokens
from memsvc.consolidation.types import CitedSentence, Consolidated, Embed, Level, Recalled, Segment
from memsvc.search.entities import extract_entities

MMR_LAMBDA = 0.7  # weight of salience against redundancy in MMR
DUPLICATE_SIMILARITY = 0.9  # a candidate closer than this to a recalled memory or a chosen sentence is a repeat
MIN_SENTENCE_WORDS = 3  # shorter sentences ("Sounds good.", "Thanks!") carry nothing worth keeping
SENSORY_WEIGHT = 0.15  # pull of the sensory memory's centroid on the segment's centroid
RECALLED_WEIGHT = 0.15  # pull of the recalled memories (weighted by attention) on the segment's centroid
ROLL_UP_SENTENCES: dict[Level, int] = {"session": 5, "profile": 8}

# Words whose period does not end a sentence ("Dr. Smith"), lowercased, without their last period.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "mx", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "approx"}
)
# A sentence ends at ., ! or ? (closing quotes or brackets included) before whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\s*\n+\s*")
_NUMBER = re.compile(r"\d")
# Capitalised day and month names: entity extraction leaves calendar words out, but a sentence dated by one is a fact.
_DATE_WORD = re.compile(
    r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March|April|May|June|July"
    r"|August|September|October|November|December)\b"
)


@dataclass(frozen=True)
class _Candidate:
    """A sentence that may be chosen: its text as output (with the speaker), the sentence as written, the memory it
    cites, its place in history order."""

    text: str
    sentence: str
    source_id: uuid.UUID
    position: int


class ExtractiveBackend:
    """A SummaryBackend that selects sentences of the segment instead of generating them."""

    name: str = "extractive"

    def __init__(self, embed: Embed, *, max_sentences: int = 3, max_facts: int = 5) -> None:
        self._embed = embed
        self.max_sentences = max_sentences
        self.max_facts = max_facts

    def summarize(self, segment: Segment, recalled: Sequence[Recalled]) -> Consolidated:
        """Up to `max_sentences` summary sentences (in history order) and `max_facts` facts (most salient first)
        from the segment's items, each citing the one item it came from. Sensory items and recalled memories are
        read (they shape salience and rule out repeats) but never selected or cited."""
        candidates = _candidates([(item.memory_id, item.text, item.speaker) for item in segment.items])
        sensory_lines = [item.line for item in segment.sensory]
        recalled_texts = [memory.text for memory in recalled]
        tokens_in = sum(approximate_tokens(text) for text in [*(i.line for i in segment.items), *sensory_lines])
        tokens_in += sum(approximate_tokens(text) for text in recalled_texts)
        if not candidates:
            return Consolidated(tokens_in=tokens_in)

        vectors = self._embed([c.text for c in candidates] + sensory_lines + recalled_texts)
        candidate_vectors = vectors[: len(candidates)]
        sensory_vectors = vectors[len(candidates) : len(candidates) + len(sensory_lines)]
        recalled_vectors = vectors[len(candidates) + len(sensory_lines) :]

        centroid = _unit(candidate_vectors.mean(axis=0))
        if len(sensory_vectors):
            centroid = centroid + SENSORY_WEIGHT * _unit(sensory_vectors.mean(axis=0))
        if len(recalled_vectors):
            attention = np.array([max(memory.weight, 0.0) for memory in recalled], dtype=np.float32)
            mix = attention / attention.sum() if attention.sum() > 0 else np.full(len(recalled), 1 / len(recalled))
            centroid = centroid + RECALLED_WEIGHT * _unit(mix @ recalled_vectors)
        salience = candidate_vectors @ _unit(centroid)

        # Already consolidated: a near-duplicate of a recalled memory is neither a summary sentence nor a fact,
        # unless it names something the recalled one does not ("I live in Porto" after "I live in Lisbon").
        if len(recalled_vectors):
            novel = np.array(
                [
                    not any(
                        similarity > DUPLICATE_SIMILARITY and _adds_nothing(candidate.sentence, memory.text)
                        for similarity, memory in zip(row, recalled, strict=True)
                    )
                    for candidate, row in zip(candidates, candidate_vectors @ recalled_vectors.T, strict=True)
                ],
                dtype=bool,
            )
        else:
            novel = np.ones(len(candidates), dtype=bool)

        chosen = _select_mmr(candidate_vectors, salience, novel, recalled_vectors, self.max_sentences)
        sentences = [_cite(candidates[i]) for i in sorted(chosen, key=lambda i: candidates[i].position)]

        # Facts are proposed even when recalled already: the service merges a repeat into the stored fact, which
        # gains the new evidence, and tells an update from a repeat.
        factual = np.array([names_something(c.sentence) for c in candidates], dtype=bool)
        facts = [_cite(candidates[i]) for i in _select_distinct(candidate_vectors, salience, factual, self.max_facts)]
        return Consolidated(
            sentences=sentences, facts=facts, tokens_in=tokens_in, tokens_out=_words_out(sentences, facts)
        )

    def roll_up(self, parts: Sequence[tuple[uuid.UUID, str]], level: Level) -> Consolidated:
        """A summary of summaries: the same salience and MMR selection over the sentences of `parts` (lower-level
        memories' ids and texts), each sentence citing its part; 5 sentences for a session, 8 for a profile. Facts
        were extracted at segment level already, so a roll-up has none."""
        candidates = _candidates([(part_id, text, None) for part_id, text in parts])
        tokens_in = sum(approximate_tokens(text) for _, text in parts)
        if not candidates:
            return Consolidated(tokens_in=tokens_in)
        vectors = self._embed([c.text for c in candidates])
        salience = vectors @ _unit(vectors.mean(axis=0))
        limit = ROLL_UP_SENTENCES.get(level, self.max_sentences)
        everything = np.ones(len(candidates), dtype=bool)
        no_memories = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        chosen = _select_mmr(vectors, salience, everything, no_memories, limit)
        sentences = [_cite(candidates[i]) for i in sorted(chosen, key=lambda i: candidates[i].position)]
        return Consolidated(sentences=sentences, tokens_in=tokens_in, tokens_out=_words_out(sentences, []))


def _candidates(sources: Sequence[tuple[uuid.UUID, str, str | None]]) -> list[_Candidate]:
    """The sentences of (memory id, text, speaker) sources, in order, that are long enough to be worth keeping."""
    candidates: list[_Candidate] = []
    for source_id, text, speaker in sources:
        for sentence in split_sentences(text):
            if approximate_tokens(sentence) >= MIN_SENTENCE_WORDS:
                candidates.append(_Candidate(_with_speaker(sentence, speaker), sentence, source_id, len(candidates)))
    return candidates


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order: split after ., ! or ? followed by whitespace and at line
    breaks, except after a common abbreviation ("Dr. Smith", "e.g. Rome")."""
    pieces = [piece.strip() for piece in _SENTENCE_END.split(text)]
    sentences: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if sentences and _ends_with_abbreviation(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def _ends_with_abbreviation(sentence: str) -> bool:
    last_word = sentence.rsplit(maxsplit=1)[-1].lower()
    return last_word.endswith(".") and last_word.rstrip(".") in _ABBREVIATIONS


def _with_speaker(sentence: str, speaker: str | None) -> str:
    """The sentence as a summary carries it: "Alice: I moved to Lisbon." keeps who said it, so a first-person
    sentence stays true out of its turn."""
    return f"{speaker}: {sentence}" if speaker else sentence


def names_something(sentence: str) -> bool:
    """Whether a sentence (as written, without its speaker: the speaker alone does not make a fact) states something
    checkable: it names an entity or holds a number or a date. Questions state nothing."""
    if sentence.rstrip("\"')] ").endswith("?"):
        return False
    return bool(_NUMBER.search(sentence) or _DATE_WORD.search(sentence) or extract_entities(sentence))


def _select_mmr(
    vectors: np.ndarray, salience: np.ndarray, allowed: np.ndarray, memories: np.ndarray, limit: int
) -> list[int]:
    """Greedy maximal marginal relevance: repeatedly the allowed candidate maximising
    MMR_LAMBDA * salience - (1 - MMR_LAMBDA) * (highest similarity to a chosen sentence or a memory), skipping
    near-duplicates of chosen sentences. Ties go to the earlier candidate. Returns the chosen rows in choice order."""
    redundancy = (vectors @ memories.T).max(axis=1) if len(memories) else np.zeros(len(vectors), dtype=np.float32)
    redundancy = np.maximum(redundancy, 0.0)
    available = allowed.copy()
    chosen: list[int] = []
    while len(chosen) < limit and available.any():
        score = np.where(available, MMR_LAMBDA * salience - (1 - MMR_LAMBDA) * redundancy, -np.inf)
        best = int(np.argmax(score))
        chosen.append(best)
        similarity = vectors @ vectors[best]
        redundancy = np.maximum(redundancy, similarity)
        available &= similarity <= DUPLICATE_SIMILARITY
        available[best] = False
    return chosen


def _select_distinct(vectors: np.ndarray, salience: np.ndarray, allowed: np.ndarray, limit: int) -> list[int]:
    """The allowed candidates in order of salience (earlier first on ties), skipping near-duplicates of those
    already taken, at most `limit`."""
    taken: list[int] = []
    for row in np.argsort(-salience, kind="stable"):
        if len(taken) >= limit:
            break
        if allowed[row] and all(float(vectors[row] @ vectors[t]) <= DUPLICATE_SIMILARITY for t in taken):
            taken.append(int(row))
    return taken


def _adds_nothing(sentence: str, recalled: str) -> bool:
    """Whether every entity and number of `sentence` is in the recalled memory already."""
    entities, numbers = claim_terms(sentence)
    known_entities, known_numbers = claim_terms(recalled)
    return entities <= known_entities and numbers <= known_numbers


def _cite(candidate: _Candidate) -> CitedSentence:
    return CitedSentence(text=candidate.text, source_ids=(candidate.source_id,))


def _words_out(sentences: Sequence[CitedSentence], facts: Sequence[CitedSentence]) -> int:
    return sum(approximate_tokens(s.text) for s in [*sentences, *facts])


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)

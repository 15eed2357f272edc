"""Checking that consolidated sentences say nothing their cited sources do not: no invented names, no invented
numbers.

A summary written by a language model can name a person or give a date that appears nowhere in what it cites (a
hallucination); stored as a memory it would later be returned as evidence. The check is lexical and cheap: every
entity (as memsvc.search.entities extracts it) and every number of a sentence must occur in one of its cited
sources. It cannot catch a wrong relation between true terms ("Bob moved to Rome" from "Alice moved to Rome, Bob
stayed"), only terms from nowhere, which are the usual failure of small models.
"""

import dataclasses
import re
import uuid
from collections.abc import Mapping, Sequence

from memsvc.consolidation.types import CitedSentence, Consolidated
from memsvc.search.entities import extract_entities, normalize_entity

# A run of digits with decimal, thousands or time separators inside: "3", "2.5", "1,200", "2024", "14:05".
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def unsupported_terms(sentence: str, sources: Sequence[str]) -> list[str]:
    """The entities and numbers of `sentence` that occur in none of `sources`, in order of appearance, unique.

    An entity (normalized form) is supported when a source's extracted entities include it or when it occurs in a
    source's text as whole words, case-insensitively (entity extraction is heuristic and may miss a name at a
    sentence start, or read a sentence's first word as one). A number is supported when it occurs in a source as a
    whole number: "3" is not supported by "3.5" or "13", "1,200" is by "1200"."""
    texts = [_plain(source) for source in sources]
    source_entities = {normalize_entity(entity) for source in sources for entity in extract_entities(source)}
    missing: list[str] = []
    for entity in extract_entities(sentence):
        if entity not in source_entities and not any(_occurs_as_words(entity, text) for text in texts):
            missing.append(entity)
    source_numbers = {number for text in texts for number in _numbers(text)}
    missing += [number for number in _numbers(sentence) if number not in source_numbers]
    return list(dict.fromkeys(missing))


def is_supported(sentence: str, sources: Sequence[str]) -> bool:
    """Whether every entity and number of `sentence` occurs in one of `sources`."""
    return not unsupported_terms(sentence, sources)


def filter_supported(consolidated: Consolidated, source_text: Mapping[uuid.UUID, str]) -> tuple[Consolidated, int]:
    """A copy of `consolidated` keeping only the sentences and facts their cited sources support, and the number
    dropped. `source_text` maps each source memory's id to the text the sentence was drawn from: for a dialogue
    turn its line with the speaker (HistoryItem.line), since summaries name who spoke. A sentence that cites
    nothing, or cites an id missing from `source_text`, cannot be checked and is dropped."""
    sentences = [s for s in consolidated.sentences if _is_supported_by_citations(s, source_text)]
    facts = [f for f in consolidated.facts if _is_supported_by_citations(f, source_text)]
    rejected = len(consolidated.sentences) - len(sentences) + len(consolidated.facts) - len(facts)
    return dataclasses.replace(consolidated, sentences=sentences, facts=facts), rejected


def support_share(consolidated: Consolidated, source_text: Mapping[uuid.UUID, str]) -> float:
    """The share of sentences and facts that their cited sources support (as filter_supported decides); 1.0 when
    there are none."""
    written = [*consolidated.sentences, *consolidated.facts]
    if not written:
        return 1.0
    return sum(_is_supported_by_citations(s, source_text) for s in written) / len(written)


def _is_supported_by_citations(cited: CitedSentence, source_text: Mapping[uuid.UUID, str]) -> bool:
    if not cited.source_ids or any(source_id not in source_text for source_id in cited.source_ids):
        return False
    return is_supported(cited.text, [source_text[source_id] for source_id in cited.source_ids])


def _plain(text: str) -> str:
    """Lowercased, whitespace collapsed, typographic apostrophes folded: the form entities are stored in."""
    return " ".join(text.replace("’", "'").split()).lower()


def _occurs_as_words(entity: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(entity)}(?!\w)", text) is not None


def _numbers(text: str) -> list[str]:
    """The numbers of `text` in order, thousands separators removed."""
    return _NUMBER.findall(_THOUSANDS_SEPARATOR.sub("", text))

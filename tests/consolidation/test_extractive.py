"""The extractive backend on real embeddings (all-MiniLM-L6-v2): what it selects, what it cites, what it skips."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from memsvc.consolidation.extractive import ExtractiveBackend, split_sentences
from memsvc.consolidation.faithfulness import filter_supported
from memsvc.consolidation.types import Consolidated, HistoryItem, Recalled, Segment, SummaryBackend
from memsvc.embeddings.embedder import Embedder, ModelSpec

START = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder(ModelSpec("all-MiniLM-L6-v2", None, None), batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def backend(minilm: Embedder) -> ExtractiveBackend:
    return ExtractiveBackend(minilm.embed, max_sentences=3, max_facts=5)


def turns(*lines: tuple[str, str], session: str = "s1") -> list[HistoryItem]:
    return [
        HistoryItem(uuid.uuid4(), text, "dialogue", START + timedelta(minutes=i), session, speaker=speaker)
        for i, (speaker, text) in enumerate(lines)
    ]


SENSORY = turns(
    ("Alice", "I spent the whole morning packing boxes for the move."),
    ("Bob", "That sounds exhausting, how many boxes are left?"),
)
ITEMS = turns(
    ("Alice", "I moved to Lisbon in May. The flat is near the river."),
    ("Bob", "Nice! Did you find a job there?"),
    ("Alice", "Yes, I started at Feedzai as a data engineer on June 3."),
    ("Bob", "Thanks!"),
    ("Alice", "My sister Carla visits me every second weekend."),
    ("Bob", "I am still in Berlin, working at the same startup."),
)
SEGMENT = Segment(index=1, items=ITEMS, sensory=SENSORY)


def cited_ids(consolidated: Consolidated) -> list[uuid.UUID]:
    return [i for s in [*consolidated.sentences, *consolidated.facts] for i in s.source_ids]


def test_it_is_a_summary_backend(backend: ExtractiveBackend) -> None:
    as_protocol: SummaryBackend = backend
    assert as_protocol.name == "extractive"


def test_it_cites_only_segment_items_never_sensory_memory(backend: ExtractiveBackend) -> None:
    result = backend.summarize(SEGMENT, [])
    segment_ids = {item.memory_id for item in ITEMS}
    assert result.sentences and result.facts
    assert all(len(s.source_ids) == 1 for s in [*result.sentences, *result.facts])
    assert set(cited_ids(result)) <= segment_ids
    assert not set(cited_ids(result)) & {item.memory_id for item in SENSORY}
    sensory_texts = {item.line for item in SENSORY}
    assert not {s.text for s in [*result.sentences, *result.facts]} & sensory_texts


def test_each_sentence_is_a_sentence_of_the_item_it_cites_with_its_speaker(backend: ExtractiveBackend) -> None:
    result = backend.summarize(SEGMENT, [])
    by_id = {item.memory_id: item for item in ITEMS}
    for cited in [*result.sentences, *result.facts]:
        item = by_id[cited.source_ids[0]]
        speaker, _, sentence = cited.text.partition(": ")
        assert speaker == item.speaker
        assert sentence in split_sentences(item.text)


def test_summary_sentences_keep_history_order_within_their_budget(backend: ExtractiveBackend) -> None:
    result = backend.summarize(SEGMENT, [])
    assert 1 <= len(result.sentences) <= 3
    order = [item.memory_id for item in ITEMS]
    positions = [order.index(s.source_ids[0]) for s in result.sentences]
    assert positions == sorted(positions)
    assert result.summary == " ".join(s.text for s in result.sentences)


def test_short_sentences_and_questions_are_not_facts(minilm: Embedder) -> None:
    result = ExtractiveBackend(minilm.embed, max_sentences=20, max_facts=20).summarize(SEGMENT, [])
    everything = [s.text for s in [*result.sentences, *result.facts]]
    assert "Bob: Thanks!" not in everything and "Bob: Nice!" not in everything
    facts = [f.text for f in result.facts]
    assert "Bob: Did you find a job there?" not in facts
    assert "Alice: I moved to Lisbon in May." in facts  # a place and a date
    assert "Alice: Yes, I started at Feedzai as a data engineer on June 3." in facts
    assert "Alice: The flat is near the river." not in facts  # names nothing, holds no number
    assert len(result.facts) == len(set(facts))


def test_facts_are_capped(minilm: Embedder) -> None:
    result = ExtractiveBackend(minilm.embed, max_sentences=3, max_facts=2).summarize(SEGMENT, [])
    assert len(result.facts) == 2


def test_a_near_duplicate_of_a_recalled_memory_is_no_summary_sentence_but_still_a_fact(minilm: Embedder) -> None:
    everything = ExtractiveBackend(minilm.embed, max_sentences=20, max_facts=20)
    moved = "Alice: I moved to Lisbon in May."
    before = everything.summarize(SEGMENT, [])
    assert moved in [s.text for s in before.sentences]
    recalled = [Recalled(uuid.uuid4(), "Alice: I moved to Lisbon in May.", weight=0.6)]
    after = everything.summarize(SEGMENT, recalled)
    assert moved not in [s.text for s in after.sentences]
    assert moved in [s.text for s in after.facts]  # the service merges it into the stored fact (new evidence)
    assert recalled[0].memory_id not in cited_ids(after)
    assert "Alice: My sister Carla visits me every second weekend." in [s.text for s in after.sentences]


def test_the_same_input_gives_the_same_output(backend: ExtractiveBackend) -> None:
    recalled = [Recalled(uuid.uuid4(), "Bob lives in Berlin.", weight=0.4)]
    assert backend.summarize(SEGMENT, recalled) == backend.summarize(SEGMENT, recalled)


def test_its_output_passes_the_faithfulness_check(backend: ExtractiveBackend) -> None:
    result = backend.summarize(SEGMENT, [])
    kept, rejected = filter_supported(result, {item.memory_id: item.line for item in ITEMS})
    assert rejected == 0 and kept == result


def test_tokens_count_what_was_read_and_written(backend: ExtractiveBackend) -> None:
    recalled = [Recalled(uuid.uuid4(), "Bob lives in Berlin.", weight=0.4)]
    result = backend.summarize(SEGMENT, recalled)
    read = sum(len(i.line.split()) for i in [*ITEMS, *SENSORY]) + 4
    written = sum(len(s.text.split()) for s in [*result.sentences, *result.facts])
    assert (result.tokens_in, result.tokens_out) == (read, written)


def test_a_segment_of_small_talk_gives_nothing(backend: ExtractiveBackend) -> None:
    small_talk = turns(("Bob", "Thanks!"), ("Alice", "Sure thing."))
    result = backend.summarize(Segment(index=0, items=small_talk), [])
    assert result.sentences == [] and result.facts == []
    assert result.tokens_in == 5 and result.tokens_out == 0


def test_roll_up_cites_the_parts(backend: ExtractiveBackend) -> None:
    parts = [
        (uuid.uuid4(), "Alice: I moved to Lisbon in May. Alice: I started at Feedzai on June 3."),
        (uuid.uuid4(), "Bob: I am still in Berlin. Bob: I work at the same startup as last year."),
        (uuid.uuid4(), "Alice: My sister Carla visits every second weekend. Ok."),
        (uuid.uuid4(), "Alice: I adopted a cat called Miso. Bob: I am training for the Berlin marathon."),
    ]
    result = backend.roll_up(parts, "session")
    part_ids = [part_id for part_id, _ in parts]
    assert 1 <= len(result.sentences) <= 5
    assert result.facts == []
    assert all(len(s.source_ids) == 1 and s.source_ids[0] in part_ids for s in result.sentences)
    positions = [part_ids.index(s.source_ids[0]) for s in result.sentences]
    assert positions == sorted(positions)
    assert result.tokens_in == sum(len(text.split()) for _, text in parts)


def test_a_profile_roll_up_keeps_more_sentences(backend: ExtractiveBackend) -> None:
    parts = [(uuid.uuid4(), f"Alice visited {city} for the first time in {year}.") for city, year in CITIES]
    assert len(backend.roll_up(parts, "session").sentences) == 5
    assert len(backend.roll_up(parts, "profile").sentences) == 8


CITIES = [
    ("Lisbon", 2015),
    ("Tokyo", 2016),
    ("Nairobi", 2017),
    ("Lima", 2018),
    ("Oslo", 2019),
    ("Hanoi", 2020),
    ("Montreal", 2021),
    ("Cairo", 2022),
    ("Sydney", 2023),
]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("I moved to Lisbon. It is sunny!", ["I moved to Lisbon.", "It is sunny!"]),
        ("Dr. Smith called. He said hi", ["Dr. Smith called.", "He said hi"]),
        ('She said "go home." Then she left.', ['She said "go home."', "Then she left."]),
        ("It costs 3.50 euros. Cheap?  Yes", ["It costs 3.50 euros.", "Cheap?", "Yes"]),
        ("first line\n\nsecond line", ["first line", "second line"]),
        ("", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences

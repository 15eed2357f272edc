"""The faithfulness check: entities and numbers of a consolidated sentence must come from its cited sources."""

import uuid

import pytest

from memsvc.consolidation.faithfulness import filter_supported, is_supported, support_share, unsupported_terms
from memsvc.consolidation.types import CitedSentence, Consolidated

SOURCE = "Alice: I moved to Lisbon in May 2023 and started at Feedzai on June 3. The flight landed at 14:05."


def test_a_sentence_drawn_from_its_source_is_supported() -> None:
    assert unsupported_terms("Alice moved to Lisbon in May 2023.", [SOURCE]) == []
    assert is_supported("Alice: I started at Feedzai on June 3.", [SOURCE])


def test_an_invented_name_is_not_supported() -> None:
    assert unsupported_terms("Alice moved to Lisbon with Bob.", [SOURCE]) == ["bob"]
    assert not is_supported("Alice moved to Porto.", [SOURCE])


def test_an_invented_number_is_not_supported() -> None:
    assert unsupported_terms("The flight landed at 14:30 in 2023.", [SOURCE]) == ["14:30"]
    assert unsupported_terms("Alice moved in May 2024.", [SOURCE]) == ["2024"]


@pytest.mark.parametrize(
    ("sentence", "source", "missing"),
    [
        ("It costs 3 euros.", "It costs 3.5 euros.", ["3"]),
        ("It costs 3.5 euros.", "It costs 3.50 euros.", ["3.5"]),
        ("It costs 1,200 euros.", "It costs 1200 euros.", []),
        ("Room 12 is free.", "Room 112 is free.", ["12"]),
        ("The 3rd floor.", "On floor 3, the lift.", []),
    ],
)
def test_numbers_must_occur_whole(sentence: str, source: str, missing: list[str]) -> None:
    assert unsupported_terms(sentence, [source]) == missing


def test_entities_match_case_insensitively_and_in_any_cited_source() -> None:
    assert is_supported("Bob lives in New York.", ["we talked about new york", "bob said so"])
    assert is_supported("Alice's flat is in Lisbon.", ["ALICE: my flat in LISBON"])


def test_an_entity_must_occur_as_whole_words() -> None:
    assert unsupported_terms("Al moved to Lisbon.", ["Alice also moved to Lisbon."]) == ["al"]


def test_a_sentence_with_nothing_checkable_is_supported_by_anything() -> None:
    assert is_supported("they talked for a while.", [])


def cited(text: str, *ids: uuid.UUID) -> CitedSentence:
    return CitedSentence(text=text, source_ids=ids)


def test_filter_supported_drops_what_its_sources_do_not_support() -> None:
    turn, other, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sources = {turn: SOURCE, other: "Bob: I live in Berlin."}
    consolidated = Consolidated(
        sentences=[
            cited("Alice: I moved to Lisbon in May 2023.", turn),
            cited("Alice moved to Lisbon, near Bob in Berlin.", turn, other),  # supported by the two together
            cited("Alice moved to Madrid.", turn),  # invented place
            cited("Bob lives in Berlin.", unknown),  # cites a memory not given
            cited("They talked."),  # cites nothing
        ],
        facts=[cited("Alice started at Feedzai on June 3.", turn), cited("Alice started on June 4.", turn)],
        tokens_in=40,
        tokens_out=30,
    )
    kept, rejected = filter_supported(consolidated, sources)
    assert rejected == 4
    assert [s.text for s in kept.sentences] == [
        "Alice: I moved to Lisbon in May 2023.",
        "Alice moved to Lisbon, near Bob in Berlin.",
    ]
    assert [f.text for f in kept.facts] == ["Alice started at Feedzai on June 3."]
    assert (kept.tokens_in, kept.tokens_out) == (40, 30)
    assert len(consolidated.sentences) == 5  # the input is left as it was
    assert support_share(consolidated, sources) == pytest.approx(3 / 7)


def test_support_share_of_nothing_is_one() -> None:
    assert support_share(Consolidated(), {}) == 1.0

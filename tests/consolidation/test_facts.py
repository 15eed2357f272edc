"""Repeats and updates among facts, judged with the real embedding model."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from memsvc.consolidation.facts import FactBook, KnownFact

EARLY = datetime(2024, 1, 1, tzinfo=UTC)
LATER = EARLY + timedelta(days=30)


@pytest.fixture
def book_of(embedder):
    def make(*texts: str) -> tuple[FactBook, list[uuid.UUID]]:
        ids = [uuid.uuid4() for _ in texts]
        vectors = embedder.embed(list(texts))
        return FactBook([KnownFact(i, t, v, EARLY) for i, t, v in zip(ids, texts, vectors, strict=True)]), ids

    return make


def judge(embedder, book: FactBook, text: str, when: datetime = LATER):
    return book.judge(text, embedder.embed([text])[0], when)


def test_a_rephrased_fact_is_a_repeat_of_the_stored_one(embedder, book_of):
    book, ids = book_of("Alice: I live in Lisbon now.", "Bob: my cat is called Miso.")
    verdict = judge(embedder, book, "Alice: I now live in Lisbon.")
    assert (verdict.kind, verdict.fact_id) == ("repeat", ids[0])


def test_a_new_city_or_number_for_the_same_subject_updates_the_older_fact(embedder, book_of):
    book, ids = book_of("Alice: I live in Lisbon now.", "Bob: I have 3 cats.")
    assert judge(embedder, book, "Alice: I live in Porto now.").fact_id == ids[0]
    assert judge(embedder, book, "Alice: I live in Porto now.").kind == "update"
    assert (
        judge(embedder, book, "Bob: I have 4 cats.").kind,
        judge(embedder, book, "Bob: I have 4 cats.").fact_id,
    ) == (
        "update",
        ids[1],
    )


def test_an_older_statement_never_supersedes_a_newer_fact(embedder, book_of):
    book, _ = book_of("Alice: I live in Lisbon now.")
    assert judge(embedder, book, "Alice: I live in Porto now.", when=EARLY - timedelta(days=1)).kind == "new"


def test_unrelated_facts_and_other_subjects_are_new(embedder, book_of):
    book, _ = book_of("Alice: I live in Lisbon now.")
    assert judge(embedder, book, "Bob: the boiler broke on Tuesday.").kind == "new"
    assert FactBook([]).judge("anything", embedder.embed(["anything"])[0], LATER).kind == "new"


def test_a_retired_fact_is_no_longer_compared(embedder, book_of):
    book, ids = book_of("Alice: I live in Lisbon now.")
    book.retire(ids[0])
    assert judge(embedder, book, "Alice: I now live in Lisbon.").kind == "new"

"""The synthetic ladder: deterministic, rungs are prefixes holding all the evidence, and the collision check
(structured facts, not text) both holds for what is generated and catches what should not be there."""

import random
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from memsvc.eval.dataset import Dataset, Document, Query
from memsvc.eval.synthetic import (
    QUERY_KINDS,
    QUERY_TYPES,
    CollisionError,
    Fact,
    SyntheticDocument,
    SyntheticQuery,
    answers,
    generate,
    load_synthetic,
    verify,
)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate()


def _by_id(dataset: Dataset) -> dict[str, Document]:
    return {doc.id: doc for doc in dataset.documents}


def _synthetic(query: Query) -> SyntheticQuery:
    assert isinstance(query, SyntheticQuery)
    return query


def _facts(doc: Document) -> tuple[Fact, ...]:
    assert isinstance(doc, SyntheticDocument)
    return doc.facts


def test_same_seed_gives_the_same_dataset(dataset: Dataset) -> None:
    again = generate()
    assert again.documents == dataset.documents
    assert again.queries == dataset.queries
    assert again.ladder == dataset.ladder


def test_now_is_the_generated_worlds_today_at_midnight_utc(dataset: Dataset) -> None:
    assert dataset.now == datetime(2025, 1, 1, tzinfo=UTC)


def test_another_seed_gives_another_dataset(dataset: Dataset) -> None:
    other = generate(seed=8)
    assert [d.text for d in other.documents] != [d.text for d in dataset.documents]
    assert [q.text for q in other.queries] != [q.text for q in dataset.queries]


def test_rung_sizes_are_exact(dataset: Dataset) -> None:
    assert len(dataset.documents) == 10_000
    assert dataset.ladder == [1_000, 10_000]
    assert dataset.rungs() == [1_000, 10_000]
    uneven = generate(ladder=(2_500, 700, 4_321))
    assert len(uneven.documents) == 4_321
    assert uneven.rungs() == [700, 2_500, 4_321]


def test_a_smaller_ladder_gives_a_prefix_with_the_same_queries(dataset: Dataset) -> None:
    small = generate(ladder=(1_000,))
    assert small.documents == dataset.documents[:1_000]
    assert small.queries == dataset.queries


def test_people_come_first_then_distractors(dataset: Dataset) -> None:
    scopes = [doc.user_id for doc in dataset.documents]
    people = sum(1 for scope in scopes if scope.startswith("person-"))
    assert 0 < people <= 1_000
    assert all(scope.startswith("person-") for scope in scopes[:people])
    assert all(scope.startswith("crowd-") for scope in scopes[people:])
    assert len({scope for scope in scopes[people:]}) > 100  # many distractor people, not one


def test_gold_and_hard_negatives_are_inside_the_smallest_rung(dataset: Dataset) -> None:
    position = {doc.id: i for i, doc in enumerate(dataset.documents)}
    smallest = dataset.rungs()[0]
    for query in dataset.queries:
        for doc_id in (*query.gold, *query.hard_negatives):
            assert position[doc_id] < smallest, (query.id, doc_id)


def test_ids_are_unique_and_short(dataset: Dataset) -> None:
    ids = [doc.id for doc in dataset.documents]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"syn-\d{6}", doc_id) for doc_id in ids)
    assert len({q.id for q in dataset.queries}) == len(dataset.queries)


def test_every_query_has_gold_and_hard_negatives_in_its_scope(dataset: Dataset) -> None:
    docs = _by_id(dataset)
    for query in dataset.queries:
        assert query.gold and query.hard_negatives, query.id
        assert not set(query.gold) & set(query.hard_negatives), query.id
        assert all(docs[doc_id].user_id == query.user_id for doc_id in query.gold), query.id
        assert any(docs[doc_id].user_id == query.user_id for doc_id in query.hard_negatives), query.id


def test_query_types_and_counts(dataset: Dataset) -> None:
    assert Counter(q.type for q in dataset.queries) == {
        "single_fact": 24,
        "updated_fact": 24,
        "multi_hop": 24,
        "multi_source": 24,
        "procedure": 12,
        "temporal_event": 12,
    }
    fewer = generate(queries_per_person=3, ladder=(1_000,))
    assert len(fewer.queries) == 36
    assert {q.type for q in fewer.queries} == set(QUERY_TYPES)  # kinds rotate across people
    assert len(QUERY_KINDS) == 10


def test_multi_source_queries_need_two_or_three_memories(dataset: Dataset) -> None:
    multi = [q for q in dataset.queries if q.multi_source]
    assert {q.type for q in multi} == {"multi_hop", "multi_source"}
    assert {len(q.gold) for q in multi} == {2, 3}
    assert all(not q.multi_source for q in dataset.queries if q.type not in {"multi_hop", "multi_source"})


def test_every_memory_type_is_generated(dataset: Dataset) -> None:
    people = [doc for doc in dataset.documents if doc.user_id.startswith("person-")]
    assert {doc.type for doc in people} == {"dialogue", "episodic", "semantic", "procedural"}
    procedures = [doc for doc in people if doc.type == "procedural"]
    assert all(doc.title and doc.steps and doc.trigger for doc in procedures)
    turns = [doc for doc in people if doc.type == "dialogue"]
    assert all(doc.speaker and doc.session_id and doc.occurred_at for doc in turns)


def test_sessions_follow_each_other_in_time(dataset: Dataset) -> None:
    sessions: dict[str, list[Document]] = {}
    for doc in dataset.documents:
        if doc.type == "dialogue" and doc.user_id == "person-01":
            sessions.setdefault(doc.session_id or "", []).append(doc)
    assert len(sessions) == 4
    ordered = [sessions[key] for key in sorted(sessions)]
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        assert max(d.occurred_at for d in earlier if d.occurred_at) < min(d.occurred_at for d in later if d.occurred_at)


def test_answers_are_in_the_gold_text(dataset: Dataset) -> None:
    docs = _by_id(dataset)
    for query in dataset.queries:
        gold_text = " ".join(docs[doc_id].text for doc_id in query.gold)
        assert query.answer
        for part in re.split(r", | and |; ", query.answer):
            assert part in gold_text, (query.id, part)


def test_updated_facts_have_the_superseded_fact_as_hard_negative(dataset: Dataset) -> None:
    docs = _by_id(dataset)
    for query in (_synthetic(q) for q in dataset.queries if q.type == "updated_fact"):
        (need,) = query.needs
        superseded = [
            doc_id
            for doc_id in query.hard_negatives
            if any(f.subject == need.subject and f.attribute == need.attribute for f in _facts(docs[doc_id]))
        ]
        assert superseded, query.id
        assert all(docs[doc_id].occurred_at < docs[query.gold[0]].occurred_at for doc_id in superseded)  # type: ignore[operator]


def test_golds_answer_and_hard_negatives_do_not(dataset: Dataset) -> None:
    docs = _by_id(dataset)
    for query in dataset.queries:
        assert all(answers(query, docs[doc_id]) for doc_id in query.gold), query.id
        assert not any(answers(query, docs[doc_id]) for doc_id in query.hard_negatives), query.id


def test_sampled_distractors_answer_nothing(dataset: Dataset) -> None:
    distractors = [doc for doc in dataset.documents if doc.user_id.startswith("crowd-")]
    sample = random.Random(0).sample(distractors, 1_000)
    asked = {need.attribute for query in dataset.queries for need in _synthetic(query).needs}
    # They state facts of the asked kinds (where someone lives, works, what they did...), just not the asked ones.
    assert sum(1 for doc in sample if any(f.attribute in asked for f in _facts(doc))) > 600
    for doc in sample:
        assert not any(answers(query, doc) for query in dataset.queries), doc.id


def test_verify_accepts_the_generated_dataset(dataset: Dataset) -> None:
    verify(dataset)


def test_verify_catches_a_distractor_stating_a_gold_fact(dataset: Dataset) -> None:
    query = next(q for q in dataset.queries if q.type == "updated_fact")
    gold = _by_id(dataset)[query.gold[0]]
    colliding = SyntheticDocument(id="syn-collide", text=gold.text, user_id="crowd-999999", facts=_facts(gold))
    assert answers(query, colliding)
    with pytest.raises(CollisionError, match="syn-collide"):
        verify(replace(dataset, documents=[*dataset.documents, colliding]))


def test_verify_catches_a_namesake_with_the_asked_fact(dataset: Dataset) -> None:
    """Same name, same attribute, valid now: a different text, but a collision all the same."""
    query = _synthetic(next(q for q in dataset.queries if q.type == "updated_fact"))
    (need,) = query.needs
    namesake = SyntheticDocument(
        id="syn-namesake",
        text=f"{need.subject} has lived on a houseboat for years.",
        user_id="crowd-999999",
        facts=(Fact(need.subject, need.attribute, "a houseboat"),),
    )
    with pytest.raises(CollisionError, match="syn-namesake"):
        verify(replace(dataset, documents=[*dataset.documents, namesake]))


def test_verify_catches_a_hard_negative_that_answers(dataset: Dataset) -> None:
    query = dataset.queries[0]
    docs = _by_id(dataset)
    negative_id, gold = query.hard_negatives[0], docs[query.gold[0]]
    documents = [
        SyntheticDocument(id=doc.id, text=doc.text, user_id=doc.user_id, facts=_facts(gold))
        if doc.id == negative_id
        else doc
        for doc in dataset.documents
    ]
    with pytest.raises(CollisionError, match=f"hard negative {negative_id}"):
        verify(replace(dataset, documents=documents))


def test_verify_catches_a_gold_that_does_not_answer(dataset: Dataset) -> None:
    query = dataset.queries[0]
    swapped = replace(query, gold=query.hard_negatives[:1], hard_negatives=query.gold)
    with pytest.raises(CollisionError, match="does not answer"):
        verify(replace(dataset, queries=[swapped, *dataset.queries[1:]]))


def test_verify_catches_evidence_outside_the_smallest_rung(dataset: Dataset) -> None:
    query = dataset.queries[0]
    moved = replace(query, hard_negatives=(*query.hard_negatives, dataset.documents[-1].id))
    with pytest.raises(CollisionError, match="outside the smallest rung"):
        verify(replace(dataset, queries=[moved, *dataset.queries[1:]]))


def test_answers_needs_a_synthetic_query(dataset: Dataset) -> None:
    plain = Query(id="q", text="?", gold=("syn-000000",))
    with pytest.raises(TypeError):
        answers(plain, dataset.documents[0])


def test_too_many_people_for_the_smallest_rung() -> None:
    with pytest.raises(ValueError, match="smallest rung"):
        generate(people=40, ladder=(1_000,))


@pytest.mark.parametrize(
    "arguments",
    [{"ladder": ()}, {"ladder": (0, 1_000)}, {"people": 0}, {"queries_per_person": 0}, {"queries_per_person": 11}],
)
def test_invalid_arguments(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate(**arguments)  # type: ignore[arg-type]


def test_load_synthetic_spec(dataset: Dataset) -> None:
    assert load_synthetic(None).documents == dataset.documents
    assert load_synthetic("").queries == dataset.queries
    small = load_synthetic("seed=3, people=4, ladder=500/2k, queries=2")
    assert small.ladder == [500, 2_000]
    assert len(small.documents) == 2_000
    assert len(small.queries) == 8
    assert {q.user_id for q in small.queries} == {"person-01", "person-02", "person-03", "person-04"}
    with pytest.raises(ValueError, match="colour"):
        load_synthetic("colour=blue")
    with pytest.raises(ValueError):
        load_synthetic("ladder=ten")


def test_a_hundred_thousand_documents(dataset: Dataset) -> None:
    large = generate(ladder=(1_000, 10_000, 100_000))
    assert len(large.documents) == 100_000
    assert large.rungs() == [1_000, 10_000, 100_000]
    assert large.documents[:10_000] == dataset.documents
    assert len({doc.id for doc in large.documents}) == 100_000

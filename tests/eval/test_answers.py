"""Offline answer scoring: SQuAD-style normalisation, token F1, exact match, and the extractive answer."""

import pytest

from memsvc.eval.answers import exact_match, extractive_answer, normalize, token_f1


def test_normalize_drops_case_punctuation_and_articles():
    assert normalize("The Cat, an old one!") == ["cat", "old", "one"]


@pytest.mark.parametrize(
    ("predicted", "gold", "f1"),
    [
        ("Miso", "miso", 1.0),
        ("her cat Miso", "Miso", 0.5),  # precision 1/3, recall 1: 2 * (1/3) / (4/3)
        ("in Lisbon since 2022", "Lisbon", 0.4),  # precision 1/4, recall 1
        ("Porto", "Lisbon", 0.0),
        ("", "Lisbon", 0.0),
        ("", "", 1.0),
    ],
)
def test_token_f1(predicted, gold, f1):
    assert token_f1(predicted, gold) == pytest.approx(f1)


def test_exact_match_ignores_only_normalised_differences():
    assert exact_match("The Porto.", "porto") == 1.0
    assert exact_match("Porto city", "Porto") == 0.0


def test_extractive_answer_takes_the_sentence_sharing_most_words_with_the_question():
    retrieved = [
        "Bob repaired the fence. Alice adopted a cat called Miso last spring.",
        "Alice's cat Miso likes tuna.",
        "The cat of Alice is named Pepper in this unrelated fourth hit.",
        "Alice Alice cat cat name name called called.",  # beyond depth 3: never considered
    ]

    assert extractive_answer("What is the name of the cat Alice adopted?", retrieved) == (
        "Alice adopted a cat called Miso last spring."
    )
    assert extractive_answer("anything", []) == ""

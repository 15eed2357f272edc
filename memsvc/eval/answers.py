"""Offline answer quality: token F1 and exact match (SQuAD-style normalisation) of an extractive answer taken
from the retrieved memories. A proxy, labelled as such in every report; it is not an LLM judge."""

import re
import string
from collections import Counter
from collections.abc import Sequence

METHOD = "offline extractive: the sentence of the top 3 hits sharing most words with the question; token F1 / EM"

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_QUESTION_WORDS = {"what", "when", "where", "who", "whom", "which", "why", "how", "did", "does", "do", "is", "was"}


def normalize(text: str) -> list[str]:
    """Lower case, no punctuation or articles, split on whitespace."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(predicted: str, gold: str) -> float:
    predicted_tokens, gold_tokens = normalize(predicted), normalize(gold)
    if not predicted_tokens or not gold_tokens:
        return float(predicted_tokens == gold_tokens)
    common = sum((Counter(predicted_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(predicted: str, gold: str) -> float:
    return float(normalize(predicted) == normalize(gold))


def extractive_answer(question: str, retrieved: Sequence[str], depth: int = 3) -> str:
    """The sentence of the first `depth` retrieved texts that shares most words with the question (earlier
    hits win ties); empty when nothing was retrieved."""
    wanted = set(normalize(question)) - _QUESTION_WORDS
    best, best_overlap = "", -1
    for text in retrieved[:depth]:
        for sentence in _SENTENCE_END.split(text.strip()):
            overlap = len(wanted & set(normalize(sentence)))
            if overlap > best_overlap:
                best, best_overlap = sentence, overlap
    return best

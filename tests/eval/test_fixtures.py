"""The committed benchmark fixtures (bench/fixtures): they load with the harness's loaders, have the shape the
retrieval ablation relies on, and are exactly what bench/fixtures/make_fixtures.py builds."""

import importlib.util
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from memsvc.eval.dataset import Dataset
from memsvc.eval.loaders import load_locomo, load_mteb

FIXTURES = Path(__file__).resolve().parents[2] / "bench" / "fixtures"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def locomo() -> Dataset:
    return load_locomo(FIXTURES / "locomo_mini.json")


@pytest.fixture(scope="module")
def mteb() -> Dataset:
    return load_mteb(FIXTURES / "mteb_mini")


def test_locomo_fixture_has_four_dated_conversations(locomo: Dataset):
    samples = json.loads((FIXTURES / "locomo_mini.json").read_text())
    assert [sample["sample_id"] for sample in samples] == ["conv-1", "conv-2", "conv-3", "conv-4"]
    sessions = Counter(doc.session_id for doc in locomo.documents)
    per_conversation = Counter(session_id.split(":")[0] for session_id in sessions if session_id)
    assert all(6 <= count <= 10 for count in per_conversation.values()) and len(per_conversation) == 4
    assert all(15 <= turns <= 25 for turns in sessions.values())  # about twenty turns a session
    assert all(doc.type == "dialogue" and doc.occurred_at is not None and doc.speaker for doc in locomo.documents)
    assert {doc.speaker for doc in locomo.documents if doc.user_id == "conv-1"} == {"Caroline", "Melanie"}
    assert locomo.now == datetime(2023, 11, 20, 20, 0, tzinfo=UTC)  # the latest session of all four


def test_locomo_fixture_questions(locomo: Dataset):
    types = Counter(query.type for query in locomo.queries)
    assert len(locomo.queries) >= 60
    assert set(types) == {"category_single_hop", "category_multi_hop", "category_temporal", "category_entity"}
    assert all(count >= 10 for count in types.values())
    multi_hop = [query for query in locomo.queries if query.type == "category_multi_hop"]
    assert sum(query.multi_source for query in multi_hop) == len(multi_hop)  # two or more evidence turns each
    by_text = {query.text: query for query in locomo.queries}
    assert by_text["When did Caroline go to Rome?"].answer == "the week before 8 May 2023"
    last_may = by_text["What did Mel do last May?"]
    assert last_may.user_id == "conv-1" and len(last_may.gold) >= 1
    turns = {doc.id: doc for doc in locomo.documents}
    assert all(turns[doc_id].occurred_at.month == 5 for doc_id in last_may.gold)  # type: ignore[union-attr]


def test_mteb_fixture_counts(mteb: Dataset):
    assert len(mteb.documents) == 2000 and len(mteb.queries) == 100
    assert sum(query.multi_source for query in mteb.queries) == 20
    assert all(query.candidates is None and query.user_id is None for query in mteb.queries)
    titles = [doc.text.split("\n", 1)[0] for doc in mteb.documents]
    # Near duplicates: most gold entities share their name's stem with another entity in the corpus.
    gold_titles = {titles[int(doc_id[3:])] for query in mteb.queries for doc_id in query.gold}
    near = [title for title in gold_titles if sum(other.startswith(title) for other in set(titles)) > 1]
    assert len(near) >= 40


def test_fixtures_are_what_the_generator_builds(tmp_path: Path):
    written = _generator().write_fixtures(tmp_path)

    for path in written:
        assert path.read_bytes() == (FIXTURES / path.relative_to(tmp_path)).read_bytes(), path.name

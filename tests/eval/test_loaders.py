"""Benchmark loaders against small fixtures written by each test: the exact documents and queries they produce,
and the errors malformed files raise."""

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memsvc.eval.dataset import Document, Query
from memsvc.eval.loaders import load, load_embs, load_locomo, load_mteb, parse_locomo_datetime


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def write_pickle(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))


# --- MTEB / LMEB -----------------------------------------------------------------------------------------------


def mteb_task(root: Path, qrels: str | None = None) -> Path:
    """A four-document task: q1 has two gold documents, q2 one, q3 only a zero-score judgement."""
    write_jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Paris", "text": "Capital of France."},
            {"id": "d2", "text": "No title here."},
            {"_id": 3, "title": "", "text": "Empty title is dropped."},
            {"_id": "d4", "title": "Lyon", "text": "Second city."},
        ],
    )
    write_jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "french cities"},
            {"id": "q2", "text": "untitled"},
            {"_id": "q3", "text": "nothing relevant"},
        ],
    )
    if qrels is None:
        qrels = "query-id\tcorpus-id\tscore\nq1\td4\t1\nq1\td1\t2\nq2\td2\t1\nq3\t3\t0\nq1\td4\t1\n"
    (root / "qrels.tsv").write_text(qrels, encoding="utf-8")
    return root


def test_mteb_documents_and_queries(tmp_path: Path) -> None:
    dataset = load_mteb(mteb_task(tmp_path / "TaskA"))

    assert dataset.name == "TaskA"
    assert dataset.documents == [
        Document(id="d1", text="Paris\nCapital of France.", type="semantic"),
        Document(id="d2", text="No title here.", type="semantic"),
        Document(id="3", text="Empty title is dropped.", type="semantic"),
        Document(id="d4", text="Lyon\nSecond city.", type="semantic"),
    ]
    # q3 has no judgement above zero: skipped. Gold keeps qrels order, without the repeated row.
    assert dataset.queries == [
        Query(id="q1", text="french cities", gold=("d4", "d1")),
        Query(id="q2", text="untitled", gold=("d2",)),
    ]
    assert all(q.candidates is None for q in dataset.queries)


def test_mteb_qrels_in_subfolder_without_header(tmp_path: Path) -> None:
    root = mteb_task(tmp_path, qrels="")
    (root / "qrels.tsv").unlink()
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("q2\td2\t1\n\nq2\t3\t1\n", encoding="utf-8")

    dataset = load_mteb(root)

    assert [(q.id, q.gold) for q in dataset.queries] == [("q2", ("d2", "3"))]


def test_mteb_candidates_per_query_as_in_lmeb(tmp_path: Path) -> None:
    root = mteb_task(tmp_path)
    write_jsonl(
        root / "candidates.jsonl",
        [{"query_id": "q1", "candidate_doc_ids": ["d1", "d4"]}, {"query_id": "q3", "candidate_doc_ids": [3]}],
    )

    dataset = load_mteb(root)

    assert [(q.id, q.candidates) for q in dataset.queries] == [("q1", ("d1", "d4")), ("q2", None)]


def test_mteb_candidates_per_scene(tmp_path: Path) -> None:
    root = mteb_task(tmp_path)
    write_jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "french cities", "scene_id": "s1"},
            {"_id": "q2", "text": "untitled"},
            {"_id": "q3", "text": "nothing relevant", "scene_id": "s1"},
        ],
    )
    write_jsonl(
        root / "candidates.jsonl",
        [
            {"scene_id": "s1", "candidate_doc_ids": ["d1", "d2", "d4"]},
            {"scene_id": "q2", "candidate_doc_ids": ["d2", "3"]},  # a scene named by the query's own id
        ],
    )

    dataset = load_mteb(root)

    assert [(q.id, q.candidates) for q in dataset.queries] == [("q1", ("d1", "d2", "d4")), ("q2", ("d2", "3"))]


def test_mteb_per_query_candidates_win_over_scene(tmp_path: Path) -> None:
    root = mteb_task(tmp_path)
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "x", "scene_id": "s1"}])
    (root / "qrels.tsv").write_text("q1\td1\t1\n", encoding="utf-8")
    write_jsonl(
        root / "candidates.jsonl",
        [{"scene_id": "s1", "candidate_doc_ids": ["d1", "d2"]}, {"query_id": "q1", "candidate_doc_ids": ["d1"]}],
    )

    assert load_mteb(root).queries[0].candidates == ("d1",)


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("q1\td1\t1\nq9\td1\t1\n", r"qrels.tsv:2: unknown query id 'q9'"),
        ("q1\tnope\t1\n", r"qrels.tsv:1: unknown corpus id 'nope'"),
        ("q1\td1\t1\nq2\td2\tyes\n", r"qrels.tsv:2: score 'yes' is not a number"),
        ("q1\td1\n", r"qrels.tsv:1: expected 3 tab-separated columns"),
    ],
)
def test_mteb_malformed_qrels(tmp_path: Path, qrels: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_mteb(mteb_task(tmp_path, qrels=qrels))


def test_mteb_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    root = mteb_task(tmp_path)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n\n{"_id": "d2", "text": \n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"corpus.jsonl:3: invalid JSON"):
        load_mteb(root)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"text": "no id"}\n', r"corpus.jsonl:1: missing '_id' or 'id'"),
        ('{"_id": "d1"}\n', r"corpus.jsonl:1: 'text' must be a string"),
        ('["d1", "text"]\n', r"corpus.jsonl:1: expected a JSON object, got list"),
        ('{"_id": "d1", "text": "a"}\n{"id": "d1", "text": "b"}\n', r"corpus.jsonl:2: duplicate document id 'd1'"),
    ],
)
def test_mteb_malformed_corpus_rows(tmp_path: Path, lines: str, message: str) -> None:
    root = mteb_task(tmp_path)
    (root / "corpus.jsonl").write_text(lines, encoding="utf-8")

    with pytest.raises(ValueError, match=message):
        load_mteb(root)


def test_mteb_missing_files(tmp_path: Path) -> None:
    root = mteb_task(tmp_path)
    (root / "qrels.tsv").unlink()
    with pytest.raises(ValueError, match=r"neither qrels.tsv nor qrels/test.tsv"):
        load_mteb(root)

    (root / "queries.jsonl").unlink()
    with pytest.raises(ValueError, match=r"queries.jsonl: file not found"):
        load_mteb(root)


@pytest.mark.parametrize(
    ("queries", "candidates", "message"),
    [
        (None, [{"query_id": "q1", "candidate_doc_ids": ["d1", "ghost"]}], r"candidates.jsonl:1: unknown candidate"),
        (None, [{"query_id": "q7", "candidate_doc_ids": ["d1"]}], r"candidates.jsonl:1: unknown query id 'q7'"),
        (None, [{"query_id": "q1", "candidate_doc_ids": "d1"}], r"'candidate_doc_ids' must be a list"),
        (None, [{"candidate_doc_ids": ["d1"]}], r"candidates.jsonl:1: missing 'scene_id'"),
        (
            None,
            [{"scene_id": "s", "candidate_doc_ids": ["d1"]}, {"scene_id": "s", "candidate_doc_ids": ["d2"]}],
            r"candidates.jsonl:2: candidates for 's' given twice",
        ),
        (
            [{"_id": "q1", "text": "x", "scene_id": "s2"}],
            [{"scene_id": "s1", "candidate_doc_ids": ["d1"]}],
            r"query 'q1' names scene 's2'",
        ),
    ],
)
def test_mteb_malformed_candidates(
    tmp_path: Path, queries: list[dict[str, Any]] | None, candidates: list[dict[str, Any]], message: str
) -> None:
    root = mteb_task(tmp_path)
    if queries is not None:
        write_jsonl(root / "queries.jsonl", queries)
        (root / "qrels.tsv").write_text("q1\td1\t1\n", encoding="utf-8")
    write_jsonl(root / "candidates.jsonl", candidates)

    with pytest.raises(ValueError, match=message):
        load_mteb(root)


# --- LoCoMo ----------------------------------------------------------------------------------------------------


def locomo_samples() -> list[dict[str, Any]]:
    return [
        {
            "sample_id": "conv-1",
            "conversation": {
                "speaker_a": "Caroline",
                "speaker_b": "Melanie",
                "session_2": [{"speaker": "Caroline", "dia_id": "D2:1", "text": "I adopted a dog."}],
                "session_2_date_time": "not a date",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": [
                    {"speaker": "Caroline", "dia_id": "D1:1", "text": "Hi Mel!"},
                    {
                        "speaker": "Melanie",
                        "dia_id": "D1:2",
                        "text": "Look at this.",
                        "img_url": ["https://example.invalid/a.jpg"],
                        "blip_caption": "a photo of a lake",
                    },
                ],
            },
            "qa": [
                {"question": "What did Caroline adopt?", "answer": "a dog", "evidence": ["D2:1"], "category": 1},
                {"question": "Unanswerable?", "answer": "x", "evidence": [], "category": 2},
                {"question": "Ghost turn?", "answer": "x", "evidence": ["D9:9"], "category": 2},
                {"question": "Both sessions?", "answer": 2023, "evidence": ["D1:2; D2:1", "D7:1"], "category": 3},
                {
                    "question": "What did Melanie adopt?",
                    "adversarial_answer": "nothing",
                    "evidence": ["D2:01"],
                    "category": 5,
                },
            ],
        },
        {
            "sample_id": "conv-2",
            "conversation": {
                "speaker_a": "Jon",
                "speaker_b": "Gina",
                "session_1_date_time": "10:05 AM on 1 Jan, 2024",
                "session_1": [{"speaker": "Jon", "dia_id": "D1:1", "text": "Morning."}],
            },
            "qa": [{"question": "Who spoke first?", "answer": "Jon", "evidence": ["D1:1"], "category": 4}],
        },
    ]


def test_locomo_documents_and_queries(tmp_path: Path) -> None:
    path = tmp_path / "locomo10.json"
    path.write_text(json.dumps(locomo_samples()), encoding="utf-8")

    dataset = load_locomo(path)

    may8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert dataset.name == "locomo10"
    # Sessions in numeric order whatever the key order; the same dia_id in two samples gives two documents.
    assert dataset.documents == [
        Document(
            id="conv-1:D1:1",
            text="Hi Mel!",
            type="dialogue",
            user_id="conv-1",
            session_id="conv-1:session_1",
            speaker="Caroline",
            occurred_at=may8,
        ),
        Document(
            id="conv-1:D1:2",
            text="Look at this.",
            type="dialogue",
            user_id="conv-1",
            session_id="conv-1:session_1",
            speaker="Melanie",
            occurred_at=may8,
            metadata={"blip_caption": "a photo of a lake"},
        ),
        Document(
            id="conv-1:D2:1",
            text="I adopted a dog.",
            type="dialogue",
            user_id="conv-1",
            session_id="conv-1:session_2",
            speaker="Caroline",
            occurred_at=None,
        ),
        Document(
            id="conv-2:D1:1",
            text="Morning.",
            type="dialogue",
            user_id="conv-2",
            session_id="conv-2:session_1",
            speaker="Jon",
            occurred_at=datetime(2024, 1, 1, 10, 5, tzinfo=UTC),
        ),
    ]
    assert dataset.queries == [
        Query(
            id="conv-1:q0",
            text="What did Caroline adopt?",
            gold=("conv-1:D2:1",),
            type="category_1",
            answer="a dog",
            user_id="conv-1",
        ),
        # q1 (no evidence) and q2 (only a turn that does not exist) are skipped; D7:1 is dropped from q3.
        Query(
            id="conv-1:q3",
            text="Both sessions?",
            gold=("conv-1:D1:2", "conv-1:D2:1"),
            type="category_3",
            answer="2023",
            user_id="conv-1",
        ),
        Query(
            id="conv-1:q4",
            text="What did Melanie adopt?",
            gold=("conv-1:D2:1",),
            type="category_5",
            answer="nothing",
            user_id="conv-1",
        ),
        Query(
            id="conv-2:q0",
            text="Who spoke first?",
            gold=("conv-2:D1:1",),
            type="category_4",
            answer="Jon",
            user_id="conv-2",
        ),
    ]
    # The data's present: the latest session time of all samples (conv-2's 1 January 2024).
    assert dataset.now == datetime(2024, 1, 1, 10, 5, tzinfo=UTC)


def test_locomo_without_session_times_has_no_now(tmp_path: Path) -> None:
    samples = locomo_samples()[:1]
    del samples[0]["conversation"]["session_1_date_time"]
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(samples), encoding="utf-8")

    assert load_locomo(path).now is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),
        ("12:05 am on 20 October, 2023", datetime(2023, 10, 20, 0, 5, tzinfo=UTC)),
        ("12:30 pm on 3 Sept, 2022", datetime(2022, 9, 3, 12, 30, tzinfo=UTC)),
        ("9:00 AM on 15 jul 2023", datetime(2023, 7, 15, 9, 0, tzinfo=UTC)),
        ("10:00 am on 31 February, 2023", None),
        ("13:00 pm on 1 May, 2023", None),
        ("1:56 pm on 8 Mai, 2023", None),
        ("8 May 2023", None),
    ],
)
def test_parse_locomo_datetime(text: str, expected: datetime | None) -> None:
    assert parse_locomo_datetime(text) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"sample_id": "c"}', r"expected a JSON list of samples, got dict"),
        ('[\n  {"sample_id": "c",\n   "qa": [}\n]', r"locomo.json:3: invalid JSON"),
        ('[{"conversation": {}, "qa": []}]', r"sample 0: missing 'sample_id'"),
        ('[{"sample_id": "c", "qa": []}]', r"sample 'c': 'conversation' must be an object"),
        (
            '[{"sample_id": "c", "conversation": {"session_1": [{"dia_id": "D1:1", "text": "a"},'
            ' {"dia_id": "D1:1", "text": "b"}]}, "qa": []}]',
            r"session_1\[1\]: duplicate dia_id 'D1:1'",
        ),
        (
            '[{"sample_id": "c", "conversation": {"session_1": [{"dia_id": "D1:1"}]}, "qa": []}]',
            r"session_1\[0\]: 'text' must be a string",
        ),
        ('[{"sample_id": "c", "conversation": {}}, {"sample_id": "c", "conversation": {}}]', r"duplicate sample_id"),
    ],
)
def test_locomo_malformed(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ValueError, match=message):
        load_locomo(path)


def test_locomo_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"absent.json: file not found"):
        load_locomo(tmp_path / "absent.json")


# --- EverMemBench-S --------------------------------------------------------------------------------------------


def embs_release(root: Path) -> Path:
    """A release with a per-domain rung (64K: law, medical) and a flat rung (1M), three corpus shapes."""
    write_pickle(root / "data/64K/medical/unique_reference.pkl", ["Aspirin thins blood.", "Ibuprofen is an NSAID."])
    write_pickle(
        root / "data/64K/medical/data.pkl",
        [
            {"query": "What thins blood?", "answer": "aspirin", "reference_list": [0], "type": "single"},
            {"query": "Name two drugs", "answer": ["aspirin", "ibuprofen"], "reference_list": [1, "0", 1]},
            {"query": "No evidence", "answer": "-", "reference_list": []},
        ],
    )
    write_pickle(root / "data/64K/law/unique_reference.pkl", {7: "Contracts need consideration.", 9: "Torts."})
    write_pickle(
        root / "data/64K/law/data.pkl",
        [{"query": "What do contracts need?", "answer": "consideration", "reference_list": [7], "category": "law"}],
    )
    write_pickle(
        root / "data/1M/unique_reference.pkl",
        [{"id": 10, "text": "Rome was not built in a day."}, {"doc_id": 11, "content": "Math is fun."}],
    )
    write_pickle(
        root / "data/1M/data.pkl",
        [{"id": "x1", "query": "Rome?", "answer": 1, "reference_list": ["Rome was not built in a day."]}],
    )
    return root


def test_embs_domain_rung(tmp_path: Path) -> None:
    dataset = load_embs(embs_release(tmp_path), scale="64K", domain="medical")

    assert dataset.name == "embs/64K/medical"
    assert dataset.documents == [
        Document(id="0", text="Aspirin thins blood.", type="semantic"),
        Document(id="1", text="Ibuprofen is an NSAID.", type="semantic"),
    ]
    assert dataset.queries == [
        Query(id="0", text="What thins blood?", gold=("0",), type="single", answer="aspirin"),
        Query(id="1", text="Name two drugs", gold=("1", "0"), type="all", answer="['aspirin', 'ibuprofen']"),
    ]


def test_embs_dict_corpus_and_category(tmp_path: Path) -> None:
    dataset = load_embs(embs_release(tmp_path) / "data" / "64K" / "law")

    assert dataset.documents == [
        Document(id="7", text="Contracts need consideration.", type="semantic"),
        Document(id="9", text="Torts.", type="semantic"),
    ]
    assert dataset.queries == [
        Query(id="0", text="What do contracts need?", gold=("7",), type="law", answer="consideration")
    ]


def test_embs_flat_rung_references_by_text(tmp_path: Path) -> None:
    dataset = load_embs(embs_release(tmp_path), scale="1M")

    assert dataset.name == "embs/1M"
    assert [d.id for d in dataset.documents] == ["10", "11"]
    assert [d.text for d in dataset.documents] == ["Rome was not built in a day.", "Math is fun."]
    assert dataset.queries == [Query(id="x1", text="Rome?", gold=("10",), answer="1")]


def test_embs_picks_the_only_choice(tmp_path: Path) -> None:
    root = embs_release(tmp_path)
    # Path at the scale folder, domain given; then the data folder with one scale left and a domain.
    assert load_embs(root / "data" / "64K", domain="law").name == "embs/64K/law"
    for removed in ("1M", "64K/law"):
        for path in (root / "data" / removed).iterdir():
            path.unlink()
        (root / "data" / removed).rmdir()
    assert load_embs(root, domain="medical").name == "embs/64K/medical"
    assert load_embs(root).name == "embs/64K/medical"


def test_embs_ambiguous_or_unknown_folders(tmp_path: Path) -> None:
    root = embs_release(tmp_path)
    with pytest.raises(ValueError, match=r"no data.pkl; pick one .*found: 1M, 64K"):
        load_embs(root)
    with pytest.raises(ValueError, match=r"found: law, medical"):
        load_embs(root, scale="64K")
    with pytest.raises(ValueError, match=r"no scale folder '128K' \(found: 1M, 64K\)"):
        load_embs(root, scale="128K")
    with pytest.raises(ValueError, match=r"no domain folder 'art' \(found: law, medical\)"):
        load_embs(root, scale="64K", domain="art")
    with pytest.raises(ValueError, match=r"not a folder"):
        load_embs(root / "missing")


@pytest.mark.parametrize(
    ("corpus", "queries", "message"),
    [
        (["a"], [{"query": "q", "answer": "a", "reference_list": [3]}], r"query 0: reference 3 is not a document"),
        (["a"], [{"query": "q", "answer": "a", "reference_list": ["b"]}], r"reference 'b' is not a document"),
        (["a"], [{"query": "q", "reference_list": 0}], r"query 0: 'reference_list' must be a list"),
        (["a"], [{"answer": "a", "reference_list": [0]}], r"query 0: 'query' must be a string"),
        (["a"], {"query": "q"}, r"data.pkl: expected a list of queries, got dict"),
        ("a", [], r"unique_reference.pkl: expected a list or dict of documents, got str"),
        ([{"id": 1}], [], r"unique_reference.pkl: document '1' has no text"),
        ({1: "a", "1": "b"}, [], r"duplicate document id '1'"),
    ],
)
def test_embs_malformed_pickles(tmp_path: Path, corpus: object, queries: object, message: str) -> None:
    write_pickle(tmp_path / "unique_reference.pkl", corpus)
    write_pickle(tmp_path / "data.pkl", queries)

    with pytest.raises(ValueError, match=message):
        load_embs(tmp_path)


def test_embs_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "data.pkl").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\n")
    (tmp_path / "unique_reference.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"unique_reference.pkl: not a readable pickle"):
        load_embs(tmp_path)

    write_pickle(tmp_path / "unique_reference.pkl", ["a"])
    with pytest.raises(ValueError, match=r"data.pkl: a Git LFS pointer"):
        load_embs(tmp_path)

    (tmp_path / "unique_reference.pkl").unlink()
    with pytest.raises(ValueError, match=r"unique_reference.pkl: file not found"):
        load_embs(tmp_path)


# --- dispatcher ------------------------------------------------------------------------------------------------


def test_load_dispatches_by_format(tmp_path: Path) -> None:
    locomo = tmp_path / "locomo.json"
    locomo.write_text(json.dumps(locomo_samples()), encoding="utf-8")
    root = embs_release(tmp_path / "embs")

    assert load("locomo", locomo) == load_locomo(locomo)
    assert load("mteb", mteb_task(tmp_path / "task")) == load_mteb(tmp_path / "task")
    assert load("embs", root, scale="64K", domain="law") == load_embs(root, scale="64K", domain="law")


def test_load_rejects_unknown_format_and_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown benchmark format 'synthetic'; expected one of mteb, locomo, embs"):
        load("synthetic", tmp_path)
    with pytest.raises(ValueError, match=r"format 'mteb' takes no option scale"):
        load("mteb", tmp_path, scale="1M")

"""Benchmark files into a `Dataset`: MTEB/LMEB retrieval folders, LoCoMo conversations and the EverMemBench-S
release. Every loader checks what it reads and raises `ValueError` naming the file (and line, where there is one)
and the problem, so a malformed download fails before anything is ingested."""

import json
import pickle
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memsvc.eval.dataset import Dataset, Document, Query

# --------------------------------------------------------------------------------------------------------------
# Shared readers
# --------------------------------------------------------------------------------------------------------------


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"{path}: file not found")


def _jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; streamed, as LMEB corpora run to hundreds of MB."""
    _require_file(path)
    try:
        with path.open(encoding="utf-8-sig") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
                if not isinstance(value, dict):
                    raise ValueError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
                yield number, value
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _read_json(path: Path) -> Any:
    _require_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _as_id(value: object) -> str | None:
    """Benchmark ids arrive as strings or integers; anything else (bool included) is not an id."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _row_id(row: dict[str, Any], where: str, *keys: str) -> str:
    for key in keys:
        if key in row:
            found = _as_id(row[key])
            if found is None:
                raise ValueError(f"{where}: {key!r} must be a non-empty string or an integer, got {row[key]!r}")
            return found
    raise ValueError(f"{where}: missing {' or '.join(repr(k) for k in keys)}")


def _row_text(row: dict[str, Any], where: str, key: str = "text") -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a string, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------------------
# MTEB / LMEB
# --------------------------------------------------------------------------------------------------------------


def load_mteb(path: Path) -> Dataset:
    """Load an MTEB/LMEB retrieval task folder.

    Files: `corpus.jsonl` ({`_id`|`id`, optional `title`, `text`}; a non-empty title is prepended to the text with a
    newline), `queries.jsonl` ({`_id`|`id`, `text`, optional `scene_id`}), `qrels.tsv` or `qrels/test.tsv`
    (query-id, corpus-id, score, tab-separated, optional header line; score > 0 is gold) and optionally
    `candidates.jsonl`, which restricts queries to their own scene. A candidates row is either
    `{"query_id": ..., "candidate_doc_ids": [...]}` (per query, as in published LMEB-style LoCoMo data) or
    `{"scene_id": ..., "candidate_doc_ids": [...]}` (per scene: it applies to the queries whose `scene_id` field
    names it, or whose id equals it). A per-query row wins over a scene row; a query matching neither ranks the
    whole corpus. Scenes are not guessed from id prefixes.

    Returns every corpus document (type "semantic", in file order) and the queries with at least one gold
    document (in `queries.jsonl` order; gold in qrels order). Unknown ids in qrels or candidates are errors.
    """
    documents = _mteb_corpus(path / "corpus.jsonl")
    corpus_ids = {d.id for d in documents}
    queries = _mteb_queries(path / "queries.jsonl")
    qrels_path = path / "qrels.tsv"
    if not qrels_path.is_file():
        qrels_path = path / "qrels" / "test.tsv"
    if not qrels_path.is_file():
        raise ValueError(f"{path}: file not found: neither qrels.tsv nor qrels/test.tsv")
    gold = _mteb_qrels(qrels_path, set(queries), corpus_ids)
    candidates_path = path / "candidates.jsonl"
    by_query: dict[str, tuple[str, ...]] = {}
    by_scene: dict[str, tuple[str, ...]] = {}
    if candidates_path.is_file():
        by_query, by_scene = _mteb_candidates(candidates_path, set(queries), corpus_ids)

    loaded: list[Query] = []
    for query_id, (text, scene_id) in queries.items():
        if not gold.get(query_id):
            continue
        candidates = by_query.get(query_id)
        if candidates is None and scene_id is not None and by_scene:
            if scene_id not in by_scene:
                raise ValueError(
                    f"{path / 'queries.jsonl'}: query {query_id!r} names scene {scene_id!r}, "
                    f"which {candidates_path.name} does not define"
                )
            candidates = by_scene[scene_id]
        if candidates is None:
            candidates = by_scene.get(query_id)
        loaded.append(Query(id=query_id, text=text, gold=tuple(gold[query_id]), candidates=candidates))
    return Dataset(name=path.name, documents=documents, queries=loaded)


def _mteb_corpus(path: Path) -> list[Document]:
    documents: list[Document] = []
    seen: set[str] = set()
    for number, row in _jsonl_objects(path):
        where = f"{path}:{number}"
        doc_id = _row_id(row, where, "_id", "id")
        if doc_id in seen:
            raise ValueError(f"{where}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        text = _row_text(row, where)
        title = row.get("title")
        if title is not None and not isinstance(title, str):
            raise ValueError(f"{where}: 'title' must be a string, got {title!r}")
        if title and title.strip():
            text = f"{title}\n{text}"
        documents.append(Document(id=doc_id, text=text, type="semantic"))
    return documents


def _mteb_queries(path: Path) -> dict[str, tuple[str, str | None]]:
    """Query id -> (text, scene id or None), in file order."""
    queries: dict[str, tuple[str, str | None]] = {}
    for number, row in _jsonl_objects(path):
        where = f"{path}:{number}"
        query_id = _row_id(row, where, "_id", "id")
        if query_id in queries:
            raise ValueError(f"{where}: duplicate query id {query_id!r}")
        scene_id = _row_id(row, where, "scene_id") if row.get("scene_id") is not None else None
        queries[query_id] = (_row_text(row, where), scene_id)
    return queries


def _mteb_qrels(path: Path, query_ids: set[str], corpus_ids: set[str]) -> dict[str, list[str]]:
    """Query id -> gold corpus ids (score > 0), in file order, without repeats."""
    gold: dict[str, list[str]] = {}
    first = True
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            columns = [c.strip() for c in line.rstrip("\r\n").split("\t")]
            if len(columns) != 3:
                raise ValueError(
                    f"{path}:{number}: expected 3 tab-separated columns "
                    f"(query-id, corpus-id, score), got {len(columns)}"
                )
            query_id, corpus_id, score_text = columns
            try:
                score = float(score_text)
            except ValueError:
                if first:  # a header line such as "query-id<TAB>corpus-id<TAB>score"
                    first = False
                    continue
                raise ValueError(f"{path}:{number}: score {score_text!r} is not a number") from None
            first = False
            if query_id not in query_ids:
                raise ValueError(f"{path}:{number}: unknown query id {query_id!r} (not in queries.jsonl)")
            if corpus_id not in corpus_ids:
                raise ValueError(f"{path}:{number}: unknown corpus id {corpus_id!r} (not in corpus.jsonl)")
            if score > 0 and corpus_id not in gold.setdefault(query_id, []):
                gold[query_id].append(corpus_id)
    return gold


def _mteb_candidates(
    path: Path, query_ids: set[str], corpus_ids: set[str]
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(per-query candidates, per-scene candidates)."""
    by_query: dict[str, tuple[str, ...]] = {}
    by_scene: dict[str, tuple[str, ...]] = {}
    for number, row in _jsonl_objects(path):
        where = f"{path}:{number}"
        raw = row.get("candidate_doc_ids")
        if not isinstance(raw, list):
            raise ValueError(f"{where}: 'candidate_doc_ids' must be a list, got {raw!r}")
        ids: list[str] = []
        for value in raw:
            doc_id = _as_id(value)
            if doc_id is None:
                raise ValueError(f"{where}: candidate id {value!r} is not a string or an integer")
            if doc_id not in corpus_ids:
                raise ValueError(f"{where}: unknown candidate document id {doc_id!r} (not in corpus.jsonl)")
            ids.append(doc_id)
        if "query_id" in row:
            query_id = _row_id(row, where, "query_id")
            if query_id not in query_ids:
                raise ValueError(f"{where}: unknown query id {query_id!r} (not in queries.jsonl)")
            target, key = by_query, query_id
        else:
            target, key = by_scene, _row_id(row, where, "scene_id")
        if key in target:
            raise ValueError(f"{where}: candidates for {key!r} given twice")
        target[key] = tuple(ids)
    return by_query, by_scene


# --------------------------------------------------------------------------------------------------------------
# LoCoMo
# --------------------------------------------------------------------------------------------------------------

_MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTHS = {name: number for number, full in enumerate(_MONTH_NAMES, start=1) for name in (full, full[:3])} | {"sept": 9}
# LoCoMo writes session times as "1:56 pm on 8 May, 2023". Parsed by hand so the result does not depend on the
# process locale, as strptime's %B and %p do.
_LOCOMO_DATE = re.compile(
    r"(\d{1,2}):(\d{2})\s*([ap])\.?m\.?\s+on\s+(\d{1,2})\s+([a-z]+)\.?,?\s+(\d{4})", re.IGNORECASE
)
_SESSION_KEY = re.compile(r"session_(\d+)")
_DIA_ID = re.compile(r"D(\d+):(\d+)")


def parse_locomo_datetime(text: str) -> datetime | None:
    """A LoCoMo session time ("1:56 pm on 8 May, 2023") as an aware UTC datetime; None when it does not parse."""
    match = _LOCOMO_DATE.fullmatch(text.strip())
    if match is None:
        return None
    hour, minute, half, day, month_name, year = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None or not 1 <= int(hour) <= 12:
        return None
    hour24 = int(hour) % 12 + (12 if half.lower() == "p" else 0)
    try:
        return datetime(int(year), month, int(day), hour24, int(minute), tzinfo=UTC)
    except ValueError:  # 31 February and the like
        return None


def load_locomo(path: Path) -> Dataset:
    """Load a LoCoMo JSON file: a list of samples `{sample_id, conversation, qa}`.

    Each turn becomes a "dialogue" Document with id `"{sample_id}:{dia_id}"` (dia_ids repeat across samples),
    user_id = sample_id, session_id = `"{sample_id}:session_{n}"`, the turn's speaker and text, and occurred_at =
    the session's `session_{n}_date_time` (UTC; None when absent or unparseable). A turn's image caption, when it
    has one, is kept in `metadata["blip_caption"]`. Each QA with evidence becomes a Query `"{sample_id}:q{i}"`
    (i = its position in the sample's qa list) with gold = the evidence turns that exist in the conversation;
    QAs left without gold are skipped. type = `"category_{category}"`, answer = `answer` or, for adversarial
    QAs, `adversarial_answer`. The dataset's `now` is the latest session time of all samples (None when no
    session time parses): questions such as "What did Mel do last May?" are asked from there.
    """
    samples = _read_json(path)
    if not isinstance(samples, list):
        raise ValueError(f"{path}: expected a JSON list of samples, got {type(samples).__name__}")
    documents: list[Document] = []
    queries: list[Query] = []
    seen_samples: set[str] = set()
    for index, sample in enumerate(samples):
        where = f"{path}: sample {index}"
        if not isinstance(sample, dict):
            raise ValueError(f"{where}: expected an object, got {type(sample).__name__}")
        sample_id = _row_id(sample, where, "sample_id")
        if sample_id in seen_samples:
            raise ValueError(f"{where}: duplicate sample_id {sample_id!r}")
        seen_samples.add(sample_id)
        where = f"{path}: sample {sample_id!r}"
        turns = _locomo_turns(sample.get("conversation"), sample_id, where)
        documents.extend(turns)
        queries.extend(_locomo_queries(sample.get("qa", []), sample_id, {d.id for d in turns}, where))
    session_times = [doc.occurred_at for doc in documents if doc.occurred_at is not None]
    return Dataset(
        name=path.stem, documents=documents, queries=queries, now=max(session_times) if session_times else None
    )


def _locomo_turns(conversation: object, sample_id: str, where: str) -> list[Document]:
    if not isinstance(conversation, dict):
        raise ValueError(f"{where}: 'conversation' must be an object, got {conversation!r}")
    sessions = sorted(
        (int(match.group(1)), key) for key in conversation if (match := _SESSION_KEY.fullmatch(key)) is not None
    )
    documents: list[Document] = []
    seen: set[str] = set()
    for number, key in sessions:
        turns = conversation[key]
        if not isinstance(turns, list):
            raise ValueError(f"{where}: {key!r} must be a list of turns, got {type(turns).__name__}")
        date_text = conversation.get(f"{key}_date_time")
        occurred_at = parse_locomo_datetime(date_text) if isinstance(date_text, str) else None
        for position, turn in enumerate(turns):
            turn_where = f"{where}, {key}[{position}]"
            if not isinstance(turn, dict):
                raise ValueError(f"{turn_where}: expected an object, got {type(turn).__name__}")
            dia_id = _row_id(turn, turn_where, "dia_id")
            doc_id = f"{sample_id}:{dia_id}"
            if doc_id in seen:
                raise ValueError(f"{turn_where}: duplicate dia_id {dia_id!r}")
            seen.add(doc_id)
            speaker = turn.get("speaker")
            if speaker is not None and not isinstance(speaker, str):
                raise ValueError(f"{turn_where}: 'speaker' must be a string, got {speaker!r}")
            caption = turn.get("blip_caption")
            documents.append(
                Document(
                    id=doc_id,
                    text=_row_text(turn, turn_where),
                    type="dialogue",
                    user_id=sample_id,
                    session_id=f"{sample_id}:session_{number}",
                    speaker=speaker,
                    occurred_at=occurred_at,
                    metadata={"blip_caption": caption} if isinstance(caption, str) and caption else {},
                )
            )
    return documents


def _locomo_queries(qa: object, sample_id: str, turn_ids: set[str], where: str) -> list[Query]:
    if not isinstance(qa, list):
        raise ValueError(f"{where}: 'qa' must be a list, got {type(qa).__name__}")
    queries: list[Query] = []
    for index, item in enumerate(qa):
        item_where = f"{where}, qa[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{item_where}: expected an object, got {type(item).__name__}")
        evidence = item.get("evidence") or []
        if not isinstance(evidence, list):
            raise ValueError(f"{item_where}: 'evidence' must be a list, got {evidence!r}")
        gold: list[str] = []
        for entry in evidence:
            # The released file has a few entries like "D8:6; D9:17" and zero-padded "D30:05".
            for dia_id in re.split(r"[;,\s]+", str(entry)):
                doc_id = _locomo_evidence_id(sample_id, dia_id, turn_ids)
                if doc_id is not None and doc_id not in gold:
                    gold.append(doc_id)
        if not gold:
            continue
        answer = item.get("answer", item.get("adversarial_answer"))
        category = item.get("category")
        queries.append(
            Query(
                id=f"{sample_id}:q{index}",
                text=_row_text(item, item_where, "question"),
                gold=tuple(gold),
                type=f"category_{category}" if category is not None else "all",
                answer=None if answer is None else str(answer),
                user_id=sample_id,
            )
        )
    return queries


def _locomo_evidence_id(sample_id: str, dia_id: str, turn_ids: set[str]) -> str | None:
    if not dia_id:
        return None
    if f"{sample_id}:{dia_id}" in turn_ids:
        return f"{sample_id}:{dia_id}"
    match = _DIA_ID.fullmatch(dia_id)
    if match is not None:
        normalized = f"{sample_id}:D{int(match.group(1))}:{int(match.group(2))}"
        if normalized in turn_ids:
            return normalized
    return None


# --------------------------------------------------------------------------------------------------------------
# EverMemBench-S
# --------------------------------------------------------------------------------------------------------------


def load_embs(path: Path, scale: str | None = None, domain: str | None = None) -> Dataset:
    """Load one rung of the EverMemBench-S release: `data/<scale>/[<domain>/]{data.pkl, unique_reference.pkl}`.

    `path` is the release root (or its `data/` folder; `scale`, then `domain`, pick the folder, and a level with a
    single choice is taken without asking) or a scale or domain folder itself.

    SECURITY: pickle runs code while it loads. Only load release files from a source you trust.

    `unique_reference.pkl` is the corpus: a list of texts whose position is the document id (what published
    loaders of the release read), a dict {id: text}, or a list of {"id"|"doc_id": id, "text"|"content": text}.
    `data.pkl` is a list of {"query", "answer", "reference_list", optional "id", "type"/"category"/"domain"}; each
    reference is a document id (int, or its string form) or a document's exact text. Queries with an empty
    reference_list are skipped; a reference to no document is an error. Documents are "semantic", in corpus order.
    """
    folder = _embs_folder(path, scale, domain)
    documents = _embs_corpus(folder / "unique_reference.pkl")
    queries = _embs_queries(folder / "data.pkl", documents)
    # Named by its place in the release ("64K/medical", "1M"), whichever folder `path` pointed at.
    release_data = next((parent for parent in folder.parents if parent.name == "data"), None)
    label = folder.relative_to(release_data).as_posix() if release_data is not None else folder.name
    return Dataset(name=f"embs/{label}", documents=documents, queries=queries)


def _holds_embs_data(folder: Path) -> bool:
    if (folder / "data.pkl").is_file():
        return True
    return any((child / "data.pkl").is_file() for child in folder.iterdir() if child.is_dir())


def _embs_choices(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir() and _holds_embs_data(child))


def _embs_folder(path: Path, scale: str | None, domain: str | None) -> Path:
    if not path.is_dir():
        raise ValueError(f"{path}: not a folder")
    folder = path / "data" if (path / "data").is_dir() else path
    for wanted, level in ((scale, "scale"), (domain, "domain")):
        if wanted is None or folder.name == wanted:
            continue
        if level == "domain" and not (folder / wanted).is_dir() and not (folder / "data.pkl").is_file():
            choices = _embs_choices(folder)
            if scale is None and len(choices) == 1:  # the only scale, then its domain
                folder = choices[0]
        if not (folder / wanted).is_dir():
            found = ", ".join(c.name for c in _embs_choices(folder)) or "none"
            raise ValueError(f"{folder}: no {level} folder {wanted!r} (found: {found})")
        folder = folder / wanted
    while not (folder / "data.pkl").is_file():
        choices = _embs_choices(folder)
        if len(choices) != 1:
            found = ", ".join(c.name for c in choices) or "none"
            raise ValueError(f"{folder}: no data.pkl; pick one of the folders with scale=/domain= (found: {found})")
        folder = choices[0]
    return folder


def _load_pickle(path: Path) -> Any:
    _require_file(path)
    with path.open("rb") as stream:
        head = stream.read(64)
        if head.startswith(b"version https://git-lfs"):
            raise ValueError(f"{path}: a Git LFS pointer, not the data (run `git lfs pull`)")
        stream.seek(0)
        try:
            return pickle.load(stream)  # trusted release files only: see load_embs
        except Exception as exc:  # unpickling raises almost anything on a damaged file
            raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def _embs_corpus(path: Path) -> list[Document]:
    raw = _load_pickle(path)
    pairs: list[tuple[object, object]]
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        pairs = list(enumerate(raw))
    elif isinstance(raw, list | tuple):
        pairs = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                raise ValueError(f"{path}: entry {index} is {type(item).__name__}; expected a text or an object")
            key = "id" if "id" in item else "doc_id"
            pairs.append((item.get(key), item.get("text", item.get("content"))))
    else:
        raise ValueError(f"{path}: expected a list or dict of documents, got {type(raw).__name__}")
    documents: list[Document] = []
    seen: set[str] = set()
    for index, (raw_id, text) in enumerate(pairs):
        doc_id = _as_id(raw_id)
        if doc_id is None:
            raise ValueError(f"{path}: entry {index} has no usable id ({raw_id!r})")
        if not isinstance(text, str):
            raise ValueError(f"{path}: document {doc_id!r} has no text (got {type(text).__name__})")
        if doc_id in seen:
            raise ValueError(f"{path}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        documents.append(Document(id=doc_id, text=text, type="semantic"))
    return documents


def _embs_queries(path: Path, documents: list[Document]) -> list[Query]:
    rows = _load_pickle(path)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a list of queries, got {type(rows).__name__}")
    ids = {d.id for d in documents}
    by_text: dict[str, str] | None = None  # built on first use: most releases reference by id
    queries: list[Query] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        where = f"{path}: query {index}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a dict, got {type(row).__name__}")
        has_id = row.get("id") is not None or row.get("query_id") is not None
        query_id = _row_id(row, where, "id", "query_id") if has_id else str(index)
        if query_id in seen:
            raise ValueError(f"{where}: duplicate query id {query_id!r}")
        seen.add(query_id)
        references = row.get("reference_list")
        if not isinstance(references, list | tuple):
            raise ValueError(f"{where}: 'reference_list' must be a list, got {references!r}")
        gold: list[str] = []
        for reference in references:
            doc_id = _as_id(reference)
            if doc_id not in ids and isinstance(reference, str):
                if by_text is None:
                    by_text = {}
                    for document in documents:
                        by_text.setdefault(document.text, document.id)
                doc_id = by_text.get(reference)
            if doc_id is None or doc_id not in ids:
                shown = reference if not isinstance(reference, str) or len(reference) <= 60 else reference[:60] + "…"
                raise ValueError(f"{where}: reference {shown!r} is not a document of unique_reference.pkl")
            if doc_id not in gold:
                gold.append(doc_id)
        if not gold:
            continue
        answer = row.get("answer")
        kind = row.get("type", row.get("category", row.get("domain")))
        queries.append(
            Query(
                id=query_id,
                text=_row_text(row, where, "query"),
                gold=tuple(gold),
                type=str(kind) if kind is not None else "all",
                answer=None if answer is None else str(answer),
            )
        )
    return queries


# --------------------------------------------------------------------------------------------------------------
# Dispatcher
# --------------------------------------------------------------------------------------------------------------

FORMATS = ("mteb", "locomo", "embs")


def load(format: str, path: Path, **options: str | None) -> Dataset:
    """Load `path` as `format` ("mteb", "locomo" or "embs"); options go to the loader (`scale`, `domain` for
    "embs"). An unknown format or option is a ValueError."""
    allowed = {"mteb": set(), "locomo": set(), "embs": {"scale", "domain"}}.get(format)
    if allowed is None:
        raise ValueError(f"unknown benchmark format {format!r}; expected one of {', '.join(FORMATS)}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"format {format!r} takes no option {', '.join(unknown)}")
    if format == "mteb":
        return load_mteb(path)
    if format == "locomo":
        return load_locomo(path)
    return load_embs(path, scale=options.get("scale"), domain=options.get("domain"))

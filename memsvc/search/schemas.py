import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from memsvc.embeddings.profiles import MAX_OVERSAMPLE
from memsvc.memories.schemas import MemoryPublic, MemoryType, Metadata, ScopeId, Timestamp, _as_utc, _no_nul

MAX_TOP_K = 100
MAX_CONTEXT_WINDOW = 20
MAX_FILTER_ENTITIES = 16
MAX_EVIDENCE = 100
SearchMode = Literal["hybrid", "dense", "lexical"]
Fusion = Literal["rrf", "relevance"]
# Where a hit was found: nearest embeddings; full-text match (content, speaker, title); nearest among memories
# naming an entity of the query; nearest within the time the query names; cited by a consolidated memory that
# ranked there (hierarchy: evidence).
Source = Literal["dense", "lexical", "entity", "time", "hierarchy"]
Expansion = Literal["evidence"]
# evidence: consolidated summaries and facts lead to the memories they cite and are not hits themselves; mixed:
# they are hits like any other memory.
Hierarchy = Literal["mixed", "evidence"]


class FusionWeights(BaseModel):
    """How much each source counts. A ranking joins the fused score as weight / (60 + a hit's rank there); with
    `fusion: relevance` the dense and lexical weights scale their side's evidence in the calibrated relevance,
    whose single ranking joins with their summed weight."""

    model_config = ConfigDict(extra="forbid")

    dense: float = Field(default=1.0, ge=0, le=10, description="Nearest embeddings.")
    lexical: float = Field(default=1.0, ge=0, le=10, description="Full-text match of content, speaker and title.")
    # Defaults from bench/results/retrieval_ablation.md: the entity ranking cost R@1 on every dataset measured (the
    # lexical ranking already matches names), so it is off unless asked for; doubling the time ranking helped LoCoMo.
    entity: float = Field(default=0.0, ge=0, le=10, description="Memories naming an entity the query names.")
    time: float = Field(default=2.0, ge=0, le=10, description="Memories within the time the query names.")


class SearchOptions(BaseModel):
    """How a search ranks. A request's unset option takes the tenant's default, and an unset default the
    built-in one."""

    model_config = ConfigDict(extra="forbid")

    mode: SearchMode | None = Field(
        default=None,
        description="hybrid: fuse dense, lexical, entity and time rankings; dense: embeddings only (plus memories "
        "not embedded yet, by text); lexical: full text only. Built-in default: hybrid.",
    )
    weights: FusionWeights | None = Field(
        default=None, description="Fusion weights (built-in default: dense 1, lexical 1, entity 0, time 2)."
    )
    fusion: Fusion | None = Field(
        default=None,
        description="How hybrid search combines the dense and lexical sides. rrf: reciprocal rank fusion of the "
        "two rankings; relevance: every candidate is scored on both sides and ranked by the calibrated relevance "
        "model's weighing of the two scores (the `score` hits carry), weights scaling each side. Either way the "
        "time and entity rankings join by reciprocal rank. Built-in default: relevance (it found more evidence "
        "than rrf on the synthetic ladder and LoCoMo, bench/results/retrieval_ablation.md).",
    )
    parse_time: bool | None = Field(
        default=None,
        description='Read a time expression in the query ("last week", "in May 2023", "yesterday", relative '
        "to `now`) and rank memories from that time higher; a question about the present (now, currently, still) "
        "favours newer memories. Built-in default: true.",
    )
    recency_half_life_days: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description="Favour recent memories: a memory this many days old keeps 3/4 of its fused score, older ones "
        "tend to 1/2. Built-in default: none.",
    )
    diversity: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Maximal marginal relevance: 0 ranks by relevance only; higher values push near-duplicates of "
        "better hits down. Built-in default: 0.",
    )
    min_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Only hits whose calibrated `score` reaches this; when none does the answer has no hits and "
        "`no_confident_memory` is true. Built-in default: none.",
    )
    rerank: bool | None = Field(
        default=None,
        description="Rerank the best candidates with the configured cross-encoder (MEMSVC_RERANKER_PATH; 409 when "
        "none is configured). Built-in default: false.",
    )
    hierarchy: Hierarchy | None = Field(
        default=None,
        description="What consolidated summaries and facts (POST /v1/consolidate) do in a search. evidence: they "
        "are ranked apart from the memories clients wrote, and each of the best matches brings in, at the place "
        "its relevance earns, the memory it was consolidated from (directly or through lower levels) that best "
        "matches the query (matched_by `hierarchy`, `via` naming it); they are not hits themselves. mixed: they "
        "rank among the other memories and are hits like them. Learned procedures are hits either way. Built-in "
        "default: evidence (mixed lost evidence on the synthetic ladder, bench/results/retrieval_ablation.md).",
    )


class SearchDefaults(SearchOptions):
    """A tenant's defaults for the search options its requests leave out (PUT /v1/tenants/{id}/search-defaults)."""


def _check_entity(value: str) -> str:
    _no_nul(value)
    if not value.strip() or len(value) > 200:
        raise ValueError("an entity must be 1-200 characters, not only whitespace")
    return value


def _check_query(value: str) -> str:
    _no_nul(value)
    if not value.strip():
        raise ValueError("query must not be empty or only whitespace")
    return value


class SearchRequest(SearchOptions):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "What food must Alice avoid?", "user_id": "alice", "top_k": 5},
                {
                    "query": "What did Bob say about Rome last May?",
                    "user_id": "alice",
                    "now": "2024-06-10T09:00:00Z",
                    "context_window": 2,
                    "expand": ["evidence"],
                    "min_score": 0.5,
                },
                {
                    "query": "deploy billing service",
                    "types": ["procedural"],
                    "mode": "hybrid",
                    "weights": {"dense": 1, "lexical": 2, "entity": 0.5, "time": 0},
                    "diversity": 0.3,
                },
                {"query": "Priya's new job", "entities": ["Priya"], "recency_half_life_days": 30},
            ]
        },
    )

    query: Annotated[str, AfterValidator(_check_query)] = Field(
        max_length=8192, description="What to look for, in natural language."
    )
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K, description="How many hits to return (1–100).")
    user_id: ScopeId | None = Field(default=None, description="Only this user's memories.")
    agent_id: ScopeId | None = Field(default=None, description="Only this agent's memories.")
    session_id: ScopeId | None = Field(default=None, description="Only this session's memories.")
    types: list[MemoryType] | None = Field(default=None, description="Only these memory types.")
    filters: Metadata | None = Field(
        default=None, description="Metadata equality: hits' metadata must contain this JSON object."
    )
    occurred_after: Timestamp | None = Field(default=None, description="Event time ≥ this.")
    occurred_before: Timestamp | None = Field(default=None, description="Event time < this.")
    as_of: Annotated[datetime | None, AfterValidator(_as_utc)] = Field(
        default=None, description="Only memories valid at this time (default: now)."
    )
    oversample: int | None = Field(
        default=None,
        ge=1,
        le=MAX_OVERSAMPLE,
        description="Byte-code storage profiles: candidates fetched per hit before exact rescoring "
        "(default: the tenant's profile's). More is slower and closer to exact search.",
    )
    context_window: int = Field(
        default=0,
        ge=0,
        le=MAX_CONTEXT_WINDOW,
        description="Dialogue hits: also return the N turns before and after each, from its session (0–20).",
    )
    include_expired: bool = Field(
        default=False, description="Also return memories whose validity ended (superseded facts)."
    )
    entities: list[Annotated[str, AfterValidator(_check_entity)]] | None = Field(
        default=None,
        max_length=MAX_FILTER_ENTITIES,
        description="Only memories naming all these entities (names as in a memory's `entities`; case-insensitive).",
    )
    now: Annotated[datetime | None, AfterValidator(_as_utc)] = Field(
        default=None, description="The present for relative time expressions (default: the server's clock)."
    )
    expand: list[Expansion] = Field(
        default_factory=list,
        description="evidence: each hit that was consolidated from other memories lists them in `evidence`, those "
        "that best match the query first.",
    )
    evidence_limit: int = Field(
        default=5,
        ge=1,
        le=MAX_EVIDENCE,
        description="With expand=evidence: at most this many of a hit's sources, the best matches of the query.",
    )


class HitScores(BaseModel):
    dense: float | None = Field(description="Cosine similarity of query and memory; null before it is embedded.")
    lexical: float | None = Field(
        description="Share of the query's word weight (IDF) the text matches, in [0, 1]; null when no word matches."
    )
    fused: float = Field(description="Reciprocal rank fusion of the sources (times recency, when asked): the order.")
    rerank: float | None = Field(default=None, description="Cross-encoder score, when reranked.")


class SearchHit(BaseModel):
    memory: MemoryPublic = Field(description="The matching memory.")
    score: float = Field(
        description="Calibrated relevance in [0, 1]: the estimated chance that this memory is evidence for the "
        "query (fitted on labelled benchmarks, see bench/results/calibration.md). What `min_score` compares."
    )
    scores: HitScores = Field(description="The signals behind the rank.")
    matched_by: list[Source] = Field(description="The sources that found it (dense, lexical, entity, time, hierarchy).")
    context: list[MemoryPublic] = Field(
        default_factory=list,
        description="With context_window: the neighbouring turns of a dialogue hit in its session, in turn order "
        "(the hit itself not repeated).",
    )
    evidence: list[MemoryPublic] = Field(
        default_factory=list,
        description="With expand=evidence: the memories this one was consolidated from (of its `source_ids`, up to "
        "`evidence_limit`, the best matches of the query first).",
    )
    via: list[uuid.UUID] = Field(
        default_factory=list,
        description="With hierarchy=evidence: the consolidated memory whose place this hit took.",
    )


class TimeWindow(BaseModel):
    text: str = Field(description="The time expression found in the query.")
    start: datetime | None = Field(description="Start (inclusive); null = open.")
    end: datetime | None = Field(description="End (exclusive); null = open.")


class SearchResponse(BaseModel):
    hits: list[SearchHit] = Field(description="Best first.")
    no_confident_memory: bool = Field(
        description="True when no hit reaches `min_score` (or, without one, the confidence bar of 0.5): the "
        "memory holds nothing that confidently answers the query."
    )
    time_window: TimeWindow | None = Field(default=None, description="The time the query names, when parsed.")
    mode: SearchMode = Field(description="The mode that ran.")

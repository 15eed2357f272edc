"""`MemsvcStore`: LangGraph's long-term store (`BaseStore`) kept in memsvc, so that an agent's memories live in the
memory service with everything else it offers (scoped forgetting, consolidation, hybrid search, export):

    graph = builder.compile(store=MemsvcStore(MemoryClient()))

Needs the `langgraph` extra (`pip install 'memsvc-client[langgraph]'`).

How LangGraph's model maps onto memsvc's:

- An item is one memsvc memory. Its namespace, key and value are kept in the memory's metadata under one reserved
  key, `"langgraph"`: `{"ns": {"0": "alice", "1": "memories"}, "depth": 2, "key": ..., "value": {...},
  "indexed": true}`. The namespace is an object of positions, not a list, because memsvc filters metadata by JSON
  containment: `{"ns": {"0": "alice"}}` then selects every namespace under ("alice",), and adding `depth` and `key`
  selects one item. A JSON list would match its elements in any order.
- Positions of the namespace also become memsvc scopes (`scope_levels`; by default the first is the `user_id`), so
  that `memories.forget(user_id=...)`, consolidation and scoped search treat LangGraph's data as the user's.
- The memory's `content` is the text to embed: the value's indexed fields (`index`), so that memsvc's search finds
  items by meaning. Updating an item makes a new version of its memory (memsvc keeps the history); `created_at` is
  the first version's, `updated_at` the latest's.

Batches follow `InMemoryStore`: the reads of a batch see the store as it was before the batch, and of several puts
to one item the last wins.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self, TypedDict, TypeVar, cast, get_args

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
    validate_op_namespace,
)

from memsvc_client.async_client import AsyncMemoryClient
from memsvc_client.client import MemoryClient
from memsvc_client.errors import Conflict, MemsvcError, NotFound
from memsvc_client.models import Memory, NewMemory

__all__ = ["RESERVED_KEY", "MemsvcIndexConfig", "MemsvcStore", "ScopeField", "StoreMemoryType"]

log = logging.getLogger(__name__)

RESERVED_KEY: Final = "langgraph"
"""The metadata key under which a memory carries its LangGraph namespace, key and value."""

ScopeField = Literal["user_id", "agent_id", "session_id"]
# Dialogue memories are turns of a session, numbered in order: not a home for key-value items.
StoreMemoryType = Literal["semantic", "episodic", "procedural"]

MAX_SCOPE_ID_CHARS = 256  # memsvc's ScopeId
MAX_TOP_K = 100  # memsvc's search answers at most this many hits
MAX_QUERY_CHARS = 8192  # and reads queries up to this long
MAX_PAGE = 500  # memsvc's largest list page
ADD_CHUNK = 1000  # memsvc stores at most this many memories per write
OVERSAMPLE = 3  # hits asked for per wanted result when a filter is applied here, after the search
LOOKUP_LIMIT = 10  # copies of one item read back by a put (more than one only after racing puts)
JOB_POLL_S = 0.05  # a handful of items embeds in tens of milliseconds: poll often

# Search options the store sets itself, from the LangGraph operation.
_STORE_SEARCH_ARGS = frozenset({"query", "top_k", "user_id", "agent_id", "session_id", "types", "filters"})
_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})

T = TypeVar("T")


class MemsvcIndexConfig(TypedDict, total=False):
    """Which parts of a value become the memory's text, the one memsvc embeds and matches words in.

    `fields`: LangGraph's field paths (`"text"`, `"a.b"`, `"items[*].name"`); `"$"` (the default) is the whole value
    as JSON. There is no `embed` or `dims`: memsvc embeds with its own model, server-side."""

    fields: list[str] | None


# The plans below are generators that yield SDK calls and receive their answers: one plan per operation, run by
# a sync driver (`batch`, on the `MemoryClient`) or an async one (`abatch`, on the `AsyncMemoryClient`), the two
# clients being twins method for method. A plan yielding a list of calls gets their answers as a list, errors as
# values (the async driver runs them concurrently); a single call's error is raised inside the plan.


@dataclass(frozen=True)
class _Call:
    """One SDK request, by the dotted name of its method on the client (e.g. `"memories.list"`)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None


_Request = _Call | list[_Call]
_Plan = Generator[_Request, Any, T]


def _invoke(client: MemoryClient | AsyncMemoryClient, call: _Call) -> Any:
    """The call made on `client`: its answer for the sync client, an awaitable for the async one."""
    target: Any = client
    for name in call.method.split("."):
        target = getattr(target, name)
    return target(*call.args, **(call.kwargs or {}))


def _parallel(plans: Sequence[_Plan[T]]) -> _Plan[list[T]]:
    """Run plans side by side, each round yielding the next calls of every unfinished plan as one list, so that the
    async driver sends them concurrently. Returns the plans' results in order."""
    results: list[Any] = [None] * len(plans)
    resume: dict[int, tuple[bool, Any]] = {i: (False, None) for i in range(len(plans))}  # (raise it?, answer)
    while resume:
        requests: dict[int, _Request] = {}
        for i, (failed, answer) in resume.items():
            try:
                requests[i] = plans[i].throw(answer) if failed else plans[i].send(answer)
            except StopIteration as done:
                results[i] = done.value
        if not requests:
            break
        calls: list[_Call] = []
        spans: dict[int, tuple[int, int, bool]] = {}
        for i, request in requests.items():
            batch = request if isinstance(request, list) else [request]
            spans[i] = (len(calls), len(batch), isinstance(request, list))
            calls.extend(batch)
        answers = yield calls
        resume = {}
        for i, (start, count, many) in spans.items():
            part = answers[start : start + count]
            resume[i] = (False, part) if many else (isinstance(part[0], MemsvcError), part[0])
    return results


def _unwrap(answers: list[Any], *tolerated: type[MemsvcError]) -> list[Any]:
    """The answers of a list of calls, raising the first error that is not `tolerated` (those become None)."""
    for answer in answers:
        if isinstance(answer, MemsvcError) and not isinstance(answer, tolerated):
            raise answer
    return [None if isinstance(answer, MemsvcError) else answer for answer in answers]


# Namespaces and metadata


def _positions(labels: Sequence[str]) -> dict[str, str]:
    return {str(i): label for i, label in enumerate(labels)}


def _item_record(memory: Memory) -> dict[str, Any] | None:
    """The memory's LangGraph record, or None when it is not a LangGraph item (another writer's metadata)."""
    record = memory.metadata.get(RESERVED_KEY)
    if not isinstance(record, dict):
        return None
    ns, depth = record.get("ns"), record.get("depth")
    if not (isinstance(ns, dict) and isinstance(depth, int) and isinstance(record.get("key"), str)):
        return None
    if not isinstance(record.get("value"), dict) or any(str(i) not in ns for i in range(depth)):
        return None
    return record


def _namespace_of(record: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(record["ns"][str(i)] for i in range(record["depth"]))


def _item(memory: Memory, record: Mapping[str, Any]) -> Item:
    return Item(
        value=record["value"],
        key=record["key"],
        namespace=_namespace_of(record),
        created_at=memory.created_at,
        updated_at=memory.updated_at,
    )


def _search_item(memory: Memory, record: Mapping[str, Any], score: float | None) -> SearchItem:
    return SearchItem(
        namespace=_namespace_of(record),
        key=record["key"],
        value=record["value"],
        created_at=memory.created_at,
        updated_at=memory.updated_at,
        score=score,
    )


def _does_match(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """LangGraph's namespace match: a prefix or suffix pattern, `"*"` standing for any one label."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type!r}")
    return all(pattern == "*" or label == pattern for label, pattern in pairs)


# Filters: LangGraph's exact matches and comparison operators on a value's top-level fields. What JSON containment
# can express is sent to memsvc, which narrows the memories read; the whole filter is then checked here.


def _matches(value: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    return all(_satisfies(value.get(field), expected) for field, expected in conditions.items())


def _satisfies(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping):
        if any(str(name).startswith("$") for name in expected):
            return all(_compare(actual, operator, operand) for operator, operand in expected.items())
        return isinstance(actual, Mapping) and all(_satisfies(actual.get(k), v) for k, v in expected.items())
    if isinstance(expected, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(expected)
            and all(_satisfies(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(actual: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(actual == operand)
    if operator == "$ne":
        return bool(actual != operand)
    if operator not in _OPERATORS:
        raise ValueError(f"Unsupported filter operator {operator!r}; use one of {', '.join(sorted(_OPERATORS))}.")
    # Numbers compare as numbers and strings as strings; anything else (a missing field) matches no comparison.
    if not ((_number(actual) and _number(operand)) or (isinstance(actual, str) and isinstance(operand, str))):
        return False
    if operator == "$gt":
        return bool(actual > operand)
    if operator == "$gte":
        return bool(actual >= operand)
    if operator == "$lt":
        return bool(actual < operand)
    return bool(actual <= operand)


_NOTHING: Final = object()


def _containable(expected: Any) -> tuple[Any, bool]:
    """The part of a filter value JSON containment can test, or _NOTHING; and whether containment tests exactly
    the same thing (else the value is also checked here). A list is contained in any longer list holding its
    elements, and a missing field is not contained in `{"f": null}`: neither is exact."""
    if isinstance(expected, str | int | float | bool):
        return expected, True
    if isinstance(expected, Mapping):
        if any(str(name).startswith("$") for name in expected):
            operand = expected.get("$eq", _NOTHING)
            if len(expected) == 1 and isinstance(operand, str | int | float | bool):
                return operand, True
            return _NOTHING, False
        return _contained_fields(expected)
    if isinstance(expected, list | tuple):
        parts = [_containable(e) for e in expected]
        if parts and all(part is not _NOTHING for part, _ in parts):
            return [part for part, _ in parts], False
    return _NOTHING, False


def _contained_fields(conditions: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    pushed: dict[str, Any] = {}
    exact = True
    for name, expected in conditions.items():
        part, part_exact = _containable(expected)
        if part is not _NOTHING:
            pushed[str(name)] = part
        exact = exact and part_exact
    return pushed, exact


# Writes


@dataclass
class _Write:
    """What one PutOp stores: the memory's scopes, content and metadata."""

    op: PutOp
    scopes: dict[str, str]
    content: str = ""
    metadata: dict[str, Any] | None = None
    indexed: bool = False
    marker: str = ""

    @property
    def marked_content(self) -> str:
        return self.content + self.marker


class MemsvcStore(BaseStore):
    """LangGraph's `BaseStore` on memsvc: `builder.compile(store=MemsvcStore(client))`.

    `client` / `async_client`: the SDK clients `batch` (sync) and `abatch` (async) use. Given one, the other is
    built with its base URL, API key, timeout and retries; given neither, both come from $MEMSVC_URL and
    $MEMSVC_API_KEY. Clients the store built are closed by `close()` / `aclose()` (or `with` / `async with`).
    Like any httpx async client, the async one belongs to the event loop it is first used in.

    `scope_levels`: the memsvc scope each namespace position fills (None: none). The default puts namespace[0]
    in `user_id`: a namespace ("alice", "memories") is memsvc user alice's, so memsvc's scoped search, forgetting
    (`memories.forget(user_id="alice")`) and consolidation work on it. A namespace must fill at least one scope
    (memsvc scopes every memory), with labels of at most 256 characters.

    `memory_type`: the memsvc type of the stored memories. `index`: which fields of a value are its text
    (`{"fields": ["$"]}`, the whole value, by default); `put(..., index=[...])` overrides it per item. memsvc
    embeds one text per memory: the texts of several fields are joined into one (`InMemoryStore` embeds each and
    ranks an item by its best).
    `put(..., index=False)` stores the item without making it a semantic match: `get`, `search` without a query
    and filters find it, and a query search lists it after the ranked items without a score, as `InMemoryStore`
    does with items it did not embed.

    `wait_for_index`: a put returns once memsvc has embedded what it wrote (read-your-writes for semantic search,
    as in `InMemoryStore`), waiting up to `index_timeout` seconds (`JobTimeout` after). Without it a put returns
    at once and, until embedded, a query finds the item by its words only.

    `search_options`: memsvc search options for query searches (`mode`, `fusion`, `weights`, `rerank`,
    `diversity`, `min_score`...). The store turns `parse_time` off unless asked: time words in a query should not
    rank items by when they were written. `max_content_bytes`: memsvc's content limit (its
    MEMSVC_MAX_CONTENT_BYTES); a longer text is cut to it, the value itself is kept whole.

    Not supported: TTL (memsvc does not expire memories; a `ttl` raises `NotImplementedError`). Limits: a query
    search reaches at most the 100 best hits (memsvc's `top_k`), `list_namespaces` reads every item under its
    prefix, and a value is kept in metadata, within memsvc's request size limit."""

    supports_ttl = False

    def __init__(
        self,
        client: MemoryClient | None = None,
        *,
        async_client: AsyncMemoryClient | None = None,
        scope_levels: Sequence[ScopeField | None] = ("user_id",),
        memory_type: StoreMemoryType = "semantic",
        index: MemsvcIndexConfig | None = None,
        wait_for_index: bool = True,
        index_timeout: float = 300.0,
        search_options: Mapping[str, Any] | None = None,
        max_content_bytes: int = 32 * 1024,
    ) -> None:
        levels = tuple(scope_levels)
        named = [level for level in levels if level is not None]
        if not named:
            raise ValueError("scope_levels must name at least one memsvc scope: user_id, agent_id or session_id.")
        if unknown := [level for level in named if level not in get_args(ScopeField)]:
            raise ValueError(f"Unknown scope level(s) {unknown}; use user_id, agent_id, session_id or None.")
        if len(set(named)) != len(named):
            raise ValueError(f"Each scope can take one namespace position; scope_levels={levels!r}.")
        if memory_type not in get_args(StoreMemoryType):
            raise ValueError(f"memory_type must be one of {get_args(StoreMemoryType)}, not {memory_type!r}.")
        if index is not None and (extra := set(index) - {"fields"}):
            raise ValueError(
                f"index takes only `fields` (not {sorted(extra)}): memsvc embeds the text with its own model."
            )
        if search_options is not None and (reserved := _STORE_SEARCH_ARGS & set(search_options)):
            raise ValueError(f"search_options cannot set {sorted(reserved)}: the store derives them.")
        self.scope_levels = levels
        self.memory_type = memory_type
        self.index_fields = list((index or {}).get("fields") or ["$"])
        self.wait_for_index = wait_for_index
        self.index_timeout = index_timeout
        self.search_options = {"parse_time": False, **(search_options or {})}
        self.max_content_bytes = max_content_bytes

        self._owned: list[MemoryClient | AsyncMemoryClient] = []
        if client is None:
            client = MemoryClient(**_settings_of(async_client)) if async_client else MemoryClient()
            self._owned.append(client)
        if async_client is None:
            async_client = AsyncMemoryClient(**_settings_of(client))
            self._owned.append(async_client)
        self.client = client
        self.async_client = async_client

    # Lifecycle: only the clients the store built are the store's to close.

    def close(self) -> None:
        """Close the sync client the store built (`aclose` closes both)."""
        for owned in self._owned:
            if isinstance(owned, MemoryClient):
                owned.close()

    async def aclose(self) -> None:
        """Close the clients the store built."""
        for owned in self._owned:
            if isinstance(owned, AsyncMemoryClient):
                await owned.close()
            else:
                owned.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    # BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations on the sync client; results in the order of `ops`."""
        plan = self._plan_batch(ops)
        answer: Any = None
        failure: MemsvcError | None = None
        while True:
            try:
                request = plan.throw(failure) if failure is not None else plan.send(answer)
            except StopIteration as done:
                return cast(list[Result], done.value)
            failure = None
            if isinstance(request, list):
                answer = [self._attempt(call) for call in request]
                continue
            try:
                answer = _invoke(self.client, request)
            except MemsvcError as exc:
                failure = exc

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations on the async client, independent requests concurrently; results in the order of
        `ops`."""
        plan = self._plan_batch(ops)
        answer: Any = None
        failure: MemsvcError | None = None
        while True:
            try:
                request = plan.throw(failure) if failure is not None else plan.send(answer)
            except StopIteration as done:
                return cast(list[Result], done.value)
            failure = None
            if isinstance(request, list):
                answer = list(await asyncio.gather(*(self._aattempt(call) for call in request)))
                continue
            try:
                answer = await _invoke(self.async_client, request)
            except MemsvcError as exc:
                failure = exc

    def _attempt(self, call: _Call) -> Any:
        try:
            return _invoke(self.client, call)
        except MemsvcError as exc:
            return exc

    async def _aattempt(self, call: _Call) -> Any:
        try:
            return await _invoke(self.async_client, call)
        except MemsvcError as exc:
            return exc

    # Plans

    def _plan_batch(self, ops: Iterable[Op]) -> _Plan[list[Result]]:
        ops = list(ops)
        for op in ops:
            if not isinstance(op, GetOp | SearchOp | ListNamespacesOp | PutOp):
                raise ValueError(f"Unknown operation type: {type(op)}")
            validate_op_namespace(op)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                puts[(tuple(op.namespace), op.key)] = op  # the last put to an item wins, in the first one's place
        writes = [self._write(op) for op in puts.values()]  # a put memsvc cannot hold fails the batch before it runs
        results: list[Result] = [None] * len(ops)
        # Reads first, all of them side by side: they see the store as it was before this batch's puts.
        reads = [(i, op) for i, op in enumerate(ops) if not isinstance(op, PutOp)]
        answers = yield from _parallel([self._plan_read(op) for _, op in reads])
        for (i, _), answer in zip(reads, answers, strict=True):
            results[i] = answer
        if writes:
            yield from self._plan_puts(writes)
        return results

    def _plan_read(self, op: Op) -> _Plan[Result]:
        if isinstance(op, GetOp):
            return (yield from self._plan_get(op))
        if isinstance(op, SearchOp):
            if op.limit <= 0:
                return []
            if op.query and op.query.strip():  # memsvc refuses an empty query: take it for none
                return (yield from self._plan_query(op))
            return (yield from self._plan_filter(op))
        assert isinstance(op, ListNamespacesOp)
        return (yield from self._plan_namespaces(op))

    def _plan_get(self, op: GetOp) -> _Plan[Item | None]:
        page = yield self._lookup(tuple(op.namespace), op.key, limit=1)
        for memory in page.data:
            if (record := _item_record(memory)) is not None:
                return _item(memory, record)
        return None

    def _plan_filter(self, op: SearchOp) -> _Plan[list[SearchItem]]:
        """Search without a query: the items under the prefix that pass the filter, oldest first."""
        found = yield from self._plan_listed(tuple(op.namespace_prefix), op.filter, None, op.offset, op.limit)
        return [_search_item(memory, record, None) for memory, record in found]

    def _plan_listed(
        self,
        prefix: tuple[str, ...],
        conditions: Mapping[str, Any] | None,
        indexed: bool | None,
        offset: int,
        limit: int,
    ) -> _Plan[list[tuple[Memory, dict[str, Any]]]]:
        """Items under `prefix` passing `conditions` (and indexed or not, unless None), in the order they were
        first written, [offset:offset + limit]: read page by page, memsvc filtering what containment can."""
        offset = max(offset, 0)
        selected, exact = self._selector(prefix, conditions)
        if indexed is not None:
            selected["indexed"] = indexed
        wanted = offset + limit
        page_size = min(MAX_PAGE, max(wanted, 1)) if exact else MAX_PAGE
        found: list[tuple[Memory, dict[str, Any]]] = []
        cursor: str | None = None
        while len(found) < wanted:
            kwargs = {**self._read_scopes(prefix), "metadata": {RESERVED_KEY: selected}, "limit": page_size}
            page = yield _Call("memories.list", kwargs={**kwargs, "order": "asc", "cursor": cursor})
            for memory in page.data:
                record = _item_record(memory)
                if record is not None and _in_prefix(record, prefix) and _matches(record["value"], conditions or {}):
                    found.append((memory, record))
            cursor = page.next_cursor
            if cursor is None:
                break
        return found[offset:wanted]

    def _plan_query(self, op: SearchOp) -> _Plan[list[SearchItem]]:
        """Search with a query: memsvc's ranked hits among the indexed items under the prefix that pass the filter
        (what containment cannot test is checked here, over more hits than asked), then the items that are not
        indexed, unscored, as InMemoryStore lists its unembedded items after the ranked ones."""
        prefix = tuple(op.namespace_prefix)
        offset = max(op.offset, 0)
        wanted = offset + op.limit
        selected, exact = self._selector(prefix, op.filter)
        selected["indexed"] = True
        top_k = min(MAX_TOP_K, wanted if exact else wanted * OVERSAMPLE)
        while True:
            kwargs = {
                **self.search_options,
                **self._read_scopes(prefix),
                "query": (op.query or "")[:MAX_QUERY_CHARS],
                "top_k": top_k,
                "filters": {RESERVED_KEY: selected},
            }
            response = yield _Call("search", kwargs=kwargs)
            ranked = [
                (hit, record)
                for hit in response.hits
                if (record := _item_record(hit.memory)) is not None
                and _in_prefix(record, prefix)
                and _matches(record["value"], op.filter or {})
            ]
            exhausted = len(response.hits) < top_k or top_k == MAX_TOP_K
            if len(ranked) >= wanted or exhausted:
                break
            top_k = min(MAX_TOP_K, top_k * 2)
        results = [_search_item(hit.memory, record, hit.score) for hit, record in ranked[offset:wanted]]
        if len(results) < op.limit and len(ranked) < wanted:
            skip = max(offset - len(ranked), 0)
            unranked = yield from self._plan_listed(prefix, op.filter, False, skip, op.limit - len(results))
            results += [_search_item(memory, record, None) for memory, record in unranked]
        return results

    def _plan_namespaces(self, op: ListNamespacesOp) -> _Plan[list[tuple[str, ...]]]:
        """The distinct namespaces of the items, matched, cut to `max_depth`, sorted, paged. memsvc keeps no list
        of namespaces: this reads every item under the conditions' literal prefix labels (O(items))."""
        conditions = op.match_conditions or ()
        fixed: dict[str, str] = {}
        for condition in conditions:
            if condition.match_type == "prefix":
                fixed.update({str(i): label for i, label in enumerate(condition.path) if label != "*"})
        scopes: dict[str, str] = {}
        for position, label in fixed.items():
            level = self._level(int(position))
            if level is not None and len(label) <= MAX_SCOPE_ID_CHARS:
                scopes[level] = label
        namespaces: set[tuple[str, ...]] = set()
        cursor: str | None = None
        while True:
            kwargs = {**scopes, "metadata": {RESERVED_KEY: {"ns": fixed}}, "limit": MAX_PAGE, "order": "asc"}
            page = yield _Call("memories.list", kwargs={**kwargs, "cursor": cursor})
            for memory in page.data:
                if (record := _item_record(memory)) is not None:
                    namespaces.add(_namespace_of(record))
            cursor = page.next_cursor
            if cursor is None:
                break
        matching = {ns for ns in namespaces if all(_does_match(c, ns) for c in conditions)}
        if op.max_depth is not None:
            matching = {ns[: op.max_depth] for ns in matching}
        offset = max(op.offset, 0)
        return sorted(matching)[offset : offset + op.limit]

    def _plan_puts(self, writes: list[_Write]) -> _Plan[None]:
        """Upsert and delete items: read each item's memory, then side by side delete it (value None), update it (a
        new version of the memory) or add it (one write for all new items), then wait until memsvc has embedded
        what was written."""
        pages = _unwrap((yield [self._lookup(tuple(w.op.namespace), w.op.key, w.scopes) for w in writes]))
        plans: list[_Plan[set[uuid.UUID]]] = []
        additions: list[_Write] = []
        for write, page in zip(writes, pages, strict=True):
            current, *stale = page.data or [None]
            plans += [self._plan_delete(memory.id) for memory in stale]  # copies left by racing puts
            if write.op.value is None:
                plans += [self._plan_delete(current.id)] if current is not None else []
            elif current is None:
                additions.append(write)
            else:
                plans.append(self._plan_update(write, current))
        plans += [self._plan_add(chunk) for chunk in _chunks(additions)]
        jobs = set().union(*(yield from _parallel(plans)))
        if self.wait_for_index and jobs:
            waits = [
                _Call("jobs.wait", (job,), {"timeout": self.index_timeout, "poll_interval": JOB_POLL_S})
                for job in sorted(jobs)
            ]
            for job in _unwrap((yield waits)):
                if job.status == "failed":
                    # Stored and listed, and found by its words; only the meaning search misses it.
                    log.warning("memsvc could not embed some LangGraph items (job %s): %s", job.id, job.error)
        return None

    # memsvc keeps one memory per text in a scope: adding a text the scope holds already answers `duplicate` with
    # the other memory's id, and updating to one answers `Conflict`. Items may well share a value, so such an
    # item's text gets a suffix naming its namespace and key, which no other item's text can have. The plans
    # below return the embedding jobs to wait for.

    def _plan_delete(self, memory_id: uuid.UUID) -> _Plan[set[uuid.UUID]]:
        with contextlib.suppress(NotFound):  # gone already: what a delete wants
            yield _Call("memories.delete", (memory_id,))
        return set()

    def _plan_update(self, write: _Write, current: Memory) -> _Plan[set[uuid.UUID]]:
        """A new version of the item's memory with the new value. The text is sent only when it changed, since new
        text is embedded again."""
        changes: dict[str, Any] = {"metadata": write.metadata}
        if current.content not in (write.content, write.marked_content):
            changes["content"] = write.content
        try:
            memory = yield _Call("memories.update", (current.id,), changes)
        except Conflict:
            memory = yield _Call("memories.update", (current.id,), {**changes, "content": write.marked_content})
        return {memory.job_id} if write.indexed and memory.embedding_status == "pending" and memory.job_id else set()

    def _plan_add(self, writes: list[_Write]) -> _Plan[set[uuid.UUID]]:
        """Add new items in one write. Texts repeated within it are suffixed at once; when memsvc finds a text it
        holds already, the items after it are deleted and written again behind the suffixed one, so that the
        items keep the batch's order (the order searches without a query list them in)."""
        seen: set[tuple[tuple[tuple[str, str], ...], str]] = set()
        contents = []
        for write in writes:
            identity = (tuple(sorted(write.scopes.items())), write.content)
            contents.append(write.marked_content if identity in seen else write.content)
            seen.add(identity)
        written = yield self._add(writes, contents)
        jobs = {written.job_id} if any(w.indexed for w in writes) else set()
        clash = next((i for i, r in enumerate(written.results) if r.status == "duplicate"), None)
        if clash is None:
            return jobs
        later = [r.id for r in written.results[clash + 1 :] if r.status == "created"]
        if later:
            _unwrap((yield [_Call("memories.delete", (memory_id,)) for memory_id in later]), NotFound)
        again = [
            write.marked_content if result.status == "duplicate" else content
            for write, content, result in zip(writes[clash:], contents[clash:], written.results[clash:], strict=True)
        ]
        rewritten = yield self._add(writes[clash:], again)
        if any(r.status == "duplicate" for r in rewritten.results):
            raise MemsvcError("memsvc took a LangGraph item for a duplicate of another memory: its text clashed twice")
        return jobs | {rewritten.job_id}

    def _add(self, writes: list[_Write], contents: list[str]) -> _Call:
        memories = [
            NewMemory(
                type=self.memory_type,
                content=content,
                metadata=write.metadata,
                user_id=write.scopes.get("user_id"),
                agent_id=write.scopes.get("agent_id"),
                session_id=write.scopes.get("session_id"),
            )
            for write, content in zip(writes, contents, strict=True)
        ]
        return _Call("memories.add", kwargs={"memories": memories})

    # Mapping items to memories

    def _write(self, op: PutOp) -> _Write:
        namespace = tuple(op.namespace)
        if op.ttl is not None:
            raise NotImplementedError("MemsvcStore does not support TTL: memsvc does not expire memories.")
        if not namespace:
            raise ValueError("A namespace needs at least one label.")
        if "\x00" in op.key:
            raise ValueError("memsvc cannot store a key containing NUL (U+0000).")
        scopes: dict[str, str] = {}
        for position, label in enumerate(namespace):
            level = self._level(position)
            if level is None:
                continue
            if len(label) > MAX_SCOPE_ID_CHARS:
                raise ValueError(
                    f"Namespace label {label[:40]!r}... at position {position} is the memsvc {level}, which takes at"
                    f" most {MAX_SCOPE_ID_CHARS} characters."
                )
            scopes[level] = label
        if not scopes:
            raise ValueError(
                f"Namespace {namespace} fills no memsvc scope (scope_levels={self.scope_levels}): it needs a label at"
                f" a position that maps to user_id, agent_id or session_id."
            )
        write = _Write(op=op, scopes=scopes, marker="\n\n" + json.dumps([*namespace, op.key], ensure_ascii=False))
        if op.value is None:
            return write
        value = dict(op.value)
        text = self._text(value, op.index)
        write.indexed = text is not None
        # Unindexed, the memory still needs a text; the value's JSON names it to whoever reads memsvc directly.
        plain = text if text is not None else json.dumps(value, sort_keys=True, ensure_ascii=False)
        budget = self.max_content_bytes - len(write.marker.encode())
        write.content = _cut(plain, budget)
        write.metadata = {
            RESERVED_KEY: {
                "ns": _positions(namespace),
                "depth": len(namespace),
                "key": op.key,
                "value": value,
                "indexed": write.indexed,
            }
        }
        return write

    def _text(self, value: dict[str, Any], index: Literal[False] | list[str] | None) -> str | None:
        """The value's text to embed, or None when it has none (index=False, or no indexed field present)."""
        if index is False:
            return None
        texts = [
            text for path in (self.index_fields if index is None else index) for text in get_text_at_path(value, path)
        ]
        text = "\n".join(t for t in texts if t.strip())
        return text or None

    def _level(self, position: int) -> ScopeField | None:
        return self.scope_levels[position] if position < len(self.scope_levels) else None

    def _read_scopes(self, labels: Sequence[str]) -> dict[str, str]:
        """The scopes a read can filter by: those of the prefix's labels that are valid scope ids (a longer label
        holds no item: the metadata filter finds none)."""
        scopes: dict[str, str] = {}
        for position, label in enumerate(labels):
            level = self._level(position)
            if level is not None and len(label) <= MAX_SCOPE_ID_CHARS:
                scopes[level] = label
        return scopes

    def _lookup(
        self, namespace: tuple[str, ...], key: str, scopes: Mapping[str, str] | None = None, limit: int = LOOKUP_LIMIT
    ) -> _Call:
        """Read the memory of one item, the newest first (a put reads any stale copies too)."""
        selected = {"ns": _positions(namespace), "depth": len(namespace), "key": key}
        kwargs = {
            **(scopes if scopes is not None else self._read_scopes(namespace)),
            "metadata": {RESERVED_KEY: selected},
        }
        return _Call("memories.list", kwargs={**kwargs, "limit": limit, "order": "desc"})

    def _selector(self, prefix: tuple[str, ...], conditions: Mapping[str, Any] | None) -> tuple[dict[str, Any], bool]:
        """The reserved-key containment for items under `prefix` passing `conditions`, and whether it tests the
        conditions exactly (else more memories are read, to be filtered here)."""
        selected: dict[str, Any] = {"ns": _positions(prefix)}
        pushed, exact = _contained_fields(conditions or {})
        if pushed:
            selected["value"] = pushed
        return selected, exact


def _in_prefix(record: Mapping[str, Any], prefix: tuple[str, ...]) -> bool:
    return _namespace_of(record)[: len(prefix)] == prefix


def _chunks(writes: list[_Write]) -> list[list[_Write]]:
    return [writes[i : i + ADD_CHUNK] for i in range(0, len(writes), ADD_CHUNK)]


def _cut(text: str, budget: int) -> str:
    """`text` within `budget` UTF-8 bytes, cut at a character boundary: the embedding reads only the beginning."""
    encoded = text.encode()
    return text if len(encoded) <= budget else encoded[: max(budget, 1)].decode(errors="ignore")


def _settings_of(client: MemoryClient | AsyncMemoryClient | None) -> dict[str, Any]:
    """The base URL, API key, timeout and retries of a client, to build its twin."""
    if client is None:
        return {}
    return {
        "base_url": client.base_url,
        "api_key": client.api_key,
        "timeout": client.timeout,
        "max_retries": client.max_retries,
    }

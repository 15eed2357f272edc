"""MemsvcStore (memsvc_client.langgraph) against the real server: the same scenarios run on LangGraph's reference
`InMemoryStore` and on memsvc must observe the same results, through the sync API (`batch`) and the async one
(`abatch`); then what only memsvc has (ranked search on its model, scopes, forgetting, versions) and a LangGraph
graph that remembers across threads. Each test has its own tenant."""

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, GetOp, Item, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from memsvc_client import AsyncMemoryClient, MemoryClient
from memsvc_client.langgraph import RESERVED_KEY, MemsvcStore

from memsvc.embeddings.embedder import Embedder
from tests.clients.conftest import LiveServer, SdkTenant


class Awaited:
    """A store's async API (`aput`, `abatch`, ...) called like its sync one, on one event loop for the whole
    scenario: the scenarios below are written once and run through either API."""

    def __init__(self, store: BaseStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store, self._loop = store, loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._store, "a" + name)
        return lambda *args, **kwargs: self._loop.run_until_complete(method(*args, **kwargs))


Api = Callable[[BaseStore], Any]


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    """How a scenario reaches a store: its own methods, or their async twins on one event loop."""
    if request.param == "sync":
        yield lambda store: store
        return
    loop = asyncio.new_event_loop()
    stores: list[BaseStore] = []

    def awaited(store: BaseStore) -> Awaited:
        stores.append(store)
        return Awaited(store, loop)

    yield awaited
    for store in stores:
        if isinstance(store, MemsvcStore):
            loop.run_until_complete(store.aclose())
    loop.close()


@pytest.fixture
def store(memsvc: MemoryClient) -> Iterator[MemsvcStore]:
    with MemsvcStore(memsvc) as store:
        yield store


def view(items: list[Any] | Item | None) -> Any:
    """What both stores must agree on: namespaces, keys and values (timestamps and scores differ by nature)."""
    if items is None:
        return None
    if isinstance(items, Item):
        return (items.namespace, items.key, items.value)
    return [view(item) if isinstance(item, Item) else item for item in items]


def differential(scenario: Callable[[Any], list[Any]], store: MemsvcStore, api: Api) -> list[Any]:
    """Run `scenario` on InMemoryStore and on memsvc; both must observe the same; returns the observations."""
    expected = scenario(api(InMemoryStore()))
    observed = scenario(api(store))
    assert observed == expected
    return observed


# The same behaviour as InMemoryStore


def scenario_items(s: Any) -> list[Any]:
    seen: list[Any] = []
    s.put(("alice", "notes"), "k1", {"text": "first", "n": 1})
    seen.append(view(s.get(("alice", "notes"), "k1")))
    s.put(("alice", "notes"), "k1", {"text": "second", "n": 2, "nested": {"deep": [1, 2.5, None, True]}})
    seen.append(view(s.get(("alice", "notes"), "k1")))
    # The same key in other namespaces (deeper, shallower, another user) is another item.
    s.put(("alice", "notes", "old"), "k1", {"text": "archived"})
    s.put(("alice",), "k1", {"text": "top"})
    s.put(("bob", "notes"), "k1", {"text": "bob's"})
    seen += [
        view(s.get(ns, "k1")) for ns in [("alice", "notes"), ("alice", "notes", "old"), ("alice",), ("bob", "notes")]
    ]
    seen.append(view(s.get(("alice", "notes"), "missing")))
    seen.append(view(s.get(("carol",), "k1")))
    # Keys and labels with any characters but the period LangGraph reserves.
    odd_key, odd_ns = 'a/b c?d#%&="quoted"' + " é 日本 \\ ' *", ("ünï cödé/x", "sp ace", "*", '{"0": "j"}')
    s.put(odd_ns, odd_key, {"emoji": "🦜", "empty": {}, "list": []})
    seen.append(view(s.get(odd_ns, odd_key)))
    seen.append(view(s.search(odd_ns[:2])))
    s.delete(("alice", "notes"), "k1")
    seen.append(view(s.get(("alice", "notes"), "k1")))
    s.batch([PutOp(("alice", "notes", "old"), "k1", None)])  # a put of None deletes
    seen.append(view(s.get(("alice", "notes", "old"), "k1")))
    s.delete(("alice", "notes"), "never-there")
    seen.append(view(s.search(("alice",))))
    seen.append(view(s.search(("bob",))))
    seen.append(view(s.search((), limit=100)))
    return seen


def test_put_get_overwrite_delete_and_isolation(store: MemsvcStore, api: Api):
    seen = differential(scenario_items, store, api)
    assert seen[0] == (("alice", "notes"), "k1", {"text": "first", "n": 1})
    assert seen[-3] == [(("alice",), "k1", {"text": "top"})]


PRODUCTS = [
    {"name": "apple", "price": 1.5, "stock": 10, "tags": ["fruit", "red"], "meta": {"origin": "NZ", "bio": True}},
    {"name": "banana", "price": 0.5, "stock": 0, "tags": ["fruit"], "meta": {"origin": "EC", "bio": False}},
    {"name": "carrot", "price": 0.75, "stock": 25, "tags": ["vegetable"], "meta": {"origin": "NZ", "bio": False}},
    {"name": "durian", "price": 12, "stock": 2, "tags": ["fruit", "smelly"], "meta": {"origin": "TH"}},
    {"name": "eggplant", "price": 2, "stock": 7, "tags": ["vegetable", "purple"]},
    {"name": "fig", "price": 3.25, "stock": 10, "tags": ["fruit"], "meta": {"origin": "TR", "bio": True}},
]


def scenario_filters(s: Any) -> list[Any]:
    # One batch of puts: namespace by namespace, as both stores then list them in the same (creation) order.
    s.batch([PutOp(("shop", "produce"), p["name"], p) for p in PRODUCTS[:4]])
    s.batch([PutOp(("shop", "produce", "exotic"), p["name"], p) for p in PRODUCTS[3:]])
    s.put(("other", "produce"), "apple", PRODUCTS[0])
    s.put(("shop", "produce"), "banana", {**PRODUCTS[1], "stock": 30})  # overwritten: keeps its place
    filters: list[dict[str, Any]] = [
        {},
        {"name": "apple"},
        {"stock": 10},
        {"price": {"$gt": 1}},
        {"price": {"$gte": 1.5, "$lt": 12}},
        {"price": {"$lte": 0.75}},
        {"stock": {"$ne": 10}},
        {"name": {"$eq": "fig"}},
        {"meta": {"origin": "NZ"}},
        {"meta": {"bio": True}},
        {"meta": {"origin": "NZ", "bio": False}},
        {"tags": ["fruit"]},
        {"tags": ["fruit", "red"]},
        {"tags": ["red", "fruit"]},
        {"tags": ["fruit"], "stock": {"$gt": 5}},
        {"stock": 10, "price": {"$gt": 2}},
        {"meta": {"origin": {"$ne": "NZ"}}},
        {"missing": {"$ne": 1}},
        {"name": "nothing"},
    ]
    seen: list[Any] = []
    for conditions in filters:
        seen.append(view(s.search(("shop",), filter=conditions or None)))
        seen.append(view(s.search(("shop", "produce", "exotic"), filter=conditions or None)))
    for prefix in [("shop", "produce"), ("other",), ("other", "produce"), ("nobody",)]:
        seen.append(view(s.search(prefix, filter={"tags": ["fruit"]})))
    for offset, limit in [(0, 2), (2, 2), (4, 2), (6, 2), (1, 3), (0, 100), (3, 1), (10, 5)]:
        seen.append(view(s.search(("shop",), offset=offset, limit=limit)))
        seen.append(view(s.search(("shop",), filter={"tags": ["fruit"]}, offset=offset, limit=limit)))
        seen.append(view(s.search(("shop",), filter={"price": {"$lt": 5}}, offset=offset, limit=limit)))
    return seen


def test_search_by_prefix_filter_and_pages(store: MemsvcStore, api: Api):
    seen = differential(scenario_filters, store, api)
    assert [key for _, key, _ in seen[2]] == ["apple"]
    assert len(seen[0]) == 7  # ("shop",) holds 4 + 3 items, durian in both namespaces


NAMESPACES = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("b", "a", "f"),
    ("users", "alice", "v1"),
    ("users", "bob", "v1"),
    ("users", "bob", "v2"),
]


def scenario_namespaces(s: Any) -> list[Any]:
    s.batch([PutOp(ns, "k", {"at": "/".join(ns)}, index=False) for ns in NAMESPACES])
    s.put(("a", "b", "c"), "k2", {"second": True}, index=False)  # two items, one namespace
    asks: list[dict[str, Any]] = [
        {},
        {"prefix": ("a",)},
        {"prefix": ("a", "b")},
        {"prefix": ("a", "b"), "max_depth": 3},
        {"prefix": ("a", "*", "f")},
        {"prefix": ("*", "b")},
        {"suffix": ("f",)},
        {"suffix": ("*", "f")},
        {"suffix": ("v1",), "prefix": ("users",)},
        {"prefix": ("users",), "max_depth": 2},
        {"max_depth": 1},
        {"max_depth": 2, "limit": 3},
        {"max_depth": 2, "limit": 3, "offset": 3},
        {"limit": 4, "offset": 2},
        {"prefix": ("nothing",)},
        {"prefix": ("a", "b", "c", "d", "e")},
    ]
    return [s.list_namespaces(**ask) for ask in asks]


def test_list_namespaces(store: MemsvcStore, api: Api):
    seen = differential(scenario_namespaces, store, api)
    assert seen[3] == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]


def scenario_batch(s: Any) -> list[Any]:
    s.put(("u1", "docs"), "kept", {"v": 0})
    s.put(("u1", "docs"), "dropped", {"v": 0})
    results = s.batch(
        [
            PutOp(("u1", "docs"), "new", {"v": 1}),
            GetOp(("u1", "docs"), "new"),  # reads see the store before the batch's puts
            GetOp(("u1", "docs"), "kept"),
            PutOp(("u1", "docs"), "kept", {"v": 2}),
            SearchOp(("u1",), filter={"v": 0}),
            PutOp(("u1", "docs"), "new", {"v": 3}),  # of two puts to one item, the last wins
            PutOp(("u1", "docs"), "dropped", None),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("u1",)),)),
            PutOp(("u2", "docs"), "new", {"v": 4}),
            GetOp(("u2", "docs"), "new"),
        ]
    )
    after = s.batch(
        [GetOp(("u1", "docs"), "new"), GetOp(("u1", "docs"), "kept"), GetOp(("u1", "docs"), "dropped")]
        + [SearchOp(("u1",)), SearchOp(("u2",)), ListNamespacesOp()]
    )
    return [view(result) for result in results + after]


def test_batch_of_mixed_operations(store: MemsvcStore, api: Api):
    seen = differential(scenario_batch, store, api)
    assert seen[0] is None and seen[1] is None and seen[10] == (("u1", "docs"), "new", {"v": 3})


# Search by meaning

DOCS = {
    "pets": {"text": "Alice has two cats named Miso and Tofu who sleep on the sofa."},
    "food": {"text": "Alice is allergic to peanuts and avoids anything with nuts."},
    "work": {"text": "Alice works as a structural engineer designing bridges."},
    "trip": {"text": "Last summer Alice hiked the Inca Trail to Machu Picchu in Peru."},
}
QUERIES = {
    "Alice's pet cats": "pets",
    "Which food must Alice avoid?": "food",
    "Alice's engineering career": "work",
    "Alice's hiking holiday in South America": "trip",
}


@pytest.fixture
def reference(embedder: Embedder) -> InMemoryStore:
    """InMemoryStore embedding with memsvc's own model, for a like-for-like ranking."""
    return InMemoryStore(
        index={"dims": embedder.dim, "embed": lambda texts: embedder.embed(list(texts)).tolist(), "fields": ["text"]}
    )


def scenario_meaning(s: Any) -> list[Any]:
    s.batch([PutOp(("alice", "facts"), key, value) for key, value in DOCS.items()])
    s.put(("alice", "facts"), "secret", {"text": "Alice has two cats."}, index=False)  # stored, not indexed
    s.put(("alice", "facts"), "fields", {"text": "Alice plays the cello.", "note": "cats cats cats"}, index=["text"])
    s.put(("bob", "facts"), "pets", {"text": "Bob has a cat."})  # another user: never among Alice's
    seen: list[Any] = []
    for query, key in QUERIES.items():
        hits = s.search(("alice",), query=query)
        seen.append((hits[0].key == key, isinstance(hits[0].score, float), sorted(h.key for h in hits)))
        # Items without text to match come after the ranked ones, unscored.
        seen.append([(h.key, h.score is None) for h in hits[-1:]])
    found = s.search(("alice", "facts"), query="pets at home", filter={"text": {"$ne": DOCS["pets"]["text"]}})
    seen.append(sorted(h.key for h in found))
    seen.append([h.key for h in s.search(("alice",), query="Alice's pet cats", limit=1)])
    ranked = s.search(("alice",), query="Which food must Alice avoid?", limit=7)
    seen.append([h.key for h in ranked[5:]] + [h.key for h in s.search(("alice",), query="x y", offset=5, limit=2)])
    return seen


def test_search_by_meaning_agrees_with_the_reference_on_the_same_model(
    memsvc: MemoryClient, reference: InMemoryStore, api: Api
):
    expected = scenario_meaning(api(reference))
    assert all(first and scored for first, scored, _ in expected[0:8:2])
    with MemsvcStore(memsvc, index={"fields": ["text"]}) as store:
        assert scenario_meaning(api(store)) == expected


def test_search_scores_updates_and_shared_values(store: MemsvcStore, memsvc: MemoryClient):
    store.batch([PutOp(("alice", "facts"), key, value) for key, value in DOCS.items()])
    hits = store.search(("alice",), query="Which food must Alice avoid?", limit=2)
    assert hits[0].key == "food" and isinstance(hits[0].score, float) and 0 <= hits[1].score <= hits[0].score <= 1

    # An update is searchable by its new text at once (put waits for memsvc to embed it).
    store.put(("alice", "facts"), "food", {"text": "Alice adores playing chess tournaments on weekends."})
    assert store.search(("alice",), query="What board game does Alice play?", limit=1)[0].key == "food"

    # Items may share a value (memsvc keeps one memory per text and scope: the store tells them apart).
    store.put(("alice", "facts"), "copy", DOCS["pets"])
    store.put(("alice", "other"), "copy", DOCS["pets"])
    store.put(("alice", "facts"), "work", DOCS["pets"])  # an update onto another item's text
    pets = store.search(("alice",), query="Alice's pet cats", limit=4)
    assert sorted((h.namespace, h.key) for h in pets) == [
        (("alice", "facts"), "copy"),
        (("alice", "facts"), "pets"),
        (("alice", "facts"), "work"),
        (("alice", "other"), "copy"),
    ]
    item = store.get(("alice", "other"), "copy")
    assert item is not None and item.value == DOCS["pets"]
    assert len(memsvc.memories.list(user_id="alice", limit=100).data) == 6


# What memsvc adds: scopes, forgetting, versions


def test_namespaces_are_memsvc_scopes_and_forgetting_a_user_empties_their_namespaces(memsvc: MemoryClient):
    store = MemsvcStore(memsvc, index={"fields": ["text"]})  # the memory's content: the value's text
    store.put(("alice", "memories"), "m1", {"text": "Alice likes green tea."})
    store.put(("alice", "memories", "work"), "m2", {"text": "Alice leads the data team."})
    store.put(("bob", "memories"), "m1", {"text": "Bob likes coffee."})

    listed = memsvc.memories.list(user_id="alice", order="asc").data
    assert [(m.user_id, m.type, m.content) for m in listed] == [
        ("alice", "semantic", "Alice likes green tea."),
        ("alice", "semantic", "Alice leads the data team."),
    ]
    assert listed[0].metadata[RESERVED_KEY] == {
        "ns": {"0": "alice", "1": "memories"},
        "depth": 2,
        "key": "m1",
        "value": {"text": "Alice likes green tea."},
        "indexed": True,
    }
    found = memsvc.search(query="What does Alice drink?", user_id="alice", top_k=1)
    assert found.hits[0].memory.content == "Alice likes green tea."

    assert memsvc.memories.forget(user_id="alice").memories == 2
    assert store.get(("alice", "memories"), "m1") is None
    assert store.search(("alice",)) == [] and store.search(("alice",), query="tea") == []
    assert store.list_namespaces() == [("bob", "memories")]


def test_an_update_is_a_new_version_that_keeps_created_at(store: MemsvcStore, memsvc: MemoryClient):
    store.put(("alice", "profile"), "name", {"name": "Alice"})
    first = store.get(("alice", "profile"), "name")
    store.put(("alice", "profile"), "name", {"name": "Alice Liddell"})
    second = store.get(("alice", "profile"), "name")
    assert first is not None and second is not None and second.value == {"name": "Alice Liddell"}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    assert isinstance(second.created_at, datetime) and second.created_at.tzinfo is not None
    [memory] = memsvc.memories.list(user_id="alice").data
    assert memory.version == 2
    assert [v.memory["metadata"][RESERVED_KEY]["value"] for v in memsvc.memories.history(memory.id).data] == [
        {"name": "Alice"},
        {"name": "Alice Liddell"},
    ]


def test_scope_levels_and_what_memsvc_cannot_hold(memsvc: MemoryClient):
    store = MemsvcStore(memsvc, scope_levels=(None, "user_id", "session_id"), wait_for_index=False)
    store.put(("memories", "bob", "s1"), "k", {"text": "Bob's first session."}, index=False)
    [memory] = memsvc.memories.list(user_id="bob").data
    assert (memory.user_id, memory.agent_id, memory.session_id) == ("bob", None, "s1")
    assert store.search(("memories", "bob")) == store.search(("memories",)) != []

    with pytest.raises(ValueError, match="fills no memsvc scope"):
        store.put(("memories",), "k", {"x": 1})
    with pytest.raises(ValueError, match="fills no memsvc scope"):  # the whole batch fails, before it runs
        store.batch([PutOp(("memories", "carol"), "k", {"x": 1}), PutOp(("memories",), "k", {"x": 1})])
    assert store.get(("memories", "carol"), "k") is None
    with pytest.raises(ValueError, match="at most 256 characters"):
        store.put(("memories", "b" * 257), "k", {"x": 1})
    with pytest.raises(NotImplementedError, match="TTL"):
        store.put(("memories", "bob"), "k", {"x": 1}, ttl=5)
    with pytest.raises(ValueError, match="period"):
        store.put(("memories", "bob.smith"), "k", {"x": 1})
    assert store.get(("memories", "b" * 300), "k") is None

    for wrong in [
        {"scope_levels": (None,)},
        {"scope_levels": ("user_id", "user_id")},
        {"scope_levels": ("tenant_id",)},
        {"memory_type": "dialogue"},
        {"index": {"dims": 384, "fields": ["text"]}},
        {"search_options": {"top_k": 5}},
    ]:
        with pytest.raises(ValueError):
            MemsvcStore(memsvc, **wrong)


def test_clients_built_from_the_other_or_from_the_environment(
    live_server: LiveServer, sdk_tenant: SdkTenant, monkeypatch: pytest.MonkeyPatch
):
    async def scenario() -> None:
        async with AsyncMemoryClient(base_url=live_server.url, api_key=sdk_tenant.key, max_retries=1) as given:
            store = MemsvcStore(async_client=given)
            assert (store.client.base_url, store.client.max_retries) == (live_server.url, 1)
            await store.aput(("alice",), "k", {"text": "async"})
            item = store.get(("alice",), "k")  # the sync client built from the async one, same key
            assert item is not None and item.value == {"text": "async"}
            await store.aclose()

    asyncio.run(scenario())
    monkeypatch.setenv("MEMSVC_URL", live_server.url)
    monkeypatch.setenv("MEMSVC_API_KEY", sdk_tenant.key)
    with MemsvcStore() as store:
        assert view(store.search(("alice",))) == [(("alice",), "k", {"text": "async"})]


# A LangGraph graph: what one thread remembers, another recalls


class State(TypedDict, total=False):
    user: str
    key: str
    fact: str
    recalled: list[str]


def remember(state: State, store: BaseStore) -> State:
    store.put((state["user"], "facts"), state["key"], {"text": state["fact"]})
    return {}


def recall(state: State) -> State:
    hits = get_store().search((state["user"], "facts"), query="Which pets does the user have?", limit=1)
    return {"recalled": [hit.value["text"] for hit in hits]}


async def aremember(state: State, store: BaseStore) -> State:
    await store.aput((state["user"], "facts"), state["key"], {"text": state["fact"]})
    return {}


async def arecall(state: State) -> State:
    hits = await get_store().asearch((state["user"], "facts"), query="Which pets does the user have?", limit=1)
    return {"recalled": [hit.value["text"] for hit in hits]}


def build(remember_node: Any, recall_node: Any) -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("remember", remember_node)
    builder.add_node("recall", recall_node)
    builder.add_conditional_edges(START, lambda state: "remember" if state.get("fact") else "recall")
    builder.add_edge("remember", END)
    builder.add_edge("recall", END)
    return builder


def test_a_graph_remembers_across_threads(store: MemsvcStore, memsvc: MemoryClient):
    graph = build(remember, recall).compile(store=store, checkpointer=InMemorySaver())
    for n, fact in enumerate(["Dana keeps three goldfish in a tank.", "Dana is a violinist."]):
        graph.invoke({"user": "dana", "key": f"f{n}", "fact": fact}, {"configurable": {"thread_id": f"write-{n}"}})
    answer = graph.invoke({"user": "dana"}, {"configurable": {"thread_id": "read"}})
    assert answer["recalled"] == ["Dana keeps three goldfish in a tank."]
    assert {m.user_id for m in memsvc.memories.list(user_id="dana").data} == {"dana"}


def test_a_graph_remembers_across_threads_async(store: MemsvcStore):
    async def scenario() -> dict[str, Any]:
        graph = build(aremember, arecall).compile(store=store, checkpointer=InMemorySaver())
        for n, fact in enumerate(["Eve walks her two dogs at dawn.", "Eve speaks Portuguese."]):
            facts = {"user": "eve", "key": f"f{n}", "fact": fact}
            await graph.ainvoke(facts, {"configurable": {"thread_id": f"write-{n}"}})
        answer = await graph.ainvoke({"user": "eve"}, {"configurable": {"thread_id": "read"}})
        await store.aclose()
        return answer

    assert asyncio.run(scenario())["recalled"] == ["Eve walks her two dogs at dawn."]

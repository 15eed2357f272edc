"""Where one search's time goes: its SQL statements, one by one, against the Python around them.

    .venv/bin/python bench/search_statements.py                # 10,000 memories, a few minutes
    .venv/bin/python bench/search_statements.py --size 100k    # run it on a quiet machine

The tenant is prepared as bench/search_latency.py prepares it (the synthetic corpus, its cached vectors, POST
/v1/import into a throw-away `memsvc serve`, ANALYZE). Then this process builds the app itself on that database
(memsvc.app.create_app, the settings `memsvc serve` uses) and sends it the dataset's queries one at a time
(default options, top_k 10) through an in-process ASGI client, timing every SQL statement (from sending it to
its last row read: Postgres and the round trip) and the process's CPU. What is left of a search's wall time
after its statements is Python: the service's, the framework's and the client's (a few tenths of a millisecond
a request, `/healthz` measures it). Writes bench/results/search_statements.{json,md}.
"""

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import search_latency as prepare  # noqa: E402  (bench/, this script's folder)
from load import searches_of  # noqa: E402

ROOT = prepare.ROOT
sys.path.insert(0, str(ROOT))

from memsvc.eval.client import create_tenant_key  # noqa: E402
from memsvc.eval.server import EmbeddedServer  # noqa: E402

WARMUP = 20


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="10000", help="memories (synthetic ladder size): 10000, 100k, ...")
    parser.add_argument("--searches", type=int, default=240, help="measured searches (the queries, cycled)")
    parser.add_argument(
        "--within-user", action="store_true", help="search each query within its user (as bench/compare.py does)"
    )
    prepare.add_corpus_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_at, clock = datetime.now(UTC), time.perf_counter()
    dataset, spec = prepare.load_dataset(prepare.parse_size(args.size), args.seed, args.people)
    records = prepare.as_records(dataset)
    vectors, embedding = prepare.embed_cached(dataset, spec, prepare.indexing_texts(records))
    with EmbeddedServer({"RATE_LIMIT_PER_MINUTE": "0"}) as server:
        key = create_tenant_key(server.url, server.admin_key, "statements")
        tenant_id = prepare.tenant_id_of(server, "statements")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as http:
            prepare.say(f"imported: {prepare.import_all(http, records, vectors, embedding['model_id'])}")
        prepare.wait_until_embedded(server, tenant_id, len(records), 3600)
        database = prepare.analyze(server, tenant_id)
        url = prepare.database_url(server)
        assert url is not None, "the embedded server's database must be reachable"
        searches = searches_of(dataset)
        if args.within_user:
            searches = [{**body, "user_id": q.user_id} for body, q in zip(searches, dataset.queries, strict=True)]
        measured = measure(url, key, searches, args.searches)
    result = {
        "benchmark": "search_statements",
        **prepare.run_header("search_statements.py", argv, started_at, clock),
        "environment": {**prepare.machine(), "postgres": database.get("postgres")},
        "dataset": {"spec": spec, "memories": len(records), "queries": len(dataset.queries)},
        "within_user": args.within_user,
        **measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_statements.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "search_statements.md").write_text(markdown(result))
    prepare.say(f"wrote {args.out / 'search_statements.json'} and .md")
    return 0


def measure(url: str, api_key: str, searches: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """Per search: wall and CPU time, and each kind of statement's time and count."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from memsvc.app import create_app
    from memsvc.core.settings import Settings

    app = create_app(Settings(database_url=url, rate_limit_per_minute=0), url)
    spent: dict[str, list[float]] = defaultdict(list)

    def before(conn: Any, *_: Any) -> None:
        conn.info["statement_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        spent[_kind(statement)].append((time.perf_counter() - conn.info.pop("statement_started")) * 1000)

    headers = {"Authorization": f"Bearer {api_key}"}
    with TestClient(app) as client:
        sent = (searches * (1 + (WARMUP + count) // len(searches)))[: WARMUP + count]
        for body in sent[:WARMUP]:
            client.post("/v1/search", json=body, headers=headers)
        health = _per_request(lambda: client.get("/healthz"), 200)
        event.listen(app.state.engine, "before_cursor_execute", before)
        event.listen(app.state.engine, "after_cursor_execute", after)
        wall, cpu = time.perf_counter(), time.process_time()
        for body in sent[WARMUP:]:
            answer = client.post("/v1/search", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
        wall_ms, cpu_ms = (time.perf_counter() - wall) * 1000 / count, (time.process_time() - cpu) * 1000 / count
    statements = [
        {"statement": kind, "per_search": round(len(times) / count, 2), "ms_per_search": round(sum(times) / count, 2)}
        for kind, times in sorted(spent.items(), key=lambda item: -sum(item[1]))
    ]
    in_sql = sum(s["ms_per_search"] for s in statements)
    return {
        "searches": count,
        "per_search": {
            "wall_ms": round(wall_ms, 2),
            "process_cpu_ms": round(cpu_ms, 2),
            "statements": round(sum(s["per_search"] for s in statements), 2),
            "in_statements_ms": round(in_sql, 2),
            "outside_statements_ms": round(wall_ms - in_sql, 2),
        },
        "healthz_ms": health,
        "statements": statements,
    }


def _per_request(send: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        send()
    return round((time.perf_counter() - started) * 1000 / count, 2)


def _kind(statement: str) -> str:
    """A statement's first words, parameters and aliases left out: what names its kind."""
    return re.sub(r"\s+", " ", statement).strip()[:110]


def markdown(result: dict[str, Any]) -> str:
    per = result["per_search"]
    scope = ", each within its query's user" if result.get("within_user") else ""
    lines = [
        "# Where a search's time goes: its SQL statements and the Python around them",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started_at']}; CPU {result['environment']['cpu_model']}; "
        f"data: synthetic `{result['dataset']['spec']}`, {result['dataset']['memories']} memories of one tenant.",
        "",
        f"{result['searches']} searches, one at a time, default options, top_k 10{scope}: **{per['wall_ms']} ms** wall "
        f"each, of which **{per['in_statements_ms']} ms in {per['statements']} SQL statements** (Postgres and the "
        f"round trip) and **{per['outside_statements_ms']} ms outside them** (Python: the service, the framework, "
        f"the in-process client; a bare `/healthz` takes {result['healthz_ms']} ms). The process's CPU: "
        f"{per['process_cpu_ms']} ms a search (the query's embedding included).",
        "",
        "| statement (its start) | per search | ms per search |",
        "|---|---|---|",
    ]
    lines += [f"| `{s['statement'][:90]}` | {s['per_search']} | {s['ms_per_search']} |" for s in result["statements"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

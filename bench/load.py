"""Load test of one `memsvc serve`: mixed search and write traffic at a fixed concurrency, for a bounded time.

    .venv/bin/python bench/load.py                                # 100,000 memories, 60 s (run it on a quiet machine)
    .venv/bin/python bench/load.py --size 10000 --duration 20     # a few minutes

The tenant is prepared as bench/search_latency.py prepares it (its helpers, imported): the synthetic corpus up
to --size memories, embedded once and cached under bench/.cache/, loaded through POST /v1/import with the
vectors (nothing is embedded again), then analyzed. The server is a throw-away `memsvc serve` on the embedded
Postgres, with the rate limit off (MEMSVC_RATE_LIMIT_PER_MINUTE=0, and the tenant's own limit raised where the
service has per-tenant limits) and any --server-setting given.

The traffic comes from a separate process (the server's Python never shares a GIL with the client's): an
asyncio httpx driver keeps --concurrency requests in flight on loopback for --warmup seconds (not measured),
then for --duration seconds. Each request is a search (POST /v1/search: the dataset's next query, default
options, top_k 10) or, with probability --write-share, a write (POST /v1/memories: 1 to 3 new memories of
unique content). Latency is the client's. Any non-2xx answer or transport error is an error. Writes are
acknowledged before they are embedded: the embedding backlog left at the end, and how long the server takes to
clear it, are reported apart. Writes bench/results/load.{json,md}.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from search_latency import (  # noqa: E402  (bench/, this script's folder)
    ROOT,
    Record,
    admin_get,
    analyze,
    as_records,
    database_url,
    default_settings,
    embed_cached,
    import_all,
    indexing_texts,
    load_dataset,
    machine,
    parse_size,
    run_header,
    say,
    summary,
    tenant_id_of,
    wait_until_embedded,
)

sys.path.insert(0, str(ROOT))

from memsvc.eval.client import create_tenant_key  # noqa: E402
from memsvc.eval.server import EmbeddedServer  # noqa: E402

TOP_K = 10
NOTES = "## Notes"
# The settings that shape the server under load, reported with the figures.
REPORTED_SETTINGS = (
    "serve_workers",
    "embedding_model_id",
    "embedding_runtime",
    "storage_profile",
    "contextual_indexing",
    "broker_url",
    "worker_nice",
    "rate_limit_per_minute",
)


# ---- the driver (a separate process)


@dataclass(frozen=True)
class Plan:
    """What the driver sends: everything picklable, so it crosses into the driver process."""

    url: str
    api_key: str
    searches: list[dict[str, Any]]
    writers: list[str]  # user ids new memories go to
    concurrency: int
    warmup_s: float
    duration_s: float
    write_share: float
    seed: int
    run_tag: str


# (kind, started at, in seconds from the measured window's start, latency ms, status code or transport error)
Sample = tuple[str, float, float, int | str]


def drive(plan: Plan) -> dict[str, Any]:
    """Run the plan; the measured samples and the driver's own CPU time."""
    cpu = time.process_time()
    samples = asyncio.run(_drive(plan))
    return {"samples": samples, "driver_cpu_s": round(time.process_time() - cpu, 2)}


async def _drive(plan: Plan) -> list[Sample]:
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    headers = {"Authorization": f"Bearer {plan.api_key}"}
    async with httpx.AsyncClient(base_url=plan.url, headers=headers, limits=limits, timeout=60) as http:
        start = time.perf_counter() + plan.warmup_s
        end = start + plan.duration_s
        lanes = [_lane(http, plan, lane, start, end) for lane in range(plan.concurrency)]
        results = await asyncio.gather(*lanes)
    return [sample for lane in results for sample in lane]


async def _lane(http: httpx.AsyncClient, plan: Plan, lane: int, start: float, end: float) -> list[Sample]:
    """One client's loop: a request, its answer, the next, until the window closes."""
    rng = random.Random(plan.seed * 1000 + lane)
    samples: list[Sample] = []
    n = 0
    while (sent := time.perf_counter()) < end:
        n += 1
        if rng.random() < plan.write_share:
            kind, path, body = "write", "/v1/memories", _write_body(plan, rng, lane, n)
        else:
            kind, path, body = "search", "/v1/search", plan.searches[rng.randrange(len(plan.searches))]
        status: int | str
        try:
            answer = await http.post(path, json=body)
            await answer.aread()
            status = answer.status_code
        except httpx.HTTPError as error:
            status = type(error).__name__
        # warm-up requests too (negative times): the CPU figures cover them
        samples.append((kind, round(sent - start, 4), round((time.perf_counter() - sent) * 1000, 3), status))
    return samples


WRITE_TOPICS = ("the quarterly budget", "a dentist appointment", "the team offsite", "a flight to Lisbon", "tea")


def _write_body(plan: Plan, rng: random.Random, lane: int, n: int) -> dict[str, Any]:
    """1 to 3 new episodic memories; the run tag, lane and counter make every content unique (no dedupe)."""
    user = plan.writers[rng.randrange(len(plan.writers))]
    memories = []
    for item in range(rng.randint(1, 3)):
        topic = WRITE_TOPICS[rng.randrange(len(WRITE_TOPICS))]
        content = f"Load note {plan.run_tag}-{lane}-{n}-{item}: remembered something about {topic}."
        memories.append({"type": "episodic", "content": content, "user_id": user})
    return {"memories": memories}


# ---- figures


def percentiles(latencies: Sequence[float]) -> dict[str, Any]:
    return summary(latencies) if latencies else {"requests": 0}


def traffic_figures(samples: Sequence[Sample], duration_s: float) -> dict[str, Any]:
    """Throughput (completed requests over the window, the last answer included), latency per kind and overall,
    errors by status: of the requests sent in the measured window (warm-up ones left out)."""
    samples = [s for s in samples if s[1] >= 0]
    ok = [s for s in samples if isinstance(s[3], int) and 200 <= s[3] < 300]
    errors = Counter(str(s[3]) for s in samples if not (isinstance(s[3], int) and 200 <= s[3] < 300))
    elapsed = max([duration_s, *(s[1] + s[2] / 1000 for s in samples)])
    return {
        "elapsed_s": round(elapsed, 2),
        "requests": len(samples),
        "completed_2xx": len(ok),
        "requests_per_s": round(len(samples) / elapsed, 1),
        "ok_per_s": round(len(ok) / elapsed, 1),
        "errors": sum(errors.values()),
        "errors_by_status": dict(errors),
        "latency": {
            "overall": percentiles([s[2] for s in samples]),
            "search": percentiles([s[2] for s in samples if s[0] == "search"]),
            "write": percentiles([s[2] for s in samples if s[0] == "write"]),
        },
    }


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def process_cpu_s(pid: int, *, but: int = -1) -> float:
    """CPU seconds (user + system) of process `pid`, of its live descendants (but not process `but`'s tree) and
    of the children it has reaped (a Postgres backend that ended). 0 when it is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # the fields after the command name, which may hold spaces and parentheses
                stats[int(entry.name)] = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
    if pid not in stats:
        return 0.0
    chosen, parents = {pid}, {p: int(f[1]) for p, f in stats.items() if p != but}
    while more := {p for p, parent in parents.items() if parent in chosen} - chosen:
        chosen |= more
    total = sum(int(stats[p][11]) + int(stats[p][12]) for p in chosen)  # utime, stime
    total += int(stats[pid][13]) + int(stats[pid][14])  # cutime, cstime
    return total / tick


def postmaster_pid(server: EmbeddedServer) -> int | None:
    try:
        return int((server.work / "data" / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---- the server side


def raise_rate_limit(server: EmbeddedServer, tenant_id: str | None) -> int | None:
    """Lift the tenant's own limit where the service has per-tenant limits; the answer's status (None: no tenant)."""
    if tenant_id is None:
        return None
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
        return admin.put(f"/v1/tenants/{tenant_id}/rate-limit", json={"requests_per_minute": 1_000_000}).status_code


def backlog(server: EmbeddedServer, tenant_id: str | None, timeout_s: float) -> dict[str, Any]:
    """Memories of the tenant not embedded yet when the traffic stops, and the seconds until none are."""
    url = database_url(server)
    if url is None or tenant_id is None:
        return {"measured": False}
    import psycopg

    started = time.perf_counter()
    first: int | None = None
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pending_embeddings WHERE tenant_id = %s",
                (tenant_id,),
            ).fetchone()
            assert row is not None
            pending = int(row[0])
            first = pending if first is None else first
            if pending == 0:
                return {"measured": True, "pending_at_end": first, "drained_s": round(time.perf_counter() - started, 1)}
            if time.perf_counter() - started > timeout_s:
                return {"measured": True, "pending_at_end": first, "drained_s": None, "still_pending": pending}
            time.sleep(0.5)


def server_settings(overrides: dict[str, str]) -> dict[str, Any]:
    """The settings that shape the server under load, as it runs them: the defaults and the MEMSVC_* overrides."""
    from pydantic import TypeAdapter

    settings, fields = default_settings(), type(default_settings()).model_fields
    chosen: dict[str, Any] = {}
    for name in REPORTED_SETTINGS:
        if name not in fields:  # a setting this checkout does not have
            chosen[name] = overrides.get(name.upper())
        elif name.upper() in overrides:
            chosen[name] = TypeAdapter(fields[name].annotation).validate_python(overrides[name.upper()])
        else:
            chosen[name] = getattr(settings, name)
    return chosen


# ---- the run


def searches_of(dataset: Any) -> list[dict[str, Any]]:
    """One body per dataset query: default options (the dataset's `now` as the time reference), top_k 10."""
    at = {"now": dataset.now.isoformat()} if dataset.now is not None else {}
    return [{"query": q.text, "top_k": TOP_K, **at} for q in dataset.queries]


def writers_of(records: Sequence[Record]) -> list[str]:
    # a write needs a scope: the dataset's users (a user of its own if it has none)
    return sorted({r.user_id for r in records if r.user_id})[:200] or ["load-test-user"]


def parse_setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.upper().removeprefix("MEMSVC_"), value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="100k", help="memories (synthetic ladder size): 100k, 10000, ...")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds of traffic")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of traffic before measuring")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--write-share", type=float, default=0.2, help="share of requests that are writes")
    parser.add_argument("--seed", type=int, default=7, help="synthetic generator seed (and the traffic's)")
    parser.add_argument("--people", type=int, default=12, help="synthetic people (their queries are the queries)")
    parser.add_argument(
        "--server-setting",
        action="append",
        type=parse_setting,
        default=[],
        metavar="NAME=VALUE",
        help="a MEMSVC_* setting of the server (repeatable), e.g. WORKERS=2",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="directory for the results")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for imports and the backlog")
    parser.add_argument(
        "--profile", type=float, default=0.0, help="py-spy the server for this many seconds of the window (if present)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    started_at, clock = datetime.now(UTC), time.perf_counter()
    dataset, spec = load_dataset(parse_size(args.size), args.seed, args.people)
    records = as_records(dataset)
    say(f"data: synthetic {spec}: {len(dataset.documents)} documents, {len(records)} memories")
    vectors, embedding = embed_cached(dataset, spec, indexing_texts(records))

    settings = {"RATE_LIMIT_PER_MINUTE": "0", **dict(args.server_setting)}
    say(f"starting memsvc ({settings})")
    with EmbeddedServer(settings) as server:
        name = f"load-{len(records)}"
        key = create_tenant_key(server.url, server.admin_key, name)
        tenant_id = tenant_id_of(server, name)
        rate_limit_status = raise_rate_limit(server, tenant_id)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as http:
            load = import_all(http, records, vectors, embedding["model_id"])
            say(f"imported: {load}")
            wait_until_embedded(server, tenant_id, len(records), args.timeout)
            database = analyze(server, tenant_id)
            storage = admin_get(server, f"/v1/tenants/{tenant_id}/storage-profile") if tenant_id else None
        plan = Plan(
            url=server.url,
            api_key=key,
            searches=searches_of(dataset),
            writers=writers_of(records),
            concurrency=args.concurrency,
            warmup_s=args.warmup,
            duration_s=args.duration,
            write_share=args.write_share,
            seed=args.seed,
            run_tag=started_at.strftime("%Y%m%d%H%M%S"),
        )
        process = getattr(server, "_process", None)
        server_pid, pg_pid = (process.pid if process is not None else -1), postmaster_pid(server) or -1
        loadavg_before, ticks_before = loadavg(), cpu_ticks()
        cpu_before = process_cpu_s(server_pid, but=pg_pid), process_cpu_s(pg_pid)
        say(f"traffic: {args.concurrency} in flight, {args.warmup:.0f} s warm-up + {args.duration:.0f} s")
        # spawn: a fresh interpreter, not a fork of this one (its threads, its open connections)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            driven = pool.submit(drive, plan)
            profile = profile_server(server, args.warmup, args.profile, args.out) if args.profile > 0 else None
            result_of_drive = driven.result()
        ticks_after, loadavg_after = cpu_ticks(), loadavg()
        cpu_after = process_cpu_s(server_pid, but=pg_pid), process_cpu_s(pg_pid)
        drained = backlog(server, tenant_id, args.timeout)
        say(f"backlog: {drained}")

    traffic = traffic_figures(result_of_drive["samples"], args.duration)
    busy = (ticks_after[0] - ticks_before[0]) / max(ticks_after[1] - ticks_before[1], 1)
    sent = len(result_of_drive["samples"])  # warm-up included, as in the CPU counters
    cpu_ms = {
        "server": round((cpu_after[0] - cpu_before[0]) * 1000 / max(sent, 1), 2),
        "postgres": round((cpu_after[1] - cpu_before[1]) * 1000 / max(sent, 1), 2),
    }
    say(
        f"{traffic['requests_per_s']} req/s, {traffic['errors']} errors; search p95 "
        f"{traffic['latency']['search'].get('p95_ms')} ms, write p95 {traffic['latency']['write'].get('p95_ms')} ms"
    )
    result: dict[str, Any] = {
        **run_header("load.py", argv, started_at, clock),
        "environment": {
            **machine(),
            "loadavg_before": loadavg_before,
            "loadavg_after": loadavg_after,
            "machine_cpu_busy_share": round(busy, 3),
            "driver_cpu_s": result_of_drive["driver_cpu_s"],
            # warm-up included: the processes' counters cannot be split at the window's start
            "server_cpu_s": round(cpu_after[0] - cpu_before[0], 2),
            "postgres_cpu_s": round(cpu_after[1] - cpu_before[1], 2),
            "requests_sent_with_warmup": sent,
            "cpu_ms_per_request": cpu_ms,
        },
        "dataset": {
            "spec": spec,
            "name": dataset.name,
            "memories": len(records),
            "users": len({r.user_id for r in records}),
            "queries": len(dataset.queries),
        },
        "embedding": embedding,
        "load": load,
        "database": database,
        "server_settings": server_settings(settings),
        "storage_profile": storage,
        "tenant_rate_limit_put": rate_limit_status,
        "traffic": {
            "concurrency": args.concurrency,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "write_share": args.write_share,
            "search_body": "query, top_k 10, now (default options)",
            "write_body": "1-3 episodic memories of unique content",
            **traffic,
        },
        "backlog": drained,
        "profile": profile,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    page = args.out / "load.md"
    # A "## Notes" section written by hand (what was compared, what was changed) survives a re-run.
    notes = page.read_text().partition(NOTES)[2] if page.is_file() else ""
    page.write_text(markdown(result) + (f"\n{NOTES}{notes}" if notes else ""))
    say(f"wrote {args.out / 'load.json'} and load.md")
    return 0


def profile_server(server: EmbeddedServer, warmup_s: float, seconds: float, out: Path) -> str | None:
    """py-spy's collapsed stacks of the server's GIL-holding threads during the window (where its Python spends
    CPU; py-spy must be installed and have ptrace rights); the file's path, or None."""
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    process = getattr(server, "_process", None)
    if not Path(spy).exists() or process is None:
        return None
    time.sleep(warmup_s + 1)
    target = out / "load-profile.txt"
    out.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--pid", str(process.pid), "--subprocesses", "--duration", str(int(seconds))]
    command += ["--gil", "--format", "raw", "--output", str(target), "--nonblocking"]
    done = subprocess.run(command, capture_output=True, text=True)
    return str(target) if done.returncode == 0 else f"py-spy failed: {done.stderr[-300:]}"


def markdown(result: dict[str, Any]) -> str:
    env, data, load, traffic = result["environment"], result["dataset"], result["load"], result["traffic"]
    drained = result["backlog"]
    lines = [
        "# Load: mixed search and write traffic on one tenant's store",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started_at']}; {result['runtime_s']} s in all. Machine: `nproc` {env['nproc']}, "
        f"{env['cpu_model']}; load average {env['loadavg_before']} before the traffic, {env['loadavg_after']} "
        f"after; the machine's CPUs were {env['machine_cpu_busy_share']:.0%} busy during it (server, database, "
        f"and the driver, which used {env['driver_cpu_s']} s of CPU). CPU per request (warm-up included, the "
        f"embedding of the writes too): server process {env['cpu_ms_per_request']['server']} ms, Postgres "
        f"{env['cpu_ms_per_request']['postgres']} ms.",
        "",
        f"Data: synthetic `{data['spec']}`: {data['memories']} memories of one tenant ({data['users']} users), "
        f"{data['queries']} queries. Loaded through POST /v1/import with cached vectors ({load['imported']} "
        f"imported, {load['reembedded']} re-embedded) in {load['import_s']} s, then ANALYZE.",
        "",
        "Server: `memsvc serve` on the embedded Postgres "
        f"{result['database'].get('postgres', '')} (pgvector {result['database'].get('pgvector', '')}), settings: "
        f"{', '.join(f'{k}={v}' for k, v in result['server_settings'].items())}. Tenant rate-limit PUT answered "
        f"{result['tenant_rate_limit_put']}.",
        "",
        f"Traffic: a separate driver process (asyncio + httpx, loopback), {traffic['concurrency']} requests in "
        f"flight, {traffic['warmup_s']:.0f} s warm-up then {traffic['duration_s']:.0f} s measured; "
        f"{1 - traffic['write_share']:.0%} searches ({traffic['search_body']}), {traffic['write_share']:.0%} "
        f"writes ({traffic['write_body']}). Latency is the client's; an error is any non-2xx answer or transport "
        "error.",
        "",
        f"**{traffic['requests_per_s']} requests/s** sustained ({traffic['requests']} in {traffic['elapsed_s']} s), "
        f"**{traffic['errors']} errors** {traffic['errors_by_status'] or ''}.",
        "",
        "| requests | count | p50 ms | p95 ms | p99 ms | mean ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, figures in traffic["latency"].items():
        if figures.get("requests"):
            lines.append(
                f"| {kind} | {figures['requests']} | {figures['p50_ms']} | {figures['p95_ms']} | "
                f"{figures['p99_ms']} | {figures['mean_ms']} | {figures['max_ms']} |"
            )
    if drained.get("measured"):
        cleared = f"cleared in {drained['drained_s']} s" if drained["drained_s"] is not None else "not cleared"
        lines += ["", f"Embedding backlog: {drained['pending_at_end']} written memories pending at the end, {cleared}."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

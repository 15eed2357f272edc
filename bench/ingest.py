"""Ingest benchmark: raw embedder throughput, end-to-end ingest (accepted -> embedded), accept latency of
single-memory writes at fixed arrival rates (open loop) and at saturation (closed loop).

    .venv/bin/python bench/ingest.py                       # embedded default: in-process worker
    .venv/bin/python bench/ingest.py --broker redis://127.0.0.1:6379/8   # plus a `memsvc worker` process

It starts its own `memsvc serve` (embedded Postgres in a temporary data dir) and, with --broker, one Celery
worker, then writes bench/results/ingest[-celery].json and prints a table. Nothing here is a pass/fail test.
"""

import argparse
import json
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
TOPICS = [
    "the flight to Lisbon",
    "my sister's wedding",
    "the quarterly budget",
    "a new running shoe",
    "the leaking roof",
    "our trip to Kyoto",
    "the chemistry exam",
    "a jazz concert",
    "the vegetable garden",
    "the broken laptop",
    "a job interview",
    "the dentist appointment",
    "the book club",
    "a birthday cake",
    "the car insurance",
]
VERBS = ["booked", "cancelled", "moved", "talked about", "forgot", "planned", "finished", "postponed", "paid for"]
TAILS = ["last Tuesday", "for next month", "with my brother", "after lunch", "before the holidays", "again", "online"]


def dialogue_turns(n: int, seed: int = 7) -> list[str]:
    """Dialogue-sized texts (10-25 words), deterministic from the seed."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(NAMES)}: I {rng.choice(VERBS)} {rng.choice(TOPICS)} {rng.choice(TAILS)}, "
        f"and {rng.choice(NAMES)} said {rng.choice(TOPICS)} could wait until {rng.choice(TAILS)} (note {i})."
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_embedder_throughput(texts: list[str], batch_size: int) -> float:
    sys.path.insert(0, str(ROOT))
    from memsvc.core.settings import Settings
    from memsvc.embeddings.embedder import build_embedder

    embedder = build_embedder(Settings(embedding_batch_size=batch_size))
    embedder.embed(texts[:batch_size])  # warm-up
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(log.read_text())
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("service did not become ready")


def wait_worker_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(log.read_text(errors="replace"))
        time.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=10_000, help="memories for the end-to-end ingest")
    parser.add_argument("--batch", type=int, default=100, help="memories per POST in the ingest phase")
    parser.add_argument("--latency-requests", type=int, default=600, help="single-memory writes timed per load")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent connections for the latency phase")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[25, 50, 100], help="open-loop arrival rates (writes/s)"
    )
    parser.add_argument("--broker", default=None, help="Redis URL: run a Celery worker process instead")
    parser.add_argument("--worker-processes", type=int, default=1, help="with --broker: worker pool processes")
    parser.add_argument("--out", default=None, help="result file (default bench/results/ingest[-celery].json)")
    args = parser.parse_args()

    texts = dialogue_turns(args.memories)
    raw = raw_embedder_throughput(texts[:2000], batch_size=64)
    print(f"raw embedder: {raw:.1f} sentences/s (batch 64, 2000 sentences)", flush=True)

    work = Path(tempfile.mkdtemp(prefix="memsvc-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin = "bench-admin-key-" + os.urandom(4).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
    env.update(MEMSVC_DATA_DIR=str(work / "data"), MEMSVC_ADMIN_KEY=admin)
    if args.broker:
        import redis

        redis.Redis.from_url(args.broker).flushdb()
        env["MEMSVC_BROKER_URL"] = args.broker
    processes: list[subprocess.Popen[bytes]] = []
    serve_log = work / "serve.log"
    processes.append(
        subprocess.Popen(
            [sys.executable, "-m", "memsvc", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=serve_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
    )
    try:
        wait_ready(url, processes[0], serve_log)
        if args.broker:
            from memsvc.core.embedded import start_embedded_postgres

            env["MEMSVC_DATABASE_URL"] = start_embedded_postgres(work / "data")
            worker_log = work / "worker.log"
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "memsvc", "worker", "--concurrency", str(args.worker_processes)],
                    env=env,
                    cwd=ROOT,
                    stdout=worker_log.open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            wait_worker_ready(processes[-1], worker_log)  # worker start-up (model load) is not ingest time
        result = run_phases(url, admin, texts, args)
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            process.wait(60)

    result["raw_embedder_sentences_per_s"] = round(raw, 1)
    result["ingest_vs_raw"] = round(result["ingest_memories_per_s"] / raw, 3)
    result["mode"] = "celery worker process" if args.broker else "embedded default (in-process worker)"
    result["command"] = " ".join(["python", "bench/ingest.py", *sys.argv[1:]])
    result["machine"] = f"{os.cpu_count()} cores"
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"ingest{'-celery' if args.broker else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'figure':<44}{'value':>12}")
    for key in ("raw_embedder_sentences_per_s", "ingest_memories_per_s", "ingest_vs_raw"):
        print(f"{key:<44}{result[key]:>12}")
    loads = [(f"open loop {rate} writes/s", figures) for rate, figures in result["accept_open_loop"].items()]
    loads.append((f"closed loop {args.concurrency} clients", result["accept_closed_loop"]))
    print(f"\n{'accept latency (single-memory writes)':<40}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for name, f in loads:
        print(f"{name:<40}{f['p50_ms']:>9}{f['p95_ms']:>9}{f['p99_ms']:>9}{f['requests_per_s']:>9}")
    print(f"\nwritten to {out}")


def run_phases(url: str, admin: str, texts: list[str], args: argparse.Namespace) -> dict:
    with httpx.Client(base_url=url, timeout=120) as http:
        tenant = http.post("/v1/tenants", json={"name": "bench"}, headers={"Authorization": f"Bearer {admin}"}).json()
        key = http.post(f"/v1/tenants/{tenant['id']}/keys", headers={"Authorization": f"Bearer {admin}"}).json()["key"]
    auth = {"Authorization": f"Bearer {key}"}

    # Phase 1: end-to-end ingest, from the first POST until every job reports done.
    batches = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]
    job_ids: list[str] = []
    lock = threading.Lock()

    def post_batch(n_batch: tuple[int, list[str]]) -> None:
        n, batch = n_batch
        body = {
            "memories": [
                {"type": "dialogue", "user_id": f"user{n % 20}", "session_id": f"s{n}", "content": t} for t in batch
            ]
        }
        with httpx.Client(base_url=url, timeout=120, headers=auth) as http:
            answer = http.post("/v1/memories", json=body)
            answer.raise_for_status()
        with lock:
            job_ids.append(answer.json()["job_id"])

    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post_batch, enumerate(batches)))
    accepted = time.perf_counter() - start
    with httpx.Client(base_url=url, timeout=120, headers=auth) as http:
        for job_id in job_ids:
            while http.get(f"/v1/jobs/{job_id}").json()["status"] != "done":
                time.sleep(0.2)
    ingest_s = time.perf_counter() - start
    print(
        f"ingest: {len(texts)} memories accepted in {accepted:.1f} s, all embedded after {ingest_s:.1f} s", flush=True
    )

    # Phase 2: accept latency of single-memory writes under load, while the worker embeds them behind.
    # Open loop: writes arrive at a fixed mean rate (Poisson) over 8 connections, and each is timed from its
    # scheduled start, so a slow server cannot hide its queueing by slowing the clients down.
    rates = {}
    for rate in args.rates:
        rates[str(rate)] = open_loop_latency(url, auth, texts, rate, args.latency_requests, args.concurrency)
        print(f"open loop {rate:>4} writes/s: {rates[str(rate)]}", flush=True)
    # Closed loop: 8 clients each send the next write as soon as the last is answered: the saturation point,
    # where latency is concurrency / throughput.
    saturated = closed_loop_latency(url, auth, texts, args.latency_requests, args.concurrency)
    print(f"closed loop, {args.concurrency} clients: {saturated}", flush=True)
    return {
        "memories": len(texts),
        "ingest_seconds": round(ingest_s, 2),
        "ingest_memories_per_s": round(len(texts) / ingest_s, 1),
        "accept_seconds_for_all_batches": round(accepted, 2),
        "accept_open_loop": rates,
        "accept_closed_loop": saturated,
    }


def single_write(http: httpx.Client, texts: list[str], i: int) -> None:
    body = {"memories": [{"type": "semantic", "user_id": "latency", "content": f"fact {i}: {texts[i % len(texts)]}"}]}
    http.post("/v1/memories", json=body).raise_for_status()


def latency_summary(latencies: list[float], seconds: float) -> dict:
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "requests_per_s": round(len(latencies) / seconds, 1),
    }


def open_loop_latency(url: str, auth: dict, texts: list[str], rate: float, requests: int, connections: int) -> dict:
    rng = random.Random(rate)
    start = time.perf_counter() + 0.5
    schedule, at = [], start
    for _ in range(requests):
        at += rng.expovariate(rate)
        schedule.append(at)
    latencies: list[float] = []
    lock = threading.Lock()
    clients = [httpx.Client(base_url=url, timeout=60, headers=auth) for _ in range(connections)]
    free: queue.Queue[httpx.Client] = queue.Queue()
    for client in clients:
        free.put(client)

    def send(n: int) -> None:
        client = free.get()
        try:
            single_write(client, texts, 100_000 + int(rate) * requests + n)
        finally:
            free.put(client)
        with lock:
            latencies.append((time.perf_counter() - schedule[n]) * 1000)

    with ThreadPoolExecutor(connections) as pool:
        for n, due in enumerate(schedule):
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(send, n)
    for client in clients:
        client.close()
    return latency_summary(latencies, schedule[-1] - start)


def closed_loop_latency(url: str, auth: dict, texts: list[str], requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()

    def client_loop(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers=auth) as http:
            for i in range(worker, requests, concurrency):
                t0 = time.perf_counter()
                single_write(http, texts, i)
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_loop, range(concurrency)))
    return latency_summary(latencies, time.perf_counter() - start)


if __name__ == "__main__":
    main()

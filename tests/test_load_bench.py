"""bench/load.py at a reduced size: the whole benchmark (tenant import, a real `memsvc serve`, the driver process,
the backlog) runs and writes a complete report; and `memsvc serve --workers 2`, which it measures, serves."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from memsvc.eval.server import EmbeddedServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_load_bench_reports_mixed_traffic_without_errors(tmp_path: Path) -> None:
    # No warm-up: every lane's first request is measured, and with seed 7 lane 0's first is a search and lane 1's
    # a write, so both kinds are in the report whatever the machine's speed.
    command = [sys.executable, "bench/load.py", "--size", "500", "--duration", "5", "--warmup", "0"]
    command += ["--concurrency", "4", "--seed", "7", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((tmp_path / "load.json").read_text())
    traffic = report["traffic"]
    assert traffic["errors"] == 0, traffic["errors_by_status"]
    assert traffic["requests"] == traffic["completed_2xx"] > 0
    assert traffic["requests_per_s"] > 0
    for kind in ("overall", "search", "write"):
        figures = traffic["latency"][kind]
        assert figures["requests"] > 0, kind
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"], kind
    assert traffic["latency"]["search"]["requests"] + traffic["latency"]["write"]["requests"] == traffic["requests"]
    assert report["dataset"]["memories"] == report["load"]["imported"] == 500
    assert report["database"]["pending_memories"] == 0
    assert report["backlog"]["measured"] and report["backlog"]["drained_s"] is not None
    assert report["server_settings"]["rate_limit_per_minute"] == 0
    assert report["environment"]["nproc"] == os.cpu_count()
    assert len(report["environment"]["loadavg_before"]) == 3
    assert report["environment"]["server_cpu_s"] > 0 and report["environment"]["postgres_cpu_s"] > 0

    page = (tmp_path / "load.md").read_text()
    assert "bench/load.py --size 500" in page
    assert "| search |" in page and "| write |" in page and "**0 errors**" in page


def test_serve_with_two_workers_answers_and_stops_its_postgres() -> None:
    with EmbeddedServer({"SERVE_WORKERS": "2"}) as server:
        admin = {"Authorization": f"Bearer {server.admin_key}"}
        tenant = httpx.post(f"{server.url}/v1/tenants", json={"name": "two-workers"}, headers=admin, timeout=30)
        assert tenant.status_code == 201, tenant.text
        key = httpx.post(f"{server.url}/v1/tenants/{tenant.json()['id']}/keys", json={"name": "k"}, headers=admin)
        auth = {"Authorization": f"Bearer {key.json()['key']}"}
        for n in range(6):
            memory = {"type": "semantic", "content": f"fact number {n} about the load test", "user_id": "u1"}
            body = {"memories": [memory]}
            written = httpx.post(f"{server.url}/v1/memories", json=body, headers=auth, timeout=60)
            assert written.status_code == 202, written.text
        found = httpx.post(f"{server.url}/v1/search", json={"query": "fact number 3"}, headers=auth, timeout=60)
        assert found.status_code == 200, found.text
        assert any(h["memory"]["content"] == "fact number 3 about the load test" for h in found.json()["hits"])
        workers = [p for p in _children(server) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2
        postmaster = int((server.work / "data" / "postgres" / "postmaster.pid").read_text().split()[0])
    # EmbeddedServer stopped memsvc with SIGTERM: its worker processes and the embedded Postgres are gone.
    assert not [pid for pid in [*workers, postmaster] if _running(pid)]


def _children(server: EmbeddedServer) -> list[int]:
    process = server._process
    assert process is not None
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return [int(p) for p in path.read_text().split()]


def _running(pid: int) -> bool:
    """Whether `pid` is a live process: gone, or exited and not yet reaped by init (a zombie), is not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()

"""`memsvc serve` as a user runs it: the real process on the embedded default, the CLI beside it, a restart."""

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
    env["MEMSVC_DATA_DIR"] = str(data_dir)
    return env


class Service:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log, self.port = data_dir, log, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memsvc", "serve", "--port", str(self.port)],
                env=_env(self.data_dir),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError("memsvc did not become ready:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path / "data", tmp_path / "serve.log")
    yield svc
    svc.stop()


def _wait_for_job(http: httpx.Client, auth: dict[str, str], job_id: str) -> None:
    deadline = time.monotonic() + 120
    while (status := http.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"]) != "done":
        assert status in ("queued", "running") and time.monotonic() < deadline, status
        time.sleep(0.2)


def _cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "memsvc", *args], env=_env(data_dir), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_embedded_default_walkthrough_restart_and_cli(service: Service) -> None:
    service.start()
    printed = re.findall(r"^\s+(msa_\S+)$", service.log.read_text(), flags=re.M)
    key_file = service.data_dir / "admin_key"
    assert printed == [key_file.read_text().strip()], "the generated admin key is printed once and stored"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    admin = {"Authorization": f"Bearer {printed[0]}"}

    with httpx.Client(base_url=service.url, timeout=60) as http:
        tenant = http.post("/v1/tenants", json={"name": "acme"}, headers=admin).json()
        key = http.post(f"/v1/tenants/{tenant['id']}/keys", json={}, headers=admin).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        written = http.post(
            "/v1/memories",
            headers=auth,
            json={
                "memories": [
                    {"type": "semantic", "user_id": "alice", "content": "Alice is allergic to peanuts."},
                    {
                        "type": "episodic",
                        "user_id": "alice",
                        "content": "Alice ran the Berlin marathon.",
                        "occurred_at": "2024-09-29T09:00:00Z",
                    },
                    {
                        "type": "procedural",
                        "user_id": "alice",
                        "title": "Rotate API keys",
                        "content": "Create the new key, deploy it, then revoke the old one.",
                    },
                    {"type": "dialogue", "user_id": "alice", "session_id": "s1", "content": "I moved to Lisbon."},
                ]
            },
        )
        assert written.status_code == 202, written.text
        ids = [r["id"] for r in written.json()["results"]]
        turns = http.post(
            "/v1/sessions/s2/messages",
            headers=auth,
            json={
                "user_id": "alice",
                "messages": [
                    {"role": "user", "name": "Alice", "content": "Book me a table for two."},
                    {"role": "assistant", "content": "Done: 8pm at Taberna."},
                ],
            },
        )
        assert turns.status_code == 202
        for job_id in (written.json()["job_id"], turns.json()["job_id"]):
            _wait_for_job(http, auth, job_id)

        hits = http.post(
            "/v1/search", headers=auth, json={"query": "Which food should Alice stay away from?", "user_id": "alice"}
        ).json()["hits"]
        assert hits[0]["memory"]["id"] == ids[0]

    # Operators manage tenants and keys without HTTP, against the same embedded server.
    cli_tenant = _cli(service.data_dir, "tenants", "create", "ops")
    assert '"name":"ops"' in cli_tenant
    cli_key = re.search(r'"key":"(msk_[^"]+)"', _cli(service.data_dir, "keys", "create", "ops")).group(1)
    assert (
        httpx.get(
            service.url + "/v1/memories?user_id=x", headers={"Authorization": f"Bearer {cli_key}"}, timeout=30
        ).status_code
        == 200
    )

    service.stop()
    # A stopped service stops its embedded Postgres too (nothing is left running, the data stays).
    assert not (service.data_dir / "postgres" / "postmaster.pid").exists()
    service.start()
    assert len(re.findall(r"^\s+msa_\S+$", service.log.read_text(), flags=re.M)) == 1, "printed only once"
    with httpx.Client(base_url=service.url, timeout=60, headers=auth) as http:
        kept = http.get(f"/v1/memories/{ids[0]}")
        assert kept.status_code == 200 and kept.json()["content"] == "Alice is allergic to peanuts."
        assert http.get("/v1/memories", params={"user_id": "alice"}).json()["count"] == 6

        forgot = http.delete("/v1/memories", params={"user_id": "alice"})
        assert forgot.status_code == 200 and forgot.json()["memories"] == 6
        assert http.get("/v1/memories", params={"user_id": "alice"}).json()["data"] == []
        assert http.post("/v1/search", json={"query": "Alice", "user_id": "alice"}).json()["hits"] == []

"""A throw-away `memsvc serve` on the embedded default (its own data directory and admin key), for runs that
have no service to point at, and for comparing server configurations side by side."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """`memsvc serve` in a subprocess with `settings` (MEMSVC_* variables without the prefix, e.g.
    {"EMBEDDING_DIM": "256"}) on top of a clean environment. Use as a context manager."""

    def __init__(self, settings: dict[str, str] | None = None, ready_timeout_s: float = 300.0) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="memsvc-eval-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = "eval-admin-" + secrets.token_hex(16)
        self.log = self.work / "serve.log"
        self._settings = settings or {}
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "EmbeddedServer":
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSVC_")}
        env.update({f"MEMSVC_{key.upper()}": value for key, value in self._settings.items()})
        env.update(MEMSVC_DATA_DIR=str(self.work / "data"), MEMSVC_ADMIN_KEY=self.admin_key)
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "memsvc", "serve", "--port", str(self.port), "--log-level", "warning"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)  # memsvc stops its embedded Postgres as it exits
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.work / "data", ignore_errors=True)  # throw-away: only the log stays

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerFailed(f"memsvc serve exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise ServerFailed(f"memsvc serve not ready after {self._ready_timeout_s:.0f} s; log in {self.log}")

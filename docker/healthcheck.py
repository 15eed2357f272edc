"""Docker HEALTHCHECK of the memsvc images: `memsvc serve` answers GET /healthz, `memsvc worker` answers a Celery
ping. Exit 0 when healthy, 1 otherwise. (Kubernetes ignores HEALTHCHECK; the Helm chart declares its own probes.)"""

import os
import socket
import sys
import urllib.request
from pathlib import Path


def main_command(cmdline: bytes) -> str:
    """The memsvc command the container runs (`serve`, `worker`, ...), read from PID 1's command line."""
    args = [arg.decode(errors="replace") for arg in cmdline.split(b"\0") if arg]
    commands = ("serve", "worker", "migrate")
    return next((arg for arg in args if arg in commands), "serve")


def api_is_healthy(port: int, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def worker_is_healthy(timeout: float = 10.0) -> bool:
    from workers.app import celery_app

    replies = celery_app.control.ping(timeout=timeout)
    host = socket.gethostname()
    return any(name.endswith(f"@{host}") for reply in replies for name in reply)


def main() -> int:
    if main_command(Path("/proc/1/cmdline").read_bytes()) == "worker":
        return 0 if worker_is_healthy() else 1
    return 0 if api_is_healthy(int(os.environ.get("MEMSVC_PORT", "8000"))) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`memsvc migrate --check` and `--wait`: what a Kubernetes init container runs so that API and worker pods start
only once another process (the chart's migration Job) has brought the schema to head."""

import os
import subprocess
import sys

from memsvc.core.migrate import schema_lag, upgrade_to_head
from tests.conftest import _fresh_database


def _migrate(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMSVC_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "memsvc", "migrate", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_check_tells_whether_the_schema_is_at_head_and_applies_nothing(pg_server_url: str) -> None:
    url = _fresh_database(pg_server_url)
    behind = _migrate(url, "--check")
    assert behind.returncode == 1
    assert "database schema at None, code expects" in behind.stderr
    assert schema_lag(url) is not None  # --check migrated nothing

    upgrade_to_head(url)
    assert schema_lag(url) is None
    at_head = _migrate(url, "--check")
    assert at_head.returncode == 0, at_head.stderr
    assert "at head" in at_head.stdout


def test_wait_returns_once_another_process_has_migrated(pg_server_url: str) -> None:
    url = _fresh_database(pg_server_url)
    env = {**os.environ, "MEMSVC_DATABASE_URL": url}
    waiter = subprocess.Popen(
        [sys.executable, "-m", "memsvc", "migrate", "--wait", "--timeout", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiter.stdout is not None
        assert "waiting for migrations: database schema at None" in waiter.stdout.readline()
        upgrade_to_head(url)
        out, err = waiter.communicate(timeout=60)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    assert "at head" in out


def test_wait_gives_up_after_its_timeout_on_an_unreachable_database() -> None:
    gone = _migrate("postgresql://nobody@127.0.0.1:9/none", "--wait", "--timeout", "0")
    assert gone.returncode == 1
    assert "cannot read the schema revision (OperationalError:" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_check_needs_an_external_database() -> None:
    env = {key: value for key, value in os.environ.items() if key != "MEMSVC_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "memsvc", "migrate", "--check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "need MEMSVC_DATABASE_URL" in done.stderr

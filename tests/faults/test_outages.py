"""Faults injected into the real processes under a continuous write load: Postgres restarted, the broker
restarted empty, a worker SIGKILLed mid-batch. Whatever was acknowledged is kept and embedded exactly once; while
a dependency is away the API answers 503 problems with Retry-After (the database) or keeps accepting (the broker),
and it recovers in the same process."""

import signal
import time

import httpx
import psutil
import pytest
import redis

from tests.faults.conftest import FaultReport, Stack, WriteLoad, wait_for_jobs, wait_until_embedded

pytestmark = pytest.mark.slow

OUTAGE_S = 4.0
RECOVERY_BOUND_S = 30.0


def _readyz(stack: Stack) -> httpx.Response:
    return httpx.get(stack.api.url + "/readyz", timeout=10)


def _present_through_the_api(stack: Stack, tenant: dict[str, str], acknowledged: dict[str, str]) -> int:
    """GET every acknowledged memory by id; returns how many came back with the content that was written."""
    headers = {"Authorization": tenant["Authorization"]}
    found = 0
    with httpx.Client(base_url=stack.api.url, timeout=30, headers=headers) as http:
        for memory_id, content in acknowledged.items():
            response = http.get(f"/v1/memories/{memory_id}")
            assert response.status_code == 200, response.text
            assert response.json()["content"] == content
            found += 1
    return found


def test_postgres_restart_during_writes(stack: Stack, fault_report: FaultReport) -> None:
    tenant = stack.tenant()
    api_pid = stack.api.process.pid
    with WriteLoad(stack.api.url, tenant, "pg-restart") as load:
        load.wait_for_acknowledged(10)
        went_down = time.monotonic()
        stack.pg.stop()
        down = time.monotonic()
        ready_while_down = _readyz(stack)
        time.sleep(OUTAGE_S)
        coming_up = time.monotonic()
        stack.pg.start()
        up = time.monotonic()
        first_ok_after = load.wait_for_acknowledged(1, after=up, timeout_s=RECOVERY_BOUND_S)
        deadline = time.monotonic() + RECOVERY_BOUND_S
        while (ready_after := _readyz(stack)).status_code != 200:
            assert time.monotonic() < deadline, ready_after.text
            time.sleep(0.2)
        load.wait_for_acknowledged(10, after=first_ok_after)
    answers = load.snapshot()
    acknowledged = load.acknowledged()

    embedded_in_s = wait_until_embedded(stack, tenant["id"], list(acknowledged))
    found = _present_through_the_api(stack, tenant, acknowledged)
    refused = [a for a in answers if a.status is not None and not 200 <= a.status < 300]
    figures = {
        "requests": len(answers),
        "writes_acknowledged": len(acknowledged),
        "acknowledged_checked_present_and_embedded": found,
        "statuses_all": load.statuses(),
        "statuses_before_outage": load.statuses(end=went_down),
        "statuses_while_stopping": load.statuses(went_down, down),
        "statuses_while_down": load.statuses(down, coming_up),
        "statuses_while_starting": load.statuses(coming_up, up),
        "statuses_after_restart": load.statuses(up),
        "retry_after_values": sorted({a.retry_after for a in refused if a.retry_after}),
        "readyz_while_down": ready_while_down.status_code,
        "outage_s": round(coming_up - down, 1),
        "first_2xx_after_restart_s": round(first_ok_after - up, 2),
        "all_embedded_after_load_s": round(embedded_in_s, 1),
    }
    fault_report.add("postgres_restart", figures)

    assert all(a.status is not None for a in answers), [a.error for a in answers if a.status is None][:3]
    assert {a.status for a in refused} <= {503}, figures["statuses_all"]
    assert all(a.problem_json and a.retry_after and int(a.retry_after) > 0 for a in refused)
    assert load.statuses(down, coming_up).get("503", 0) > 0, "the outage was seen by the clients"
    assert set(load.statuses(down, coming_up)) == {"503"}
    assert ready_while_down.status_code == 503
    assert ready_while_down.headers["content-type"].startswith("application/problem+json")
    assert stack.api.process.poll() is None and stack.api.process.pid == api_pid, "the same process recovered"
    assert found == len(acknowledged) > 0


def test_broker_restart_during_writes(stack: Stack, fault_report: FaultReport) -> None:
    tenant = stack.tenant()
    worker_pid = stack.worker.current.process.pid
    with WriteLoad(stack.api.url, tenant, "broker-restart") as load:
        load.wait_for_acknowledged(10)
        stopping = time.monotonic()
        stack.redis.stop()
        down = time.monotonic()
        time.sleep(OUTAGE_S)
        coming_up = time.monotonic()
        stack.redis.start()
        up = time.monotonic()
        load.wait_for_acknowledged(10, after=up)
    answers = load.snapshot()
    acknowledged = load.acknowledged()

    embedded_in_s = wait_until_embedded(stack, tenant["id"], list(acknowledged))
    found = _present_through_the_api(stack, tenant, acknowledged)
    jobs = wait_for_jobs(stack, tenant["id"])
    queued = redis.Redis.from_url(stack.redis.url).llen("embed")
    figures = {
        "requests": len(answers),
        "writes_acknowledged": len(acknowledged),
        "acknowledged_checked_present_and_embedded": found,
        "statuses_all": load.statuses(),
        "statuses_while_down": load.statuses(stopping, coming_up),
        "statuses_after_restart": load.statuses(up),
        "outage_s": round(coming_up - down, 1),
        "all_embedded_after_load_s": round(embedded_in_s, 1),
        "jobs_by_status": jobs,
        "messages_still_queued_when_all_embedded": queued,
    }
    fault_report.add("broker_restart", figures)

    assert load.statuses() == {"202": len(answers)}, "a broker outage fails no write"
    assert load.statuses(stopping, coming_up).get("202", 0) > 0
    assert found == len(acknowledged) == 2 * len(answers)
    assert stack.worker.current.process.poll() is None and stack.worker.current.process.pid == worker_pid
    assert jobs == {"done": len(answers)}


def _batch_in_flight(stack: Stack) -> bool:
    """A worker holds claimed queue rows (`FOR UPDATE` takes a row-share lock on the table until its commit). Not
    the memories table's lock: a write's foreign-key check on it (FOR KEY SHARE) takes the same lock mode."""
    [(held,)] = stack.rows(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = 'pending_embeddings' AND l.mode = 'RowShareLock' AND l.granted"
    )
    return bool(held)


def test_worker_killed_mid_batch_under_load(stack: Stack, fault_report: FaultReport) -> None:
    tenant = stack.tenant()
    worker = stack.worker.current
    with WriteLoad(stack.api.url, tenant, "worker-kill") as load:
        load.wait_for_acknowledged(10)
        deadline = time.monotonic() + 90
        while not (
            stack.rows("SELECT 1 FROM memory_embeddings WHERE tenant_id = :t LIMIT 1", t=tenant["id"])
            and _batch_in_flight(stack)
        ):
            assert time.monotonic() < deadline, "the worker never started on this tenant's memories"
            time.sleep(0.01)
        [child] = worker.pool_children()
        child.send_signal(signal.SIGKILL)
        worker.process.send_signal(signal.SIGKILL)
        [(embedded_at_kill, pending_at_kill)] = stack.rows(
            "SELECT count(*) FILTER (WHERE p.memory_id IS NULL), count(*) FILTER (WHERE p.error IS NULL AND "
            "p.memory_id IS NOT NULL) FROM memories m LEFT JOIN pending_embeddings p ON p.memory_id = m.id "
            "WHERE m.tenant_id = :t",
            t=tenant["id"],
        )
        worker.process.wait(10)
        # A killed process is gone (or a zombie) once the kernel has torn it down, a moment after the signal.
        _, alive = psutil.wait_procs([child], timeout=10)
        assert not alive or child.status() == psutil.STATUS_ZOMBIE
        time.sleep(2)  # writes keep coming while no worker runs
    # Stopped before the next worker starts: it loads the model for up to a minute, and a load running all that
    # time would only test how fast it catches up.
    stack.worker.start_new()
    stack.await_worker_model()
    answers = load.snapshot()
    acknowledged = load.acknowledged()

    embedded_in_s = wait_until_embedded(stack, tenant["id"], list(acknowledged))
    [(memories, distinct_contents, vectors, memories_with_one_vector)] = stack.rows(
        "SELECT count(*), count(DISTINCT content), "
        "(SELECT count(*) FROM memory_embeddings e WHERE e.tenant_id = :t), "
        "count(*) FILTER (WHERE (SELECT count(*) FROM memory_embeddings e WHERE e.memory_id = m.id) = 1) "
        "FROM memories m WHERE m.tenant_id = :t",
        t=tenant["id"],
    )
    jobs = wait_for_jobs(stack, tenant["id"])
    figures = {
        "requests": len(answers),
        "writes_acknowledged": len(acknowledged),
        "acknowledged_checked_embedded_once": memories_with_one_vector,
        "statuses_all": load.statuses(),
        "embedded_at_kill": embedded_at_kill,
        "pending_at_kill": pending_at_kill,
        "memories_stored": memories,
        "vectors_stored": vectors,
        "all_embedded_after_load_s": round(embedded_in_s, 1),
        "jobs_by_status": jobs,
    }
    fault_report.add("worker_killed_mid_batch", figures)

    assert load.statuses() == {"202": len(answers)}
    assert embedded_at_kill > 0 and pending_at_kill > 0, "the kill landed mid-load"
    assert memories == distinct_contents == len(acknowledged) == 2 * len(answers), "no memory lost or doubled"
    assert vectors == memories_with_one_vector == memories, "every memory embedded exactly once"
    assert jobs == {"done": len(answers)}

"""The evaluation's only way into memsvc: its public REST API, as any client would use it."""

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from memsvc.eval.dataset import Document


class EvalApiError(RuntimeError):
    pass


@dataclass(frozen=True)
class Hit:
    memory_id: str
    score: float
    evidence: tuple[str, ...] = ()  # with `expand: ["evidence"]`: the memories the hit was consolidated from


def memory_body(doc: Document) -> dict[str, Any]:
    """A document as a memory write: its evidence id travels in the metadata."""
    body: dict[str, Any] = {
        "type": doc.type,
        "content": doc.text,
        "user_id": doc.user_id,
        "metadata": {**doc.metadata, "eval_id": doc.id},
    }
    optional = {
        "session_id": doc.session_id,
        "speaker": doc.speaker,
        "occurred_at": doc.occurred_at.isoformat() if doc.occurred_at else None,
        "title": doc.title,
        "steps": list(doc.steps) if doc.steps is not None else None,
        "trigger": doc.trigger,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


class EvalClient:
    """A tenant's view of a running memsvc: write documents, wait for their embedding, search."""

    def __init__(self, http: httpx.Client) -> None:
        """`http` is bound to the service's base URL and sends the tenant's key."""
        self._http = http

    def write(self, docs: Sequence[Document]) -> tuple[list[str], str]:
        """Store the documents; returns their memory ids (in order) and the embedding job id."""
        answer = self._call("POST", "/v1/memories", json={"memories": [memory_body(d) for d in docs]})
        return [result["id"] for result in answer["results"]], str(answer["job_id"])

    def consolidate(self, user_id: str, backend: str) -> str:
        """Start consolidating a user's history; returns the job id."""
        answer = self._call("POST", "/v1/consolidate", json={"user_id": user_id, "backend": backend})
        return str(answer["job_id"])

    def wait_for_jobs(self, job_ids: Sequence[str], timeout_s: float = 3600.0) -> list[dict[str, Any]]:
        """Wait until every job is done (raises if one failed or the time ran out); returns the jobs."""
        deadline = time.monotonic() + timeout_s
        finished = []
        for job_id in job_ids:
            while (job := self._call("GET", f"/v1/jobs/{job_id}"))["status"] != "done":
                if job["status"] == "failed":
                    raise EvalApiError(f"{job['kind']} job {job_id} failed: {job['error'] or job['errors'][:3]}")
                if time.monotonic() > deadline:
                    raise EvalApiError(f"{job['kind']} job {job_id} still {job['status']} after {timeout_s:.0f} s")
                time.sleep(0.1)
            finished.append(job)
        return finished

    def search(
        self, query: str, top_k: int, user_id: str | None, fields: Mapping[str, Any] | None = None
    ) -> tuple[list[Hit], float]:
        """The hits, best first, and the request's latency in ms as the client sees it. `fields` are further
        request fields (a search variant's `mode`, `weights`, `expand`, ..., the dataset's `now`)."""
        body: dict[str, Any] = {**(fields or {}), "query": query, "top_k": top_k}
        if user_id is not None:
            body["user_id"] = user_id
        started = time.perf_counter()
        answer = self._call("POST", "/v1/search", json=body)
        latency_ms = (time.perf_counter() - started) * 1000
        return [_hit(h) for h in answer["hits"]], latency_ms

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise EvalApiError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return dict(response.json())


def _hit(raw: dict[str, Any]) -> Hit:
    evidence = raw.get("evidence") or []
    return Hit(raw["memory"]["id"], float(raw["score"]), tuple(str(memory["id"]) for memory in evidence))


def create_tenant_key(url: str, admin_key: str, name: str) -> str:
    """A fresh tenant for one evaluation run (so runs never see each other's memories); returns its API key."""
    with httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {admin_key}"}, timeout=60) as http:
        tenant = http.post("/v1/tenants", json={"name": name})
        if tenant.status_code != 201:
            raise EvalApiError(f"could not create tenant {name!r}: {tenant.status_code} {tenant.text[:300]}")
        key = http.post(f"/v1/tenants/{tenant.json()['id']}/keys", json={"name": "memsvc eval"})
        if key.status_code != 201:
            raise EvalApiError(f"could not create a key: {key.status_code} {key.text[:300]}")
        return str(key.json()["key"])


@contextmanager
def eval_client(url: str, api_key: str, timeout_s: float = 120.0) -> Iterator[EvalClient]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s) as http:
        yield EvalClient(http)

"""Every answer names its request: the caller's X-Request-ID when usable, else a fresh one."""

import re

from fastapi.testclient import TestClient

from tests.conftest import TenantHandle


def test_a_usable_request_id_is_echoed(client: TestClient, tenant: TenantHandle) -> None:
    response = client.get("/v1/memories", headers={**tenant.headers, "X-Request-ID": "trace-42.a:b_c"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "trace-42.a:b_c"


def test_without_one_each_request_gets_its_own(client: TestClient) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_an_unusable_one_is_replaced_not_echoed(client: TestClient) -> None:
    for unusable in ("has space", "x" * 129, "semi;colon", ""):
        response = client.get("/healthz", headers={"X-Request-ID": unusable})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"]), unusable


def test_error_answers_carry_it_too(client: TestClient, tenant: TenantHandle) -> None:
    unauthorized = client.get("/v1/memories", headers={"X-Request-ID": "req-401"})
    assert unauthorized.status_code == 401 and unauthorized.headers["X-Request-ID"] == "req-401"
    too_large = client.post(
        "/v1/memories",
        content=b"x" * (client.app.state.settings.max_body_bytes + 1),
        headers={**tenant.headers, "Content-Type": "application/json", "X-Request-ID": "req-413"},
    )
    assert too_large.status_code == 413 and too_large.headers["X-Request-ID"] == "req-413"

"""Every search behaviour holds on each storage profile a tenant can start on: float vectors searched directly,
and byte codes searched in two stages (Hamming candidates, then exact rescoring; binary alone: Hamming only)."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TenantHandle, create_tenant


@pytest.fixture(params=["float16", "float32", "fp8", "fp8-e5m2", "binary"])
def tenant(client: TestClient, request: pytest.FixtureRequest) -> TenantHandle:
    return create_tenant(client, storage_profile=request.param)


@pytest.fixture
def other_tenant(client: TestClient) -> TenantHandle:
    return create_tenant(client)

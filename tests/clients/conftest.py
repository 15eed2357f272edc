"""The SDK against a real memsvc HTTP server: the app built from tests/conftest.py's settings, database and
embedder, served by uvicorn on a loopback port in a background thread."""

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi import FastAPI
from memsvc_client import MemoryClient

from memsvc.app import create_app
from memsvc.core.settings import Settings
from memsvc.embeddings.embedder import Embedder
from tests.conftest import ADMIN_KEY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1:`port` from a daemon thread."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # log_config=None: leave the test run's logging as pytest set it up.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            assert self._thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


AppFactory = Callable[[], FastAPI]


@pytest.fixture(scope="session")
def make_app(settings: Settings, database_url: str, embedder: Embedder) -> AppFactory:
    """A fresh app on the test database, as tests/conftest.py's `client` builds it."""
    return lambda: create_app(settings, database_url, embedder=embedder)


@pytest.fixture(scope="session")
def live_server(make_app: AppFactory) -> Iterator[LiveServer]:
    server = LiveServer(make_app())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin(live_server: LiveServer) -> Iterator[MemoryClient]:
    with MemoryClient(base_url=live_server.url, api_key=ADMIN_KEY) as client:
        yield client


@dataclass
class SdkTenant:
    id: str
    key: str
    key_id: str


def new_tenant(admin: MemoryClient) -> SdkTenant:
    """A tenant of its own (isolating a test's data) and an API key for it, made through the SDK."""
    tenant = admin.admin.create_tenant(name="sdk-" + uuid.uuid4().hex[:12])
    key = admin.admin.create_key(tenant.id, name="sdk tests")
    return SdkTenant(id=str(tenant.id), key=key.key, key_id=str(key.id))


@pytest.fixture
def sdk_tenant(admin: MemoryClient) -> SdkTenant:
    return new_tenant(admin)


@pytest.fixture
def memsvc(live_server: LiveServer, sdk_tenant: SdkTenant) -> Iterator[MemoryClient]:
    """A client with the test's tenant key."""
    with MemoryClient(base_url=live_server.url, api_key=sdk_tenant.key) as client:
        yield client

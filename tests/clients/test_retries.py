"""Retries against real failures: a server that starts late, and a connection dropped after the server has
stored a write but before its answer arrives. A retried write carries the same Idempotency-Key, so it is stored
once; a call that is not safe to replay is not retried once it may have arrived."""

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from memsvc_client import AsyncMemoryClient, ConnectionFailed, MemoryClient, NewMemory
from memsvc_client._retry import MAX_RETRY_AFTER_S, retry_delay
from memsvc_client.models import WriteResponse

from tests.clients.conftest import AppFactory, LiveServer, SdkTenant, free_port
from tests.conftest import ADMIN_KEY


class DroppingProxy:
    """A TCP relay to the live server that, for the first `drops` connections, passes the request on, waits
    until the server starts answering (the write is committed by then) and closes the client's connection
    without the answer. Records each connection's first request's Idempotency-Key and X-Request-ID."""

    def __init__(self, upstream_port: int, drops: int) -> None:
        self._upstream_port = upstream_port
        self._drops_left = drops
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.idempotency_keys: list[str | None] = []
        self.request_ids: list[str | None] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self._upstream_port)) as upstream:
            request = _read_request(client)
            self.idempotency_keys.append(_header(request, "idempotency-key"))
            self.request_ids.append(_header(request, "x-request-id"))
            upstream.sendall(request)
            if self._drops_left > 0:
                self._drops_left -= 1
                upstream.recv(1)
                return
            answer = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            answer.start()
            _pipe(client, upstream)
            answer.join(timeout=30)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(_header(data, "content-length") or 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def _header(request: bytes, name: str) -> str | None:
    for line in request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        key, _, value = line.decode("latin-1").partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture
def dropping_proxy(live_server: LiveServer) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(live_server.port, drops=1)
    yield proxy
    proxy.close()


def fact(content: str) -> NewMemory:
    return NewMemory(type="semantic", user_id="retry", content=content)


def test_a_write_whose_answer_was_lost_is_retried_with_the_same_key_and_stored_once(
    dropping_proxy: DroppingProxy, sdk_tenant: SdkTenant, memsvc: MemoryClient
):
    with MemoryClient(base_url=dropping_proxy.url, api_key=sdk_tenant.key, max_retries=3) as client:
        written = client.memories.add(memories=[fact("Stored exactly once.")])

    first, retry = dropping_proxy.idempotency_keys
    assert first is not None and first == retry
    first_id, retry_id = dropping_proxy.request_ids  # the server's logs name the call, not the attempt
    assert first_id is not None and first_id == retry_id
    # The first attempt stored it; without the same key the retry would have answered "duplicate", created 0.
    assert written.created == 1 and written.results[0].status == "created"
    assert [m.id for m in memsvc.memories.list(user_id="retry")] == [written.results[0].id]


def test_the_async_client_retries_a_lost_answer_with_the_same_key(
    dropping_proxy: DroppingProxy, sdk_tenant: SdkTenant, memsvc: MemoryClient
):
    async def add() -> uuid.UUID:
        async with AsyncMemoryClient(base_url=dropping_proxy.url, api_key=sdk_tenant.key, max_retries=3) as client:
            written = await client.sessions.add_messages(
                "s-retry", messages=[{"role": "user", "content": "Once."}], user_id="retry"
            )
            assert written.created == 1 and written.results[0].status == "created"
            return written.results[0].id

    turn = asyncio.run(add())
    first, retry = dropping_proxy.idempotency_keys
    assert first is not None and first == retry
    assert [m.id for m in memsvc.sessions.list_messages("s-retry")] == [turn]


def test_a_caller_chosen_idempotency_key_replays_the_first_answer(memsvc: MemoryClient):
    key = "order-" + uuid.uuid4().hex
    first = memsvc.memories.add(memories=[fact("Keyed write.")], idempotency_key=key)
    again = memsvc.memories.add(memories=[fact("Keyed write.")], idempotency_key=key)
    assert again == first and again.results[0].status == "created"


def test_a_call_unsafe_to_replay_is_not_retried_once_it_may_have_arrived(
    dropping_proxy: DroppingProxy, sdk_tenant: SdkTenant
):
    client = MemoryClient(base_url=dropping_proxy.url, api_key=ADMIN_KEY, max_retries=3)
    with client, pytest.raises(ConnectionFailed, match="RemoteProtocolError"):
        client.admin.create_key(sdk_tenant.id)  # a replay would create a second key
    assert len(dropping_proxy.idempotency_keys) == 1


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_calls_succeed_once_a_late_server_starts(
    client_kind: str, make_app: AppFactory, sdk_tenant: SdkTenant, memsvc: MemoryClient
):
    late = LiveServer(make_app(), free_port())
    starter = threading.Timer(1.0, late.start)
    starter.start()
    try:
        if client_kind == "sync":
            with MemoryClient(base_url=late.url, api_key=sdk_tenant.key, max_retries=8) as client:
                written = client.memories.add(memories=[fact("Written while the server was starting.")])
        else:

            async def add() -> WriteResponse:
                async with AsyncMemoryClient(base_url=late.url, api_key=sdk_tenant.key, max_retries=8) as client:
                    return await client.memories.add(memories=[fact("Written while the server was starting.")])

            written = asyncio.run(add())
    finally:
        starter.join()
        late.stop()
    assert [m.id for m in memsvc.memories.list(user_id="retry")] == [written.results[0].id]


def test_retry_after_is_honoured_and_backoff_is_jittered_and_bounded():
    assert retry_delay(0, httpx.Headers({"Retry-After": "3"})) == 3.0
    assert retry_delay(5, httpx.Headers({"Retry-After": "0"})) == 0.0
    assert retry_delay(0, httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # in the past
    too_long = retry_delay(0, httpx.Headers({"Retry-After": str(MAX_RETRY_AFTER_S + 1)}))
    assert 0.25 <= too_long <= 0.5  # ignored: backoff instead
    delays = {retry_delay(2) for _ in range(50)}
    assert len(delays) > 1 and all(1.0 <= d <= 2.0 for d in delays)
    assert all(4.0 <= retry_delay(attempt) <= 8.0 for attempt in (4, 10))

"""Every response carries an `X-Request-ID`: the caller's own, when it sent a usable one (the Python SDK sends one
per call and keeps it across retries), else one made here. A client quotes it in a bug report; while the request
runs, `current_request_id` holds it for whatever the request logs or starts."""

import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
# Echoed into a response header and logs: a bounded, printable token only, never header or log injection.
_USABLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def request_id_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _HEADER_KEY and _USABLE.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Outermost of the app's own middleware, so its answers (a 413 from the body limit included) carry the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = current_request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != _HEADER_KEY]
                message = {**message, "headers": [*headers, (_HEADER_KEY, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)

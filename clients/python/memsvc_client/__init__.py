"""Python client for memsvc, the long-term memory service for AI agents: `MemoryClient` and its asyncio twin
`AsyncMemoryClient`, typed models, one exception per kind of failure."""

from memsvc_client._requests import NOT_GIVEN, NotGiven
from memsvc_client._version import __version__
from memsvc_client.async_client import AsyncMemoryClient
from memsvc_client.client import MemoryClient
from memsvc_client.errors import (
    APIError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobTimeout,
    MemsvcError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    ValidationFailed,
)
from memsvc_client.models import FusionWeights, Message, NewMemory
from memsvc_client.pagination import AsyncPage, Page

__all__ = [
    "NOT_GIVEN",
    "APIError",
    "AsyncMemoryClient",
    "AsyncPage",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "FusionWeights",
    "JobTimeout",
    "MemoryClient",
    "MemsvcError",
    "Message",
    "NewMemory",
    "NotFound",
    "NotGiven",
    "Page",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "ValidationFailed",
    "__version__",
]

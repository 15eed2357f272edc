"""Per-API-key rate limiting: an exact sliding window (a log of request times), kept in Redis when the API runs as
several processes, in this process otherwise. It protects the service from a runaway client; it must never break
the service, so a Redis that is down or slow lets every request through."""

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from memsvc.core.settings import Settings

log = logging.getLogger(__name__)

# A rate-limit check sits in front of every tenant request: a Redis slower than this is treated as down.
REDIS_TIMEOUT_S = 0.1
# After Redis failed, skip it this long, so an outage does not add its timeout to every request.
REDIS_RETRY_AFTER_S = 1.0
KEY_PREFIX = "memsvc:ratelimit:"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int  # requests left in the window after this one
    retry_after_s: float  # when refused: until the oldest counted request leaves the window; else 0


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int) -> Decision:
        """Count one request of `key` against `limit` per window, unless the window is already full."""
        ...


class InProcessRateLimiter:
    """The sliding log in this process's memory: exact for a single API process (the embedded default)."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[str, deque[float]] = {}
        self._next_prune = 0.0

    def hit(self, key: str, limit: int) -> Decision:
        now = self._clock()
        with self._lock:
            self._prune_idle_keys(now)
            log_ = self._logs.setdefault(key, deque())
            while log_ and log_[0] <= now - self.window_s:
                log_.popleft()
            if len(log_) >= limit:
                return Decision(False, limit, 0, log_[-limit] + self.window_s - now)
            log_.append(now)
            return Decision(True, limit, limit - len(log_), 0.0)

    def _prune_idle_keys(self, now: float) -> None:
        # Keys (revoked, or simply idle) would otherwise stay in memory for the life of the process.
        if now < self._next_prune:
            return
        self._next_prune = now + self.window_s
        for key in [k for k, v in self._logs.items() if not v or v[-1] <= now - self.window_s]:
            del self._logs[key]


# KEYS[1]: the key's log (a sorted set of request times in microseconds). ARGV: window (microseconds), limit, a
# unique member. Redis's own clock, so API processes on hosts with skewed clocks share one timeline. Answers
# {allowed, remaining, microseconds until a slot frees}.
_SLIDING_LOG = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return {0, 0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {1, limit - count - 1, 0}
"""


class RedisRateLimiter:
    """The sliding log in Redis, checked and updated by one Lua script (atomic), shared by every API process."""

    def __init__(self, url: str, window_s: float) -> None:
        self.window_s = window_s
        self._redis = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S, retry_on_timeout=False
        )
        self._script = self._redis.register_script(_SLIDING_LOG)
        self._skip_until = 0.0
        self._fallback = _AllowAll()

    def hit(self, key: str, limit: int) -> Decision:
        if time.monotonic() < self._skip_until:
            return self._fallback.hit(key, limit)
        try:
            allowed, remaining, wait_us = self._script(
                keys=[KEY_PREFIX + key], args=[int(self.window_s * 1_000_000), limit, uuid.uuid4().hex]
            )
        except redis.RedisError as exc:
            self._skip_until = time.monotonic() + REDIS_RETRY_AFTER_S
            log.warning("rate limiting is off for %.0f s: Redis failed (%s)", REDIS_RETRY_AFTER_S, exc)
            return self._fallback.hit(key, limit)
        return Decision(bool(allowed), limit, int(remaining), int(wait_us) / 1_000_000)


class _AllowAll:
    """What an unreachable Redis leaves: rate limiting must never make a request fail."""

    def hit(self, key: str, limit: int) -> Decision:
        return Decision(True, limit, limit, 0.0)


def redis_url_for_rate_limits(settings: Settings) -> str | None:
    if settings.rate_limit_redis_url:
        return settings.rate_limit_redis_url
    if settings.broker_url and settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return None


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis-backed when a Redis is configured (several API processes share one count), in-process otherwise."""
    url = redis_url_for_rate_limits(settings)
    if url:
        return RedisRateLimiter(url, settings.rate_limit_window_s)
    return InProcessRateLimiter(settings.rate_limit_window_s)

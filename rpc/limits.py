"""Limits the RPC server enforces: defaults, error codes, the per-IP rate limiter, loopback check.

Defaults follow Substrate's `--rpc-*` flags where one exists (max connections 100, max subscriptions
per connection 1024). The request size default is 10 MiB (Substrate's is 15 MiB; an extrinsic here
is at most 64 KiB, so 10 MiB leaves room for large batches while bounding what one request can make
the event loop parse).
"""
from __future__ import annotations

import ipaddress
import time

DEFAULT_MAX_REQUEST_BYTES = 10 * 2**20
DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION = 1024
DEFAULT_MAX_CONNECTIONS = 100
#: Calls in one batch request (jsonrpsee has no default cap; one keeps a batch from monopolising the loop).
DEFAULT_MAX_BATCH_LEN = 1000
#: Messages queued for one WebSocket client before the server gives up on it and drops the connection.
DEFAULT_WS_SEND_QUEUE = 4096
#: Requests from one WebSocket connection processed concurrently before the server stops reading.
DEFAULT_WS_MAX_INFLIGHT = 256
#: Largest `count` `state_getKeysPaged` accepts, as in Substrate.
MAX_KEYS_PAGED = 1000

# JSON-RPC 2.0 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server-defined codes, as jsonrpsee (Substrate's RPC server) numbers them.
TOO_MANY_SUBSCRIPTIONS = -32006
OVERSIZED_REQUEST = -32007
SERVER_IS_BUSY = -32009
TOO_BIG_BATCH = -32010
RATE_LIMITED = -32029

UNSAFE_MESSAGE = "RPC call is unsafe to be called externally"


def is_loopback_host(host: str) -> bool:
    """True if binding `host` only accepts connections from this machine."""
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenBucket:
    """`rate` tokens per second, holding at most `burst` (starts full)."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, n: float, now: float) -> bool:
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens >= n:
            self.tokens = tokens - n
            return True
        self.tokens = tokens
        return False


class RateLimiter:
    """Per-client token buckets: `per_second` calls per second sustained, bursts up to one second's worth.

    Buckets of clients that have been quiet long enough to refill completely are forgotten, so the
    table stays bounded by the number of recently active clients.
    """

    def __init__(self, per_second: int, burst: int | None = None, clock=time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("rate limit must be a positive number of calls per second")
        self.per_second = per_second
        self.burst = burst if burst is not None else per_second
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._last_sweep = clock()

    def allow(self, client: str, n: int = 1) -> bool:
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) > 10_000 or now - self._last_sweep > 60:
                self._sweep(now)
            bucket = self._buckets[client] = TokenBucket(self.per_second, self.burst, now)
        return bucket.take(n, now)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        full_after = self.burst / self.per_second
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.stamp < full_after}

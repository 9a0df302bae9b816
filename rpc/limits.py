"""Limits the RPC server enforces: defaults, error codes, the per-IP rate limiter, the connection
gate, loopback checks.

Defaults follow Substrate's `--rpc-*` flags where one exists (max connections 100, max subscriptions
per connection 1024, max response size 10 MiB). The request size default is 10 MiB (Substrate's is
15 MiB; an extrinsic here is at most 64 KiB, so 10 MiB leaves room for large batches while bounding
what one request can make the event loop parse).

The limits that Substrate leaves to a reverse proxy are set here so that a node exposed with
`--rpc-external` survives a hostile client on its own: a per-address connection cap, a deadline for
request headers, connection slots only 127.0.0.1/::1 may take (so the operator can always reach
their node), a byte cap on what a WebSocket client may leave unread, and a rate limit on by default.
"""
from __future__ import annotations

import ipaddress
import re
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

#: Largest answer to one request, or to one whole batch, in bytes of JSON (Substrate's
#: `--rpc-max-response-size`, 10 MiB). Without it a 76 KB batch of 1,000 `state_getMetadata` calls
#: made the node build a 90 MB answer; with it the server stops running a batch's calls as soon as
#: their answers pass the limit and answers one error instead.
DEFAULT_MAX_RESPONSE_BYTES = 10 * 2**20
#: WebSocket: bytes waiting to be written to one client (queued answers and notifications, and
#: batch answers being built) past which the server stops reading that client's requests ...
DEFAULT_WS_SEND_HIGH_WATER = 2 * 2**20
#: ... and past which it drops the client (close code 1008). Larger than one full-size response.
DEFAULT_WS_SEND_QUEUE_BYTES = 16 * 2**20
#: Open connections from one client address (127.0.0.1 and ::1 are not counted against it). A
#: browser opens at most 6 per host and a wallet or meter gateway one or two, so 16 leaves room for a
#: few clients behind one NAT address while keeping one client from taking every slot.
DEFAULT_MAX_CONNECTIONS_PER_IP = 16
#: Connection slots (out of `max_connections`) that only 127.0.0.1 and ::1 may take.
DEFAULT_RESERVED_LOOPBACK_CONNECTIONS = 4
#: A connection that has not sent complete request headers this long after it opened (or after the
#: first byte of a later request on it) is closed: idle and half-sent-header connections otherwise
#: held their slot until the 75 s keep-alive timeout.
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: Rate limit when the server listens beyond loopback and none was given: calls per second per
#: client address, with bursts of one full batch (so a meter gateway's 1,000-call batches pass).
DEFAULT_EXTERNAL_RATE_LIMIT = 100
DEFAULT_EXTERNAL_RATE_BURST = DEFAULT_MAX_BATCH_LEN

# JSON-RPC 2.0 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server-defined codes, as jsonrpsee (Substrate's RPC server) numbers them.
TOO_MANY_SUBSCRIPTIONS = -32006
OVERSIZED_REQUEST = -32007
OVERSIZED_RESPONSE = -32008
SERVER_IS_BUSY = -32009
TOO_BIG_BATCH = -32010
TOO_BIG_BATCH_RESPONSE = -32011
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


#: Client addresses that are this machine's own loopback interface (reserved slots, no per-IP cap).
#: Deliberately not all of 127.0.0.0/8: any local process can bind 127.0.0.2.
TRUSTED_LOOPBACK_CLIENTS = frozenset(("127.0.0.1", "::1", "::ffff:127.0.0.1"))

_PORT = re.compile(r"[0-9]{1,5}")


def is_port(text: str) -> bool:
    """True for a TCP port number as it appears in a URL: 1-5 ASCII digits, at most 65535.

    `str.isdigit` is not enough: it accepts Arabic-Indic digits and superscripts too.
    """
    return _PORT.fullmatch(text) is not None and int(text) <= 65535


class ConnectionGate:
    """Admission of TCP connections at accept time: a total cap, a cap per client address, and slots
    only 127.0.0.1/::1 may take. Counts what it refuses, by reason, for the node's metrics."""

    def __init__(self, max_connections: int, max_per_ip: int, reserved_loopback: int) -> None:
        if max_connections < 1 or max_per_ip < 1 or reserved_loopback < 0:
            raise ValueError("connection limits must be positive")
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        #: never more than half the slots, so a small `max_connections` still serves others
        self.reserved_loopback = min(reserved_loopback, max_connections // 2)
        self.open = 0
        self.per_ip: dict[str, int] = {}
        self.refused = 0
        self.refused_by_reason: dict[str, int] = {"max_connections": 0, "max_per_ip": 0}

    def admit(self, ip: str) -> bool:
        """Take a slot for a new connection from `ip`, or count a refusal and return False."""
        reason = None
        if ip in TRUSTED_LOOPBACK_CLIENTS:
            if self.open >= self.max_connections:
                reason = "max_connections"
        elif self.open >= self.max_connections - self.reserved_loopback:
            reason = "max_connections"
        elif self.per_ip.get(ip, 0) >= self.max_per_ip:
            reason = "max_per_ip"
        if reason is not None:
            self.refused += 1
            self.refused_by_reason[reason] += 1
            return False
        self.open += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        return True

    def release(self, ip: str) -> None:
        """Give back the slot of a connection `admit` let in."""
        self.open -= 1
        n = self.per_ip.get(ip, 0) - 1
        if n > 0:
            self.per_ip[ip] = n
        else:
            self.per_ip.pop(ip, None)


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

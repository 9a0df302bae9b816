"""Admission of the RPC server's TCP connections, in aiohttp's low-level server: a connection passes
`limits.ConnectionGate` at accept time or is closed before aiohttp sets anything up for it, and a
connection must send complete request headers within `header_timeout_s`.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from rpc import limits as L

log = logging.getLogger("gridchain.rpc")


class GuardedServer(web.Server):
    """aiohttp's low-level server whose connections pass `gate` at accept time and must send complete
    request headers within `header_timeout_s`."""

    def __init__(self, handler: Any, *, gate: L.ConnectionGate, header_timeout_s: float,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.gate = gate
        self.header_timeout_s = header_timeout_s
        self.header_timeouts = 0

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, with admission and a request-header deadline.

    A refused connection is closed in `connection_made` before aiohttp's own set-up runs, so no
    request task is ever created for it (closing it later, as aiohttp's `Server.connection_made`
    hook would, left a task failing on an assertion and logging a traceback per refusal).

    The header deadline runs from the connection's start, and again from the first byte of each
    later request (while aiohttp's loop waits for a request: `_waiter` set); it stops as soon as the
    parser has produced the request (`_request_count` moves). This reads two of aiohttp's internals;
    tests/test_rpc_abuse.py checks the behaviour.
    """

    __slots__ = ("_gate_ip", "_admitted", "_header_timer", "_requests_seen")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate_ip = ""
        self._admitted = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._requests_seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server: GuardedServer = self._manager  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else ""
        if not server.gate.admit(ip):
            log.debug("RPC connection from %s refused (%d open)", ip, server.gate.open)
            transport.close()
            return
        self._gate_ip = ip
        self._admitted = True
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._disarm_header_timer()
        server: GuardedServer = self._manager  # type: ignore[assignment]
        if server is not None:
            server.gate.release(self._gate_ip)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count != self._requests_seen:
            self._requests_seen = self._request_count
            self._disarm_header_timer()
        elif (self._header_timer is None and self._waiter is not None and not self._upgraded
              and self._admitted):
            self._arm_header_timer()  # the first bytes of a later request on a kept-alive connection

    def _arm_header_timer(self) -> None:
        server: GuardedServer = self._manager  # type: ignore[assignment]
        self._header_timer = self._loop.call_later(server.header_timeout_s, self._headers_overdue,
                                                   self._request_count)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_overdue(self, count_when_armed: int) -> None:
        self._header_timer = None
        if self._request_count != count_when_armed or not self._admitted:
            return
        server: GuardedServer = self._manager  # type: ignore[assignment]
        server.header_timeouts += 1
        log.debug("RPC connection from %s closed: no complete request headers within %.0f s",
                  self._gate_ip, server.header_timeout_s)
        self.force_close()

"""One WebSocket client of the RPC server: its send queue, in-flight calls and subscriptions.

Nothing on the node side ever waits for a client. What waits for a client to read is counted in
bytes (`pending_bytes`: queued answers and notifications, and batch answers being built for it):
past the server's `ws_send_high_water` the server stops reading the client's requests (the receive
loop in `RpcServer._websocket` waits on `drained`, so TCP pushes back on the client), and past
`ws_send_queue_bytes`, or `ws_send_queue` messages, the client is dropped: its TCP connection is
closed at once, without a close frame that would only wait behind what it has not read.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from rpc import limits as L
from rpc.jsonshapes import dumps, loads
from rpc.methods import SubscriptionSource

if TYPE_CHECKING:
    from rpc.server import RpcServer

log = logging.getLogger("gridchain.rpc")

PARSE_ERROR_BODY = dumps({"jsonrpc": "2.0", "error": {"code": L.PARSE_ERROR, "message": "Parse error"},
                          "id": None})


class _Subscription:
    __slots__ = ("kind", "source", "task")

    def __init__(self, kind: str, source: SubscriptionSource) -> None:
        self.kind = kind
        self.source = source
        self.task: asyncio.Task | None = None


class WsConnection:
    """One WebSocket client: its send queue, in-flight calls and subscriptions."""

    def __init__(self, server: "RpcServer", ws: web.WebSocketResponse, request: web.BaseRequest) -> None:
        self.server = server
        self.ws = ws
        self.transport = request.transport
        self.client = request.remote or ""
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=server.ws_send_queue)
        #: bytes queued for this client, plus batch answers being built for it (`reserve`)
        self.pending_bytes = 0
        #: set while `pending_bytes` is at or below the low-water mark (half the high-water mark)
        self.drained = asyncio.Event()
        self.drained.set()
        self.inflight: set[asyncio.Task] = set()
        self.subs: dict[str, _Subscription] = {}
        self._to_start: list[str] = []
        self.closed = False
        self.sender = asyncio.create_task(self._send_loop())

    # -- requests ------------------------------------------------------------------------------

    def spawn(self, data: bytes | str) -> None:
        task = asyncio.create_task(self._handle_message(data))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    async def _handle_message(self, data: bytes | str) -> None:
        try:
            payload = loads(data)
        except (ValueError, RecursionError):
            self.send(PARSE_ERROR_BODY)
            return
        try:
            out = await self.server._process(payload, self, self.client, True)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("unexpected error processing a WebSocket message")
            return
        if out is not None:
            self.send(out[0] if len(out) == 1 else b"".join(out))
        if self._to_start:
            self._start_subscriptions()

    # -- sending -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self._add_pending(len(data))
        if self.pending_bytes > self.server.ws_send_queue_bytes or self.queue.full():
            log.warning("RPC WebSocket client %s is not reading (%d messages, %d bytes waiting): dropping it",
                        self.client, self.queue.qsize(), self.pending_bytes)
            self.abort()
            return
        self.queue.put_nowait(data)

    def reserve(self, n: int) -> bool:
        """Count `n` bytes of an answer being built against the send cap; False if they do not fit."""
        if self.pending_bytes + n > self.server.ws_send_queue_bytes:
            return False
        self._add_pending(n)
        return True

    def release(self, n: int) -> None:
        """Give back bytes counted by `reserve` or `send` (built, or written to the socket)."""
        self.pending_bytes -= n
        if self.pending_bytes <= self.server.ws_send_high_water // 2:
            self.drained.set()

    def _add_pending(self, n: int) -> None:
        self.pending_bytes += n
        if self.pending_bytes > self.server.ws_send_high_water:
            self.drained.clear()

    async def _send_loop(self) -> None:
        ws = self.ws
        queue = self.queue
        try:
            while True:
                data = await queue.get()
                await ws.send_frame(data, WSMsgType.TEXT)
                self.release(len(data))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - connection gone
            log.debug("WebSocket send to %s failed: %s", self.client, e)
            self.abort()

    def notify(self, notification: str, sub_id: str, result: Any) -> None:
        self.send(dumps({"jsonrpc": "2.0", "method": notification,
                         "params": {"subscription": sub_id, "result": result}}))

    # -- subscriptions -------------------------------------------------------------------------

    def add_subscription(self, source: SubscriptionSource) -> str:
        sub_id = secrets.token_hex(8)
        while sub_id in self.subs:
            sub_id = secrets.token_hex(8)
        self.subs[sub_id] = _Subscription(source.kind, source)
        self._to_start.append(sub_id)  # started once the response carrying the id is queued
        return sub_id

    def _start_subscriptions(self) -> None:
        ids, self._to_start = self._to_start, []
        for sub_id in ids:
            sub = self.subs.get(sub_id)
            if sub is not None and sub.task is None and not self.closed:
                sub.task = asyncio.create_task(self._pump(sub_id, sub.source))

    def unsubscribe(self, sub_id: str, kind: str) -> bool:
        sub = self.subs.get(sub_id)
        if sub is None or sub.kind != kind:
            return False
        del self.subs[sub_id]
        if sub.task is not None:
            sub.task.cancel()
        else:
            close_iterator_soon(sub.source.iterator)
        return True

    async def _pump(self, sub_id: str, source: SubscriptionSource) -> None:
        it = source.iterator
        to_json = source.to_json
        notification = source.notification
        terminal = source.terminal
        try:
            last = None
            for item in source.initial:
                self.notify(notification, sub_id, to_json(item))
                last = item
                if terminal is not None and terminal(item):
                    return
            skip = source.dedupe_initial and last is not None
            async for item in it:
                if skip:
                    skip = False
                    if item == last:
                        continue
                if self.closed:
                    return
                self.notify(notification, sub_id, to_json(item))
                if terminal is not None and terminal(item):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("RPC subscription %s (%s) failed", sub_id, notification)
        finally:
            self.subs.pop(sub_id, None)
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except (Exception, asyncio.CancelledError):  # noqa: BLE001
                    pass

    # -- closing -------------------------------------------------------------------------------

    def _cancel_all(self) -> None:
        self.closed = True
        self.drained.set()  # wakes the receive loop, which then sees `closed`
        self.sender.cancel()
        # free what was waiting now: the connection sits in reference cycles with its tasks, and
        # the cyclic collector may take long to free megabytes it barely counts
        while not self.queue.empty():
            self.queue.get_nowait()
        self.pending_bytes = 0
        for task in list(self.inflight):
            if task is not asyncio.current_task():
                task.cancel()
        for sub in list(self.subs.values()):
            if sub.task is not None:
                sub.task.cancel()
            else:
                close_iterator_soon(sub.source.iterator)
        self.subs.clear()

    def abort(self) -> None:
        """Drop the connection at once, from synchronous code (too much waiting, a failed send).

        No close handshake: a close frame would wait behind everything the client has not read,
        and while aiohttp waited for the answer it would read and discard whatever the client kept
        sending."""
        if self.closed:
            return
        self._cancel_all()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    async def close(self, code: int, message: bytes) -> None:
        if not self.closed:
            self._cancel_all()
            await self._close_ws(code, message)

    async def _close_ws(self, code: int, message: bytes) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message), 2.0)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001
            pass
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def close_iterator_soon(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        task = asyncio.ensure_future(aclose())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

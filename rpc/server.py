"""JSON-RPC 2.0 server: HTTP POST and WebSocket on one port and path, in front of a `NodeApi`.

    server = RpcServer(node, host="127.0.0.1", port=9944)
    await server.start()          # server.port is the bound port (port=0 picks a free one)
    ...
    await server.stop()

A POST to "/" is an HTTP JSON-RPC call (single or batch); a GET with `Upgrade: websocket` opens a
WebSocket that carries calls and subscription notifications. `GET /health` answers the node's health
as plain JSON, as Substrate does.

Behaviour at the edges (the server never crashes on input):
  * invalid JSON -> -32700; not a request object, bad `jsonrpc`/`method`/`id`, empty batch -> -32600;
    unknown method -> -32601; bad parameters -> -32602; a `ChainError` -> its code, message, data;
    anything else -> -32603 "Internal error" (logged here, never sent to the client).
  * a body over `max_request_bytes` -> HTTP 413 (WebSocket: the connection is closed with 1009).
  * rate limit per client IP (token bucket): HTTP 429; on WebSocket each call over the limit gets
    -32029 "rate limit exceeded".
  * unsafe methods (`engine_createBlock`, `system_peers`, and extra methods marked `unsafe = True`)
    answer -32601 "RPC call is unsafe to be called externally" unless allowed: "unsafe" allows them,
    "safe" refuses them, "auto" allows them only when the server listens on a loopback address.
  * more than `max_connections` TCP connections: further connections are closed at once.
  * a WebSocket client that does not read its messages: once its send queue is full the server
    drops the connection (logged); nothing on the node side ever waits for a client.
  * browsers: requests carrying an `Origin` header must match `cors` (default: localhost and
    127.0.0.1 on any port, and polkadot.js.org, as Substrate's default `--rpc-cors`); "all" allows any.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from typing import Any, Iterable

from aiohttp import WSMsgType, web

from primitives.errors import ChainError
from rpc import limits as L
from rpc.jsonshapes import dumps, health_to_json, loads
from rpc.methods import SUBSCRIPTION_KINDS, Method, Param, SubscriptionSource, build_table

log = logging.getLogger("gridchain.rpc")

#: Substrate's default `--rpc-cors` for a non-dev node.
#: browser origins allowed by default: pages served from this machine only (a web wallet elsewhere
#: must be allowed explicitly, so no remote page can drive a local node's unsafe methods)
DEFAULT_CORS = ("http://localhost:*", "http://127.0.0.1:*", "https://localhost:*",
                "https://127.0.0.1:*")

_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}

#: unsubscribe method name -> subscription kind
_UNSUBSCRIBE_KIND = {u: kind for kind, (_n, unsubs) in SUBSCRIPTION_KINDS.items() for u in unsubs}


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": rid}


_PARSE_ERROR = dumps(_error(None, L.PARSE_ERROR, "Parse error"))
_EMPTY_BATCH = _error(None, L.INVALID_REQUEST, "Invalid request: empty batch")
_RATE_LIMITED_BODY = dumps(_error(None, L.RATE_LIMITED, "rate limit exceeded"))


class _LimitedServer(web.Server):
    """aiohttp's low-level server with a cap on open TCP connections."""

    def __init__(self, handler: Any, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.rejected_connections = 0

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        if len(self._connections) >= self.max_connections:
            self.rejected_connections += 1
            log.debug("RPC connection refused: %d connections open (max %d)",
                      len(self._connections), self.max_connections)
            transport.close()
            return
        super().connection_made(handler, transport)


class RpcServer:
    def __init__(
        self,
        node: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 9944,
        max_request_bytes: int = L.DEFAULT_MAX_REQUEST_BYTES,
        max_subscriptions_per_connection: int = L.DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
        rate_limit_per_second: int | None = None,
        rpc_methods_unsafe: str = "auto",
        max_connections: int = L.DEFAULT_MAX_CONNECTIONS,
        cors: str | Iterable[str] | None = DEFAULT_CORS,
        max_batch_len: int = L.DEFAULT_MAX_BATCH_LEN,
        ws_send_queue: int = L.DEFAULT_WS_SEND_QUEUE,
        ws_max_inflight: int = L.DEFAULT_WS_MAX_INFLIGHT,
        ws_heartbeat: float | None = 30.0,
    ) -> None:
        if rpc_methods_unsafe not in ("auto", "safe", "unsafe"):
            raise ValueError('rpc_methods_unsafe must be "auto", "safe" or "unsafe"')
        self.node = node
        self.host = host
        self._requested_port = port
        self.max_request_bytes = max_request_bytes
        self.max_subscriptions_per_connection = max_subscriptions_per_connection
        self.rpc_methods_unsafe = rpc_methods_unsafe
        self.allow_unsafe = (rpc_methods_unsafe == "unsafe"
                             or (rpc_methods_unsafe == "auto" and L.is_loopback_host(host)))
        self.max_connections = max_connections
        self.max_batch_len = max_batch_len
        self.ws_send_queue = ws_send_queue
        self.ws_max_inflight = ws_max_inflight
        self.ws_heartbeat = ws_heartbeat
        self._limiter = L.RateLimiter(rate_limit_per_second) if rate_limit_per_second else None
        if cors is None or cors == "all" or cors == "*":
            self._cors: tuple[str, ...] | None = None if cors is None else ("*",)
        else:
            self._cors = (cors,) if isinstance(cors, str) else tuple(cors)
        self.methods: dict[str, Method] = build_table(node)
        self._runner: web.ServerRunner | None = None
        self._server: _LimitedServer | None = None
        self._ws: set[_WsConnection] = set()
        self.port: int | None = None

    # ------------------------------------------------------------------------------------------
    # life cycle
    # ------------------------------------------------------------------------------------------

    def register(self, name: str, handler: Any, params: Iterable[Param] = (), *, unsafe: bool = False,
                 raw: bool = False) -> None:
        """Add (or replace) a method. With raw=True the handler gets the JSON params unchanged."""
        self.methods[name] = Method(name, handler, tuple(params), unsafe=unsafe, raw=raw)

    async def start(self) -> None:
        self._server = _LimitedServer(self._handle, max_connections=self.max_connections,
                                      access_log=None, keepalive_timeout=75.0)
        self._runner = web.ServerRunner(self._server, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("RPC server listening on %s:%d (unsafe methods %s)", self.host, self.port,
                 "allowed" if self.allow_unsafe else "refused")

    async def stop(self) -> None:
        for conn in list(self._ws):
            await conn.close(1001, b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # ------------------------------------------------------------------------------------------
    # HTTP
    # ------------------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            origin = request.headers.get("Origin")
            if origin is not None and not self._origin_allowed(origin):
                return web.Response(status=403, text="origin not allowed\n")
            method = request.method
            if method == "POST":
                resp = await self._http_post(request)
            elif method == "GET":
                if request.headers.get("Upgrade", "").lower() == "websocket":
                    return await self._websocket(request)
                if request.path in ("/health", "/health/"):
                    if self._limiter is not None and not self._limiter.allow(request.remote or ""):
                        return self._too_many()
                    body = dumps(health_to_json(self.node.health()))
                    resp = web.Response(body=body, headers=_JSON_HEADERS)
                else:
                    resp = web.Response(status=405, text="use POST for JSON-RPC or a WebSocket\n",
                                        headers={"Allow": "POST, GET, OPTIONS"})
            elif method == "OPTIONS":
                resp = web.Response(status=200)
                resp.headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
                resp.headers["Access-Control-Allow-Headers"] = "content-type"
            else:
                resp = web.Response(status=405, headers={"Allow": "POST, GET, OPTIONS"})
            if origin is not None:
                resp.headers["Access-Control-Allow-Origin"] = origin
                resp.headers["Vary"] = "Origin"
            return resp
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:  # noqa: BLE001 - the server must keep serving
            log.exception("unexpected error handling an RPC request")
            return web.Response(status=500, text="internal error\n")

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self._cors
        if allowed is None or "*" in allowed:
            return True
        for pattern in allowed:
            if pattern == origin:
                return True
            if pattern.endswith(":*"):
                base = pattern[:-2]
                if origin == base or (origin.startswith(base + ":") and origin[len(base) + 1:].isdigit()):
                    return True
        return False

    async def _http_post(self, request: web.BaseRequest) -> web.StreamResponse:
        client = request.remote or ""
        limiter = self._limiter
        if limiter is not None and not limiter.allow(client):
            return self._too_many()
        body = await self._read_body(request)
        if body is None:
            resp = web.Response(status=413, body=dumps(_error(
                None, L.OVERSIZED_REQUEST,
                f"Request is too big (limit {self.max_request_bytes} bytes)")), headers=_JSON_HEADERS)
            resp.force_close()
            return resp
        try:
            payload = loads(body)
        except (ValueError, RecursionError):
            return web.Response(body=_PARSE_ERROR, headers=_JSON_HEADERS)
        if (limiter is not None and type(payload) is list and len(payload) > 1
                and not limiter.allow(client, len(payload) - 1)):
            return self._too_many()
        out = await self._process(payload, None, client, False)
        if out is None:  # notifications only: nothing to say
            return web.Response(status=200, headers=_JSON_HEADERS)
        return web.Response(body=out, headers=_JSON_HEADERS)

    def _too_many(self) -> web.Response:
        return web.Response(status=429, body=_RATE_LIMITED_BODY,
                            headers={**_JSON_HEADERS, "Retry-After": "1"})

    async def _read_body(self, request: web.BaseRequest) -> bytes | None:
        limit = self.max_request_bytes
        length = request.content_length
        if length is not None:
            if length > limit:
                return None
            if length == 0:
                return b""
            try:
                return await request.content.readexactly(length)
            except asyncio.IncompleteReadError:
                raise ConnectionResetError("client closed the connection mid-request") from None
        chunks = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    # ------------------------------------------------------------------------------------------
    # JSON-RPC processing (both transports)
    # ------------------------------------------------------------------------------------------

    async def _process(self, payload: Any, conn: "_WsConnection | None", client: str,
                       rate_check: bool) -> bytes | None:
        """Answer one parsed message (a request or a batch); None when nothing is to be sent."""
        if type(payload) is list:
            if not payload:
                return dumps(_EMPTY_BATCH)
            if len(payload) > self.max_batch_len:
                return dumps(_error(None, L.TOO_BIG_BATCH,
                                    f"Too big batch request (limit {self.max_batch_len} calls)"))
            responses = []
            for item in payload:
                r = await self._call(item, conn, client, rate_check)
                if r is not None:
                    responses.append(r)
            if not responses:
                return None
            return self._dump(responses)
        response = await self._call(payload, conn, client, rate_check)
        if response is None:
            return None
        return self._dump(response)

    def _dump(self, response: Any) -> bytes:
        try:
            return dumps(response)
        except (TypeError, ValueError, OverflowError, RecursionError):
            if type(response) is list:
                return b"[" + b",".join(self._dump(r) for r in response) + b"]"
            log.exception("RPC result of %r is not JSON-serializable", response.get("id"))
            return dumps(_error(response.get("id"), L.INTERNAL_ERROR, "Internal error"))

    async def _call(self, req: Any, conn: "_WsConnection | None", client: str,
                    rate_check: bool) -> dict | None:
        """Run one request object; return its response, or None for a notification."""
        if type(req) is not dict:
            return _error(None, L.INVALID_REQUEST, "Invalid request: expected a request object")
        notification = "id" not in req
        rid = req.get("id")
        if rid is not None and type(rid) is not int and type(rid) is not str:
            return _error(None, L.INVALID_REQUEST,
                          "Invalid request: id must be a string, an integer or null")
        if req.get("jsonrpc") != "2.0":
            return _error(rid, L.INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"')
        name = req.get("method")
        if type(name) is not str:
            return _error(rid, L.INVALID_REQUEST, "Invalid request: method must be a string")
        if rate_check and self._limiter is not None and not self._limiter.allow(client):
            return None if notification else _error(rid, L.RATE_LIMITED, "rate limit exceeded")
        method = self.methods.get(name)
        if method is None:
            return None if notification else _error(rid, L.METHOD_NOT_FOUND, "Method not found")
        if method.unsafe and not self.allow_unsafe:
            return None if notification else _error(rid, L.METHOD_NOT_FOUND, L.UNSAFE_MESSAGE)
        params = req.get("params")
        try:
            if method.raw:
                result = method.handler(params if params is not None else [])
                if inspect.isawaitable(result):
                    result = await result
            elif method.subscription:
                if notification:
                    return None
                result = await self._subscribe(method, params, conn)
            elif name in _UNSUBSCRIBE_KIND:
                (sub_id,) = method.bind(params)
                result = False if conn is None else conn.unsubscribe(sub_id, _UNSUBSCRIBE_KIND[name])
            else:
                result = method.handler(*method.bind(params))
                if method.is_coroutine:
                    result = await result
        except ChainError as e:
            if notification:
                return None
            code = getattr(e, "rpc_code", L.INTERNAL_ERROR)
            if type(code) is not int:
                code = L.INTERNAL_ERROR
            return _error(rid, code, str(getattr(e, "message", e)), getattr(e, "data", None))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - never leak internals to the client
            log.exception("RPC method %s failed", name)
            return None if notification else _error(rid, L.INTERNAL_ERROR, "Internal error")
        if notification:
            return None
        return {"jsonrpc": "2.0", "result": result, "id": rid}

    async def _subscribe(self, method: Method, params: Any, conn: "_WsConnection | None") -> str:
        if conn is None:
            raise _SubscriptionError(L.METHOD_NOT_FOUND,
                                     "Subscriptions are only available over a WebSocket connection")
        if len(conn.subs) >= self.max_subscriptions_per_connection:
            raise _SubscriptionError(
                L.TOO_MANY_SUBSCRIPTIONS,
                f"Too many subscriptions on the connection (limit {self.max_subscriptions_per_connection})")
        args = method.bind(params)
        source = method.handler(*args)
        if inspect.isawaitable(source):
            source = await source
        return conn.add_subscription(source)

    # ------------------------------------------------------------------------------------------
    # WebSocket
    # ------------------------------------------------------------------------------------------

    async def _websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self.max_request_bytes, compress=False,
                                   heartbeat=self.ws_heartbeat, decode_text=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="bad WebSocket handshake\n")
        await ws.prepare(request)
        conn = _WsConnection(self, ws, request)
        self._ws.add(conn)
        try:
            while True:
                msg = await ws.receive()
                t = msg.type
                if t is WSMsgType.TEXT or t is WSMsgType.BINARY:
                    if len(conn.inflight) >= self.ws_max_inflight:
                        await asyncio.wait(conn.inflight, return_when=asyncio.FIRST_COMPLETED)
                    if conn.closed:
                        break
                    conn.spawn(msg.data)
                elif t is WSMsgType.ERROR:
                    log.debug("WebSocket %s: %s", conn.client, ws.exception())
                    break
                else:  # CLOSE, CLOSING, CLOSED
                    break
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self._ws.discard(conn)
            await conn.close(1000, b"")
        return ws


class _SubscriptionError(ChainError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.rpc_code = code


class _Subscription:
    __slots__ = ("kind", "source", "task")

    def __init__(self, kind: str, source: SubscriptionSource) -> None:
        self.kind = kind
        self.source = source
        self.task: asyncio.Task | None = None


class _WsConnection:
    """One WebSocket client: its send queue, in-flight calls and subscriptions."""

    def __init__(self, server: RpcServer, ws: web.WebSocketResponse, request: web.BaseRequest) -> None:
        self.server = server
        self.ws = ws
        self.transport = request.transport
        self.client = request.remote or ""
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=server.ws_send_queue)
        self.inflight: set[asyncio.Task] = set()
        self.subs: dict[str, _Subscription] = {}
        self._to_start: list[str] = []
        self.closed = False
        self._closing_task: asyncio.Task | None = None
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
            self.send(_PARSE_ERROR)
            return
        try:
            out = await self.server._process(payload, self, self.client, True)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("unexpected error processing a WebSocket message")
            return
        if out is not None:
            self.send(out)
        if self._to_start:
            self._start_subscriptions()

    # -- sending -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("RPC WebSocket client %s is not reading (%d messages queued): dropping it",
                        self.client, self.queue.qsize())
            self.abort(1008, b"client too slow")

    async def _send_loop(self) -> None:
        ws = self.ws
        queue = self.queue
        try:
            while True:
                data = await queue.get()
                await ws.send_frame(data, WSMsgType.TEXT)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - connection gone
            log.debug("WebSocket send to %s failed: %s", self.client, e)
            self.abort(1011, b"")

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
            _close_iterator_soon(sub.source.iterator)
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
        self.sender.cancel()
        for task in list(self.inflight):
            if task is not asyncio.current_task():
                task.cancel()
        for sub in list(self.subs.values()):
            if sub.task is not None:
                sub.task.cancel()
            else:
                _close_iterator_soon(sub.source.iterator)
        self.subs.clear()

    def abort(self, code: int, message: bytes) -> None:
        """Drop the connection from synchronous code (a full queue, a failed send)."""
        if self.closed:
            return
        self._cancel_all()
        self._closing_task = asyncio.create_task(self._close_ws(code, message))

    async def close(self, code: int, message: bytes) -> None:
        if not self.closed:
            self._cancel_all()
            await self._close_ws(code, message)
        elif self._closing_task is not None:
            await asyncio.gather(self._closing_task, return_exceptions=True)

    async def _close_ws(self, code: int, message: bytes) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message), 2.0)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001
            pass
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def _close_iterator_soon(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        task = asyncio.ensure_future(aclose())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

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
  * an answer over `max_response_bytes` -> -32008 for that call; a batch whose answers together pass
    it -> one -32011 error, and its remaining calls are not run. Large answers that only change with
    the runtime (the metadata) come from the method table already serialized (`RawJson`) and are
    spliced in, so a batch repeating one refers to a single buffer. A batch gives the event loop back
    between its calls, so block authoring and other clients run while it is answered.
  * rate limit per client IP (token bucket): HTTP 429; on WebSocket each call over the limit gets
    -32029 "rate limit exceeded". On by default when listening beyond loopback.
  * unsafe methods (`engine_createBlock`, `system_peers`, and extra methods marked `unsafe = True`)
    answer -32601 "RPC call is unsafe to be called externally" unless allowed: "unsafe" allows them,
    "safe" refuses them, "auto" allows them only when the server listens on a loopback address.
  * connections are admitted at accept time (`limits.ConnectionGate`): at most `max_connections`, at
    most `max_connections_per_ip` from one address, and the last `reserved_loopback_connections`
    slots only for 127.0.0.1/::1. A refused connection is closed before aiohttp sees it: no log
    above debug, counted in `refused_connections` and `refused_by_reason`. A connection that has not
    sent complete request headers within `header_timeout_s` is closed (`header_timeouts`).
  * a WebSocket client that does not read its messages: past `ws_send_high_water` bytes waiting for
    it the server stops reading its requests (TCP backpressure); past `ws_send_queue_bytes` (or
    `ws_send_queue` messages) it drops the connection (logged); nothing on the node side ever waits
    for a client.
  * browsers: requests carrying an `Origin` header must match `cors` (default: localhost and
    127.0.0.1 on any port, http and https); "all" allows any. A page served by this server itself
    (the web app) is allowed too: an Origin equal to the request's own `http(s)://Host` when that
    host is an IP address or localhost, so the app works from another machine with --rpc-external.
    A host *name* is not enough for that: a page on a rebound DNS name would have an Origin matching
    its Host (DNS rebinding), so such origins must be listed in `cors`.
  * the web app: with `app_dir`, GET and HEAD under `/app` serve the built app (`rpc.app_files`:
    `/app` redirects to `/app/`, index.html, hashed assets cached long, a missing build answers 503
    with the command that builds it); without it `/app` is not found (404). Its files are public and
    read-only, so they are answered whatever the Origin (the rate limit still applies).
"""
from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
from pathlib import Path
from typing import Any, Iterable

from aiohttp import WSMsgType, web

from primitives.errors import ChainError
from rpc import limits as L
from rpc.admission import GuardedServer
from rpc.app_files import AppFiles, is_app_path
from rpc.jsonshapes import dumps, health_to_json, loads
from rpc.methods import SUBSCRIPTION_KINDS, Method, Param, RawJson, build_table
from rpc.ws_connection import PARSE_ERROR_BODY, WsConnection

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


_EMPTY_BATCH = _error(None, L.INVALID_REQUEST, "Invalid request: empty batch")
_RATE_LIMITED_BODY = dumps(_error(None, L.RATE_LIMITED, "rate limit exceeded"))
_RESULT_PREFIX = b'{"jsonrpc":"2.0","result":'
#: pieces of a streamed answer smaller than this are gathered into writes of at least this size
_STREAM_CHUNK = 64 * 1024


def _literal_host(host: str) -> bool:
    """True when a Host header names an IP address or localhost (with or without a port): names a
    DNS rebinding page cannot have."""
    if host.startswith("["):                              # [IPv6] or [IPv6]:port
        name = host[1:host.find("]")] if "]" in host else ""
    else:                                                 # IPv4 or a name, perhaps with :port
        name = host.rsplit(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _allow_origin(resp: web.StreamResponse, origin: str) -> None:
    resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Vary"] = "Origin"


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
        rate_limit_burst: int | None = None,
        rpc_methods_unsafe: str = "auto",
        max_connections: int = L.DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: int = L.DEFAULT_MAX_CONNECTIONS_PER_IP,
        reserved_loopback_connections: int = L.DEFAULT_RESERVED_LOOPBACK_CONNECTIONS,
        header_timeout_s: float = L.DEFAULT_HEADER_TIMEOUT_S,
        cors: str | Iterable[str] | None = DEFAULT_CORS,
        max_batch_len: int = L.DEFAULT_MAX_BATCH_LEN,
        max_response_bytes: int = L.DEFAULT_MAX_RESPONSE_BYTES,
        ws_send_queue: int = L.DEFAULT_WS_SEND_QUEUE,
        ws_send_queue_bytes: int = L.DEFAULT_WS_SEND_QUEUE_BYTES,
        ws_send_high_water: int = L.DEFAULT_WS_SEND_HIGH_WATER,
        ws_max_inflight: int = L.DEFAULT_WS_MAX_INFLIGHT,
        ws_heartbeat: float | None = 30.0,
        app_dir: str | Path | None = None,
    ) -> None:
        """`rate_limit_per_second`: calls per second per client address; None picks the default
        (off on loopback, `limits.DEFAULT_EXTERNAL_RATE_LIMIT` beyond it), 0 turns it off.
        `rate_limit_burst` defaults to one second's worth (or to one full batch for the default).
        `app_dir`: the web app's build directory, served at /app/ (None: no app)."""
        if rpc_methods_unsafe not in ("auto", "safe", "unsafe"):
            raise ValueError('rpc_methods_unsafe must be "auto", "safe" or "unsafe"')
        if ws_send_high_water > ws_send_queue_bytes:
            raise ValueError("ws_send_high_water must not exceed ws_send_queue_bytes")
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
        self.max_response_bytes = max_response_bytes
        self.ws_send_queue = ws_send_queue
        self.ws_send_queue_bytes = ws_send_queue_bytes
        self.ws_send_high_water = ws_send_high_water
        self.ws_max_inflight = ws_max_inflight
        self.ws_heartbeat = ws_heartbeat
        self.header_timeout_s = header_timeout_s
        self._gate = L.ConnectionGate(max_connections, max_connections_per_ip, reserved_loopback_connections)
        if rate_limit_per_second is None and not L.is_loopback_host(host):
            rate_limit_per_second = L.DEFAULT_EXTERNAL_RATE_LIMIT
            if rate_limit_burst is None:
                rate_limit_burst = L.DEFAULT_EXTERNAL_RATE_BURST
        #: effective rate limit (None: off) and burst, for the startup log and the tests
        self.rate_limit_per_second = rate_limit_per_second or None
        self.rate_limit_burst = (rate_limit_burst or rate_limit_per_second) if rate_limit_per_second else None
        self._limiter = (L.RateLimiter(rate_limit_per_second, self.rate_limit_burst)
                         if rate_limit_per_second else None)
        if cors is None or cors == "all" or cors == "*":
            self._cors: tuple[str, ...] | None = None if cors is None else ("*",)
        else:
            self._cors = (cors,) if isinstance(cors, str) else tuple(cors)
        self.app: AppFiles | None = None if app_dir is None else AppFiles(app_dir)
        self.methods: dict[str, Method] = build_table(node)
        self._runner: web.ServerRunner | None = None
        self._server: GuardedServer | None = None
        self._ws: set[WsConnection] = set()
        self.port: int | None = None

    # ------------------------------------------------------------------------------------------
    # life cycle
    # ------------------------------------------------------------------------------------------

    def register(self, name: str, handler: Any, params: Iterable[Param] = (), *, unsafe: bool = False,
                 raw: bool = False) -> None:
        """Add (or replace) a method. With raw=True the handler gets the JSON params unchanged."""
        self.methods[name] = Method(name, handler, tuple(params), unsafe=unsafe, raw=raw)

    @property
    def refused_connections(self) -> int:
        """Connections refused at accept time, for every reason (for the node's metrics)."""
        return self._gate.refused

    @property
    def refused_by_reason(self) -> dict[str, int]:
        """Refusals by reason: "max_connections" (server full, or only loopback slots left) and
        "max_per_ip" (the client's address holds its share); a copy."""
        return dict(self._gate.refused_by_reason)

    @property
    def header_timeouts(self) -> int:
        """Connections closed for not sending complete request headers in time."""
        return 0 if self._server is None else self._server.header_timeouts

    async def start(self) -> None:
        self._server = GuardedServer(self._handle, gate=self._gate, header_timeout_s=self.header_timeout_s,
                                      access_log=None, keepalive_timeout=75.0)
        self._runner = web.ServerRunner(self._server, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]
        if self.app is not None:
            self.app.check()
        log.info("RPC server listening on %s:%d (unsafe methods %s, rate limit %s)", self.host, self.port,
                 "allowed" if self.allow_unsafe else "refused",
                 f"{self.rate_limit_per_second} calls/s per address" if self._limiter else "off")

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

    @property
    def app_url(self) -> str | None:
        """The web app's address (None when the app is off)."""
        return None if self.app is None else self.url + "app/"

    # ------------------------------------------------------------------------------------------
    # HTTP
    # ------------------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            method = request.method
            if (method in ("GET", "HEAD") and is_app_path(request.path)
                    and request.headers.get("Upgrade", "").lower() != "websocket"):
                return await self._app_file(request)
            origin = request.headers.get("Origin")
            if origin is not None and not self._origin_allowed(origin, request.headers.get("Host")):
                return web.Response(status=403, text="origin not allowed\n")
            if method == "POST":
                resp = await self._http_post(request, origin)
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
            if origin is not None and not resp.prepared:
                _allow_origin(resp, origin)
            return resp
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:  # noqa: BLE001 - the server must keep serving
            log.exception("unexpected error handling an RPC request")
            return web.Response(status=500, text="internal error\n")

    async def _app_file(self, request: web.BaseRequest) -> web.StreamResponse:
        """A file of the web app, or 404 when the app is off."""
        if self.app is None:
            return web.Response(status=404, text="the web app is off on this node (--no-app)\n")
        if self._limiter is not None and not self._limiter.allow(request.remote or ""):
            return self._too_many()
        return await self.app.handle(request)

    def _origin_allowed(self, origin: str, host: str | None = None) -> bool:
        allowed = self._cors
        if allowed is None or "*" in allowed:
            return True
        if host is not None and origin in (f"http://{host}", f"https://{host}") and _literal_host(host):
            return True       # a page this server served (the web app), addressed by IP or localhost
        for pattern in allowed:
            if pattern == origin:
                return True
            if pattern.endswith(":*"):
                base = pattern[:-2]
                if origin == base or (origin.startswith(base + ":") and L.is_port(origin[len(base) + 1:])):
                    return True
        return False

    async def _http_post(self, request: web.BaseRequest, origin: str | None) -> web.StreamResponse:
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
            return web.Response(body=PARSE_ERROR_BODY, headers=_JSON_HEADERS)
        if (limiter is not None and type(payload) is list and len(payload) > 1
                and not limiter.allow(client, len(payload) - 1)):
            return self._too_many()
        out = await self._process(payload, None, client, False)
        if out is None:  # notifications only: nothing to say
            return web.Response(status=200, headers=_JSON_HEADERS)
        if len(out) <= 3:
            return web.Response(body=b"".join(out), headers=_JSON_HEADERS)
        return await self._stream(request, origin, out)

    async def _stream(self, request: web.BaseRequest, origin: str | None,
                      parts: list[bytes]) -> web.StreamResponse:
        """Write a batch's answer piece by piece, waiting for the client to take each (the writer
        drains past 64 KiB), instead of joining it into one buffer first: a batch repeating a cached
        answer then costs references to it, not a copy per call and another in the socket buffer."""
        resp = web.StreamResponse(headers=_JSON_HEADERS)
        resp.content_length = sum(map(len, parts))
        if origin is not None:
            _allow_origin(resp, origin)
        await resp.prepare(request)
        small = bytearray()
        for part in parts:
            if len(part) < _STREAM_CHUNK:
                small += part
                if len(small) < _STREAM_CHUNK:
                    continue
                part = bytes(small)
                small.clear()
            elif small:
                await resp.write(bytes(small))
                small.clear()
            await resp.write(part)
        if small:
            await resp.write(bytes(small))
        await resp.write_eof()
        return resp

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

    async def _process(self, payload: Any, conn: "WsConnection | None", client: str,
                       rate_check: bool) -> list[bytes] | None:
        """Answer one parsed message (a request or a batch): the answer's JSON in pieces, to be
        joined or written in order; None when nothing is to be sent."""
        if type(payload) is list:
            if not payload:
                return [dumps(_EMPTY_BATCH)]
            if len(payload) > self.max_batch_len:
                return [dumps(_error(None, L.TOO_BIG_BATCH,
                                     f"Too big batch request (limit {self.max_batch_len} calls)"))]
            return await self._process_batch(payload, conn, client, rate_check)
        response = await self._call(payload, conn, client, rate_check)
        if response is None:
            return None
        out = self._encode(response)
        if sum(map(len, out)) > self.max_response_bytes:
            return [dumps(_error(response.get("id"), L.OVERSIZED_RESPONSE,
                                 f"Response is too big (limit {self.max_response_bytes} bytes)"))]
        return out

    async def _process_batch(self, batch: list, conn: "WsConnection | None", client: str,
                             rate_check: bool) -> list[bytes] | None:
        """Run a batch's calls in order, giving the event loop back between them, and stop as soon as
        their answers pass `max_response_bytes` (one -32011 error then replaces the whole answer).

        On a WebSocket the bytes built so far also count against the connection's send cap while the
        batch runs, so many batches in flight on one connection cannot pile up more than it allows
        (-32009 then, as for a busy server)."""
        limit = self.max_response_bytes
        parts: list[bytes] = [b"["]
        size = 1
        reserved = 0
        try:
            for i, item in enumerate(batch):
                if i:
                    await asyncio.sleep(0)
                response = await self._call(item, conn, client, rate_check)
                if response is None:
                    continue
                encoded = self._encode(response)
                n = sum(map(len, encoded)) + 1  # and the comma (or the closing bracket)
                size += n
                if size > limit:
                    return [dumps(_error(None, L.TOO_BIG_BATCH_RESPONSE,
                                         f"Batch response is too big (limit {limit} bytes)"))]
                if conn is not None:
                    if not conn.reserve(n):
                        return [dumps(_error(None, L.SERVER_IS_BUSY,
                                             "Server is busy: too many answers waiting for this connection "
                                             "to read them"))]
                    reserved += n
                parts += encoded
                parts.append(b",")
        finally:
            if reserved:
                conn.release(reserved)  # type: ignore[union-attr]
        if len(parts) == 1:
            return None
        parts[-1] = b"]"
        return parts

    def _encode(self, response: dict) -> list[bytes]:
        """A response's JSON as a list of byte strings: a pre-serialized result is one of them,
        unchanged (not copied), between the envelope's two halves."""
        result = response.get("result")
        if type(result) is RawJson:
            return [_RESULT_PREFIX, result.data, b',"id":' + dumps(response["id"]) + b"}"]
        return [self._dump(response)]

    def _dump(self, response: Any) -> bytes:
        try:
            return dumps(response)
        except (TypeError, ValueError, OverflowError, RecursionError):
            if type(response) is list:
                return b"[" + b",".join(self._dump(r) for r in response) + b"]"
            log.exception("RPC result of %r is not JSON-serializable", response.get("id"))
            return dumps(_error(response.get("id"), L.INTERNAL_ERROR, "Internal error"))

    async def _call(self, req: Any, conn: "WsConnection | None", client: str,
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

    async def _subscribe(self, method: Method, params: Any, conn: "WsConnection | None") -> str:
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
        conn = WsConnection(self, ws, request)
        self._ws.add(conn)
        try:
            while True:
                if conn.pending_bytes > self.ws_send_high_water:
                    # stop reading this client until it reads its answers (TCP backpressure)
                    await conn.drained.wait()
                    if conn.closed:
                        break
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

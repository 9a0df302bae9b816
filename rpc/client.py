"""gridchain RPC client: what wallets, meters and scripts use to talk to a node.

    async with AsyncClient("http://127.0.0.1:9944") as c:
        xt = await c.build_extrinsic(keypair, "balances", "transfer", {"dest": bob, "amount": 10})
        result = await c.submit_and_watch(xt)            # TxResult(hash, "finalized", block_hash, ...)

    with Client("ws://127.0.0.1:9944") as c:             # the same, blocking, from plain code
        print(c.request("system_health"))

Over an http(s) URL each call is a POST and subscriptions open a WebSocket to the same host and
port; over a ws(s) URL everything shares one WebSocket. Errors the node returns are `RpcError`
(code, message, data). Only `primitives` and `rpc` are imported, so meters need nothing else.

Building a call from metadata: `state_getMetadata` returns JSON
`{"pallets": [{"name", "index", "calls": [{"name", "index", "args": [{"name", "type"}]}]}]}`;
arguments are plain msgpack values in declared order, converted by `ARG_CONVERTERS` below.
"""
from __future__ import annotations

import asyncio
import itertools
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgpack

from primitives import ss58
from primitives.codec import Struct
from primitives.extrinsic import Call, Mortality, extrinsic_hash, sign_extrinsic
from primitives.keys import Keypair
from rpc.jsonshapes import dumps, header_from_json, loads, tx_status_name

__all__ = ["RpcError", "TxResult", "Subscription", "AsyncClient", "Client", "SyncSubscription",
           "convert_arg", "ARG_CONVERTERS"]

#: most items a page of an `energy_*` list holds (the node's `MAX_PAGE`)
PAGE_LIMIT = 1000

_CLOSED = object()  # the connection went away
_END = object()     # unsubscribed


class RpcError(Exception):
    """An error response from the node (or a transport-level refusal mapped to a JSON-RPC code)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        text = f"{code}: {message}"
        if data is not None:
            text += f" ({data})"
        super().__init__(text)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def from_json(cls, err: Any) -> "RpcError":
        if type(err) is not dict:
            return cls(-32603, f"malformed error object {err!r}")
        return cls(err.get("code", -32603), str(err.get("message", "")), err.get("data"))


@dataclass
class TxResult:
    hash: bytes
    status: str                        # "inBlock" or "finalized" (what `until` asked for)
    block_hash: bytes | None
    statuses: list = field(default_factory=list)   # every TransactionStatus JSON value seen
    #: whether the call succeeded in its block (None: not looked up). An included extrinsic whose
    #: call failed still paid its fee and used its nonce; `error` is the runtime's sentence.
    success: bool | None = None
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# call arguments from metadata types
# ---------------------------------------------------------------------------------------------

def _to_bytes(v: Any, name: str, length: int | None = None) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
    elif isinstance(v, str) and v.startswith(("0x", "0X")):
        try:
            b = bytes.fromhex(v[2:])
        except ValueError:
            raise ValueError(f"{name}: not valid hex") from None
    elif isinstance(v, str) and length == 32:
        try:
            b = ss58.decode_with_prefix(v)[0]
        except ValueError as e:
            raise ValueError(f"{name}: not an SS58 address or 0x-hex ({e})") from None
    else:
        raise ValueError(f"{name}: expected bytes or 0x-hex, got {type(v).__name__}")
    if length is not None and len(b) != length:
        raise ValueError(f"{name}: expected {length} bytes, got {len(b)}")
    return b


def _uint(bits: int) -> Callable[[Any, str], int]:
    def conv(v: Any, name: str) -> int:
        if type(v) is not int or not 0 <= v < 2**bits:
            raise ValueError(f"{name}: expected u{bits}, got {v!r}")
        return v
    return conv


def _u128(v: Any, name: str) -> bytes:
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return bytes(v)
    if type(v) is not int or not 0 <= v < 2**128:
        raise ValueError(f"{name}: expected u128, got {v!r}")
    return v.to_bytes(16, "big")


def _bool(v: Any, name: str) -> bool:
    if type(v) is not bool:
        raise ValueError(f"{name}: expected bool, got {v!r}")
    return v


def _str(v: Any, name: str) -> str:
    if type(v) is not str:
        raise ValueError(f"{name}: expected str, got {type(v).__name__}")
    return v


def _passthrough(v: Any, name: str) -> Any:
    """Struct-typed and raw arguments: a primitives Struct, or its fields as a list, as given."""
    if isinstance(v, Struct):
        return v.to_plain()
    if isinstance(v, tuple):
        return list(v)
    return v


#: scalar type names (as the metadata spells them) -> converter(value, arg name)
ARG_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "u8": _uint(8), "u16": _uint(16), "u32": _uint(32), "u64": _uint(64), "u128": _u128,
    "bool": _bool, "str": _str, "bytes": lambda v, n: _to_bytes(v, n), "raw": _passthrough,
    # an account: an SS58 address, its 32-byte public key, or that key as 0x-hex
    "AccountId": lambda v, n: _to_bytes(v, n, 32),
}
_FIXED_BYTES = re.compile(r"\[u8;\s*(\d+)\]")


def convert_arg(t: Any, v: Any, name: str = "arg") -> Any:
    """Turn a user-supplied value into the plain msgpack value of metadata type `t`."""
    if isinstance(t, str):
        conv = ARG_CONVERTERS.get(t)
        if conv is not None:
            return conv(v, name)
        m = _FIXED_BYTES.fullmatch(t)
        if m:
            return _to_bytes(v, name, int(m.group(1)))
        return _passthrough(v, name)  # a struct name
    if isinstance(t, dict):
        if "option" in t:
            return None if v is None else convert_arg(t["option"], v, name)
        if "vec" in t:
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"{name}: expected a list, got {type(v).__name__}")
            return [convert_arg(t["vec"], x, f"{name}[{i}]") for i, x in enumerate(v)]
        if "tuple" in t:
            if not isinstance(v, (list, tuple)) or len(v) != len(t["tuple"]):
                raise ValueError(f"{name}: expected a {len(t['tuple'])}-tuple")
            return [convert_arg(tt, x, f"{name}[{i}]") for i, (tt, x) in enumerate(zip(t["tuple"], v))]
        if "bytes" in t:
            return _to_bytes(v, name)
        if "str" in t:
            return _str(v, name)
    raise ValueError(f"{name}: unsupported metadata type {t!r}")


def _find(items: list, name: str, what: str) -> dict:
    for it in items:
        if it.get("name") == name:
            return it
    folded = name.replace("_", "").casefold()
    for it in items:
        if str(it.get("name", "")).replace("_", "").casefold() == folded:
            return it
    known = ", ".join(sorted(str(i.get("name")) for i in items))
    raise ValueError(f"unknown {what} {name!r} (known: {known})")


def call_from_metadata(metadata: dict, pallet: str, call: str, args: dict | list | tuple) -> Call:
    """Look up `pallet.call` in JSON metadata and encode `args` in declared order."""
    p = _find(metadata.get("pallets", []), pallet, "pallet")
    c = _find(p.get("calls") or [], call, f"call of pallet {p.get('name')}")
    decl = c.get("args", [])
    if isinstance(args, dict):
        names = [a["name"] for a in decl]
        extra = set(args) - set(names)
        if extra:
            raise ValueError(f"{p['name']}.{c['name']}: unknown argument(s) {sorted(extra)}")
        missing = [n for n in names if n not in args]
        if missing:
            raise ValueError(f"{p['name']}.{c['name']}: missing argument(s) {missing}")
        values = [args[n] for n in names]
    else:
        values = list(args)
        if len(values) != len(decl):
            raise ValueError(f"{p['name']}.{c['name']} takes {len(decl)} arguments, got {len(values)}")
    plain = tuple(convert_arg(a["type"], v, a["name"]) for a, v in zip(decl, values))
    return Call(int(p["index"]), int(c["index"]), plain)


# ---------------------------------------------------------------------------------------------
# transports
# ---------------------------------------------------------------------------------------------

class Subscription:
    """An open subscription: `async for result in sub`, then `await sub.unsubscribe()`.

    Iteration ends after `unsubscribe()`; it raises ConnectionError if the connection is lost.
    """

    def __init__(self, channel: "_WsChannel", sub_id: Any, unsubscribe_method: str,
                 queue: asyncio.Queue) -> None:
        self.id = sub_id
        self._channel = channel
        self._unsubscribe_method = unsubscribe_method
        self._queue = queue
        self._done = False

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            raise StopAsyncIteration
        if item is _CLOSED:
            self._done = True
            raise ConnectionError("subscription connection closed")
        return item

    async def next(self, timeout: float | None = None) -> Any:
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def unsubscribe(self) -> None:
        if self._done:
            return
        self._done = True
        self._channel.subs.pop(self.id, None)
        self._queue.put_nowait(_END)
        if not self._channel.closed:
            try:
                await self._channel.call_one(self._unsubscribe_method, [self.id])
            except (RpcError, ConnectionError, asyncio.TimeoutError):
                pass

    aclose = unsubscribe

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.unsubscribe()


class _WsChannel:
    """One WebSocket: requests matched to responses by id, notifications routed to subscriptions."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float,
                 ids: Iterator[int]) -> None:
        self.session = session
        self.url = url
        self.timeout = timeout
        self.ids = ids
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pending: dict[Any, tuple[asyncio.Future, bool]] = {}
        self.subs: dict[Any, asyncio.Queue] = {}
        self.closed = False
        self._reader: asyncio.Task | None = None

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=64 * 2**20, autoping=True)
        self._reader = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                try:
                    obj = loads(msg.data)
                except ValueError:
                    continue
                for item in (obj if type(obj) is list else (obj,)):
                    self._dispatch(item)
        except (asyncio.CancelledError, aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self._shutdown()

    def _dispatch(self, item: Any) -> None:
        if type(item) is not dict:
            return
        if "method" in item and "id" not in item:
            params = item.get("params")
            if type(params) is dict:
                q = self.subs.get(params.get("subscription"))
                if q is not None:
                    q.put_nowait(params.get("result"))
            return
        entry = self.pending.pop(item.get("id"), None)
        if entry is None:
            return
        fut, is_subscription = entry
        if is_subscription and "result" in item:
            # register the queue before anyone awaits: notifications may follow right behind
            self.subs.setdefault(item["result"], asyncio.Queue())
        if not fut.done():
            fut.set_result(item)

    def _shutdown(self) -> None:
        self.closed = True
        for fut, _ in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("WebSocket connection closed"))
        self.pending.clear()
        for q in self.subs.values():
            q.put_nowait(_CLOSED)

    async def send_requests(self, reqs: list[dict], subscription: bool = False) -> list[dict]:
        if self.closed or self.ws is None:
            raise ConnectionError("WebSocket connection closed")
        loop = asyncio.get_running_loop()
        futs = []
        for r in reqs:
            fut = loop.create_future()
            self.pending[r["id"]] = (fut, subscription)
            futs.append(fut)
        payload = reqs if len(reqs) > 1 else reqs[0]
        try:
            await self.ws.send_str(dumps(payload).decode())
            done = await asyncio.wait_for(asyncio.gather(*futs), self.timeout)
        except BaseException:
            for r in reqs:
                self.pending.pop(r["id"], None)
            raise
        return list(done)

    async def call_one(self, method: str, params: list, subscription: bool = False) -> Any:
        req = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        (resp,) = await self.send_requests([req], subscription)
        if "error" in resp:
            raise RpcError.from_json(resp["error"])
        return resp.get("result")

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self._shutdown()


def _ws_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


# ---------------------------------------------------------------------------------------------
# the client
# ---------------------------------------------------------------------------------------------

class AsyncClient:
    def __init__(self, url: str = "http://127.0.0.1:9944", *, timeout: float = 30.0) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported RPC URL {url!r}: use http(s):// or ws(s)://")
        self.url = url
        self.timeout = timeout
        self._http = scheme in ("http", "https")
        self._ws_url = _ws_url(url)
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._channel: _WsChannel | None = None
        self._channel_lock: asyncio.Lock | None = None
        self._genesis: bytes | None = None
        self._runtime_version: dict | None = None
        self._metadata: dict | None = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- plumbing ------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=32))
        return self._session

    async def _get_channel(self) -> _WsChannel:
        if self._channel is not None and not self._channel.closed:
            return self._channel
        if self._channel_lock is None:
            self._channel_lock = asyncio.Lock()
        async with self._channel_lock:
            if self._channel is None or self._channel.closed:
                channel = _WsChannel(self._get_session(), self._ws_url, self.timeout, self._ids)
                await channel.connect()
                self._channel = channel
        return self._channel

    async def _post(self, payload: Any) -> Any:
        async with self._get_session().post(
                self.url, data=dumps(payload),
                headers={"Content-Type": "application/json"}) as resp:
            body = await resp.read()
            if resp.status == 429:
                raise RpcError(-32029, "rate limit exceeded")
            if resp.status == 413:
                raise RpcError(-32007, "Request is too big")
            if resp.status != 200:
                raise RpcError(-32603, f"HTTP {resp.status}: {body[:200]!r}")
        if not body:
            return None
        return loads(body)

    def _req(self, method: str, params: Any) -> dict:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                "params": [] if params is None else params}

    async def request(self, method: str, params: list | dict | None = None) -> Any:
        """Call `method`; return its result or raise RpcError."""
        req = self._req(method, params)
        if self._http:
            resp = await self._post(req)
        else:
            (resp,) = await (await self._get_channel()).send_requests([req])
        if type(resp) is not dict:
            raise RpcError(-32603, f"malformed response {resp!r}")
        if "error" in resp:
            raise RpcError.from_json(resp["error"])
        return resp.get("result")

    async def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Several calls in one round trip; results in order, failures as RpcError objects."""
        if not calls:
            return []
        reqs = [self._req(m, p) for m, p in calls]
        if self._http:
            resps = await self._post(reqs)
            if type(resps) is dict:  # the whole batch was refused
                raise RpcError.from_json(resps.get("error"))
        else:
            resps = await (await self._get_channel()).send_requests(reqs)
        by_id = {r.get("id"): r for r in resps if type(r) is dict}
        out = []
        for r in reqs:
            resp = by_id.get(r["id"])
            if resp is None:
                out.append(RpcError(-32603, "no response for this call"))
            elif "error" in resp:
                out.append(RpcError.from_json(resp["error"]))
            else:
                out.append(resp.get("result"))
        return out

    async def request_all(self, method: str, params: dict, *, page_size: int = PAGE_LIMIT) -> tuple[list, str]:
        """Every item of a paged list query (the `energy_*` lists), page after page: each page's
        `next` goes back as `cursor` until it is null. The cursor pins the block of the first page,
        so no item is missed or repeated however the chain moves meanwhile. `params` are named;
        returns (items, the hash of the block they were read at)."""
        items: list = []
        cursor: str | None = None
        while True:
            page = await self.request(method, {**params, "limit": page_size,
                                               **({} if cursor is None else {"cursor": cursor})})
            if type(page) is not dict or type(page.get("items")) is not list or "next" not in page:
                raise RpcError(-32603, f"{method} did not answer a page {{items, next, at}}")
            items.extend(page["items"])
            if page["next"] is None:
                return items, page.get("at")
            if page["next"] == cursor:
                raise RpcError(-32603, f"{method} answered the same cursor again")
            cursor = page["next"]

    async def subscribe(self, method: str, params: list | None, unsubscribe_method: str) -> Subscription:
        """Open a subscription (over a WebSocket even for http URLs)."""
        channel = await self._get_channel()
        sub_id = await channel.call_one(method, list(params or []), subscription=True)
        queue = channel.subs.setdefault(sub_id, asyncio.Queue())
        return Subscription(channel, sub_id, unsubscribe_method, queue)

    # -- chain helpers ---------------------------------------------------------------------------

    async def genesis_hash(self) -> bytes:
        if self._genesis is None:
            h = await self.request("chain_getBlockHash", [0])
            if h is None:
                raise RpcError(-32603, "node has no genesis block")
            self._genesis = bytes.fromhex(h[2:])
        return self._genesis

    async def runtime_version(self) -> dict:
        """The best block's runtime version, asked every time: a scheduled upgrade changes it under a
        running client, and a transaction signs it. The cached metadata is dropped when it changed."""
        rv = await self.request("state_getRuntimeVersion")
        if self._runtime_version is not None and rv.get("specVersion") != self._runtime_version.get("specVersion"):
            self._metadata = None
        self._runtime_version = rv
        return rv

    async def metadata(self) -> dict:
        """The runtime metadata, cached until `runtime_version` sees another spec version."""
        if self._metadata is None:
            self._metadata = await self.request("state_getMetadata")
        return self._metadata

    async def next_nonce(self, account: bytes) -> int:
        return int(await self.request("system_accountNextIndex", ["0x" + bytes(account).hex()]))

    async def get_storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        params: list = ["0x" + key.hex()]
        if at is not None:
            params.append("0x" + at.hex())
        v = await self.request("state_getStorage", params)
        return None if v is None else bytes.fromhex(v[2:])

    async def read_proof(self, keys: list[bytes], at: bytes | None = None) -> tuple[bytes, list[bytes]]:
        params: list = [["0x" + k.hex() for k in keys]]
        if at is not None:
            params.append("0x" + at.hex())
        r = await self.request("state_getReadProof", params)
        return bytes.fromhex(r["at"][2:]), [bytes.fromhex(n[2:]) for n in r["proof"]]

    async def build_extrinsic(self, keypair: Keypair, pallet: str, call: str, args: dict | list,
                              *, tip: int = 0, nonce: int | None = None,
                              mortal_period: int | None = 64) -> bytes:
        """Encode and sign `pallet.call(args)` for the connected chain; returns the extrinsic bytes.
        The runtime version is read for every extrinsic (it is signed, and an upgrade changes it)."""
        rv = await self.runtime_version()
        md = await self.metadata()
        md_version = (md.get("runtime") or {}).get("specVersion")
        if md_version is not None and md_version != rv.get("specVersion"):     # upgraded in between
            self._metadata = None
            rv, md = await self.runtime_version(), await self.metadata()
        the_call = call_from_metadata(md, pallet, call, args)
        if nonce is None:
            nonce = await self.next_nonce(keypair.public_key)
        genesis = await self.genesis_hash()
        mortality, birth_hash = Mortality(), None
        if mortal_period:
            best_hex, header_json = await self.batch([("chain_getBlockHash", []), ("chain_getHeader", [])])
            for r in (best_hex, header_json):
                if isinstance(r, RpcError):
                    raise r
            birth_hash = bytes.fromhex(best_hex[2:])
            header = header_from_json(header_json)
            if header.hash() != birth_hash:  # best block moved between the two calls
                header = header_from_json(await self.request("chain_getHeader", [best_hex]))
            mortality = Mortality(header.number, mortal_period)
        xt = sign_extrinsic(keypair, the_call, nonce=nonce, genesis_hash=genesis,
                            spec_version=int(rv["specVersion"]),
                            transaction_version=int(rv["transactionVersion"]),
                            tip=tip, mortality=mortality, birth_hash=birth_hash)
        return xt.encode()

    async def submit(self, xt: bytes) -> bytes:
        h = await self.request("author_submitExtrinsic", ["0x" + xt.hex()])
        return bytes.fromhex(h[2:])

    async def dispatch_outcome(self, block_hash: bytes, xt: bytes) -> tuple[bool, str | None]:
        """Did `xt`'s call succeed in block `block_hash`? (False, the error sentence) if the block
        recorded ExtrinsicFailed for it; reads the block and its `system.events` storage."""
        block = await self.request("chain_getBlock", ["0x" + block_hash.hex()])
        if block is None:
            raise RpcError(4003, f"block 0x{block_hash.hex()} not found")
        try:
            index = block["block"]["extrinsics"].index("0x" + xt.hex())
        except ValueError:
            raise RpcError(-32000, "the extrinsic is not in that block") from None
        md = await self.metadata()
        try:
            system = next(p for p in md["pallets"] if p["name"] == "system")
            events_prefix = next(i["prefix"] for i in system["storage"] if i["name"] == "events")
            failed = next(e["index"] for e in system["events"] if e["name"] == "ExtrinsicFailed")
        except (StopIteration, KeyError, TypeError):
            raise RpcError(-32000, "the node's metadata does not describe system events") from None
        raw = await self.get_storage(bytes.fromhex(events_prefix[2:]), block_hash)
        for phase, pallet, event, data in (msgpack.unpackb(raw) if raw else []):
            if phase == [1, index] and pallet == system["index"] and event == failed:
                error = data[0]
                return False, error[2] if isinstance(error, list) and len(error) == 3 else str(error)
        return True, None

    async def submit_and_watch(self, xt: bytes, until: str = "finalized", timeout: float = 60) -> TxResult:
        """Submit and follow the extrinsic until it is `until` ("inBlock" or "finalized").

        Raises RpcError if the node rejects it (1010 ...) or reports it dropped, invalid or
        usurped; asyncio.TimeoutError after `timeout` seconds.
        """
        if until not in ("inBlock", "finalized"):
            raise ValueError('until must be "inBlock" or "finalized"')
        sub = await self.subscribe("author_submitAndWatchExtrinsic", ["0x" + xt.hex()],
                                   "author_unwatchExtrinsic")
        statuses: list = []
        try:
            async with asyncio.timeout(timeout):
                async for status in sub:
                    statuses.append(status)
                    name = tx_status_name(status)
                    if name in ("dropped", "invalid", "usurped"):
                        raise RpcError(1010 if name == "invalid" else -32000,
                                       f"extrinsic {name}", status)
                    if name == until or (until == "inBlock" and name == "finalized"):
                        block = status[name] if type(status) is dict else None
                        block_hash = bytes.fromhex(block[2:]) if block else None
                        result = TxResult(extrinsic_hash(xt), name, block_hash, statuses)
                        if block_hash is not None:
                            try:
                                result.success, result.error = await self.dispatch_outcome(block_hash, xt)
                            except RpcError:
                                pass   # the node cannot say (e.g. state pruned): outcome stays unknown
                        return result
                raise ConnectionError("subscription ended before the extrinsic was " + until)
        finally:
            await sub.unsubscribe()


# ---------------------------------------------------------------------------------------------
# blocking facade
# ---------------------------------------------------------------------------------------------

class SyncSubscription:
    """Blocking iterator over a subscription's results."""

    def __init__(self, client: "Client", sub: Subscription) -> None:
        self._client = client
        self._sub = sub
        self.id = sub.id

    def __iter__(self) -> "SyncSubscription":
        return self

    def __next__(self) -> Any:
        try:
            return self._client._run(self._sub.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def next(self, timeout: float | None = None) -> Any:
        return self._client._run(self._sub.next(timeout))

    def close(self) -> None:
        self._client._run(self._sub.unsubscribe())

    unsubscribe = close

    def __enter__(self) -> "SyncSubscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Client:
    """The AsyncClient API, blocking: an event loop runs in a private daemon thread."""

    def __init__(self, url: str = "http://127.0.0.1:9944", *, timeout: float = 30.0) -> None:
        self._async = AsyncClient(url, timeout=timeout)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gridchain-rpc-client",
                                        daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self, coro: Any) -> Any:
        if self._closed:
            coro.close()
            raise RuntimeError("client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(self._async.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()

    def request(self, method: str, params: list | dict | None = None) -> Any:
        return self._run(self._async.request(method, params))

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        return self._run(self._async.batch(calls))

    def request_all(self, method: str, params: dict, *, page_size: int = PAGE_LIMIT) -> tuple[list, str]:
        return self._run(self._async.request_all(method, params, page_size=page_size))

    def genesis_hash(self) -> bytes:
        return self._run(self._async.genesis_hash())

    def runtime_version(self) -> dict:
        return self._run(self._async.runtime_version())

    def metadata(self) -> dict:
        return self._run(self._async.metadata())

    def next_nonce(self, account: bytes) -> int:
        return self._run(self._async.next_nonce(account))

    def get_storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        return self._run(self._async.get_storage(key, at))

    def read_proof(self, keys: list[bytes], at: bytes | None = None) -> tuple[bytes, list[bytes]]:
        return self._run(self._async.read_proof(keys, at))

    def build_extrinsic(self, keypair: Keypair, pallet: str, call: str, args: dict | list, *,
                        tip: int = 0, nonce: int | None = None, mortal_period: int | None = 64) -> bytes:
        return self._run(self._async.build_extrinsic(keypair, pallet, call, args, tip=tip, nonce=nonce,
                                                     mortal_period=mortal_period))

    def submit(self, xt: bytes) -> bytes:
        return self._run(self._async.submit(xt))

    def dispatch_outcome(self, block_hash: bytes, xt: bytes) -> tuple[bool, str | None]:
        return self._run(self._async.dispatch_outcome(block_hash, xt))

    def submit_and_watch(self, xt: bytes, until: str = "finalized", timeout: float = 60) -> TxResult:
        return self._run(self._async.submit_and_watch(xt, until, timeout))

    def subscribe(self, method: str, params: list | None, unsubscribe_method: str) -> SyncSubscription:
        return SyncSubscription(self, self._run(self._async.subscribe(method, params, unsubscribe_method)))

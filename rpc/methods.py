"""The RPC method table: Substrate method names, their parameters, and handlers over a `NodeApi`.

Each entry is a `Method`: a handler, a parameter spec (name, parser, required), and flags. The
server binds positional (Substrate style) or named parameters against the spec, so every handler
receives already-checked Python values; a bad parameter is a -32602 whose message names it.

Subscription methods return a `SubscriptionSource`; the server owns the subscription ids, the
per-connection limit and the task that forwards the source's items as notifications.

`state_getMetadata` returns the node's metadata as JSON (gridchain's metadata is a JSON document,
not SCALE-encoded bytes as in Substrate); see `rpc.client` for how a client builds calls from it.
It is some 90 KB of JSON and only changes with the runtime, so it is serialized once and handed to
the server as `RawJson`, which the server splices into the response as it is.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from primitives.hashing import keccak256
from primitives.errors import ChainError
from primitives.types import MAX_EXTRINSIC_BYTES
from rpc import jsonshapes as js
from rpc.jsonshapes import InvalidParams
from rpc.limits import MAX_KEYS_PAGED

log = logging.getLogger("gridchain.rpc")

REQUIRED = True
OPTIONAL = False


@dataclass(frozen=True)
class Param:
    name: str
    parse: Callable[[Any, str], Any]
    required: bool = OPTIONAL


@dataclass
class Method:
    name: str
    handler: Callable[..., Any]
    params: tuple[Param, ...] = ()
    unsafe: bool = False
    #: handler takes the raw JSON params (list, dict or []) instead of bound arguments
    raw: bool = False
    #: a subscription method: the handler returns a SubscriptionSource
    subscription: bool = False
    #: set when the handler is a coroutine function (so the fast path can skip awaiting)
    is_coroutine: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_coroutine = inspect.iscoroutinefunction(self.handler)

    def bind(self, params: Any) -> list:
        """Check `params` against the spec and return the parsed argument list."""
        spec = self.params
        if params is None:
            params = []
        if type(params) is list:
            if len(params) > len(spec):
                raise InvalidParams(
                    f"{self.name} takes at most {len(spec)} parameter{'s' if len(spec) != 1 else ''}, "
                    f"got {len(params)}")
            out = []
            for i, p in enumerate(spec):
                value = params[i] if i < len(params) else None
                if value is None:
                    if p.required:
                        if i >= len(params):
                            raise InvalidParams(f"{self.name}: missing required parameter `{p.name}`")
                        raise InvalidParams(f"{self.name}: parameter `{p.name}` must not be null")
                    out.append(None)
                else:
                    out.append(p.parse(value, p.name))
            return out
        if type(params) is dict:
            names = {p.name for p in spec}
            unknown = [k for k in params if k not in names]
            if unknown:
                raise InvalidParams(f"{self.name}: unknown parameter `{unknown[0]}`")
            out = []
            for p in spec:
                value = params.get(p.name)
                if value is None:
                    if p.required:
                        raise InvalidParams(f"{self.name}: missing required parameter `{p.name}`")
                    out.append(None)
                else:
                    out.append(p.parse(value, p.name))
            return out
        raise InvalidParams("params must be an array or an object")


class RawJson:
    """A method result already serialized to JSON (compact, ASCII): the server writes the bytes into
    the response unchanged, so a large answer asked for many times is encoded once, and a batch
    repeating it holds references to one buffer rather than copies."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _SerializedOnce:
    """The JSON of the last object seen, re-encoded only when the node hands over a different object
    (the node keeps its metadata until the runtime changes, so identity is the right key)."""

    __slots__ = ("_source", "_raw")

    def __init__(self) -> None:
        self._source: Any = None
        self._raw: RawJson | None = None

    def get(self, obj: Any) -> RawJson:
        if self._raw is None or obj is not self._source:
            self._raw = RawJson(js.dumps(obj))
            self._source = obj
        return self._raw


@dataclass
class SubscriptionSource:
    """What a subscription method hands the server: items to forward as notifications."""

    notification: str                       # e.g. "chain_newHead"
    iterator: AsyncIterator[Any]
    to_json: Callable[[Any], Any]
    initial: list = field(default_factory=list)   # items sent before the iterator's
    #: skip the iterator's first item if it equals the last initial item (the node may also emit it)
    dedupe_initial: bool = True
    #: after forwarding an item for which this returns True, the subscription ends
    terminal: Callable[[Any], bool] | None = None
    kind: str = ""                          # which unsubscribe methods may end it


#: notification and unsubscribe method names per subscription kind
SUBSCRIPTION_KINDS = {
    "newHeads": ("chain_newHead", ("chain_unsubscribeNewHeads", "chain_unsubscribeNewHead")),
    "finalizedHeads": ("chain_finalizedHead",
                       ("chain_unsubscribeFinalizedHeads", "chain_unsubscribeFinalisedHeads")),
    "extrinsic": ("author_extrinsicUpdate", ("author_unwatchExtrinsic",)),
}


# ---------------------------------------------------------------------------------------------
# parameter parsers (value, name) -> python value
# ---------------------------------------------------------------------------------------------

def _p_hash(v: Any, name: str) -> bytes:
    return js.parse_hex(v, name, 32)


def _p_bytes(v: Any, name: str) -> bytes:
    return js.parse_hex(v, name)


def _p_extrinsic(v: Any, name: str) -> bytes:
    return js.parse_hex(v, name, max_len=MAX_EXTRINSIC_BYTES)


def _p_count(v: Any, name: str) -> int:
    n = js.parse_int(v, name, 0, 2**32 - 1)
    if n > MAX_KEYS_PAGED:
        raise InvalidParams(f"{name}: {n} exceeds the maximum of {MAX_KEYS_PAGED}")
    return n


def _p_keys(v: Any, name: str) -> list[bytes]:
    return js.parse_hex_list(v, name, max_items=MAX_KEYS_PAGED)


def _p_block_numbers(v: Any, name: str) -> Any:
    if type(v) is list:  # Substrate's ListOrValue
        if len(v) > MAX_KEYS_PAGED:
            raise InvalidParams(f"{name}: more than {MAX_KEYS_PAGED} numbers")
        return [js.parse_number(x, f"{name}[{i}]") for i, x in enumerate(v)]
    return js.parse_number(v, name)


def _p_sub_id(v: Any, name: str) -> str:
    if type(v) is str:
        return v
    if type(v) is int:
        return str(v)
    raise InvalidParams(f"{name}: expected a subscription id string")


def _p_bool(v: Any, name: str) -> bool:
    return js.parse_bool(v, name)


def _p_account(v: Any, name: str) -> bytes:
    return js.parse_account(v, name)


HASH_OPT = Param("hash", _p_hash)
AT_OPT = Param("at", _p_hash)


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------

def build_table(node: Any) -> dict[str, Method]:
    """All built-in methods for `node`, plus the node's `extra_methods()` (built-ins win)."""
    table: dict[str, Method] = {}

    def add(name: str, handler: Callable, *params: Param, unsafe: bool = False,
            subscription: bool = False, aliases: tuple[str, ...] = ()) -> None:
        for n in (name, *aliases):
            table[n] = Method(n, handler, tuple(params), unsafe=unsafe, subscription=subscription)

    # -- system ----------------------------------------------------------------------------
    add("system_name", lambda: node.info().name)
    add("system_version", lambda: node.info().version)
    add("system_chain", lambda: node.info().chain)
    add("system_chainType", lambda: node.info().chain_type)
    add("system_properties", lambda: node.info().properties)
    add("system_health", lambda: js.health_to_json(node.health()))
    add("system_accountNextIndex", lambda account: node.account_next_index(account),
        Param("address", _p_account, REQUIRED))
    # Unsafe in Substrate too: it reveals the node's connections.
    add("system_peers", lambda: node.peers(), unsafe=True)
    add("system_localPeerId", lambda: node.local_peer_id())
    add("system_syncState", lambda: node.sync_state())

    # -- chain -----------------------------------------------------------------------------
    def get_block(block_hash: bytes | None) -> Any:
        b = node.get_block(block_hash)
        return None if b is None else js.block_to_json(b)

    def get_header(block_hash: bytes | None) -> Any:
        h = node.get_header(block_hash)
        return None if h is None else js.header_to_json(h)

    def get_block_hash(number: Any) -> Any:
        if type(number) is list:
            return [js.opt_hex(node.get_block_hash(n)) for n in number]
        return js.opt_hex(node.get_block_hash(number))

    add("chain_getBlock", get_block, HASH_OPT)
    add("chain_getHeader", get_header, HASH_OPT)
    add("chain_getBlockHash", get_block_hash, Param("number", _p_block_numbers),
        aliases=("chain_getHead",))
    add("chain_getFinalizedHead", lambda: js.to_hex(node.finalized_head()),
        aliases=("chain_getFinalisedHead",))

    def subscribe_new_heads() -> SubscriptionSource:
        it = node.subscribe_new_heads()
        best = node.get_header(None)
        return SubscriptionSource("chain_newHead", it, js.header_to_json,
                                  initial=[best] if best is not None else [], kind="newHeads")

    def subscribe_finalized_heads() -> SubscriptionSource:
        it = node.subscribe_finalized_heads()
        fin = node.get_header(node.finalized_head())
        return SubscriptionSource("chain_finalizedHead", it, js.header_to_json,
                                  initial=[fin] if fin is not None else [], kind="finalizedHeads")

    add("chain_subscribeNewHeads", subscribe_new_heads, subscription=True,
        aliases=("chain_subscribeNewHead",))
    add("chain_subscribeFinalizedHeads", subscribe_finalized_heads, subscription=True,
        aliases=("chain_subscribeFinalisedHeads",))
    # unsubscribe methods are handled by the server (they need the connection); registered here
    # so that they are listed, bound and counted like any other method.
    for kind, (_notif, unsubs) in SUBSCRIPTION_KINDS.items():
        for n in unsubs:
            table[n] = Method(n, _unsubscribe_placeholder, (Param("subscription", _p_sub_id, REQUIRED),))

    # -- state -----------------------------------------------------------------------------
    def get_storage(key: bytes, at: bytes | None) -> Any:
        return js.opt_hex(node.get_storage(key, at))

    def get_storage_hash(key: bytes, at: bytes | None) -> Any:
        v = node.get_storage(key, at)
        return None if v is None else js.to_hex(keccak256(v))

    def get_storage_size(key: bytes, at: bytes | None) -> Any:
        v = node.get_storage(key, at)
        return None if v is None else len(v)

    def get_keys_paged(prefix: bytes, count: int, start_key: bytes | None, at: bytes | None) -> list:
        keys = node.get_keys_paged(prefix, count, start_key, at)
        return ["0x" + k.hex() for k in keys]

    def get_read_proof(keys: list[bytes], at: bytes | None) -> dict:
        at_hash, proof = node.get_read_proof(keys, at)
        return {"at": js.to_hex(at_hash), "proof": ["0x" + n.hex() for n in proof]}

    key = Param("key", _p_bytes, REQUIRED)
    add("state_getStorage", get_storage, key, AT_OPT, aliases=("state_getStorageAt",))
    add("state_getStorageHash", get_storage_hash, key, AT_OPT, aliases=("state_getStorageHashAt",))
    add("state_getStorageSize", get_storage_size, key, AT_OPT, aliases=("state_getStorageSizeAt",))
    add("state_getKeysPaged", get_keys_paged, Param("prefix", _p_bytes, REQUIRED),
        Param("count", _p_count, REQUIRED), Param("startKey", _p_bytes), AT_OPT,
        aliases=("state_getKeysPagedAt",))
    add("state_getReadProof", get_read_proof, Param("keys", _p_keys, REQUIRED), AT_OPT)
    add("state_getRuntimeVersion", lambda at: js.runtime_version_to_json(node.runtime_version(at)),
        AT_OPT, aliases=("chain_getRuntimeVersion",))
    metadata_json = _SerializedOnce()
    add("state_getMetadata", lambda at: metadata_json.get(node.metadata(at)), AT_OPT)

    # -- author ----------------------------------------------------------------------------
    async def submit_extrinsic(xt: bytes) -> str:
        return js.to_hex(await node.submit_extrinsic(xt))

    async def submit_and_watch(xt: bytes) -> SubscriptionSource:
        res = node.submit_and_watch(xt)
        if inspect.isawaitable(res):
            res = await res
        initial = []
        if inspect.isasyncgen(res):
            # an async generator runs nothing until iterated: pull the first update now, so an
            # invalid extrinsic is an error response rather than a notification
            try:
                initial.append(await res.__anext__())
            except StopAsyncIteration:
                pass
        return SubscriptionSource("author_extrinsicUpdate", res, js.tx_status_to_json,
                                  initial=initial, dedupe_initial=False,
                                  terminal=lambda u: u.terminal, kind="extrinsic")

    xt_param = Param("extrinsic", _p_extrinsic, REQUIRED)
    add("author_submitExtrinsic", submit_extrinsic, xt_param)
    add("author_submitAndWatchExtrinsic", submit_and_watch, xt_param, subscription=True)
    add("author_pendingExtrinsics", lambda: ["0x" + x.hex() for x in node.pending_extrinsics()])

    # -- engine (manual seal, dev chains) ------------------------------------------------------
    async def create_block(create_empty: bool | None, finalize: bool | None,
                           parent_hash: bytes | None) -> dict:
        if parent_hash is not None:
            best = node.get_block_hash(None)
            if parent_hash != best:
                raise InvalidParams("parentHash: only the best block can be built on")
        if create_empty is False and not node.pending_extrinsics():
            raise EmptyTransactionPool(
                "Transaction pool is empty, set create_empty to true, if you want to create empty blocks")
        block_hash = await node.seal_block()
        return {"hash": js.to_hex(block_hash), "aux": {}}

    add("engine_createBlock", create_block, Param("createEmpty", _p_bool),
        Param("finalize", _p_bool), Param("parentHash", _p_hash), unsafe=True)

    # -- rpc ---------------------------------------------------------------------------------
    add("rpc_methods", lambda: {"methods": sorted(table)})

    # -- the node's own groups (energy_* ...) --------------------------------------------------
    extra = getattr(node, "extra_methods", None)
    for name, fn in (extra() if extra is not None else {}).items():
        if name in table:
            log.warning("extra RPC method %s clashes with a built-in method; ignored", name)
            continue
        if not callable(fn):
            log.warning("extra RPC method %s is not callable; ignored", name)
            continue
        table[name] = Method(name, fn, raw=True, unsafe=bool(getattr(fn, "unsafe", False)))
    return table


def _unsubscribe_placeholder(*_args: Any) -> Any:  # pragma: no cover - the server intercepts these
    raise RuntimeError("unsubscribe is handled by the server")


class EmptyTransactionPool(ChainError):
    """engine_createBlock with createEmpty=false and nothing to include (manual seal's code)."""

    rpc_code = 12_000

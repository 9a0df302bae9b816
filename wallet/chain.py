"""Reading chain state the way any third-party client can: from the node's JSON metadata alone.

`state_getMetadata` names every pallet's storage items with their 32-byte key prefix, key types and
value type, every event with its field types, and every struct as an ordered field list
(docs/rpc.md §5, docs/protocol.md §6). From that, `ChainState` computes storage keys
(`prefix ++ keccak256(enc(k))[:16] ++ enc(k)` per key part), decodes canonical-msgpack values into
plain Python (structs become dicts by field name), enumerates maps with `state_getKeysPaged`, and
decodes the events an extrinsic emitted. Nothing here knows a pallet's Python code, so the wallet
follows the runtime's metadata rather than a copy of its layouts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from primitives.codec import CodecError, pack, unpack
from primitives.hashing import keccak256
from rpc.client import AsyncClient, RpcError, convert_arg

#: keys asked for per `state_getKeysPaged` page (the node's maximum)
PAGE = 1000
#: storage reads per JSON-RPC batch (the node allows 1000 calls per batch)
BATCH = 500
#: the metadata's name for an account (32 bytes, like a hash, but shown as an SS58 address)
ACCOUNT_TYPE = "AccountId"


class ChainError(Exception):
    """The node's metadata or state is not what this wallet can read (an incompatible runtime)."""


@dataclass(frozen=True)
class Event:
    """One runtime event, decoded by its metadata: `pallet.name` with fields by name."""

    pallet: str
    name: str
    fields: dict[str, Any]

    def to_json(self) -> dict:
        return {"pallet": self.pallet, "event": self.name, "fields": to_json(self.fields)}


def to_json(value: Any) -> Any:
    """Decoded values made JSON-ready: bytes as 0x-hex, tuples as lists."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def key_part(plain: Any) -> bytes:
    """One map key part as the chain hashes it (`keccak128_concat`): keccak256(enc)[:16] ++ enc."""
    enc = pack(plain)
    return keccak256(enc)[:16] + enc


def split_key_part(data: bytes, offset: int) -> tuple[Any, int]:
    """Read one `keccak128_concat` key part at `offset`; returns (plain key, offset after it)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data[offset + 16:])
    try:
        value = unpacker.unpack()
    except (msgpack.OutOfData, ValueError) as e:
        raise ChainError(f"storage key does not hold a map key ({e})") from None
    return value, offset + 16 + unpacker.tell()


class ChainState:
    """Metadata-driven access to a node's storage, constants and events."""

    def __init__(self, client: AsyncClient, metadata: dict) -> None:
        self.client = client
        self.metadata = metadata
        self.types: dict[str, list[dict]] = metadata.get("types") or {}
        self._pallets = {p["name"]: p for p in metadata.get("pallets", [])}
        self._by_index = {p["index"]: p for p in metadata.get("pallets", [])}

    # -- metadata lookups ------------------------------------------------------------------------

    def pallet(self, name: str) -> dict:
        p = self._pallets.get(name)
        if p is None:
            raise ChainError(f"the node's runtime has no {name!r} pallet")
        return p

    def item(self, pallet: str, item: str) -> dict:
        for s in self.pallet(pallet).get("storage") or []:
            if s["name"] == item:
                return s
        raise ChainError(f"the node's runtime has no storage item {pallet}.{item}")

    def constant(self, pallet: str, name: str) -> Any:
        consts = self.pallet(pallet).get("constants") or {}
        if name not in consts:
            raise ChainError(f"the node's runtime publishes no constant {pallet}.{name}")
        return consts[name]

    def _key_types(self, item: dict) -> list[Any]:
        kind = item.get("kind")
        if kind == "value":
            return []
        if kind == "map":
            return [item["key"]]
        if kind == "doubleMap":
            return [item["key1"], item["key2"]]
        raise ChainError(f"unknown storage kind {kind!r}")

    def prefix(self, pallet: str, item: str) -> bytes:
        return bytes.fromhex(self.item(pallet, item)["prefix"][2:])

    def key(self, pallet: str, item: str, *keys: Any) -> bytes:
        """The full storage key of `pallet.item[keys...]`; fewer keys give an iteration prefix."""
        it = self.item(pallet, item)
        types = self._key_types(it)
        if len(keys) > len(types):
            raise ChainError(f"{pallet}.{item} takes {len(types)} key(s), got {len(keys)}")
        if types and it.get("hasher") != "keccak128_concat":
            raise ChainError(f"{pallet}.{item}: unsupported hasher {it.get('hasher')!r}")
        out = self.prefix(pallet, item)
        for t, k in zip(types, keys):
            out += key_part(convert_arg(t, k, f"{pallet}.{item} key"))
        return out

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, t: Any, plain: Any) -> Any:
        """A plain msgpack value of metadata type `t` as Python: ints, bytes, str, bool, None,
        lists, tuples, and dicts for structs."""
        if isinstance(t, str):
            if t in ("u8", "u16", "u32", "u64", "bool", "raw", "bytes", "str", "AccountId") or t.startswith("[u8;"):
                return plain
            if t == "u128":
                return int.from_bytes(plain, "big") if isinstance(plain, (bytes, bytearray)) else plain
            fields = self.types.get(t)
            if fields is None:
                raise ChainError(f"the metadata does not describe type {t!r}")
            if not isinstance(plain, list) or len(plain) != len(fields):
                raise ChainError(f"a {t} value does not have its {len(fields)} fields")
            return {f["name"]: self.decode(f["type"], v) for f, v in zip(fields, plain)}
        if isinstance(t, dict):
            if "option" in t:
                return None if plain is None else self.decode(t["option"], plain)
            if "vec" in t:
                return [self.decode(t["vec"], v) for v in plain]
            if "tuple" in t:
                return tuple(self.decode(tt, v) for tt, v in zip(t["tuple"], plain))
            if "bytes" in t or "str" in t:
                return plain
        raise ChainError(f"unsupported metadata type {t!r}")

    # -- accounts, found by type ------------------------------------------------------------------

    def holds_accounts(self, t: Any, _seen: frozenset[str] = frozenset()) -> bool:
        """Whether values of metadata type `t` hold an account anywhere: `AccountId` itself, or a
        vec, option, tuple or struct with one inside."""
        if t == ACCOUNT_TYPE:
            return True
        if isinstance(t, dict):
            inner = [t["option"]] if "option" in t else [t["vec"]] if "vec" in t else t.get("tuple") or []
            return any(self.holds_accounts(i, _seen) for i in inner)
        if isinstance(t, str) and t in self.types and t not in _seen:
            return any(self.holds_accounts(f["type"], _seen | {t}) for f in self.types[t])
        return False

    def render(self, t: Any, value: Any, account: Callable[[bytes], Any]) -> Any:
        """`value` (as `decode` returns it for metadata type `t`) made JSON-ready: each account
        replaced by `account(its 32 bytes)` (an SS58 address, say), other bytes as 0x-hex, tuples
        as lists. The type says which bytes are accounts; a hash of the same length stays hex."""
        if t == ACCOUNT_TYPE and isinstance(value, (bytes, bytearray)):
            return account(bytes(value))
        if isinstance(t, dict) and isinstance(value, (list, tuple)):
            if "vec" in t:
                return [self.render(t["vec"], v, account) for v in value]
            if "tuple" in t:
                return [self.render(tt, v, account) for tt, v in zip(t["tuple"], value)]
        if isinstance(t, dict) and "option" in t and value is not None:
            return self.render(t["option"], value, account)
        if isinstance(t, str) and isinstance(value, dict) and t in self.types:
            ftypes = {f["name"]: f["type"] for f in self.types[t]}
            return {k: self.render(ftypes.get(k), v, account) for k, v in value.items()}
        return to_json(value)

    def accounts_in(self, t: Any, value: Any) -> list[bytes]:
        """Every account in `value` (decoded, of metadata type `t`), in order."""
        found: list[bytes] = []
        self.render(t, value, found.append)
        return found

    def event_field_types(self, pallet: str, event: str) -> dict[str, Any]:
        """An event's field types by name (empty for an event the metadata does not list)."""
        p = self._pallets.get(pallet) or {}
        ev = next((e for e in p.get("events") or [] if e.get("name") == event), None)
        return {f["name"]: f["type"] for f in (ev or {}).get("fields") or []}

    def decode_value(self, pallet: str, item: str, raw: bytes | None) -> Any:
        if raw is None:
            return None
        try:
            plain = unpack(raw)
        except CodecError as e:
            raise ChainError(f"{pallet}.{item}: the node returned a value that does not decode ({e})") from None
        return self.decode(self.item(pallet, item)["value"], plain)

    def decode_keys(self, pallet: str, item: str, key: bytes) -> list[Any]:
        """The plain map keys at the end of a full storage key of `pallet.item`."""
        offset = 32
        out = []
        for _ in self._key_types(self.item(pallet, item)):
            value, offset = split_key_part(key, offset)
            out.append(value)
        return out

    # -- reads -----------------------------------------------------------------------------------

    async def read(self, pallet: str, item: str, *keys: Any, at: bytes | None = None) -> Any:
        """The decoded value, or None when absent (the caller knows the item's default)."""
        return self.decode_value(pallet, item, await self.client.get_storage(self.key(pallet, item, *keys), at))

    async def read_keys(self, pallet: str, item: str, keys: list[bytes], at: bytes | None = None) -> list[Any]:
        """Decoded values of many full storage keys of one item, in batches of JSON-RPC calls."""
        out: list[Any] = []
        at_param = [] if at is None else ["0x" + at.hex()]
        for i in range(0, len(keys), BATCH):
            chunk = keys[i:i + BATCH]
            results = await self.client.batch([("state_getStorage", ["0x" + k.hex(), *at_param]) for k in chunk])
            for r in results:
                if isinstance(r, RpcError):
                    raise r
                out.append(self.decode_value(pallet, item, None if r is None else bytes.fromhex(r[2:])))
        return out

    async def keys_with_prefix(self, prefix: bytes, at: bytes, limit: int | None) -> tuple[list[bytes], bool]:
        """Up to `limit` keys (None: all) starting with `prefix` at block `at`; (keys, whether more
        were left)."""
        keys: list[bytes] = []
        start: str | None = None
        while limit is None or len(keys) < limit:
            params: list = ["0x" + prefix.hex(), PAGE, start, "0x" + at.hex()]
            page = await self.client.request("state_getKeysPaged", params)
            keys.extend(bytes.fromhex(k[2:]) for k in page)
            if len(page) < PAGE:
                return (keys, False) if limit is None else (keys[:limit], len(keys) > limit)
            start = page[-1]
        return keys[:limit], True

    async def best_hash(self) -> bytes:
        return bytes.fromhex((await self.client.request("chain_getBlockHash", []))[2:])

    # -- events ----------------------------------------------------------------------------------

    async def events_of(self, block_hash: bytes, xt: bytes) -> list[Event]:
        """The events extrinsic `xt` emitted in block `block_hash`, decoded by the metadata."""
        block = await self.client.request("chain_getBlock", ["0x" + block_hash.hex()])
        if block is None:
            return []
        try:
            index = block["block"]["extrinsics"].index("0x" + xt.hex())
        except ValueError:
            return []
        raw = await self.client.get_storage(self.prefix("system", "events"), block_hash)
        out = []
        for phase, pallet_index, event_index, data in (unpack(raw) if raw else []):
            if phase != [1, index]:
                continue
            out.append(self._event(pallet_index, event_index, data))
        return out

    def block_events(self, raw: bytes | None) -> list[Event]:
        """Every event of a block, in order, decoded from its `system.events` value (as
        `state_getStorage` returns it at the block): the extrinsics' and the hooks' alike."""
        return [self._event(pallet_index, event_index, data)
                for _phase, pallet_index, event_index, data in (unpack(raw) if raw else [])]

    def _event(self, pallet_index: int, event_index: int, data: list) -> Event:
        p = self._by_index.get(pallet_index)
        ev = None if p is None else next((e for e in p.get("events") or [] if e["index"] == event_index), None)
        if p is None or ev is None:
            return Event(str(pallet_index), str(event_index), {"data": data})
        fields = ev.get("fields") or []
        return Event(p["name"], ev["name"], {f["name"]: self.decode(f["type"], v) for f, v in zip(fields, data)})

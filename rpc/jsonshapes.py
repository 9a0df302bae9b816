"""Conversions between gridchain values and the JSON shapes of Substrate's RPC.

Bytes and hashes are 0x-prefixed lower-case hex; block numbers in headers are hex ("0x1a"); a header
is `{parentHash, number, stateRoot, extrinsicsRoot, digest: {logs: [hex]}}` where each log is the
canonical msgpack encoding of a `DigestItem` (gridchain's codec, not SCALE). Parsing helpers raise
`InvalidParams` (JSON-RPC -32602) with a message that names the parameter.

Used by both the server (`rpc.methods`) and the client (`rpc.client`), so it imports only primitives.
"""
from __future__ import annotations

import binascii
import json
from typing import Any

from primitives import ss58
from primitives.errors import ChainError
from primitives.types import DigestItem, Header, SignedBlock

U64_MAX = 2**64 - 1


class InvalidParams(ChainError):
    """Wrong parameter count, type or encoding (JSON-RPC -32602). Node code may raise it too."""

    rpc_code = -32602


# ---------------------------------------------------------------------------------------------
# JSON encoding
# ---------------------------------------------------------------------------------------------

def _default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "0x" + bytes(obj).hex()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


#: Compact, ASCII-only output (lone surrogates in echoed input cannot break UTF-8 encoding).
#: The stdlib is enough: profiling the server showed JSON at under a tenth of a request's cost, and
#: orjson measured no throughput gain in bench/rpc_bench.py.
_encoder = json.JSONEncoder(default=_default, separators=(",", ":"))
_decode = json.loads


def dumps(obj: Any) -> bytes:
    """JSON-encode to compact bytes; bytes values become 0x-hex."""
    return _encoder.encode(obj).encode()


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (or RecursionError for absurd nesting) on bad input."""
    return _decode(data)


# ---------------------------------------------------------------------------------------------
# primitive values
# ---------------------------------------------------------------------------------------------

def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def opt_hex(data: bytes | None) -> str | None:
    return None if data is None else "0x" + data.hex()


def parse_hex(value: Any, name: str = "value", length: int | None = None,
              max_len: int | None = None) -> bytes:
    """Decode a 0x-prefixed hex string; `length` (bytes) if fixed."""
    if type(value) is not str:
        raise InvalidParams(f"{name}: expected a 0x-prefixed hex string, got {_json_type(value)}")
    if not value.startswith(("0x", "0X")):
        raise InvalidParams(f"{name}: hex string must start with 0x")
    try:
        raw = binascii.unhexlify(value[2:])
    except (binascii.Error, ValueError):
        raise InvalidParams(f"{name}: invalid hex (odd length or non-hex character)") from None
    if length is not None and len(raw) != length:
        raise InvalidParams(f"{name}: expected {length} bytes, got {len(raw)}")
    if max_len is not None and len(raw) > max_len:
        raise InvalidParams(f"{name}: {len(raw)} bytes exceeds the limit of {max_len}")
    return raw


def parse_hash(value: Any, name: str = "hash") -> bytes:
    return parse_hex(value, name, 32)


def parse_opt_hash(value: Any, name: str = "hash") -> bytes | None:
    return None if value is None else parse_hex(value, name, 32)


def parse_number(value: Any, name: str = "number") -> int:
    """A u64 given as a JSON integer or a hex string ("0x1a"), as Substrate's NumberOrHex.

    More than 16 hex digits is refused before conversion, and an error never echoes the value
    (a 14,000-digit number once made the error message itself fail to format)."""
    if type(value) is int:
        n = value
    elif type(value) is str:
        text = value[2:] if value.startswith(("0x", "0X")) else None
        if text is not None and len(text) > 16:
            raise InvalidParams(f"{name}: more than 16 hex digits (out of range for u64)")
        if not text or not all(c in "0123456789abcdefABCDEF" for c in text):
            raise InvalidParams(f"{name}: expected an integer or a 0x-prefixed hex number")
        n = int(text, 16)
    else:
        raise InvalidParams(f"{name}: expected an integer or a hex string, got {_json_type(value)}")
    if not 0 <= n <= U64_MAX:
        raise InvalidParams(f"{name}: out of range for u64")
    return n


def parse_int(value: Any, name: str, lo: int = 0, hi: int = U64_MAX) -> int:
    if type(value) is not int:
        raise InvalidParams(f"{name}: expected an integer, got {_json_type(value)}")
    if not lo <= value <= hi:
        raise InvalidParams(f"{name}: {value} is out of range ({lo}..{hi})")
    return value


def parse_bool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise InvalidParams(f"{name}: expected true or false, got {_json_type(value)}")
    return value


def parse_account(value: Any, name: str = "address") -> bytes:
    """An account id as an SS58 address (any network prefix) or 0x-hex of 32 bytes."""
    if type(value) is not str:
        raise InvalidParams(f"{name}: expected an SS58 address or 0x-hex account id, got {_json_type(value)}")
    if value.startswith(("0x", "0X")):
        return parse_hex(value, name, 32)
    try:
        account, _prefix = ss58.decode_with_prefix(value)
    except (ss58.AddressError, ValueError) as e:
        raise InvalidParams(f"{name}: not a valid SS58 address ({e})") from None
    return account


def parse_hex_list(value: Any, name: str, max_items: int = 100_000) -> list[bytes]:
    if type(value) is not list:
        raise InvalidParams(f"{name}: expected an array of hex strings, got {_json_type(value)}")
    if len(value) > max_items:
        raise InvalidParams(f"{name}: more than {max_items} items")
    return [parse_hex(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is int:
        return "an integer"
    if type(value) is float:
        return "a float"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    if type(value) is dict:
        return "an object"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# headers and blocks
# ---------------------------------------------------------------------------------------------

_HEADER_CACHE: dict[Header, dict] = {}
_HEADER_CACHE_MAX = 512


def header_to_json(header: Header) -> dict:
    """Substrate's header shape. Results are cached per header value: treat them as read-only."""
    try:
        cached = _HEADER_CACHE.get(header)
    except TypeError:  # a header built with a list digest is unhashable; just don't cache it
        return _header_to_json(header)
    if cached is None:
        cached = _header_to_json(header)
        if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
            # drop the oldest entry (dicts keep insertion order)
            del _HEADER_CACHE[next(iter(_HEADER_CACHE))]
        _HEADER_CACHE[header] = cached
    return cached


def _header_to_json(h: Header) -> dict:
    return {
        "parentHash": "0x" + h.parent_hash.hex(),
        "number": hex(h.number),
        "stateRoot": "0x" + h.state_root.hex(),
        "extrinsicsRoot": "0x" + h.extrinsics_root.hex(),
        "digest": {"logs": ["0x" + item.encode().hex() for item in h.digest]},
    }


def header_from_json(obj: Any) -> Header:
    """Inverse of `header_to_json` (clients use it to recompute a block hash locally)."""
    if type(obj) is not dict:
        raise InvalidParams("header: expected an object")
    try:
        logs = obj["digest"]["logs"]
        if type(logs) is not list:
            raise InvalidParams("header.digest.logs: expected an array")
        digest = tuple(DigestItem.decode(parse_hex(log, "header.digest.logs[]")) for log in logs)
        return Header(
            parse_hash(obj["parentHash"], "header.parentHash"),
            parse_number(obj["number"], "header.number"),
            parse_hash(obj["stateRoot"], "header.stateRoot"),
            parse_hash(obj["extrinsicsRoot"], "header.extrinsicsRoot"),
            digest,
        )
    except (KeyError, TypeError) as e:
        raise InvalidParams(f"header: missing or malformed field {e}") from None
    except ValueError as e:  # CodecError
        if isinstance(e, ChainError):
            raise
        raise InvalidParams(f"header: {e}") from None


def block_to_json(signed: SignedBlock) -> dict:
    """`{block: {header, extrinsics: [hex]}, justifications: null | [[engine hex, data hex]]}`."""
    block = signed.block
    justifications = None
    if signed.justifications:
        justifications = [["0x" + j.engine.hex(), "0x" + j.data.hex()] for j in signed.justifications]
    return {
        "block": {
            "header": header_to_json(block.header),
            "extrinsics": ["0x" + xt.hex() for xt in block.extrinsics],
        },
        "justifications": justifications,
    }


# ---------------------------------------------------------------------------------------------
# other results
# ---------------------------------------------------------------------------------------------

def runtime_version_to_json(v: Any) -> dict:
    return {
        "specName": v.spec_name,
        "implName": v.impl_name,
        "authoringVersion": 0,
        "specVersion": v.spec_version,
        "implVersion": v.impl_version,
        "apis": [],
        "transactionVersion": v.transaction_version,
        "stateVersion": v.state_version,
    }


def health_to_json(h: Any) -> dict:
    return {"peers": h.peers, "isSyncing": h.is_syncing, "shouldHavePeers": h.should_have_peers}


#: Statuses whose JSON form is `{status: hash}` (Substrate's TransactionStatus); the rest are strings.
_HASH_STATUSES = frozenset({"inBlock", "finalized", "usurped", "retracted", "finalityTimeout"})


def tx_status_to_json(update: Any) -> Any:
    """A `TxStatusUpdate` as Substrate's TransactionStatus JSON: "ready" or {"inBlock": "0x.."}."""
    if update.status in _HASH_STATUSES and update.block_hash is not None:
        return {update.status: "0x" + update.block_hash.hex()}
    return update.status


def tx_status_name(result: Any) -> str:
    """The status name of a TransactionStatus JSON value (client side)."""
    if type(result) is str:
        return result
    if type(result) is dict and len(result) == 1:
        return next(iter(result))
    return str(result)

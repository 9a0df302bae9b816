"""A small, strict RLP codec (Yellow Paper appendix B) tuned for trie nodes.

The `rlp` package is pure Python and generic (sedes, type checks); the trie encodes tens of
thousands of nodes per block, so it uses these few functions instead. Decoding is strict, as in
`rlp.decode(strict=True)`: non-canonical lengths and trailing bytes are rejected, because a proof
verifier must not accept two encodings of one node.
"""
from __future__ import annotations

from typing import Union

RLPItem = Union[bytes, list["RLPItem"]]

#: RLP of the empty string; also the "empty slot" reference inside a branch node.
EMPTY = b"\x80"

_STR_HDR = [bytes((0x80 + n,)) for n in range(56)]
_LIST_HDR = [bytes((0xC0 + n,)) for n in range(56)]
# List headers for every payload size a branch node can have (17 * 33 bytes plus a value), so the
# hot path never computes a long-form length.
LIST_HDR = _LIST_HDR + [bytes((0xF8, n)) for n in range(56, 256)] + [
    bytes((0xF9,)) + n.to_bytes(2, "big") for n in range(256, 2048)]
# Likewise for strings up to 255 bytes (storage values are typically tens of bytes).
_STR_HDR_ALL = _STR_HDR + [bytes((0xB8, n)) for n in range(56, 256)]


class RLPError(ValueError):
    """Input is not a canonical RLP encoding."""


def _long_header(offset: int, length: int) -> bytes:
    """Header for payloads of 56 bytes or more: offset + length-of-length, then the length."""
    len_bytes = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + len(len_bytes),)) + len_bytes


def enc_str(data: bytes) -> bytes:
    """RLP-encode a byte string."""
    n = len(data)
    if n == 1 and data[0] < 0x80:
        return bytes(data)
    if n < 256:
        return _STR_HDR_ALL[n] + data
    return _long_header(0xB7, n) + data


def enc_list(payload: bytes) -> bytes:
    """Wrap the concatenated encodings of a list's items in a list header."""
    n = len(payload)
    if n < 2048:
        return LIST_HDR[n] + payload
    return _long_header(0xF7, n) + payload


def rlp_encode(obj: RLPItem) -> bytes:
    """RLP-encode bytes or (nested) lists/tuples of bytes."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return enc_str(bytes(obj))
    if isinstance(obj, (list, tuple)):
        return enc_list(b"".join(rlp_encode(x) for x in obj))
    raise TypeError(f"cannot RLP-encode {type(obj).__name__}")


def _header(data: bytes, pos: int, end: int) -> tuple[bool, int, int]:
    """Parse the item header at `pos`: (is_list, payload_start, payload_end), checked canonical."""
    if pos >= end:
        raise RLPError("truncated input")
    b = data[pos]
    if b < 0x80:
        return False, pos, pos + 1
    if b < 0xB8:
        start, stop = pos + 1, pos + 1 + b - 0x80
        if b == 0x81 and stop <= end and data[start] < 0x80:
            raise RLPError("single byte below 0x80 must encode as itself")
        is_list = False
    elif b < 0xC0:
        start, stop = _long_payload(data, pos, end, b - 0xB7)
        is_list = False
    elif b < 0xF8:
        start, stop = pos + 1, pos + 1 + b - 0xC0
        is_list = True
    else:
        start, stop = _long_payload(data, pos, end, b - 0xF7)
        is_list = True
    if stop > end:
        raise RLPError("item runs past the end of its container")
    return is_list, start, stop


def _long_payload(data: bytes, pos: int, end: int, len_len: int) -> tuple[int, int]:
    """Payload bounds for a long-form header whose length field is `len_len` bytes."""
    start = pos + 1 + len_len
    if start > end:
        raise RLPError("truncated length")
    if data[pos + 1] == 0:
        raise RLPError("length with leading zero byte")
    length = int.from_bytes(data[pos + 1:start], "big")
    if length < 56:
        raise RLPError("long form used for a short payload")
    return start, start + length


def _decode_at(data: bytes, pos: int, end: int) -> tuple[RLPItem, int]:
    is_list, start, stop = _header(data, pos, end)
    if not is_list:
        return data[start:stop], stop
    items: list[RLPItem] = []
    while start < stop:
        item, start = _decode_at(data, start, stop)
        items.append(item)
    return items, stop


def rlp_decode(data: bytes) -> RLPItem:
    """Decode one RLP item that must span all of `data`."""
    data = bytes(data)
    item, stop = _decode_at(data, 0, len(data))
    if stop != len(data):
        raise RLPError("trailing bytes after RLP item")
    return item


def dec_str(item: bytes) -> bytes:
    """Decode the raw encoding of a single RLP string (e.g. a branch value slot)."""
    is_list, start, stop = _header(item, 0, len(item))
    if is_list or stop != len(item):
        raise RLPError("expected exactly one RLP string")
    return item[start:stop]

"""SS58 addresses (Substrate's base58-with-checksum format) with gridchain's network prefix.

Using SS58 rather than a format of our own means existing tools (subkey, polkadot.js, explorers)
decode our addresses to the same 32-byte public key; only the prefix differs.
"""
from __future__ import annotations

import hashlib

#: gridchain's SS58 network identifier. Any value in 0..16383 works with the format; this one is
#: not used by a well-known network. Chain specs publish it as `properties.ss58Format`.
GRIDCHAIN_SS58_PREFIX = 6236

_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_CONTEXT = b"SS58PRE"


class AddressError(ValueError):
    """The text is not a valid SS58 address (for this network)."""


def _b58encode(data: bytes) -> str:
    # Base58 is small and fixed; a local copy avoids a dependency for 15 lines.
    n = int.from_bytes(data, "big")
    out = bytearray()
    while n:
        n, r = divmod(n, 58)
        out.append(_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return (b"1" * pad + bytes(reversed(out))).decode()


def _b58decode(text: str) -> bytes:
    n = 0
    raw = text.encode()
    for c in raw:
        if c not in _INDEX:
            raise AddressError(f"character {chr(c)!r} is not base58")
        n = n * 58 + _INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(raw) - len(raw.lstrip(b"1"))
    return b"\0" * pad + body


def _prefix_bytes(prefix: int) -> bytes:
    if 0 <= prefix < 64:
        return bytes([prefix])
    if 64 <= prefix < 16384:
        first = ((prefix & 0b1111_1100) >> 2) | 0b0100_0000
        second = (prefix >> 8) | ((prefix & 0b11) << 6)
        return bytes([first, second])
    raise AddressError(f"SS58 prefix {prefix} out of range")


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(_CONTEXT + data, digest_size=64).digest()[:2]


def encode(public_key: bytes, prefix: int = GRIDCHAIN_SS58_PREFIX) -> str:
    """SS58-encode a 32-byte account id."""
    if len(public_key) != 32:
        raise AddressError("an account id is 32 bytes")
    data = _prefix_bytes(prefix) + public_key
    return _b58encode(data + _checksum(data))


def decode_with_prefix(address: str) -> tuple[bytes, int]:
    """Return (account id, network prefix); raise AddressError on a bad checksum or length."""
    raw = _b58decode(address)
    if not raw:
        raise AddressError("empty address")
    if raw[0] < 64:
        prefix, plen = raw[0], 1
    elif raw[0] < 128 and len(raw) > 1:
        lower = ((raw[0] << 2) | (raw[1] >> 6)) & 0xFF
        upper = raw[1] & 0b0011_1111
        prefix, plen = lower | (upper << 8), 2
    else:
        raise AddressError("unknown SS58 address format")
    if len(raw) != plen + 32 + 2:
        raise AddressError("an SS58 account address carries 32 bytes")
    body, check = raw[:-2], raw[-2:]
    if _checksum(body) != check:
        raise AddressError("SS58 checksum mismatch")
    return body[plen:], prefix


def decode(address: str, prefix: int | None = GRIDCHAIN_SS58_PREFIX) -> bytes:
    """Account id of `address`; with a prefix given, the address must be for that network."""
    account, got = decode_with_prefix(address)
    if prefix is not None and got != prefix:
        raise AddressError(f"address is for network {got}, expected {prefix}")
    return account

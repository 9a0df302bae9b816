"""keccak-256: the one hash gridchain uses for blocks, extrinsics, storage keys and the state trie.

One function everywhere keeps clients simple: a third party needs a single hash implementation
to check any commitment the chain makes. This is the original Keccak (pre-NIST padding), the one
Ethereum uses, so the state trie stays byte-compatible with py-trie. safe-pysha3 is a C binding
and measured about 4x faster per call than pycryptodome's object-based API on this machine, which
matters because the trie hashes every node it touches.
"""
from __future__ import annotations

from sha3 import keccak_256 as _keccak_256

HASH_LEN = 32


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte keccak-256 digest of `data`."""
    return _keccak_256(data).digest()


#: keccak-256 of the empty byte string.
EMPTY_KECCAK = keccak256(b"")

"""Merkle proof verification, deliberately independent of `Trie`'s node representation.

It decodes with the generic RLP decoder and walks nibble by nibble, so a bug in the fast node
code cannot make the verifier agree with it.
"""
from __future__ import annotations

from typing import Sequence

from primitives.hashing import keccak256
from primitives.trie.codec import RLPError, rlp_decode

BLANK_ROOT = keccak256(b"\x80")


class ProofError(ValueError):
    """The proof does not establish the key's value or absence under the given root."""


def verify_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The value of `key` under `root` as proven by `proof`, or None when the proof shows the key
    is absent. Raises ProofError when a needed node is missing or malformed."""
    if root == BLANK_ROOT:
        return None
    nodes = {keccak256(bytes(n)): bytes(n) for n in proof}
    try:
        return _walk(_resolve(root, nodes), key.hex(), nodes)
    except (RLPError, ValueError, IndexError, TypeError) as e:
        if isinstance(e, ProofError):
            raise
        raise ProofError(f"malformed proof node: {e}") from e


def _resolve(node_hash: bytes, nodes: dict[bytes, bytes]) -> list:
    rlp = nodes.get(node_hash)
    if rlp is None:
        raise ProofError(f"proof lacks node {node_hash.hex()}")
    node = rlp_decode(rlp)
    if not isinstance(node, list):
        raise ProofError("trie node is not a list")
    return node


def _child(ref: bytes | list, nodes: dict[bytes, bytes]) -> list | None:
    """Follow a child reference: empty, a 32-byte hash, or an inline (already decoded) node."""
    if isinstance(ref, list):
        return ref
    if ref == b"":
        return None
    if len(ref) == 32:
        return _resolve(ref, nodes)
    raise ProofError("child reference is neither a hash nor an inline node")


def _walk(node: list | None, path: str, nodes: dict[bytes, bytes]) -> bytes | None:
    d = 0
    while node is not None:
        if len(node) == 17:
            if d == len(path):
                value = node[16]
                if not isinstance(value, bytes):
                    raise ProofError("branch value is not a string")
                return value or None
            node = _child(node[int(path[d], 16)], nodes)
            d += 1
            continue
        if len(node) != 2 or not isinstance(node[0], bytes) or not node[0]:
            raise ProofError("malformed trie node")
        hp = node[0].hex()
        is_leaf = hp[0] in "23"
        if hp[0] not in "0123":
            raise ProofError("bad hex-prefix flag")
        p = hp[2:] if hp[0] in "02" else hp[1:]
        if is_leaf:
            if not isinstance(node[1], bytes):
                raise ProofError("leaf value is not a string")
            return node[1] if path[d:] == p else None
        if not path.startswith(p, d):
            return None
        d += len(p)
        node = _child(node[1], nodes)
    return None

"""Ethereum-compatible hexary Merkle-Patricia trie (Yellow Paper appendix D) for gridchain state.

Roots are byte-identical to py-trie's HexaryTrie for the same key/value set; proofs are lists of
RLP-encoded hashed nodes, root first. See `trie.py` for the batch update and node accounting.
"""
from primitives.trie.codec import RLPError, rlp_decode, rlp_encode
from primitives.trie.proof import ProofError, verify_proof
from primitives.trie.trie import (
    BLANK_ROOT,
    MissingNodeError,
    NodeStore,
    Trie,
    TrieUpdate,
    ordered_trie_root,
)

__all__ = [
    "BLANK_ROOT",
    "MissingNodeError",
    "NodeStore",
    "ProofError",
    "RLPError",
    "Trie",
    "TrieUpdate",
    "ordered_trie_root",
    "rlp_decode",
    "rlp_encode",
    "verify_proof",
]

"""In-memory form of hexary trie nodes, and their RLP encoding.

Paths are lower-case hex strings (one character per nibble) because `bytes.hex()`, slicing,
`startswith` and `bytes.fromhex` are all C-speed and hex order equals byte order.

Decoded node forms (always treated as immutable once built; they are shared through the cache):

* branch: ``list`` of 17 ``bytes``. Slots 0..15 hold the child *reference* exactly as it appears
  in the parent's RLP: ``EMPTY`` (b"\\x80"), b"\\xa0" + 32-byte hash, or an inline node's own RLP
  (< 32 bytes). Slot 16 holds the RLP-encoded value (``EMPTY`` when none). Encoding is one join.
* leaf: ``(LEAF, path, value)`` with the raw value.
* extension: ``(EXT, path, child_ref)`` with the child reference in the same form as above.
"""
from __future__ import annotations

from typing import Union

from primitives.trie.codec import EMPTY, RLPError, dec_str, enc_list, enc_str, split_list

EXT = 0
LEAF = 1

Branch = list  # list[bytes], 17 entries
Short = tuple  # (kind, path, payload)
Node = Union[Branch, Short]

HASH_REF = 0xA0  # first byte of a reference to a hashed child: RLP header of a 32-byte string
HEX = "0123456789abcdef"
NIB = {c: i for i, c in enumerate(HEX)}

# Hex-prefix flags (Yellow Paper appendix C), indexed by [kind][len(path) & 1].
_HP = (("00", "1"), ("20", "3"))


def encode_node(node: Node) -> bytes:
    """RLP of a node whose child slots are all references (bytes)."""
    if type(node) is list:
        return enc_list(b"".join(node))
    kind, path, x = node
    hp = bytes.fromhex(_HP[kind][len(path) & 1] + path)
    return enc_list(enc_str(hp) + (enc_str(x) if kind else x))


def decode_node(rlp: bytes) -> Node:
    """Parse a node's RLP into the in-memory form; raises RLPError on anything malformed."""
    items = split_list(rlp)
    if len(items) == 17:
        return items
    if len(items) != 2:
        raise RLPError(f"trie node with {len(items)} items")
    hp = dec_str(items[0]).hex()
    if not hp:
        raise RLPError("empty hex-prefix path")
    flag = hp[0]
    if flag in "02":
        if hp[1:2] != "0":
            raise RLPError("bad hex-prefix padding")
        path = hp[2:]
    elif flag in "13":
        path = hp[1:]
    else:
        raise RLPError("bad hex-prefix flag")
    if flag in "23":
        return (LEAF, path, dec_str(items[1]))
    if not path:
        raise RLPError("extension with empty path")
    return (EXT, path, items[1])


def hashed_children(node: Node) -> list[bytes]:
    """Hashes of the children this node references by hash.

    Inline children cannot hold hash references themselves (a 33-byte reference does not fit in a
    node shorter than 32 bytes), so one level is enough.
    """
    if type(node) is list:
        return [r[1:] for r in node[:16] if len(r) == 33]
    if node[0] == EXT and len(node[2]) == 33:
        return [node[2][1:]]
    return []


def branch_value(node: Branch) -> bytes | None:
    """The value stored in a branch (a key that ends at this node), or None."""
    v = node[16]
    return None if v == EMPTY else dec_str(v)


def is_hash_ref(ref: bytes) -> bool:
    return len(ref) == 33 and ref[0] == HASH_REF

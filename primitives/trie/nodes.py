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

from primitives.trie.codec import EMPTY, LIST_HDR, RLPError, dec_str, enc_list, enc_str

EXT = 0
LEAF = 1

Branch = list  # list[bytes], 17 entries
Short = tuple  # (kind, path, payload)
Node = Union[Branch, Short]

HEX = "0123456789abcdef"
NIB = {c: i for i, c in enumerate(HEX)}

# Hex-prefix flags (Yellow Paper appendix C), indexed by [kind][len(path) & 1].
_HP = (("00", "1"), ("20", "3"))


def encode_node(node: Node) -> bytes:
    """RLP of a node whose child slots are all references (bytes)."""
    if type(node) is list:
        payload = b"".join(node)
    else:
        kind, path, x = node
        payload = enc_str(bytes.fromhex(_HP[kind][len(path) & 1] + path)) + (enc_str(x) if kind else x)
    n = len(payload)
    return LIST_HDR[n] + payload if n < 2048 else enc_list(payload)


def decode_node(rlp: bytes) -> Node:
    """Parse a node's RLP into the in-memory form; raises RLPError on anything malformed.

    One loop over the items with no call per item: opening a trie decodes every node once, and a
    generic decoder spent most of that time in per-item header parsing.
    """
    items = _raw_items(rlp)
    if len(items) == 17:
        return items
    if len(items) != 2:
        raise RLPError(f"trie node with {len(items)} items")
    hp = dec_str(items[0]).hex()
    flag = hp[:1]
    if flag == "0" or flag == "2":
        if hp[1:2] != "0":
            raise RLPError("bad hex-prefix padding")
        path = hp[2:]
    elif flag == "1" or flag == "3":
        path = hp[1:]
    else:
        raise RLPError("bad hex-prefix flag")
    if flag >= "2":
        return (LEAF, path, dec_str(items[1]))
    if not path:
        raise RLPError("extension with empty path")
    return (EXT, path, items[1])


def _raw_items(rlp: bytes) -> list[bytes]:
    """The raw encodings of the items of the RLP list `rlp` (lengths checked, not canonicality:
    nodes are looked up by the hash of these exact bytes)."""
    end = len(rlp)
    b = rlp[0] if end else 0
    if b >= 0xF8:
        pos = 1 + b - 0xF7
        size = int.from_bytes(rlp[1:pos], "big")
    elif b >= 0xC0:
        pos, size = 1, b - 0xC0
    else:
        raise RLPError("trie node is not an RLP list")
    if pos + size != end:
        raise RLPError("trie node length mismatch")
    items = []
    append = items.append
    while pos < end:
        b = rlp[pos]
        if b < 0x80:
            n = 1
        elif b < 0xB8:
            n = b - 0x7F
        elif b < 0xC0 or b >= 0xF8:
            ll = b - (0xB7 if b < 0xC0 else 0xF7)
            n = 1 + ll + int.from_bytes(rlp[pos + 1:pos + 1 + ll], "big")
        else:
            n = b - 0xBF
        append(rlp[pos:pos + n])
        pos += n
    if pos != end:
        raise RLPError("trie node item overruns the list")
    return items


def branch_value(node: Branch) -> bytes | None:
    """The value stored in a branch (a key that ends at this node), or None."""
    v = node[16]
    return None if v == EMPTY else dec_str(v)


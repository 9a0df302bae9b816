"""One batch update of a hexary trie: sorted keys, one recursive descent, each new node hashed once.

Keys arrive sorted as hex strings; a subtree's changes are then a contiguous range [lo, hi) of
that list, so the descent passes index ranges instead of building sublists, and splits a range
among a branch's 16 children with `bisect`.

Nodes are built bottom-up in decoded form and committed (encoded, hashed when >= 32 bytes) only
when their parent is final. That matters for exactness: a branch that loses children may collapse
into its last child, and hashing that child first would report a node that never reaches the trie.

Node accounting is by position: `added` lists every hashed node committed (one entry per position
it takes), `removed` every hashed node whose occurrence the update replaced. Untouched subtrees
keep their absolute positions through splits and collapses, so these two lists are the complete
change in "number of positions holding hash h", and no untouched child is ever enumerated.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Callable

from primitives.hashing import keccak256
from primitives.trie.codec import EMPTY, dec_str, enc_str
from primitives.trie.nodes import EXT, HEX, LEAF, NIB, Node, encode_node

_NEXT = {c: chr(ord(c) + 1) for c in HEX}  # smallest string above every key with a given nibble


def _succ(prefix: str) -> str:
    """Smallest string greater than every hex string that starts with `prefix` (non-empty)."""
    return prefix[:-1] + _NEXT[prefix[-1]]


def _lcp_at(path: str, key: str, d: int) -> int:
    """Length of the common prefix of `path` and `key[d:]`, without slicing `key`."""
    n = min(len(path), len(key) - d)
    i = 0
    while i < n and path[i] == key[d + i]:
        i += 1
    return i


class Updater:
    """Applies sorted changes to a subtree, recording every hashed node it commits (`created`,
    `added`) and every hashed node occurrence it replaces (`removed`)."""

    __slots__ = ("keys", "vals", "load", "cache", "created", "added", "removed")

    def __init__(self, keys: list[str], vals: list[bytes | None],
                 load: Callable[[bytes], Node | None], cache: dict[bytes, Node]) -> None:
        self.keys = keys          # sorted hex keys
        self.vals = vals          # new value, or None to delete
        self.load = load          # child reference -> decoded node (None for EMPTY)
        self.cache = cache        # reference -> decoded node; committed nodes go straight in
        self.created: dict[bytes, bytes] = {}  # reference (b"\xa0" + hash) -> rlp
        self.added: list[bytes] = []           # references committed, one per position
        self.removed: list[bytes] = []         # hashed references whose occurrence was replaced

    # -- committing ---------------------------------------------------------------------------

    def commit(self, node: Node) -> bytes:
        """Encode a finished node and return the reference its parent stores: the RLP itself when
        under 32 bytes (inline), else b"\xa0" + hash."""
        rlp = encode_node(node)
        if len(rlp) < 32:
            return rlp
        return self._hashed(node, rlp)

    def commit_root(self, node: Node) -> bytes:
        """The root is referenced by hash even when its RLP is shorter than 32 bytes."""
        return self._hashed(node, encode_node(node))

    def _hashed(self, node: Node, rlp: bytes) -> bytes:
        ref = b"\xa0" + keccak256(rlp)
        self.created[ref] = rlp
        self.added.append(ref)
        self.cache[ref] = node
        return ref

    def replaced(self, ref: bytes) -> None:
        """The occurrence of `ref` at this position is gone (if it is a hashed node)."""
        if len(ref) == 33:
            self.removed.append(ref)

    def prefixed(self, path: str, node: Node | None) -> Node | None:
        """`node` moved `path` nibbles down: merged into a short node's path, or behind an extension."""
        if not path or node is None:
            return node
        if type(node) is list:
            return (EXT, path, self.commit(node))
        return (node[0], path + node[1], node[2])

    # -- dispatch -----------------------------------------------------------------------------

    def update(self, node: Node | None, lo: int, hi: int, d: int) -> Node | None:
        """New version of the subtree `node` at depth `d` after changes [lo, hi).

        Returns `node` itself (same object) when nothing changed, so the parent keeps its reference.
        """
        if hi - lo == 1:
            return self.update1(node, self.keys[lo], self.vals[lo], d)
        if node is None:
            return self.build(lo, hi, d)
        if type(node) is list:
            return self.update_branch(node, lo, hi, d, False, [])
        return self.update_short(node, lo, hi, d)

    # -- one key ------------------------------------------------------------------------------

    def update1(self, node: Node | None, key: str, val: bytes | None, d: int) -> Node | None:
        """Single-key update: the common case below the top few levels of a batch."""
        if node is None:
            return None if val is None else (LEAF, key[d:], val)
        if type(node) is list:
            return self._branch1(node, key, val, d)
        kind, path, x = node
        if kind == LEAF:
            if key.startswith(path, d) and len(key) - d == len(path):
                if val is None:
                    return None
                return node if val == x else (LEAF, path, val)
        elif key.startswith(path, d):
            child = self.load(x)
            new = self.update1(child, key, val, d + len(path))
            if new is child:
                return node
            self.replaced(x)
            return self.prefixed(path, new)
        if val is None:
            return node
        return self._split1(node, key[d:], val)

    def _branch1(self, node: list, key: str, val: bytes | None, d: int) -> Node | None:
        if len(key) == d:
            enc = EMPTY if val is None else enc_str(val)
            if enc == node[16]:
                return node
            new = list(node)
            new[16] = enc
            return self.finish_branch(new, (), enc == EMPTY)
        i = NIB[key[d]]
        ref = node[i]
        child = self.cache.get(ref) or self.load(ref)   # cache hit without a call: hot path
        nc = self.update1(child, key, val, d + 1)
        if nc is child:
            return node
        self.replaced(ref)
        new = list(node)
        if nc is None:
            new[i] = EMPTY
            return self.finish_branch(new, (), True)
        new[i] = self.commit(nc)
        return new

    def _split1(self, node: tuple, rest: str, val: bytes) -> Node:
        """Insert a key that leaves the short node's path: a branch where they part."""
        kind, path, x = node
        c = _lcp_at(path, rest, 0)
        br = [EMPTY] * 17
        if c == len(path):              # only a leaf can end here: its value moves into the branch
            br[16] = enc_str(x)
        elif kind == EXT and c + 1 == len(path):
            br[NIB[path[c]]] = x
        else:
            br[NIB[path[c]]] = self.commit((kind, path[c + 1:], x))
        if c == len(rest):
            br[16] = enc_str(val)
        else:
            br[NIB[rest[c]]] = self.commit((LEAF, rest[c + 1:], val))
        return self.prefixed(path[:c], br)

    # -- many keys ----------------------------------------------------------------------------

    def _first_insert(self, lo: int, hi: int) -> int:
        vals = self.vals
        while lo < hi and vals[lo] is None:
            lo += 1
        return lo

    def _last_insert(self, lo: int, hi: int) -> int:
        vals = self.vals
        hi -= 1
        while hi >= lo and vals[hi] is None:
            hi -= 1
        return hi

    def _has_insert(self, lo: int, hi: int) -> bool:
        return lo < hi and self.vals[lo:hi].count(None) != hi - lo

    def build(self, lo: int, hi: int, d: int) -> Node | None:
        """A fresh subtree from the inserts in [lo, hi) (deletes of absent keys are no-ops)."""
        f = self._first_insert(lo, hi)
        if f == hi:
            return None
        last = self._last_insert(f, hi)
        keys = self.keys
        a = keys[f]
        if f == last:
            return (LEAF, a[d:], self.vals[f])
        c = _lcp_at(a[d:], keys[last], d)   # sorted: first and last share what all share
        br = self.update_branch([EMPTY] * 17, f, last + 1, d + c, True, [])
        return self.prefixed(a[d:d + c], br)

    def update_short(self, node: tuple, lo: int, hi: int, d: int) -> Node | None:
        """Several changes under a leaf or extension node."""
        kind, path, x = node
        keys = self.keys
        full = keys[lo][:d] + path
        if kind == EXT:
            a = bisect_left(keys, full, lo, hi)
            b = bisect_left(keys, _succ(full), a, hi)
            if not self._has_insert(lo, a) and not self._has_insert(b, hi):
                if a == b:
                    return node
                child = self.load(x)
                new = self.update(child, a, b, d + len(path))
                if new is child:
                    return node
                self.replaced(x)
                return self.prefixed(path, new)
        else:
            i = bisect_left(keys, full, lo, hi)
            if i < hi and keys[i] == full:   # the leaf's own key is rewritten or deleted
                return self.build(lo, hi, d)
            if not self._has_insert(lo, hi):
                return node
        return self._split_many(node, lo, hi, d)

    def _split_many(self, node: tuple, lo: int, hi: int, d: int) -> Node | None:
        """Some insert leaves the short node's path: open a branch where the first one parts."""
        kind, path, x = node
        keys = self.keys
        f, last = self._first_insert(lo, hi), self._last_insert(lo, hi)
        m = min(_lcp_at(path, keys[f], d), _lcp_at(path, keys[last], d))
        br = [EMPTY] * 17
        touched: list[int] = []
        if m == len(path):
            br[16] = enc_str(x)
        elif kind == EXT and m + 1 == len(path):
            br[NIB[path[m]]] = x
        else:
            slot = NIB[path[m]]
            br[slot] = (kind, path[m + 1:], x)
            touched.append(slot)
        if m:
            sub = keys[lo][:d] + path[:m]
            lo = bisect_left(keys, sub, lo, hi)
            hi = bisect_left(keys, _succ(sub), lo, hi)
        new = self.update_branch(br, lo, hi, d + m, True, touched)
        return self.prefixed(path[:m], new)

    def update_branch(self, node: list, lo: int, hi: int, d: int, owned: bool,
                      touched: list[int]) -> Node | None:
        """Changes [lo, hi) under a branch at depth `d`, split among its children by nibble.

        `owned` means `node` is a scratch list this call may modify (a branch being built), whose
        slots listed in `touched` may still hold decoded, uncommitted nodes.
        """
        keys, vals = self.keys, self.vals
        cache_get, load = self.cache.get, self.load
        new = node if owned else None
        removed = False
        i = lo
        if len(keys[lo]) == d:
            val = vals[lo]
            enc = EMPTY if val is None else enc_str(val)
            if enc != node[16]:
                if new is None:
                    new = list(node)
                new[16] = enc
                removed = val is None
            i += 1
        prefix = keys[lo][:d]
        while i < hi:
            c = keys[i][d]
            j = i + 1
            if j < hi and keys[j][d] == c:
                j = bisect_left(keys, prefix + _NEXT[c], j + 1, hi)
            slot = NIB[c]
            s = node[slot] if new is None else new[slot]
            if type(s) is bytes:
                child = cache_get(s) or load(s)
                hashed = len(s) == 33
            else:
                child, hashed = s, False
            nc = self.update(child, i, j, d + 1) if j - i > 1 else self.update1(child, keys[i], vals[i], d + 1)
            if nc is not child:
                if hashed:
                    self.removed.append(s)
                if new is None:
                    new = list(node)
                if nc is None:
                    new[slot] = EMPTY
                    removed = True
                else:
                    new[slot] = nc
                    touched.append(slot)
            i = j
        if new is None:
            return node
        return self.finish_branch(new, touched, removed)

    def finish_branch(self, new: list, touched, maybe_collapse: bool) -> Node | None:
        """Collapse a branch left with one entry (Yellow Paper: no branch with a single entry),
        otherwise commit its decoded children."""
        if maybe_collapse:
            live = [i for i in range(16) if new[i] != EMPTY]
            has_value = new[16] != EMPTY
            if len(live) + has_value < 2:
                if not live:
                    return (LEAF, "", dec_str(new[16])) if has_value else None
                s = new[live[0]]
                if type(s) is bytes:       # an untouched child is merged (or re-committed) here
                    self.replaced(s)
                    child = self.load(s)
                else:
                    child = s
                return self.prefixed(HEX[live[0]], child)
        commit = self.commit
        for t in touched:
            s = new[t]
            if type(s) is not bytes:
                new[t] = commit(s)
        return new

"""The state trie: reads, batch updates with exact new/obsolete node sets, proofs, ordered iteration.

Why position counts: identical subtrees occur at different positions of one trie (the same
suffix and value under two prefixes, e.g. two maps keyed by the same accounts holding equal
values), and a hash-keyed store holds such a node once. So "this update replaced node X" does not
mean X left the trie. `Trie` keeps, per hashed node under its root, the number of positions that
hold it; `obsolete` is exactly the set whose count falls to zero, `new_nodes` exactly the set whose
count rises from zero. Counting positions rather than parent slots keeps the bookkeeping
proportional to the nodes an update replaces: untouched children are never enumerated. The index
is built by one walk on the first `apply()` (and again if `root` is reassigned).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable, Iterator, Mapping, Protocol

from primitives.hashing import keccak256
from primitives.trie.codec import EMPTY, RLPError, enc_str
from primitives.trie.nodes import EXT, HEX, LEAF, NIB, Node, branch_value, decode_node
from primitives.trie.update import Updater

BLANK_ROOT = keccak256(EMPTY)


class NodeStore(Protocol):
    def get(self, node_hash: bytes) -> bytes | None:
        """The RLP encoding of the node with that hash, or None."""
        ...


class MissingNodeError(KeyError):
    """A node the trie needs is in neither the store nor this Trie's pending nodes."""


@dataclass
class TrieUpdate:
    root: bytes
    new_nodes: dict[bytes, bytes] = field(default_factory=dict)
    obsolete: set[bytes] = field(default_factory=set)


class Trie:
    """A hexary Merkle-Patricia trie over a content-addressed node store, byte-compatible with
    py-trie's HexaryTrie. The store is only read; `apply` hands back what to write."""

    def __init__(self, store: NodeStore, root: bytes = BLANK_ROOT, cache_size: int = 200_000,
                 exact_obsolete: bool = True) -> None:
        """`exact_obsolete=False` (archive nodes, one-off roots) skips the node-count index, which
        costs one walk of the whole trie when first needed and memory per node: `new_nodes` then
        holds every node the update wrote (some may exist already; rewriting is harmless) and
        `obsolete` is empty."""
        self.exact_obsolete = exact_obsolete
        self.store = store
        self.root = root
        self.cache_size = cache_size
        self._cache: dict[bytes, Node] = {}            # reference -> decoded node
        self._pending: list[tuple[bytes, dict[bytes, bytes]]] = []  # (root, new_nodes) not yet stored
        self._counts: dict[bytes, int] | None = None   # reference -> positions holding it
        self._counts_root: bytes | None = None

    # -- node access ------------------------------------------------------------------------

    def _rlp(self, node_hash: bytes) -> bytes:
        """The stored encoding of a hashed node: pending (not yet persisted) first, then the store."""
        for _, nodes in reversed(self._pending):
            rlp = nodes.get(node_hash)
            if rlp is not None:
                return rlp
        rlp = self.store.get(node_hash)
        if rlp is None:
            raise MissingNodeError(node_hash.hex())
        return bytes(rlp)

    def _load(self, ref: bytes) -> Node | None:
        """Decoded node for a child reference; cached, since nodes are immutable by hash."""
        node = self._cache.get(ref)
        if node is not None:
            return node
        if ref == EMPTY:
            return None
        if len(ref) == 33 and ref[0] == 0xA0:
            node = decode_node(self._rlp(ref[1:]))
        elif ref[0] >= 0xC0:
            node = decode_node(ref)
        else:
            raise RLPError(f"bad child reference {ref.hex()}")
        cache = self._cache
        cache[ref] = node
        if len(cache) > self.cache_size:
            self._evict()
        return node

    def _evict(self) -> None:
        """Drop the oldest eighth: a cheap FIFO that keeps recently built nodes (the hot paths)."""
        cache = self._cache
        for ref in list(islice(cache, max(1, len(cache) // 8))):
            del cache[ref]

    def _root_node(self, root: bytes) -> Node | None:
        return None if root == BLANK_ROOT else self._load(b"\xa0" + root)

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value at `key`, or None."""
        path = key.hex()
        node = self._root_node(self.root)
        d = 0
        load = self._load
        while node is not None:
            if type(node) is list:
                if d == len(path):
                    return branch_value(node)
                node = load(node[NIB[path[d]]])
                d += 1
                continue
            kind, p, x = node
            if kind == LEAF:
                return x if path.startswith(p, d) and len(path) - d == len(p) else None
            if not path.startswith(p, d):
                return None
            d += len(p)
            node = load(x)
        return None

    def prove(self, key: bytes) -> list[bytes]:
        """RLP of every hashed node on the path to `key`, root first: proves presence or absence.

        Inline nodes are not listed: they are part of their parent's RLP. (py-trie's
        `get_from_proof` wants decoded nodes: pass `[rlp_decode(n) for n in proof]`.)
        """
        if self.root == BLANK_ROOT:
            return []
        path = key.hex()
        proof = [self._rlp(self.root)]
        node = self._load(b"\xa0" + self.root)
        d = 0
        while True:
            if type(node) is list:
                if d == len(path):
                    return proof
                ref = node[NIB[path[d]]]
                d += 1
            else:
                kind, p, ref = node
                if kind == LEAF or not path.startswith(p, d):
                    return proof
                d += len(p)
            if ref == EMPTY:
                return proof
            if len(ref) == 33:
                proof.append(self._rlp(ref[1:]))
            node = self._load(ref)

    def prove_many(self, keys: Iterable[bytes]) -> list[bytes]:
        """Union of the proofs of `keys`, each node once, in first-seen order (root first)."""
        seen: set[bytes] = set()
        out: list[bytes] = []
        for key in keys:
            for rlp in self.prove(key):
                if rlp not in seen:
                    seen.add(rlp)
                    out.append(rlp)
        return out

    def iter_keys(self, prefix: bytes = b"", start_after: bytes | None = None,
                  limit: int | None = None) -> Iterator[bytes]:
        """Keys starting with `prefix`, ascending, strictly after `start_after`, at most `limit`."""
        items = self._iter(prefix.hex(), None if start_after is None else start_after.hex())
        for k, _ in items if limit is None else islice(items, limit):
            yield k

    def iter_items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with `prefix`, ascending by key."""
        return self._iter(prefix.hex(), None)

    def _iter(self, prefix: str, after: str | None) -> Iterator[tuple[bytes, bytes]]:
        """Depth-first walk in key order, skipping subtrees outside `prefix` or not after `after`."""
        root = self._root_node(self.root)
        if root is None:
            return
        stack: list[tuple[str, Node | None, bytes | None]] = [("", root, None)]
        while stack:
            path, node, value = stack.pop()
            if node is None:                         # a (key, value) ready to emit
                if path.startswith(prefix) and (after is None or path > after):
                    yield bytes.fromhex(path), value
                continue
            if type(node) is list:
                for i in range(15, -1, -1):
                    ref = node[i]
                    if ref != EMPTY and _may_hold(path + HEX[i], prefix, after):
                        stack.append((path + HEX[i], self._load(ref), None))
                if node[16] != EMPTY:
                    stack.append((path, None, branch_value(node)))
                continue
            kind, p, x = node
            if kind == LEAF:
                stack.append((path + p, None, x))
            elif _may_hold(path + p, prefix, after):
                stack.append((path + p, self._load(x), None))

    # -- updates ----------------------------------------------------------------------------

    def apply(self, changes: Mapping[bytes, bytes | None]) -> TrieUpdate:
        """Apply a block's changes in one pass; returns the new root and the exact node delta.

        A value of None or b"" deletes the key. The store is not written: new nodes stay readable
        through this object until the store holds them (checked by root at the next apply).
        """
        self._drop_persisted()
        if not changes:
            return TrieUpdate(self.root)
        counts = self._position_counts() if self.exact_obsolete else None
        # Tens of thousands of short-lived tuples and lists, none in a cycle: the cyclic GC would
        # only rescan the (large, long-lived) node cache. Measured: ~20% of apply time.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._apply(changes, counts)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _apply(self, changes: Mapping[bytes, bytes | None], counts: dict[bytes, int]) -> TrieUpdate:
        up, new_root = self._update(changes)
        if not up.added and not up.removed:
            return TrieUpdate(new_root)
        if counts is None:
            created = up.created
            new_nodes, obsolete = {ref[1:]: created[ref] for ref in up.added}, set()
        else:
            try:
                new_nodes, obsolete = _settle(counts, up)
            except BaseException:
                self._counts = None             # possibly half-updated: rebuild by walking next time
                raise
        self.root = self._counts_root = new_root
        if new_nodes:
            self._pending.append((new_root, new_nodes))
        cache = self._cache
        for h in obsolete:                  # left the trie: keep the cache for live nodes
            cache.pop(b"\xa0" + h, None)
        if len(cache) > self.cache_size:
            self._evict()
        return TrieUpdate(new_root, new_nodes, obsolete)

    def _update(self, changes: Mapping[bytes, bytes | None]) -> tuple[Updater, bytes]:
        """Run the descent; returns the updater (with its node accounting) and the new root."""
        order = sorted(changes)
        up = Updater([k.hex() for k in order], [changes[k] or None for k in order],
                     self._load, self._cache)
        old_node = self._root_node(self.root)
        new_node = up.update(old_node, 0, len(order), 0)
        if new_node is old_node:
            return up, self.root
        if old_node is not None:
            up.replaced(b"\xa0" + self.root)
        if new_node is None:
            return up, BLANK_ROOT
        return up, up.commit_root(new_node)[1:]

    def _position_counts(self) -> dict[bytes, int]:
        """reference -> number of positions holding it under the current root (built on demand)."""
        if self._counts is None or self._counts_root != self.root:
            self._counts = self._count_positions(self.root)
            self._counts_root = self.root
        return self._counts

    def _count_positions(self, root: bytes) -> dict[bytes, int]:
        """One walk of the trie; a subtree that occurs at two positions is walked and counted twice
        (bounded by the trie's size as a tree, i.e. linear in the number of keys)."""
        counts: dict[bytes, int] = {}
        if root == BLANK_ROOT:
            return counts
        cache = self._cache
        stack = [b"\xa0" + root]
        while stack:
            ref = stack.pop()
            counts[ref] = counts.get(ref, 0) + 1
            node = cache.get(ref)          # read through the cache, but do not flood it
            if node is None:
                node = decode_node(self._rlp(ref[1:]))
            if type(node) is list:
                stack.extend([r for r in node[:16] if len(r) == 33])
            elif node[0] == EXT and len(node[2]) == 33:
                stack.append(node[2])
        return counts

    def _drop_persisted(self) -> None:
        """Forget pending generations whose root the store now has (new_nodes are written as one
        batch, so the root being there means the whole generation is)."""
        if self._pending:
            self._pending = [g for g in self._pending if self.store.get(g[0]) is None]


def _settle(counts: dict[bytes, int], up: Updater) -> tuple[dict[bytes, bytes], set[bytes]]:
    """Apply the update's position changes to `counts`: a hash whose count rises from zero is new,
    one whose count falls to zero is obsolete. Exact, including for shared subtrees.

    Removals go first, so a node replaced at one position and re-created at another (or the same)
    passes through zero and back: it is then neither new nor obsolete.
    """
    emptied = []
    for ref in up.removed:
        n = counts[ref] - 1      # KeyError here would mean the index and the trie disagree
        if n:
            counts[ref] = n
        else:
            del counts[ref]
            emptied.append(ref)
    filled = []
    get = counts.get
    for ref in up.added:
        n = get(ref, 0)
        counts[ref] = n + 1
        if not n:
            filled.append(ref)
    was_there = set(emptied)
    created = up.created
    new_nodes = {ref[1:]: created[ref] for ref in filled if ref not in was_there}
    obsolete = {ref[1:] for ref in emptied if ref not in counts}
    return new_nodes, obsolete


def _may_hold(path: str, prefix: str, after: str | None) -> bool:
    """Whether the subtree at `path` can hold a key with `prefix` that sorts after `after`."""
    if not (path.startswith(prefix) or prefix.startswith(path)):
        return False
    return after is None or path > after or after.startswith(path)


def ordered_trie_root(items: Iterable[bytes]) -> bytes:
    """Root of the trie mapping rlp(index) -> item (Ethereum's transactions root)."""
    changes = {enc_str(_int_bytes(i)): item for i, item in enumerate(items)}
    return Trie({}, exact_obsolete=False).apply(changes).root


def _int_bytes(i: int) -> bytes:
    """Big-endian minimal bytes of a non-negative int; 0 is the empty string."""
    return i.to_bytes((i.bit_length() + 7) // 8, "big")

"""Chain state on LevelDB: the Merkle-Patricia trie, a flat snapshot of the head state, and pruning.

Two representations of state live side by side (see `node.db` for the columns):

* `t/` holds trie nodes by hash. Every kept state is a root into this shared, content-addressed node
  set; historical reads, proofs and iteration at old roots walk the trie.
* `s/` holds the head state flat (raw storage key -> value). Reads of the head state -- the hot path
  of block execution and transaction validation -- are one in-memory cache lookup or one LevelDB get,
  not five or more trie node lookups. `m/state_root` names the root `s/` corresponds to.

A block's state is applied in two steps. `prepare(changes)` runs `Trie.apply` once on top of the head
state and returns a `PreparedState` (new root, node delta, changes); nothing is written. `commit(batch,
prepared, number)` puts the new nodes, the flat snapshot updates, the new head root and the pruning
bookkeeping into the caller's `WriteBatch`, which also carries the block itself; only when
`Database.write(batch)` succeeds do the in-memory head, caches and trie move (batch `on_commit` hook).
So the flat snapshot and the trie head always move together, and a crash before the write changes
nothing. A value of b"" is a deletion, as in the trie.

Readers: `reader()` follows the head: it always reads the current head state from the flat snapshot
(plus an in-memory cache of hot values, misses included), so after a commit it sees the new state.
`reader(root)` is pinned to `root`: while `root` is the head it reads the flat snapshot too; once the
head has moved on, the same reader transparently walks the trie at its root, so it never mixes two
states (and fails with `StateUnavailable` if that root is pruned meanwhile).

Pruning (`keep_states=N`; `None` is archive mode, which keeps every state and never deletes a node):
  The states of the last N blocks (the head and the N-1 before it) are kept; older states are dropped.
  `Trie.apply` reports for each block n the exact node delta between state n-1 and state n:
  `new_n` (reachable from root n but not from root n-1) and `obsolete_n` (the reverse). The database
  keeps a reference count per node hash in `r/` and a journal entry per block in `p/`
  (`[root_n, obsolete_n]`):
    * committing block n adds 1 to the count of every node in `new_n` (and stores the node);
    * when state n-1 leaves the window -- at the commit of block n-1+N -- every node in `obsolete_n`
      loses 1, and a node whose count reaches 0 is deleted from `t/` and `r/`.
  Why this is exact: over time a node's membership in "the head state" is a sequence of entries and
  exits that alternate, entry first; each entry is one `new` (+1), each exit one `obsolete`. The count
  is (entries up to the head) - (exits applied so far), and exits are applied only when the state they
  left has left the window. It is zero exactly when every entry has been matched by an exit at or
  before the oldest kept state and no entry happened since, i.e. when no kept state reaches the node.
  An identical subtree that reappears later (same hash) simply enters again (+1), so nodes that are
  shared between kept states or recur after being obsoleted are never deleted early. All of it goes
  into the block's batch, so counts, nodes and the journal stay consistent across crashes.
  Reads, proofs and iteration at a root outside the window fail with `StateUnavailable` (checked
  against the journal's roots before touching a node, because caches may still hold pruned nodes).
  A database keeps the mode it was created in (archive or pruned: the counts exist only in pruning
  mode); the window size N may change between runs.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Mapping

from primitives.codec import pack, unpack
from primitives.errors import ChainError
from primitives.trie import BLANK_ROOT, MissingNodeError, Trie, TrieUpdate

from node.db import (COL_FLAT, COL_JOURNAL, COL_META, COL_REFCOUNT, COL_TRIE, META_STATE_MODE,
                     META_STATE_NUMBER, META_STATE_ROOT, Damage, Database, StorageError, WriteBatch, from_u64, u64)

MODE_ARCHIVE = b"archive"
MODE_PRUNED = b"pruned"

_ABSENT = object()


class StateUnavailable(ChainError):
    """The requested state is not on this node: pruned, or a root the node never had."""

    rpc_code = 4003

    def __init__(self, message: str) -> None:
        super().__init__(message)


class StateDBError(RuntimeError):
    """Misuse of the state database (a bug in the caller, never user input)."""


@dataclass(frozen=True)
class PreparedState:
    """One block's state transition, computed but not yet written."""

    parent_root: bytes
    root: bytes
    update: TrieUpdate
    changes: dict[bytes, bytes | None]


class _FifoCache:
    """A bounded dict that drops its oldest eighth when full (cheaper than a true LRU per hit)."""

    __slots__ = ("data", "capacity")

    def __init__(self, capacity: int) -> None:
        self.data: dict = {}
        self.capacity = capacity

    def put(self, key, value) -> None:
        data = self.data
        data[key] = value
        if len(data) > self.capacity:
            drop = max(1, len(data) // 8)
            for k in list(data)[:drop]:
                del data[k]


class _NodeStore:
    """The trie's node store: LevelDB `t/` behind an in-memory cache of raw nodes."""

    def __init__(self, db: Database, cache_size: int) -> None:
        self._col_get = db.getter(COL_TRIE)
        self.cache = _FifoCache(cache_size)

    def get(self, node_hash: bytes) -> bytes | None:
        v = self.cache.data.get(node_hash)
        if v is not None:
            return v
        v = self._col_get(node_hash)
        if v is not None:
            self.cache.put(node_hash, v)
        return v


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no upper bound)."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes([p[-1] + 1])


class StateReader:
    """Read access to one state (implements `runtime.api.StateReader`).

    Pinned to `root`, or, when made by `StateDB.reader()` without a root, following the head: such a
    reader always reads the current head state through the flat snapshot, and may see the new state
    after a commit (the node's single thread never commits in the middle of one read).
    """

    __slots__ = ("_sdb", "_root", "_trie")

    def __init__(self, sdb: "StateDB", root: bytes | None) -> None:
        self._sdb = sdb
        self._root = root
        self._trie: Trie | None = None

    @property
    def root(self) -> bytes:
        """The state root this reader reads right now."""
        return self._sdb._head_root if self._root is None else self._root

    @property
    def follows_head(self) -> bool:
        return self._root is None

    def _historical(self) -> Trie:
        root = self._root
        assert root is not None
        self._sdb._check_available(root)
        if self._trie is None:
            self._trie = self._sdb._trie_at(root)
        return self._trie

    def get(self, key: bytes) -> bytes | None:
        sdb = self._sdb
        root = self._root
        if root is None or root == sdb._head_root:
            return sdb._flat_get(key)
        try:
            return self._historical().get(key)
        except MissingNodeError as e:
            raise sdb._unavailable(root, e) from None

    def iter_keys(self, prefix: bytes = b"", start_after: bytes | None = None) -> Iterator[bytes]:
        """Keys with `prefix`, ascending, strictly after `start_after`."""
        sdb = self._sdb
        root = self._root
        if root is None or root == sdb._head_root:
            return sdb._flat_iter(prefix, start_after)
        return sdb._trie_iter(self._historical(), root, prefix, start_after)


class StateDB:
    def __init__(self, db: Database, keep_states: int | None = None, *, value_cache_size: int = 50_000,
                 node_cache_size: int = 50_000, trie_cache_size: int = 50_000) -> None:
        if keep_states is not None and keep_states < 1:
            raise ValueError("keep_states must be at least 1 (or None for archive mode)")
        self.db = db
        self.keep_states = keep_states
        mode = MODE_ARCHIVE if keep_states is None else MODE_PRUNED
        stored = db.get(COL_META, META_STATE_MODE)
        if stored is None:
            db.put_meta(META_STATE_MODE, mode)
        elif stored != mode:
            raise StateDBError(
                f"the database at {db.path} was created in {stored.decode()} mode and cannot be opened in "
                f"{mode.decode()} mode (purge the chain to change the pruning mode)")
        self._flat_raw_get = db.getter(COL_FLAT)
        self._values = _FifoCache(value_cache_size)
        self._store = _NodeStore(db, node_cache_size)
        self._trie_cache_size = trie_cache_size
        root = db.get(COL_META, META_STATE_ROOT)
        num = db.get(COL_META, META_STATE_NUMBER)
        self._head_root: bytes = BLANK_ROOT if root is None else root
        self._head_number: int | None = None if num is None else from_u64(num)
        self._trie = Trie(self._store, self._head_root, cache_size=trie_cache_size,
                          exact_obsolete=keep_states is not None)
        # pruning window: block number -> root, for the kept states; and how many kept blocks per root
        self._window: dict[int, bytes] = {}
        self._window_roots: Counter[bytes] = Counter()
        #: nodes whose count went below zero (would mean a broken node delta; tests assert 0)
        self.refcount_anomalies = 0
        if keep_states is not None:
            for k, v in db.iter_column(COL_JOURNAL):
                n = from_u64(k)
                r = unpack(v)[0]
                self._window[n] = r
                self._window_roots[r] += 1

    # -- head ---------------------------------------------------------------------------------
    def head_root(self) -> bytes:
        return self._head_root

    def head_number(self) -> int | None:
        """Block number of the head state, None before genesis."""
        return self._head_number

    def kept_roots(self) -> list[tuple[int, bytes]]:
        """(number, root) of the states still kept in pruning mode, oldest first."""
        return sorted(self._window.items())

    # -- readers ------------------------------------------------------------------------------
    def reader(self, root: bytes | None = None) -> StateReader:
        """A reader of the head state (root None: follows the head as it moves) or pinned to `root`.

        A pinned reader reads the flat snapshot while `root` is the head and walks the trie once the
        head has moved on. Raises StateUnavailable for a root that is pruned or unknown.
        """
        if root is not None and root != self._head_root:
            self._check_available(root)
        return StateReader(self, root)

    def _flat_get(self, key: bytes) -> bytes | None:
        cached = self._values.data.get(key, _ABSENT)
        if cached is not _ABSENT:
            return cached  # type: ignore[return-value]
        v = self._flat_raw_get(key)
        self._values.put(key, v)
        return v

    def _flat_iter(self, prefix: bytes, start_after: bytes | None) -> Iterator[bytes]:
        # The LevelDB iterator is created now, so it reads the snapshot of this moment (the head
        # the reader is pinned to) even if the caller consumes it after later commits.
        if start_after is not None and start_after >= prefix:
            start, include_start = start_after, False
        else:
            start, include_start = (prefix or None), True
        return self.db.iter_column(COL_FLAT, start=start, include_start=include_start, stop=_prefix_end(prefix),
                                   include_value=False)

    def _trie_at(self, root: bytes) -> Trie:
        return Trie(self._store, root, cache_size=20_000, exact_obsolete=False)

    def _trie_iter(self, trie: Trie, root: bytes, prefix: bytes, start_after: bytes | None) -> Iterator[bytes]:
        try:
            for k in trie.iter_keys(prefix, start_after):
                yield k
        except MissingNodeError as e:
            raise self._unavailable(root, e) from None

    def _is_available(self, root: bytes) -> bool:
        if root == self._head_root or root == BLANK_ROOT:
            return True
        if self.keep_states is not None:
            return root in self._window_roots
        return self._store.get(root) is not None

    def _check_available(self, root: bytes) -> None:
        if not self._is_available(root):
            raise self._unavailable(root)

    def _unavailable(self, root: bytes, cause: Exception | None = None) -> StateUnavailable:
        if self.keep_states is not None:
            kept = self.kept_roots()
            span = f"#{kept[0][0]}..#{kept[-1][0]}" if kept else "none"
            msg = (f"State already discarded for state root 0x{root.hex()}: this node keeps the last "
                   f"{self.keep_states} states (blocks {span}); run an archive node for older state")
        else:
            msg = f"Unknown state root 0x{root.hex()}"
        if cause is not None:
            msg += f" (missing trie node {cause})"
        return StateUnavailable(msg)

    # -- proofs and iteration -----------------------------------------------------------------
    def prove(self, root: bytes, keys: list[bytes]) -> list[bytes]:
        """Trie nodes (RLP, root first, each once) proving the values or absence of `keys` at `root`."""
        self._check_available(root)
        trie = self._trie if (root == self._head_root and self._trie.root == root) else self._trie_at(root)
        try:
            return trie.prove_many(keys)
        except MissingNodeError as e:
            raise self._unavailable(root, e) from None

    def iter_keys(self, root: bytes | None, prefix: bytes = b"", start_after: bytes | None = None
                  ) -> Iterator[bytes]:
        """Keys with `prefix` at `root` (None: the head), ascending, strictly after `start_after`."""
        return self.reader(root).iter_keys(prefix, start_after)

    # -- writing ------------------------------------------------------------------------------
    def prepare(self, changes: Mapping[bytes, bytes | None]) -> PreparedState:
        """Apply one block's changes on top of the head state; writes nothing.

        Preparing again before the previous preparation was committed discards it (and costs one
        walk of the head trie to rebuild the trie's reference index).
        """
        norm: dict[bytes, bytes | None] = {bytes(k): (v if v else None) for k, v in changes.items()}
        if self._trie.root != self._head_root:
            # an uncommitted preparation is on the trie: start over from the head
            self._trie = Trie(self._store, self._head_root, cache_size=self._trie_cache_size,
                              exact_obsolete=self.keep_states is not None)
        parent = self._head_root
        try:
            update = self._trie.apply(norm)
        except MissingNodeError as e:
            raise self._head_damaged(e) from None
        return PreparedState(parent, update.root, update, norm)

    def check_head(self, expected_root: bytes) -> None:
        """Check on start that the head state is the one `expected_root` (the best block's state
        root) names and that it can be read; raises StorageError otherwise.

        Reads, with checksums verified, the whole flat snapshot and (pruning mode) the reference
        counts -- sequential LevelDB scans, about a second per million keys -- and, in pruning mode,
        walks the whole head trie: the walk that builds the trie's node counts, which the first
        block would need anyway. So a damaged table block holding head state stops the node here
        rather than at its first block. In archive mode (no counts to build, and `t/` holds every
        state ever) only the root node of the trie is read; the rest fails when first read.
        """
        if self._head_root != expected_root:
            raise self.db.fault(Damage(f"its head state 0x{self._head_root.hex()} is not the best block's "
                                       f"state 0x{expected_root.hex()}"))
        for _ in self.db.iter_column(COL_FLAT, include_value=False):
            pass
        if self.keep_states is not None:
            for _ in self.db.iter_column(COL_REFCOUNT, include_value=False):
                pass
        if expected_root == BLANK_ROOT:
            return
        try:
            if self.keep_states is None:
                if self._store.get(expected_root) is None:
                    raise MissingNodeError(expected_root.hex())
            else:
                # the walk `Trie.apply` starts with in pruning mode, done now: the first block reuses it
                self._trie._position_counts()
        except MissingNodeError as e:
            raise self._head_damaged(e) from None

    def _head_damaged(self, cause: MissingNodeError) -> StorageError:
        """A node under the head root is missing: the database lost data (the head is always whole)."""
        return self.db.fault(Damage(f"missing trie node {cause} of the head state 0x{self._head_root.hex()}"))

    def init_genesis(self, batch: WriteBatch, storage: Mapping[bytes, bytes]) -> bytes:
        """Build the genesis state (block 0) into `batch`; returns its root."""
        if self._head_number is not None:
            raise StateDBError("the state database already has a genesis state")
        prepared = self.prepare(storage)
        self.commit(batch, prepared, 0)
        return prepared.root

    def commit(self, batch: WriteBatch, prepared: PreparedState, block_number: int) -> None:
        """Put a prepared state into `batch`; the head moves when the batch is written."""
        if prepared.parent_root != self._head_root:
            raise StateDBError("the prepared state is not on top of the current head state")
        expected = 0 if self._head_number is None else self._head_number + 1
        if block_number != expected:
            raise StateDBError(f"state for block #{block_number} committed on top of head #{self._head_number}")
        if "state" in batch.tags:
            raise StateDBError("a write batch can carry the state of one block only")
        batch.tags.add("state")
        update = prepared.update
        root = prepared.root

        # flat snapshot
        for k, v in prepared.changes.items():
            if v is None:
                batch.delete(COL_FLAT, k)
            else:
                batch.put(COL_FLAT, k, v)
        batch.put(COL_META, META_STATE_ROOT, root)
        batch.put(COL_META, META_STATE_NUMBER, u64(block_number))

        deleted: list[bytes] = []
        journal_after: dict[int, bytes | None] = {}
        if self.keep_states is None:
            batch.put_many(COL_TRIE, update.new_nodes.items())
        else:
            deleted = self._commit_pruned(batch, update, root, block_number, journal_after)

        def moved() -> None:
            self._head_root = root
            self._head_number = block_number
            if self._trie.root != root:
                # another preparation was made after this one: drop it, restart from the new head
                self._trie = Trie(self._store, root, cache_size=self._trie_cache_size,
                                  exact_obsolete=self.keep_states is not None)
            values = self._values
            for k, v in prepared.changes.items():
                values.put(k, v)
            cache = self._store.cache.data
            for h in deleted:
                cache.pop(h, None)
            for n, r in journal_after.items():
                if r is None:
                    old = self._window.pop(n, None)
                    if old is not None:
                        self._window_roots[old] -= 1
                        if not self._window_roots[old]:
                            del self._window_roots[old]
                else:
                    self._window[n] = r
                    self._window_roots[r] += 1

        batch.on_commit(moved)

    def _commit_pruned(self, batch: WriteBatch, update: TrieUpdate, root: bytes, n: int,
                       journal_after: dict[int, bytes | None]) -> list[bytes]:
        """Reference counts, node writes and deletions, and the journal for block `n`."""
        n_keep = self.keep_states
        assert n_keep is not None
        delta: Counter[bytes] = Counter()
        for h in update.new_nodes:
            delta[h] += 1
        # This block's journal entry; its obsolete set is applied once state n-1 leaves the window.
        obs_now = b"".join(sorted(update.obsolete))
        journal_after[n] = root
        # States n-N+1..n stay. Apply the exits of every block k <= n-N+1 not applied yet (normally
        # just k = n-N+1; more if the window shrank), and drop journal entries below n-N+1.
        oldest_kept = n - n_keep + 1
        for k in sorted(self._window):
            if k > oldest_kept:
                break
            raw = self.db.get(COL_JOURNAL, u64(k))
            if raw is None:
                continue
            r, obs = unpack(raw)
            for i in range(0, len(obs), 32):
                delta[obs[i:i + 32]] -= 1
            if k < oldest_kept:
                batch.delete(COL_JOURNAL, u64(k))
                journal_after[k] = None
            elif obs:
                batch.put(COL_JOURNAL, u64(k), pack([r, b""]))
        if n <= oldest_kept:          # N == 1: this block's exits apply at once
            for h in update.obsolete:
                delta[h] -= 1
            obs_now = b""
        batch.put(COL_JOURNAL, u64(n), pack([root, obs_now]))

        deleted: list[bytes] = []
        rc_get = self.db.getter(COL_REFCOUNT)
        new_nodes = update.new_nodes
        for h, d in delta.items():
            if not d:
                continue
            raw = rc_get(h)
            rc = 0 if raw is None else int.from_bytes(raw, "big")
            rc += d
            if rc <= 0:
                if rc < 0:
                    self.refcount_anomalies += 1
                batch.delete(COL_REFCOUNT, h)
                batch.delete(COL_TRIE, h)
                deleted.append(h)
            else:
                batch.put(COL_REFCOUNT, h, rc.to_bytes(4 if rc < 1 << 32 else 8, "big"))
                if raw is None and h in new_nodes:
                    batch.put(COL_TRIE, h, new_nodes[h])
        return deleted

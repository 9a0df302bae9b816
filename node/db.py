"""The node's one LevelDB, split into named columns by key prefix.

Each node base path holds exactly one LevelDB at `<base>/db`. Every column is a two-byte key prefix
(plyvel `prefixed_db`); everything a block changes -- its header and body, the indexes, the state trie
nodes, the flat state snapshot, the pruning journal and the head pointers -- goes into ONE
`WriteBatch`, written atomically with `Database.write`. After a crash the database is therefore always
at a block boundary: either all of a block is there or none of it.

Layout (all integers big-endian, so numbers iterate in order; `pack` is canonical msgpack):

| prefix | key                     | value                                                           |
| ------ | ----------------------- | --------------------------------------------------------------- |
| `h/`   | block hash (32)         | encoded `Header`                                                |
| `b/`   | block hash (32)         | block body: msgpack list of the encoded extrinsics              |
| `j/`   | block hash (32)         | justifications (commit certificates): msgpack list of `Justification` |
| `n/`   | number (u64, 8 bytes)   | block hash: the canonical chain (finality is instant, so the only chain) |
| `x/`   | extrinsic hash (32)     | `pack([block hash, index in block])`                            |
| `t/`   | trie node hash (32)     | RLP of the Merkle-Patricia trie node (all kept states share nodes) |
| `r/`   | trie node hash (32)     | reference count (u32..u64 big-endian); pruning mode only, see `node.state_db` |
| `s/`   | raw storage key         | value in the head state (the flat snapshot: one read per storage read) |
| `p/`   | block number (8 bytes)  | pruning journal: `pack([state root, obsolete node hashes concatenated])`; pruning mode only |
| `m/`   | name (ascii)            | metadata, below                                                 |

Metadata keys under `m/`:
  `schema`        schema version (ascii decimal, currently 1); a database of another version is refused
  `genesis`       genesis block hash
  `best`          best block: hash (32) || number (8)
  `finalized`     last finalized block: hash (32) || number (8)
  `state_root`    root of the head state (the state `s/` holds); moves in the same batch as `s/` and `t/`
  `state_number`  block number of the head state (8)
  `state_mode`    `archive` or `pruned`; a database cannot switch between the two (the reference
                  counts `r/` exist only in pruning mode), but the pruning window may change

Reads through `Database.get` or a column see committed data only; a `WriteBatch` also answers
`get_pending` so a store can see what it has already put into the same batch.

Storage faults. LevelDB is opened with `paranoid_checks` and reads verify block checksums (the hot
state reads verify their misses, see `Database.getter`): without that, a block of a table file that
was zeroed on disk reads as an empty block, and its keys silently vanish (a wrong state, not an
error). Any LevelDB failure -- corruption or an I/O error --
surfaces as one `StorageError` whose text names the database's path and what the operator should do.
The database counts them (`storage_errors`, and `consecutive_storage_errors`, which a successful
`write` resets) and tells `on_storage_error`, so the node can count them in its metrics and stop once
they repeat (`STORAGE_ERROR_LIMIT`); a read that fails while a block is built or committed raises
before `write`, so nothing of that block reaches the disk.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import plyvel

from primitives.errors import ChainError

SCHEMA_VERSION = 1

#: The node stops after this many storage errors with no successful block write in between: one
#: failed read may be a query of one damaged old block, but damage the node keeps hitting (every block
#: it builds or imports fails) means it can no longer do its job on this database.
STORAGE_ERROR_LIMIT = 3

COL_HEADERS = b"h/"
COL_BODIES = b"b/"
COL_JUSTIFICATIONS = b"j/"
COL_NUMBERS = b"n/"
COL_EXTRINSICS = b"x/"
COL_TRIE = b"t/"
COL_REFCOUNT = b"r/"
COL_FLAT = b"s/"
COL_JOURNAL = b"p/"
COL_META = b"m/"

COLUMNS = (COL_HEADERS, COL_BODIES, COL_JUSTIFICATIONS, COL_NUMBERS, COL_EXTRINSICS, COL_TRIE,
           COL_REFCOUNT, COL_FLAT, COL_JOURNAL, COL_META)

META_SCHEMA = b"schema"
META_GENESIS = b"genesis"
META_BEST = b"best"
META_FINALIZED = b"finalized"
META_STATE_ROOT = b"state_root"
META_STATE_NUMBER = b"state_number"
META_STATE_MODE = b"state_mode"

_MISSING = object()


class DatabaseError(RuntimeError):
    """The database cannot be opened or used (missing, locked by another process, wrong schema)."""


class Damage(Exception):
    """Damage a store found itself, where LevelDB reported nothing (a head trie node missing, a
    head block that does not decode); reported as a `StorageError` through `Database.fault`."""


class StorageError(DatabaseError, OSError, ChainError):
    """LevelDB failed under the node: a damaged table file, or an I/O error of the disk.

    `str()` is the operator's one line (the database's path and what to do). It is an OSError, so
    code that passes storage faults through (rather than judging a block by them) lets it through; a
    DatabaseError, so commands report it like any database that cannot be used; and a ChainError, so
    an RPC client gets -32603 with a sentence that does not show the node's paths.
    """

    rpc_code = -32603

    def __init__(self, line: str, detail: str | None = None) -> None:
        super().__init__(line)
        #: what failed, in LevelDB's (or the store's) words, without the advice
        self.detail = line if detail is None else detail
        self.message = "the node's database failed (see the node's log)"
        self.data = None

    @classmethod
    def of(cls, path: str, cause: BaseException) -> "StorageError":
        """The operator's line for a LevelDB failure of the database at `path`."""
        raw = cause.args[0] if cause.args else cause
        detail = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))
        detail = " ".join(detail.split())   # one line, whatever LevelDB said
        base = os.path.dirname(os.path.dirname(os.path.dirname(path)))
        purge = f"run 'gridchain purge-chain --base-path {base}' (with this node's --chain) and resync"
        if isinstance(cause, plyvel.IOError):
            return cls(f"the database at {path} cannot be read or written ({detail}): check the disk "
                       f"(free space, permissions); if the data is damaged, restore it from a backup or {purge}",
                       detail)
        return cls(f"the database at {path} is damaged ({detail}): restore it from a backup, or {purge}", detail)


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def from_u64(b: bytes) -> int:
    return int.from_bytes(b, "big")


class WriteBatch:
    """Pending writes to any columns, committed atomically by `Database.write`.

    Keeps the last operation per key (a batch is atomic, so only the final value of a key matters),
    so stores can read back what they put with `get_pending`. `on_commit` callbacks run after the
    batch has been written successfully, in registration order; stores use them to move their
    in-memory views (caches, head pointers) only once the data is on disk.
    """

    __slots__ = ("_ops", "_hooks", "_written", "tags")

    def __init__(self) -> None:
        self._ops: dict[bytes, bytes | None] = {}
        self._hooks: list[Callable[[], None]] = []
        self._written = False
        #: free-form markers stores use to detect misuse (e.g. two state commits in one batch)
        self.tags: set[str] = set()

    def put(self, column: bytes, key: bytes, value: bytes) -> None:
        self._ops[column + key] = value

    def delete(self, column: bytes, key: bytes) -> None:
        self._ops[column + key] = None

    def put_many(self, column: bytes, items: Iterable[tuple[bytes, bytes]]) -> None:
        ops = self._ops
        for k, v in items:
            ops[column + k] = v

    def get_pending(self, column: bytes, key: bytes) -> object:
        """The value put into this batch for the key, None if deleted in it, `MISSING` if untouched."""
        return self._ops.get(column + key, _MISSING)

    def on_commit(self, fn: Callable[[], None]) -> None:
        self._hooks.append(fn)

    def __len__(self) -> int:
        return len(self._ops)


MISSING = _MISSING


class Database:
    """One LevelDB per node base path, at `<base>/db`."""

    def __init__(self, base_path: str | os.PathLike, *, create: bool = True) -> None:
        self.base_path = os.fspath(base_path)
        self.path = os.path.join(self.base_path, "db")
        #: every storage error so far, and those since the last successful write
        self.storage_errors = 0
        self.consecutive_storage_errors = 0
        #: told of each storage error as it happens (the node counts and logs it, and may stop)
        self.on_storage_error: Callable[[StorageError], None] | None = None
        if not create and not os.path.exists(os.path.join(self.path, "CURRENT")):
            raise DatabaseError(f"no database at {self.path}")
        if create:
            os.makedirs(self.base_path, exist_ok=True)
        try:
            self._db = plyvel.DB(self.path, create_if_missing=create, max_open_files=512,
                                 lru_cache_size=64 * 1024 * 1024, write_buffer_size=16 * 1024 * 1024,
                                 block_size=16 * 1024, bloom_filter_bits=10, paranoid_checks=True)
        except plyvel.IOError as e:
            if "lock" in str(e).lower():
                raise DatabaseError(f"database at {self.path} is in use by another process") from None
            raise StorageError.of(self.path, e) from None
        except plyvel.Error as e:
            raise StorageError.of(self.path, e) from None
        self._cols = {c: self._db.prefixed_db(c) for c in COLUMNS}
        try:
            version = self.get(COL_META, META_SCHEMA)
        except StorageError:
            self.close()
            raise
        if version is None:
            if any(True for _ in self._db.iterator(include_value=False)):
                self.close()
                raise DatabaseError(f"database at {self.path} has no schema version: not a gridchain database")
            self._db.put(COL_META + META_SCHEMA, str(SCHEMA_VERSION).encode(), sync=True)
        elif version != str(SCHEMA_VERSION).encode():
            self.close()
            raise DatabaseError(f"database at {self.path} has schema version {version.decode(errors='replace')}, "
                                f"this node reads version {SCHEMA_VERSION}")

    @classmethod
    def open(cls, base_path: str | os.PathLike, create: bool = True) -> "Database":
        return cls(base_path, create=create)

    # lifecycle ----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._db.closed

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # storage faults -----------------------------------------------------------------------------
    def fault(self, cause: BaseException) -> StorageError:
        """Count a storage failure (LevelDB's error, or `Damage` a store found), tell the listener,
        and return the error to raise."""
        error = StorageError.of(self.path, cause)
        self.storage_errors += 1
        self.consecutive_storage_errors += 1
        if self.on_storage_error is not None:
            self.on_storage_error(error)
        return error

    def _guarded(self, it: Iterator) -> Iterator:
        """`it` (already created, so it reads the snapshot of its creation), storage faults converted."""
        try:
            yield from it
        except plyvel.Error as e:
            raise self.fault(e) from None

    # reads (committed data only) -----------------------------------------------------------------
    def column(self, column: bytes) -> plyvel.DB:
        """The raw plyvel prefixed view of one column, for tests and offline tools; the node reads
        through `getter`, `get` and `iter_column`, which verify checksums and convert faults."""
        return self._cols[column]

    def getter(self, column: bytes) -> Callable[[bytes], bytes | None]:
        """A get for one column's hot path (flat state, trie nodes, reference counts), faults converted.

        A miss is read again with its checksum verified: a zeroed block reads as an empty one, so
        its keys come back as misses, and the second read turns that into a StorageError. Hits are
        not verified: LevelDB maps table files into memory and never caches mapped blocks, so a
        verified read checksums a whole 16 KiB block every time (~4 us, against ~2 us for the read;
        about 7% of block import). The head state is verified in full on start (`StateDB.check_head`)
        and compactions verify what they read (`paranoid_checks`).
        """
        raw = self._cols[column].get

        def get(key: bytes) -> bytes | None:
            try:
                v = raw(key)
                return v if v is not None else raw(key, verify_checksums=True)
            except plyvel.Error as e:
                raise self.fault(e) from None
        return get

    def get(self, column: bytes, key: bytes) -> bytes | None:
        try:
            return self._db.get(column + key, verify_checksums=True)
        except plyvel.Error as e:
            raise self.fault(e) from None

    def get_through(self, batch: WriteBatch | None, column: bytes, key: bytes) -> bytes | None:
        """Read a key as it will be once `batch` is written (the batch's own writes win)."""
        if batch is not None:
            v = batch.get_pending(column, key)
            if v is not MISSING:
                return v  # type: ignore[return-value]
        return self.get(column, key)

    def iter_column(self, column: bytes, *, start: bytes | None = None, include_start: bool = True,
                    stop: bytes | None = None, reverse: bool = False, include_value: bool = True,
                    ) -> Iterator:
        """Iterate a column in key order (keys without the column prefix), on a snapshot."""
        try:
            it = self._cols[column].iterator(start=start, stop=stop, include_start=include_start,
                                             reverse=reverse, include_value=include_value,
                                             verify_checksums=True)
        except plyvel.Error as e:
            raise self.fault(e) from None
        return self._guarded(it)

    def count(self, column: bytes) -> int:
        return sum(1 for _ in self.iter_column(column, include_value=False))

    # writes -------------------------------------------------------------------------------------
    def batch(self) -> WriteBatch:
        return WriteBatch()

    def write(self, batch: WriteBatch, sync: bool = True) -> None:
        """Commit the batch atomically, then run its `on_commit` callbacks."""
        if batch._written:
            raise DatabaseError("this write batch has already been written")
        try:
            with self._db.write_batch(transaction=True, sync=sync) as wb:
                put, delete = wb.put, wb.delete
                for k, v in batch._ops.items():
                    if v is None:
                        delete(k)
                    else:
                        put(k, v)
        except plyvel.Error as e:
            raise self.fault(e) from None
        batch._written = True
        self.consecutive_storage_errors = 0
        for fn in batch._hooks:
            fn()

    def put_meta(self, name: bytes, value: bytes) -> None:
        """Write one metadata value on its own (outside any block); used only at setup."""
        try:
            self._db.put(COL_META + name, value, sync=True)
        except plyvel.Error as e:
            raise self.fault(e) from None

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
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import plyvel

SCHEMA_VERSION = 1

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
        if not create and not os.path.exists(os.path.join(self.path, "CURRENT")):
            raise DatabaseError(f"no database at {self.path}")
        if create:
            os.makedirs(self.base_path, exist_ok=True)
        try:
            self._db = plyvel.DB(self.path, create_if_missing=create, max_open_files=512,
                                 lru_cache_size=64 * 1024 * 1024, write_buffer_size=16 * 1024 * 1024,
                                 block_size=16 * 1024, bloom_filter_bits=10)
        except plyvel.IOError as e:
            if "lock" in str(e).lower():
                raise DatabaseError(f"database at {self.path} is in use by another process") from None
            raise DatabaseError(f"cannot open database at {self.path}: {e}") from None
        except plyvel.Error as e:
            raise DatabaseError(f"cannot open database at {self.path}: {e}") from None
        self._cols = {c: self._db.prefixed_db(c) for c in COLUMNS}
        version = self.get(COL_META, META_SCHEMA)
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

    # reads (committed data only) -----------------------------------------------------------------
    def column(self, column: bytes) -> plyvel.DB:
        """The plyvel prefixed view of one column (read it; write through a `WriteBatch`)."""
        return self._cols[column]

    def get(self, column: bytes, key: bytes) -> bytes | None:
        return self._db.get(column + key)

    def get_through(self, batch: WriteBatch | None, column: bytes, key: bytes) -> bytes | None:
        """Read a key as it will be once `batch` is written (the batch's own writes win)."""
        if batch is not None:
            v = batch.get_pending(column, key)
            if v is not MISSING:
                return v  # type: ignore[return-value]
        return self._db.get(column + key)

    def iter_column(self, column: bytes, *, start: bytes | None = None, include_start: bool = True,
                    stop: bytes | None = None, reverse: bool = False, include_value: bool = True,
                    ) -> Iterator:
        """Iterate a column in key order (keys without the column prefix), on a snapshot."""
        return self._cols[column].iterator(start=start, stop=stop, include_start=include_start,
                                           reverse=reverse, include_value=include_value)

    def count(self, column: bytes) -> int:
        return sum(1 for _ in self._cols[column].iterator(include_value=False))

    # writes -------------------------------------------------------------------------------------
    def batch(self) -> WriteBatch:
        return WriteBatch()

    def write(self, batch: WriteBatch, sync: bool = True) -> None:
        """Commit the batch atomically, then run its `on_commit` callbacks."""
        if batch._written:
            raise DatabaseError("this write batch has already been written")
        with self._db.write_batch(transaction=True, sync=sync) as wb:
            put, delete = wb.put, wb.delete
            for k, v in batch._ops.items():
                if v is None:
                    delete(k)
                else:
                    put(k, v)
        batch._written = True
        for fn in batch._hooks:
            fn()

    def put_meta(self, name: bytes, value: bytes) -> None:
        """Write one metadata value on its own (outside any block); used only at setup."""
        self._db.put(COL_META + name, value, sync=True)

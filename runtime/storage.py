"""Storage as pallets see it: typed items over a transactional overlay on one committed state.

Key scheme (documented in docs/protocol.md, stable across versions):
  item prefix  = keccak256(pallet name)[:16] || keccak256(item name)[:16]          (32 bytes)
  value        = item prefix
  map          = item prefix || keccak256(k)[:16] || k                              ("keccak128_concat")
  double map   = item prefix || keccak256(k1)[:16] || k1 || keccak256(k2)[:16] || k2
where k is the canonical msgpack encoding of the key. The hash in front spreads user-chosen keys
evenly over the trie (no deep paths an attacker can craft); the key itself behind it lets iteration
recover keys, and a double map can be iterated by its first key alone.

Writes never touch the committed state: they go into an `Overlay`, whose transactional layers let a
failed call roll back exactly its own writes (and events) while the fee it paid stays. The executive
installs the overlay for the duration of a block or a validation with `externalities(...)`; pallet
code then calls `accounts.get(who)` with no state handle in sight, as FRAME code does.
"""
from __future__ import annotations

import contextlib
import heapq
from typing import Any, Callable, Iterator

import msgpack

from primitives.codec import Type, as_type
from primitives.hashing import keccak256
from runtime.api import StateReader

_DELETED = object()


class _Typed:
    """A value written by runtime code, kept decoded until the block's changes are taken.

    A transfer reads and writes the same account records several times (fee, nonce, amount); keeping
    the Python value avoids an encode per write and a decode per read. Values are immutable (frozen
    structs, ints, bytes, tuples), so sharing them is safe.
    """

    __slots__ = ("value", "plain", "_raw")

    def __init__(self, value: Any, plain: Any) -> None:
        self.value = value
        self.plain = plain          # checked plain form, computed once when written
        self._raw: bytes | None = None

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = msgpack.packb(self.plain, use_bin_type=True)
        return self._raw


class StorageError(RuntimeError):
    """Misuse of the storage layer by runtime code (a bug, never user input)."""


class EmptyState:
    """A state with nothing in it: the parent of genesis."""

    def get(self, key: bytes) -> bytes | None:
        return None

    def iter_keys(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[bytes]:
        return iter(())


class Overlay:
    """Pending changes on top of a committed state, with nested transactions.

    `layers[0]` holds the block's changes so far; each `start()` pushes a layer, `commit()` merges it
    down, `rollback()` drops it. Events deposited inside a rolled-back layer are dropped with it.
    """

    def __init__(self, backend: StateReader) -> None:
        self.backend = backend
        self.layers: list[dict[bytes, Any]] = [{}]
        #: decoded values read from the committed state (immutable during the block)
        self._read_cache: dict[bytes, Any] = {}
        self.events: list[Any] = []
        self._event_marks: list[int] = []
        #: phase of the block events are recorded in: [0] init, [1, i] extrinsic i, [2] finalization
        self.phase: list = [0]

    # reads and writes -------------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        for layer in reversed(self.layers):
            v = layer.get(key, None)
            if v is not None:
                if v is _DELETED:
                    return None
                return v.raw() if type(v) is _Typed else v
        return self.backend.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.layers[-1][key] = value

    def get_value(self, key: bytes, type_: Type, default: Any) -> Any:
        """Typed read: a value written in this block comes back without decoding."""
        for layer in reversed(self.layers):
            v = layer.get(key, None)
            if v is not None:
                if v is _DELETED:
                    return default
                if type(v) is _Typed:
                    return v.value
                return _fast_decode(type_, v)
        try:
            return self._read_cache[key]
        except KeyError:
            pass
        raw = self.backend.get(key)
        value = default if raw is None else _fast_decode(type_, raw)
        self._read_cache[key] = value
        return value

    def set_value(self, key: bytes, type_: Type, value: Any) -> None:
        """Typed write: checked now (so a bad value fails the call that wrote it), encoded later."""
        self.layers[-1][key] = _Typed(value, type_.to_plain(value))

    def delete(self, key: bytes) -> None:
        self.layers[-1][key] = _DELETED

    def iter_keys(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[bytes]:
        """Keys with `prefix` in ascending order, merging committed state with pending changes."""
        pending: dict[bytes, bool] = {}
        for layer in self.layers:
            for k, v in layer.items():
                if k.startswith(prefix) and (start_after is None or k > start_after):
                    pending[k] = v is not _DELETED
        base = (k for k in self.backend.iter_keys(prefix, start_after) if k not in pending)
        added = sorted(k for k, alive in pending.items() if alive)
        return heapq.merge(base, added)

    # transactions -----------------------------------------------------------------------
    def start(self) -> None:
        self.layers.append({})
        self._event_marks.append(len(self.events))

    def commit(self) -> None:
        if len(self.layers) < 2:
            raise StorageError("commit without a transaction")
        top = self.layers.pop()
        self.layers[-1].update(top)
        self._event_marks.pop()

    def rollback(self) -> None:
        if len(self.layers) < 2:
            raise StorageError("rollback without a transaction")
        self.layers.pop()
        del self.events[self._event_marks.pop():]

    @property
    def depth(self) -> int:
        return len(self.layers) - 1

    def changes(self) -> dict[bytes, bytes | None]:
        """The net changes (key -> value, None = delete); only valid outside transactions."""
        if len(self.layers) != 1:
            raise StorageError("changes() inside an open transaction")
        return {k: (None if v is _DELETED else v.raw() if type(v) is _Typed else v)
                for k, v in self.layers[0].items()}


_current: Overlay | None = None


@contextlib.contextmanager
def externalities(overlay: Overlay) -> Iterator[Overlay]:
    """Make `overlay` the storage that pallet code reads and writes within the block."""
    global _current
    previous, _current = _current, overlay
    try:
        yield overlay
    finally:
        _current = previous


def current() -> Overlay:
    if _current is None:
        raise StorageError("storage accessed outside a block or validation context")
    return _current


@contextlib.contextmanager
def transactional() -> Iterator[None]:
    """Run a block of code so that an exception rolls back all its writes and events."""
    ov = current()
    ov.start()
    try:
        yield
    except BaseException:
        ov.rollback()
        raise
    ov.commit()


# ------------------------------------------------------------------------------------------
# key scheme
# ------------------------------------------------------------------------------------------

def item_prefix(pallet: str, item: str) -> bytes:
    return keccak256(pallet.encode())[:16] + keccak256(item.encode())[:16]


def hashed_key(encoded: bytes) -> bytes:
    """keccak128_concat: 16 bytes of keccak-256 of the encoded key, then the key itself."""
    return keccak256(encoded)[:16] + encoded


def _fast_decode(t: Type, raw: bytes) -> Any:
    # Values in state were written by the runtime itself through the same type, so the canonical
    # re-encoding check of strict decoding is skipped here; type checks still run.
    return t.from_plain(msgpack.unpackb(raw, raw=False))


class _Item:
    def __init__(self, pallet: str, name: str, value: Any, default: Any, doc: str) -> None:
        self.pallet = pallet
        self.name = name
        self.value_type = as_type(value)
        self.default = default
        self.doc = doc
        self.prefix = item_prefix(pallet, name)

    def _read(self, key: bytes) -> Any:
        return current().get_value(key, self.value_type, self.default)

    def _write(self, key: bytes, value: Any) -> None:
        current().set_value(key, self.value_type, value)

    def describe(self) -> dict:
        raise StorageError("subclass responsibility")


class StorageValue(_Item):
    """A single value: `now = timestamp.now.get()`."""

    def get(self) -> Any:
        return self._read(self.prefix)

    def put(self, value: Any) -> None:
        self._write(self.prefix, value)

    def kill(self) -> None:
        current().delete(self.prefix)

    def exists(self) -> bool:
        return current().get(self.prefix) is not None

    def describe(self) -> dict:
        return {"name": self.name, "kind": "value", "prefix": "0x" + self.prefix.hex(),
                "value": self.value_type.describe(), "doc": self.doc}


class StorageMap(_Item):
    """key -> value, iterable: `accounts.get(who)`."""

    def __init__(self, pallet: str, name: str, key: Any, value: Any, default: Any, doc: str) -> None:
        super().__init__(pallet, name, value, default, doc)
        self.key_type = as_type(key)
        self._key_cache: dict[Any, bytes] = {}

    def key_of(self, k: Any) -> bytes:
        # Storage keys of hot entries (accounts) are derived again and again; hashing is the cost.
        key = self._key_cache.get(k)
        if key is None:
            key = self.prefix + hashed_key(self.key_type.encode(k))
            if len(self._key_cache) >= 65536:
                self._key_cache.clear()
            self._key_cache[k] = key
        return key

    def get(self, k: Any) -> Any:
        return self._read(self.key_of(k))

    def insert(self, k: Any, value: Any) -> None:
        self._write(self.key_of(k), value)

    def remove(self, k: Any) -> None:
        current().delete(self.key_of(k))

    def contains(self, k: Any) -> bool:
        return current().get(self.key_of(k)) is not None

    def mutate(self, k: Any, fn: Callable[[Any], Any]) -> Any:
        key = self.key_of(k)
        new = fn(self._read(key))
        self._write(key, new)
        return new

    def keys(self) -> Iterator[Any]:
        """All keys, in storage-key order (bounded use only: never over user-growable maps in a block)."""
        for raw in current().iter_keys(self.prefix):
            yield _fast_decode(self.key_type, raw[len(self.prefix) + 16:])

    def items(self) -> Iterator[tuple[Any, Any]]:
        ov = current()
        for raw in ov.iter_keys(self.prefix):
            yield (_fast_decode(self.key_type, raw[len(self.prefix) + 16:]),
                   _fast_decode(self.value_type, ov.get(raw)))

    def describe(self) -> dict:
        return {"name": self.name, "kind": "map", "prefix": "0x" + self.prefix.hex(),
                "hasher": "keccak128_concat", "key": self.key_type.describe(),
                "value": self.value_type.describe(), "doc": self.doc}


class StorageDoubleMap(_Item):
    """(k1, k2) -> value; iterable over all k2 for one k1."""

    def __init__(self, pallet: str, name: str, key1: Any, key2: Any, value: Any, default: Any,
                 doc: str) -> None:
        super().__init__(pallet, name, value, default, doc)
        self.key1_type = as_type(key1)
        self.key2_type = as_type(key2)
        self._key_cache: dict[tuple[Any, Any], bytes] = {}

    def prefix_of(self, k1: Any) -> bytes:
        return self.prefix + hashed_key(self.key1_type.encode(k1))

    def key_of(self, k1: Any, k2: Any) -> bytes:
        # A (meter, interval) or (trade, party) key is typically derived by validation, the call
        # and a hook in one block: hashing twice per part is the cost, as for StorageMap.
        key = self._key_cache.get((k1, k2))
        if key is None:
            key = self.prefix_of(k1) + hashed_key(self.key2_type.encode(k2))
            if len(self._key_cache) >= 65536:
                self._key_cache.clear()
            self._key_cache[(k1, k2)] = key
        return key

    def get(self, k1: Any, k2: Any) -> Any:
        return self._read(self.key_of(k1, k2))

    def insert(self, k1: Any, k2: Any, value: Any) -> None:
        self._write(self.key_of(k1, k2), value)

    def remove(self, k1: Any, k2: Any) -> None:
        current().delete(self.key_of(k1, k2))

    def contains(self, k1: Any, k2: Any) -> bool:
        return current().get(self.key_of(k1, k2)) is not None

    def mutate(self, k1: Any, k2: Any, fn: Callable[[Any], Any]) -> Any:
        key = self.key_of(k1, k2)
        new = fn(self._read(key))
        self._write(key, new)
        return new

    def iter_prefix(self, k1: Any) -> Iterator[tuple[Any, Any]]:
        """(k2, value) for every entry under k1, in storage-key order."""
        ov = current()
        p = self.prefix_of(k1)
        for raw in ov.iter_keys(p):
            yield (_fast_decode(self.key2_type, raw[len(p) + 16:]),
                   _fast_decode(self.value_type, ov.get(raw)))

    def describe(self) -> dict:
        return {"name": self.name, "kind": "doubleMap", "prefix": "0x" + self.prefix.hex(),
                "hasher": "keccak128_concat", "key1": self.key1_type.describe(),
                "key2": self.key2_type.describe(), "value": self.value_type.describe(),
                "doc": self.doc}

"""The consensus write-ahead log: what a validator signed, and what it saw, in the order it happened.

Two kinds of entry share one log, so that their order on disk is the order they happened in:

- inputs the state machine accepted (start of a height, proposals, votes, fired timeouts, commit
  certificates, "block now available"): written *before* the state machine acts on them, without
  fsync. `Tendermint.recover` replays them to rebuild the height's state (locks included) after a
  restart, as CometBFT's consensus WAL does;
- `SignRecord`s from the signing guard (`consensus.signer`): fsynced *before* the signature is
  returned, so nothing this validator says can reach the network without being on disk first. Since
  an fsync makes every earlier write durable too, every input that led to a signature survives with it.

File format: a sequence of frames ``length u32-be | crc32 u32-be | payload``, where payload is the
canonical msgpack ``[tag, entry]`` (tags in `_TAGS`) and crc32 is zlib's over the payload. Opening a
log replays it. A torn last frame (short, bad checksum at the very end, or zero fill to the end of the
file, as a crash during an append leaves it) is cut off; a bad frame followed by good data is
corruption, and `WALCorrupted` stops the node rather than risk forgetting a signature.

`MemoryWAL` is the same log for the simulation: its `crash()` drops what was not fsynced (or a random
part of it), as a power cut would.
"""
from __future__ import annotations

import fcntl
import os
import random
import struct as _struct
import zlib
from pathlib import Path
from typing import Protocol

from consensus.commit import CommitCertificate
from consensus.messages import Proposal, Step, Vote
from primitives.codec import H256, H512, U8, U32, U64, CodecError, Optional, pack, struct, unpack

#: Largest frame payload accepted; a certificate of 1024 validators is about 100 KiB.
MAX_FRAME_BYTES = 1 << 20
_HEADER = _struct.Struct(">II")


class WALCorrupted(Exception):
    """The log is damaged somewhere other than its last frame; refusing to start is the safe choice."""


class WALLocked(Exception):
    """Another process has this log open: two instances of one validator would double-sign."""


@struct
class StartHeight:
    """The state machine started `height` (round 0)."""

    height: U64


@struct
class TimeoutFired:
    """A timeout of `kind` (a `Step`) for (height, round) was delivered."""

    kind: U8
    height: U64
    round: U32


@struct
class ValueAvailable:
    """The application said `block_hash` at `height` can now be validated."""

    height: U64
    block_hash: H256


@struct
class SignRecord:
    """A message this validator signed: (height, round, step) and what it said.

    `step` is a `Step`; `pol_round` is set only for proposals. The public key is the signer's own, so
    the full message can be rebuilt from the record.
    """

    height: U64
    round: U32
    step: U8
    block_hash: Optional(H256)
    pol_round: Optional(U32)
    signature: H512

    @property
    def hrs(self) -> tuple[int, int, int]:
        return (self.height, self.round, self.step)


Entry = StartHeight | Proposal | Vote | TimeoutFired | CommitCertificate | ValueAvailable | SignRecord
_TAGS: dict[type, int] = {StartHeight: 1, Proposal: 2, Vote: 3, TimeoutFired: 4, CommitCertificate: 5,
                          ValueAvailable: 6, SignRecord: 7}
_TYPES = {tag: cls for cls, tag in _TAGS.items()}


class Journal(Protocol):
    """Where the state machine writes its accepted inputs and the signer its signatures."""

    def append(self, entry: Entry, sync: bool = False) -> None:
        """Log `entry`; if `sync`, make it (and all before it) durable before returning."""


def encode_entry(entry: Entry) -> bytes:
    return pack([_TAGS[type(entry)], entry.to_plain()])


def decode_entry(payload: bytes) -> Entry:
    plain = unpack(payload, MAX_FRAME_BYTES, typed=True)
    if type(plain) is not list or len(plain) != 2 or type(plain[0]) is not int or plain[0] not in _TYPES:
        raise CodecError("a WAL entry is [tag, entry] with a known tag")
    entry = _TYPES[plain[0]].from_plain(plain[1])
    if isinstance(entry, (TimeoutFired, SignRecord)):
        Step(entry.kind if isinstance(entry, TimeoutFired) else entry.step)   # ValueError if unknown
    return entry


def frame(payload: bytes) -> bytes:
    """One frame: length, crc32, payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def parse_frames(data: bytes) -> tuple[list[bytes], int]:
    """Split a log's bytes into payloads; returns (payloads, length of the good prefix).

    A bad frame at the end (torn write) ends the good prefix; a bad frame with anything but zero fill
    after it raises WALCorrupted.
    """
    payloads: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        bad = end - pos < _HEADER.size
        if not bad:
            length, crc = _HEADER.unpack_from(data, pos)
            stop = pos + _HEADER.size + length
            if stop > end:
                bad = True                       # ran out of file: a torn append
            elif length == 0 or length > MAX_FRAME_BYTES or zlib.crc32(data[pos + _HEADER.size:stop]) != crc:
                if data[stop:].strip(b"\0"):     # more than zero fill after it: not a torn append
                    raise WALCorrupted(f"bad frame at byte {pos} with more data after it")
                bad = True
        if bad:
            return payloads, pos
        payloads.append(data[pos + _HEADER.size:stop])
        pos = stop
    return payloads, pos


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWAL:
    """The log in one file. Appends go straight to the OS; `sync=True` appends also fsync.

    Opening takes an exclusive lock on the file (`WALLocked` if another process holds it), replays it
    into `entries()` and cuts off a torn tail (reported in `torn_bytes`). The node should call
    `compact(height)` once it has committed the block before `height`, to keep the file short.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        self._fd = self._open_locked(self.path)
        try:
            data = self.path.read_bytes()
            payloads, good = parse_frames(data)
            try:
                self._entries: list[Entry] = [decode_entry(p) for p in payloads]
            except (CodecError, ValueError) as e:
                raise WALCorrupted(f"a frame with a good checksum does not decode: {e}") from None
        except BaseException:
            os.close(self._fd)
            raise
        self.torn_bytes = len(data) - good
        if self.torn_bytes:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        if created:
            os.fsync(self._fd)
            _fsync_dir(self.path.parent)   # the new directory entry must survive a crash too

    @staticmethod
    def _open_locked(path: Path) -> int:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WALLocked(f"{path} is in use by another process") from None
        return fd

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def append(self, entry: Entry, sync: bool = False) -> None:
        _write_all(self._fd, frame(encode_entry(entry)))
        self._entries.append(entry)
        if sync:
            os.fsync(self._fd)

    def compact(self, min_height: int) -> None:
        """Drop entries below `min_height`: write the rest to a new file, fsync it, rename it over."""
        keep = [e for e in self._entries if e.height >= min_height]
        if len(keep) == len(self._entries):
            return
        tmp = self.path.with_name(self.path.name + ".compact")
        fd = self._open_locked(tmp)
        try:
            os.ftruncate(fd, 0)
            _write_all(fd, b"".join(frame(encode_entry(e)) for e in keep))
            os.fsync(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd, self._entries = fd, keep

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class MemoryWAL:
    """The log in memory, for the simulation: it outlives a simulated crash, like a disk.

    `crash()` forgets entries appended since the last sync (all of them, or with `rng` a random
    number of them, as the OS may have written some back before the power went).
    """

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._synced = 0

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def append(self, entry: Entry, sync: bool = False) -> None:
        self._entries.append(entry)
        if sync:
            self._synced = len(self._entries)

    def crash(self, rng: random.Random | None = None) -> None:
        keep = self._synced if rng is None else rng.randint(self._synced, len(self._entries))
        del self._entries[keep:]
        self._synced = keep

    def compact(self, min_height: int) -> None:
        synced = self._entries[:self._synced]
        self._entries = [e for e in self._entries if e.height >= min_height]
        self._synced = sum(1 for e in synced if e.height >= min_height)

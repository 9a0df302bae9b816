"""Bytes on the wire that py-libp2p does not frame for us: block parts, response status, and a
guard in front of py-libp2p's pubsub parser.

Block parts. Gossipsub refuses messages over 1 MiB (the whole RPC frame, envelope included), so a
large payload travels as parts. `split_payload` cuts it into self-describing parts; `PartAssembler`
collects them in any order and returns the payload once every part is in and its keccak-256 matches
the payload id. Part layout (43-byte header, big-endian):

    b"gp" | version 1 | payload id (keccak-256 of the whole payload, 32) | index u16 | total u16
    | payload length u32 | chunk

Parts default to 256 KiB, well under the limit: all gossip to one peer shares one stream, and a vote
queued behind a 1 MiB part waits ~80 ms on a 100 Mbit/s link, behind a 256 KiB part ~20 ms.
A part cannot be checked alone (that would need a Merkle proof per part); the whole payload is
checked against its id, which the signed proposal names.

Responses. A request/response answer is one status byte and a body (`encode_ok` / `encode_error`),
so a caller can tell "the peer's handler failed" from "the connection failed".

Pubsub guard. py-libp2p 0.8.1 parses inbound pubsub frames in `Pubsub.continuously_read_stream`
and lets two kinds of garbage escape as exceptions that stop the whole host (measured): a frame
that is not a protobuf RPC (`DecodeError` is not among the exceptions its stream handler catches),
and a published message whose `from` is not a peer id with an embedded key while `key` is garbage
(`signature_validator` re-raises, inside a task whose failure stops the Pubsub service).
`SanitisingStream` sits between the network stream and that parser: it reads each frame itself,
raises `GarbageFrame` for one that does not parse (our stream handler catches it), and removes
oversize or malformed published messages before py-libp2p sees them. The frame-size limit stays
py-libp2p's own (`MessageTooLarge`, handled by it); we count it first.
"""
from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from libp2p.io.exceptions import IncompleteReadError, MessageTooLarge
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils.varint import encode_uvarint

from primitives.hashing import keccak256

#: gossipsub's frame limit (py-libp2p DefaultMaxMessageSize, as go-libp2p)
LIBP2P_MAX_FRAME = 1 << 20
#: the largest payload `publish` accepts: the frame limit minus room for the message envelope
#: (topic, sender id, seqno, signature, key) and the signed peer record py-libp2p adds to each RPC
MAX_GOSSIP_PAYLOAD = LIBP2P_MAX_FRAME - 4096
DEFAULT_PART_SIZE = 256 * 1024

_PART_MAGIC = b"gp"
_PART_VERSION = 1
_PART_HEADER = struct.Struct(">2sB32sHHI")
PART_HEADER_LEN = _PART_HEADER.size
MAX_PARTS = 0xFFFF
#: the guard reads the network in chunks: py-libp2p's own reader asks yamux for one byte at a
#: time for each length prefix, and every yamux read may send a window update
_READ_CHUNK = 1 << 16

RESP_OK = 0
RESP_ERROR = 1
MAX_ERROR_TEXT = 512


class BadPart(ValueError):
    """A block part that is malformed or inconsistent with the other parts of its payload."""


class BadFrame(ValueError):
    """A response frame without a known status byte."""


class GarbageFrame(Exception):
    """An inbound pubsub frame that is not a protobuf RPC."""


# ---------------------------------------------------------------------------------------------
# block parts
# ---------------------------------------------------------------------------------------------

def split_payload(payload: bytes, part_size: int = DEFAULT_PART_SIZE) -> list[bytes]:
    """`payload` as parts of at most `part_size` chunk bytes each (plus the 43-byte header)."""
    if not 0 < part_size <= MAX_GOSSIP_PAYLOAD - PART_HEADER_LEN:
        raise ValueError(f"part_size must be in 1..{MAX_GOSSIP_PAYLOAD - PART_HEADER_LEN}")
    total = max(1, -(-len(payload) // part_size))
    if total > MAX_PARTS or len(payload) > 0xFFFFFFFF:
        raise ValueError("payload too large for the part format")
    pid = keccak256(payload)
    view = memoryview(payload)
    return [_PART_HEADER.pack(_PART_MAGIC, _PART_VERSION, pid, i, total, len(payload))
            + bytes(view[i * part_size:(i + 1) * part_size]) for i in range(total)]


def parse_part(part: bytes) -> tuple[bytes, int, int, int, bytes]:
    """(payload id, index, total, payload length, chunk) of a part; BadPart if it is not one."""
    if len(part) < PART_HEADER_LEN:
        raise BadPart("shorter than a part header")
    magic, version, pid, index, total, length = _PART_HEADER.unpack_from(part)
    if magic != _PART_MAGIC or version != _PART_VERSION:
        raise BadPart("not a gridchain block part (magic or version)")
    if total == 0 or index >= total:
        raise BadPart(f"part index {index} out of range (total {total})")
    return pid, index, total, length, part[PART_HEADER_LEN:]


class _Pending:
    __slots__ = ("total", "length", "chunks", "size", "started")

    def __init__(self, total: int, length: int, now: float) -> None:
        self.total, self.length, self.started = total, length, now
        self.chunks: dict[int, bytes] = {}
        self.size = 0


class PartAssembler:
    """Collects parts of many payloads at once, in any order, with bounded memory.

    `add(part)` returns the whole payload when its last part arrives and the payload hashes to its
    id, None while parts are missing or for a duplicate, and raises BadPart for garbage (so the
    caller can `report` the sender). Incomplete payloads are evicted oldest first beyond
    `max_pending` payloads or `max_pending_bytes`, and after `ttl` seconds; `evicted` counts them.
    Not thread-safe: use it from one thread (the asyncio loop).
    """

    def __init__(self, max_payload: int = 16 << 20, max_pending: int = 32,
                 max_pending_bytes: int = 64 << 20, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_payload, self.max_pending, self.max_pending_bytes = max_payload, max_pending, max_pending_bytes
        self.ttl, self._clock = ttl, clock
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._done: OrderedDict[bytes, None] = OrderedDict()
        self._bytes = 0
        self.evicted = 0

    def add(self, part: bytes) -> bytes | None:
        pid, index, total, length, chunk = parse_part(part)
        if length > self.max_payload:
            raise BadPart(f"payload of {length} bytes exceeds the limit of {self.max_payload}")
        if pid in self._done:
            return None
        now = self._clock()
        self._expire(now)
        entry = self._pending.get(pid)
        if entry is None:
            entry = self._pending[pid] = _Pending(total, length, now)
        elif (entry.total, entry.length) != (total, length):
            raise BadPart("part disagrees with earlier parts on part count or payload length")
        if index in entry.chunks:
            return None
        if entry.size + len(chunk) > length:
            self._drop(pid)
            raise BadPart("parts carry more bytes than the payload length")
        entry.chunks[index] = chunk
        entry.size += len(chunk)
        self._bytes += len(chunk)
        if len(entry.chunks) < total:
            self._bound()
            return None
        self._drop(pid)
        payload = b"".join(entry.chunks[i] for i in range(total))
        if len(payload) != length or keccak256(payload) != pid:
            raise BadPart("assembled payload does not match its id")
        self._done[pid] = None
        if len(self._done) > 1024:
            self._done.popitem(last=False)
        return payload

    @property
    def pending(self) -> int:
        """Payloads with some parts in and some missing."""
        return len(self._pending)

    def _drop(self, pid: bytes) -> None:
        entry = self._pending.pop(pid, None)
        if entry is not None:
            self._bytes -= entry.size

    def _expire(self, now: float) -> None:
        while self._pending:
            pid, entry = next(iter(self._pending.items()))
            if now - entry.started < self.ttl:
                break
            self._drop(pid)
            self.evicted += 1

    def _bound(self) -> None:
        while len(self._pending) > self.max_pending or self._bytes > self.max_pending_bytes:
            self._drop(next(iter(self._pending)))
            self.evicted += 1


# ---------------------------------------------------------------------------------------------
# request/response status
# ---------------------------------------------------------------------------------------------

def encode_ok(body: bytes) -> bytes:
    return bytes([RESP_OK]) + body


def encode_error(text: str) -> bytes:
    return bytes([RESP_ERROR]) + text.encode("utf-8", "replace")[:MAX_ERROR_TEXT]


def decode_response(frame: bytes) -> tuple[bool, bytes]:
    """(True, body) for an answer, (False, error text as bytes) for a remote failure."""
    if not frame or frame[0] not in (RESP_OK, RESP_ERROR):
        raise BadFrame("response without a valid status byte")
    return frame[0] == RESP_OK, frame[1:]


# ---------------------------------------------------------------------------------------------
# inbound pubsub guard
# ---------------------------------------------------------------------------------------------

class _SenderCheck:
    """Whether a message's `from` field is a peer id with an embedded public key (cached)."""

    def __init__(self, size: int = 4096) -> None:
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._size = size

    def __call__(self, from_id: bytes) -> bool:
        ok = self._cache.get(from_id)
        if ok is None:
            ok = ID(from_id).extract_public_key() is not None
            self._cache[from_id] = ok
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return ok


def sanitise_rpc(body: bytes, max_data: int, sender_ok: Callable[[bytes], bool]) -> tuple[bytes, int, int]:
    """(frame body to hand on, oversize messages removed, malformed messages removed).

    Raises GarbageFrame if `body` is not a protobuf RPC. The body is passed on unchanged unless
    a message had to be removed.
    """
    rpc = rpc_pb2.RPC()
    try:
        rpc.ParseFromString(body)
    except Exception as exc:  # protobuf's DecodeError, or anything its parser raises
        raise GarbageFrame(f"undecodable pubsub frame: {exc}") from None
    if not rpc.publish:
        return body, 0, 0
    keep, oversize, malformed = [], 0, 0
    for msg in rpc.publish:
        if len(msg.data) > max_data:
            oversize += 1
        elif len(msg.signature) != 64 or not sender_ok(msg.from_id):
            malformed += 1
        else:
            keep.append(msg)
    if not (oversize or malformed):
        return body, 0, 0
    del rpc.publish[:]
    rpc.publish.extend(keep)
    return rpc.SerializeToString(), oversize, malformed


class SanitisingStream:
    """A read-side proxy of a pubsub INetStream that passes on only sanitised frames.

    `count(name, n)` is told about "oversize_frames", "oversize_messages" and
    "malformed_messages". Everything but `read` is delegated to the real stream.
    """

    def __init__(self, stream: Any, max_frame: int, max_data: int,
                 count: Callable[[str, int], None], sender_ok: Callable[[bytes], bool]) -> None:
        self._stream, self._max_frame, self._max_data = stream, max_frame, max_data
        self._count, self._sender_ok = count, sender_ok
        self._raw = bytearray()  # read from the network, not yet framed
        self._buf = b""          # one sanitised frame, being read by py-libp2p
        self._pos = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def read(self, n: int | None = None) -> bytes:
        if self._pos >= len(self._buf):
            frame = await self._next_frame()
            if frame is None:
                return b""
            self._buf, self._pos = frame, 0
        end = len(self._buf) if n is None else min(len(self._buf), self._pos + n)
        out = self._buf[self._pos:end]
        self._pos = end
        return out

    async def _fill(self, need: int) -> bool:
        """Read from the stream until `need` bytes are buffered; False at end of stream."""
        while len(self._raw) < need:
            chunk = await self._stream.read(_READ_CHUNK)
            if not chunk:
                return False
            self._raw += chunk
        return True

    async def _next_frame(self) -> bytes | None:
        raw = self._raw
        length, shift, i = 0, 0, 0
        while True:
            if i >= len(raw) and not await self._fill(i + 1):
                if i == 0:
                    return None  # clean end of stream between frames
                raise IncompleteReadError("stream ended inside a length prefix", expected_bytes=i + 1,
                                          received_bytes=i)
            b = raw[i]
            length |= (b & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if not b & 0x80:
                break
            if i >= 10:
                raise GarbageFrame("length prefix longer than 10 bytes")
        if length > self._max_frame:
            self._count("oversize_frames", 1)
            raise MessageTooLarge(f"pubsub frame of {length} bytes exceeds {self._max_frame}")
        if not await self._fill(i + length):
            raise IncompleteReadError("stream ended inside a frame", expected_bytes=i + length,
                                      received_bytes=len(raw))
        body = bytes(raw[i:i + length])
        del raw[:i + length]
        clean, oversize, malformed = sanitise_rpc(body, self._max_data, self._sender_ok)
        if oversize:
            self._count("oversize_messages", oversize)
        if malformed:
            self._count("malformed_messages", malformed)
        return encode_uvarint(len(clean)) + clean


def new_sender_check() -> Callable[[bytes], bool]:
    """A fresh cached check of message senders, one per host."""
    return _SenderCheck()

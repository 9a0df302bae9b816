"""SML 1.04 files as EDL40 and ISA-EDL-40P meters send them, parsed strictly into a MeterRecord.

An SML file is the transport escape `1b1b1b1b 01010101`, SML messages, 0 to 3 zero bytes of
padding, and `1b1b1b1b 1a <pad count> <CRC16>`; `1b1b1b1b` inside is sent doubled. Each message is
a list of 6 (transactionId, groupNo, abortOnError, messageBody, CRC16, end-of-message 0x00). Both
CRCs are CRC-16/X-25, low byte first. Inside, every value is a TL field (type and length) and its
bytes: octet strings, signed and unsigned integers of 1 to 8 bytes, booleans, and lists.

A signed meter file is exactly OpenRes, GetList.Res, CloseRes. The GetList.Res entries hold the
fields of a 320-byte block that the list signature covers (`edl40.py` rebuilds it). Every check
counts toward the verdict: transport and message CRCs, the escapes and padding, the type of every
field, the exact OBIS name of every entry used, no entry twice. A file that passes all of them and
whose block verifies is what the meter signed; nothing else is accepted.

The signature covers the block only. An EDL40 value's time is signed as local time (its UTC
offsets are not), a status word only as the block's status byte, and the transaction ids,
OpenRes, CloseRes and an EDL40 list name not at all: two files can differ there and carry the same
signed reading, so a record is identified by its signed_data, never by the file's bytes.

Nesting is bounded (MAX_NESTING), lengths are checked against the bytes left before anything is
built, and the input is capped at MAX_RECORD_BYTES, so hostile input costs little and every refusal
is a MeterRecordError. `encode_edl40_file` is the other direction, for test meters.
"""
from __future__ import annotations

import binascii

from dataclasses import dataclass
from typing import Callable

from primitives.meter_formats import edl40
from primitives.meter_formats.ecdsa import CURVE_BYTES
from primitives.meter_formats.edl40 import ListEntry, SignedList, SmlTime, parse_signed_meter_value
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError

__all__ = ["parse", "parse_signed_meter_value", "matches_server_id", "server_id_hex", "encode_edl40_file",
           "crc16_x25", "unframe", "frame", "SmlInt", "SmlMessage", "read_messages", "encode_message",
           "decode_node", "encode_node"]

ESCAPE = b"\x1b\x1b\x1b\x1b"
START = ESCAPE + b"\x01\x01\x01\x01"
END_MARK = 0x1A

#: Deepest list nesting accepted, the message itself being level 1. A signed GetList.Res needs 8
#: (message, body, GetList.Res, valList, entry, list-type value, SML_Time, localTimestamp).
MAX_NESTING = 12
#: Most TL bytes of one field: 4 nibbles of length reach 65,535, far above MAX_RECORD_BYTES.
MAX_TL_BYTES = 4

OPEN_RES, CLOSE_RES, GET_LIST_RES = 0x0101, 0x0201, 0x0701

#: Time zones run from UTC-12:00 to UTC+14:00; daylight saving moves clocks by at most 2 hours.
LOCAL_OFFSET_LIMIT_MIN = (12 * 60, 14 * 60)
SEASON_OFFSET_LIMIT_MIN = 120

_OCTETS, _BOOLEAN, _SIGNED, _UNSIGNED, _LIST = 0, 4, 5, 6, 7




_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (polynomial 0x1021 reflected, init 0xFFFF, final XOR 0xFFFF), as SML uses it.

    The reflected CRC is the plain CCITT CRC (binascii's C `crc_hqx`) of the bit-reversed bytes,
    bit-reversed: about 15 times faster than a Python loop over a table."""
    crc = binascii.crc_hqx(bytes(data).translate(_BIT_REVERSED), 0xFFFF)
    return (_BIT_REVERSED[crc & 0xFF] << 8 | _BIT_REVERSED[crc >> 8]) ^ 0xFFFF


def _crc_bytes(data: bytes) -> bytes:
    return crc16_x25(data).to_bytes(2, "little")


# ---------------------------------------------------------------------------------------------
# transport (version 1)
# ---------------------------------------------------------------------------------------------

def unframe(raw: bytes) -> bytes:
    """The messages inside an SML transport v1 file: start escape checked, doubled escapes undone,
    transport CRC checked, padding (0 to 3 zero bytes, aligning the file to 4 bytes) removed.
    Nothing may follow the end sequence."""
    if not raw.startswith(START):
        raise MeterRecordError("malformed", "an SML file starts with 1b1b1b1b 01010101")
    out = bytearray()
    i = len(START)
    while True:
        j = raw.find(ESCAPE, i)
        if j < 0:
            raise MeterRecordError("malformed", "the SML file has no end sequence 1b1b1b1b 1a")
        out += raw[i:j]
        following = raw[j + 4:j + 8]
        if following == ESCAPE:                     # a doubled escape stands for itself
            out += ESCAPE
            i = j + 8
            continue
        if len(following) < 4:
            raise MeterRecordError("malformed", "the SML file ends inside an escape sequence")
        if following[:1] != bytes([END_MARK]):
            raise MeterRecordError("malformed", f"unknown SML escape sequence 1b1b1b1b {following.hex()}")
        if len(raw) > j + 8:
            raise MeterRecordError("malformed", f"{len(raw) - j - 8} bytes follow the SML end sequence")
        if _crc_bytes(raw[:j + 6]) != raw[j + 6:j + 8]:
            raise MeterRecordError("integrity", "the SML transport CRC16 does not match")
        pad = raw[j + 5]
        if (j - len(START)) % 4:
            raise MeterRecordError("integrity", "the SML file is not padded to a multiple of 4 bytes")
        if pad > 3 or pad > len(out) or any(out[len(out) - pad:]):
            raise MeterRecordError("integrity", f"the SML padding ({pad} bytes) is not 0 to 3 zero bytes")
        return bytes(out[:len(out) - pad])


def frame(payload: bytes) -> bytes:
    """The SML transport v1 file carrying `payload` (one or more encoded messages)."""
    pad = -len(payload) % 4
    body = payload + bytes(pad)
    escaped = bytearray()
    i = 0
    while True:
        j = body.find(ESCAPE, i)
        if j < 0:
            escaped += body[i:]
            break
        escaped += body[i:j] + ESCAPE + ESCAPE
        i = j + 4
    head = START + bytes(escaped) + ESCAPE + bytes([END_MARK, pad])
    return head + _crc_bytes(head)


# ---------------------------------------------------------------------------------------------
# TL fields
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmlInt:
    """An SML integer with its type as sent: signed or not, and its width in bytes (1 to 8)."""

    value: int
    signed: bool
    width: int


#: A decoded SML value: None (the 0x01 "not set" marker), octets, a boolean, an integer or a list.
Node = None | bytes | bool | SmlInt | tuple


def _tl(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(type, length, number of TL bytes) of the TL field at `pos`."""
    first = buf[pos]
    kind, length, n, byte = (first >> 4) & 0x07, first & 0x0F, 1, first
    while byte & 0x80:
        if n == MAX_TL_BYTES:
            raise MeterRecordError("malformed", f"an SML TL field longer than {MAX_TL_BYTES} bytes")
        if pos + n >= len(buf):
            raise MeterRecordError("malformed", "an SML TL field is truncated")
        byte = buf[pos + n]
        if byte & 0x70:
            raise MeterRecordError("malformed", "an SML TL continuation byte carries a type")
        length = (length << 4) | (byte & 0x0F)
        n += 1
    return kind, length, n


def decode_node(buf: bytes, pos: int, depth: int = 1) -> tuple[Node, int]:
    """The SML value at `pos` and the position after it. `depth` counts the lists around it; a
    list deeper than MAX_NESTING is refused, so recursion is bounded."""
    if pos >= len(buf):
        raise MeterRecordError("malformed", "the SML message is truncated")
    if buf[pos] == 0x00:
        raise MeterRecordError("malformed", "an end-of-message byte inside an SML message")
    kind, length, n = _tl(buf, pos)
    if kind == _LIST:
        if depth > MAX_NESTING:
            raise MeterRecordError("malformed", f"SML lists nested deeper than {MAX_NESTING} levels")
        if length > len(buf) - pos - n:
            raise MeterRecordError("malformed", "an SML list has more elements than bytes left")
        items = []
        p = pos + n
        for _ in range(length):
            item, p = decode_node(buf, p, depth + 1)
            items.append(item)
        return tuple(items), p
    end = pos + length
    if length < n or end > len(buf):
        raise MeterRecordError("malformed", "an SML field's length does not fit the message")
    data = buf[pos + n:end]
    if kind == _OCTETS:
        return (bytes(data) if data else None), end
    if kind == _BOOLEAN:
        if len(data) != 1:
            raise MeterRecordError("malformed", "an SML boolean is one byte")
        return data[0] != 0, end
    if kind in (_SIGNED, _UNSIGNED):
        if not 1 <= len(data) <= 8:
            raise MeterRecordError("malformed", f"an SML integer of {len(data)} bytes")
        signed = kind == _SIGNED
        return SmlInt(int.from_bytes(data, "big", signed=signed), signed, len(data)), end
    raise MeterRecordError("malformed", f"unknown SML TL type {kind}")


def _tl_bytes(kind: int, length: int, counts_itself: bool) -> bytes:
    n = 1
    while (length + (n if counts_itself else 0)) >= 16 ** n:
        n += 1
    total = length + (n if counts_itself else 0)
    nibbles = [(total >> (4 * (n - 1 - k))) & 0x0F for k in range(n)]
    out = bytearray(0x80 | nib if k < n - 1 else nib for k, nib in enumerate(nibbles))
    out[0] |= kind << 4
    return bytes(out)


def encode_node(node: Node) -> bytes:
    """The shortest SML encoding of `node` (integers keep their type and width)."""
    if node is None:
        return b"\x01"
    if isinstance(node, bool):
        return bytes([0x42, 0x01 if node else 0x00])
    if isinstance(node, SmlInt):
        kind = _SIGNED if node.signed else _UNSIGNED
        return bytes([kind << 4 | (node.width + 1)]) + node.value.to_bytes(node.width, "big", signed=node.signed)
    if isinstance(node, bytes):
        if not node:
            return b"\x01"
        return _tl_bytes(_OCTETS, len(node), True) + node
    if isinstance(node, tuple):
        return _tl_bytes(_LIST, len(node), False) + b"".join(encode_node(item) for item in node)
    raise TypeError(f"not an SML value: {type(node).__name__}")


# ---------------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmlMessage:
    """One SML message: its header, the body's tag (0x0101 OpenRes, 0x0701 GetList.Res, ...) and
    the body's value. `tag_width` is the tag's width as sent (an Unsigned32, often sent in 2)."""

    transaction_id: bytes
    group_no: int
    abort_on_error: int
    tag: int
    body: Node
    tag_width: int = 4


def _fail(what: str) -> MeterRecordError:
    return MeterRecordError("malformed", f"SML: {what}")


def _unsigned(node: Node, what: str, bits: int) -> int:
    if not isinstance(node, SmlInt) or node.signed or node.value >= 1 << bits:
        raise _fail(f"{what} is not an Unsigned{bits}")
    return node.value


def _signed(node: Node, what: str, bits: int) -> int:
    if not isinstance(node, SmlInt) or not node.signed or not -(1 << (bits - 1)) <= node.value < 1 << (bits - 1):
        raise _fail(f"{what} is not an Integer{bits}")
    return node.value


def _octets(node: Node, what: str, optional: bool = True) -> bytes | None:
    if node is None and optional:
        return None
    if not isinstance(node, bytes):
        raise _fail(f"{what} is not an octet string")
    return node


def _list(node: Node, size: int, what: str) -> tuple:
    if not isinstance(node, tuple) or len(node) != size:
        raise _fail(f"{what} is not a list of {size}")
    return node


def read_messages(payload: bytes) -> list[SmlMessage]:
    """Every message of an unframed SML file, in order, each one's CRC16 checked. The payload must
    be messages only."""
    messages = []
    pos = 0
    while pos < len(payload):
        start = pos
        if payload[pos] != 0x76:
            raise _fail("a message is a list of 6 (TL byte 0x76)")
        pos += 1
        header = []
        for _ in range(4):
            node, pos = decode_node(payload, pos, 2)
            header.append(node)
        crc_at = pos
        if payload[crc_at:crc_at + 1] != b"\x63" or len(payload) < crc_at + 4:
            raise _fail("a message's CRC16 is not an Unsigned16")
        if payload[crc_at + 3] != 0x00:
            raise _fail("a message does not end with its end-of-message byte 0x00")
        if _crc_bytes(payload[start:crc_at]) != payload[crc_at + 1:crc_at + 3]:
            raise MeterRecordError("integrity", f"the CRC16 of SML message {len(messages) + 1} does not match")
        pos = crc_at + 4
        transaction_id = _octets(header[0], "transactionId", optional=False)
        assert transaction_id is not None
        tag, body = _list(header[3], 2, "a message body")
        messages.append(SmlMessage(transaction_id, _unsigned(header[1], "groupNo", 8),
                                   _unsigned(header[2], "abortOnError", 8),
                                   _unsigned(tag, "a message body's tag", 32), body,
                                   tag.width if isinstance(tag, SmlInt) else 4))
    return messages


def encode_message(message: SmlMessage) -> bytes:
    """One SML message with its CRC16 and end byte."""
    head = b"\x76" + b"".join(encode_node(n) for n in (
        message.transaction_id, SmlInt(message.group_no, False, 1), SmlInt(message.abort_on_error, False, 1),
        (SmlInt(message.tag, False, message.tag_width), message.body)))
    return head + b"\x63" + _crc_bytes(head) + b"\x00"


# ---------------------------------------------------------------------------------------------
# OpenRes, GetList.Res, CloseRes
# ---------------------------------------------------------------------------------------------

def _time(node: Node, what: str) -> SmlTime | None:
    """An SML_Time or None: (tag 1, secIndex) | (tag 2, timestamp) | (tag 3, (timestamp,
    localOffset, seasonTimeOffset))."""
    if node is None:
        return None
    tag_node, content = _list(node, 2, what)
    tag = _unsigned(tag_node, f"the tag of {what}", 8)
    if tag in (1, 2):
        return SmlTime(tag, _unsigned(content, what, 32))
    if tag == 3:
        seconds, local, season = _list(content, 3, f"the localTimestamp of {what}")
        local_min = _signed(local, f"the local offset of {what}", 16)
        season_min = _signed(season, f"the season offset of {what}", 16)
        # The EDL40 block signs only local time (UTC + offsets): the offsets are not signed, so
        # they are held to real time zones, which bounds how far the UTC time could be moved.
        if not (-LOCAL_OFFSET_LIMIT_MIN[0] <= local_min <= LOCAL_OFFSET_LIMIT_MIN[1]
                and abs(season_min) <= SEASON_OFFSET_LIMIT_MIN):
            raise MeterRecordError("integrity", f"{what}: offsets of {local_min} and {season_min} minutes "
                                                "are no time zone's")
        return SmlTime(3, _unsigned(seconds, what, 32), local_min, season_min)
    raise _fail(f"{what} has unknown SML_Time tag {tag}")


def _value(node: Node, what: str) -> edl40.SmlValue:
    """An SML_Value: boolean, octets, integer, or the list type (tag 1: an SML_Time)."""
    if isinstance(node, SmlInt):
        return node.value
    if node is None or isinstance(node, (bytes, bool)):
        return node
    tag_node, content = _list(node, 2, what)
    tag = _unsigned(tag_node, f"the list type of {what}", 8)
    if tag != 1:
        raise MeterRecordError("unsupported", f"SML: {what} has list type {tag}; only an SML_Time (1) is taken")
    return _time(content, what)


def _entry(node: Node) -> ListEntry:
    name, status, val_time, unit, scaler, value, value_signature = _list(node, 7, "a list entry")
    obis = _octets(name, "an entry's objName", optional=False)
    assert obis is not None
    if len(obis) != 6:
        raise _fail(f"the entry name {obis.hex()} is not a 6-byte OBIS code")
    what = f"entry {obis.hex()}"
    return ListEntry(
        obis=obis,
        status=None if status is None else _unsigned(status, f"the status of {what}", 64),
        time=_time(val_time, f"the valTime of {what}"),
        unit=None if unit is None else _unsigned(unit, f"the unit of {what}", 8),
        scaler=None if scaler is None else _signed(scaler, f"the scaler of {what}", 8),
        value=_value(value, f"the value of {what}"),
        value_signature=_octets(value_signature, f"the valueSignature of {what}"))


def _open_res(body: Node) -> dict[str, str]:
    codepage, client_id, req_file_id, server_id, ref_time, version = _list(body, 6, "OpenRes")
    _octets(codepage, "OpenRes codepage")
    _octets(client_id, "OpenRes clientId")
    _octets(req_file_id, "OpenRes reqFileId", optional=False)
    sid = _octets(server_id, "OpenRes serverId", optional=False)
    _time(ref_time, "OpenRes refTime")
    if version is not None:
        _unsigned(version, "OpenRes smlVersion", 8)
    assert sid is not None
    return {"open_server_id": sid.hex()}


def _get_list_res(body: Node) -> SignedList:
    client_id, server_id, list_name, sensor_time, val_list, list_signature, gateway_time = \
        _list(body, 7, "GetList.Res")
    _octets(client_id, "GetList.Res clientId")
    sid = _octets(server_id, "GetList.Res serverId", optional=False)
    _time(sensor_time, "GetList.Res actSensorTime")
    _time(gateway_time, "GetList.Res actGatewayTime")
    if not isinstance(val_list, tuple):
        raise _fail("GetList.Res valList is not a list")
    entries = tuple(_entry(e) for e in val_list)
    names = [e.obis for e in entries]
    if len(set(names)) != len(names):
        raise MeterRecordError("integrity", "SML: an entry name occurs twice in the GetList.Res")
    assert sid is not None
    return SignedList(sid, _octets(list_name, "GetList.Res listName"), entries,
                      _octets(list_signature, "GetList.Res listSignature"))


def _close_res(body: Node) -> None:
    (global_signature,) = _list(body, 1, "CloseRes")
    _octets(global_signature, "CloseRes globalSignature")


def parse(raw: bytes) -> MeterRecord:
    """The signed record in an SML file (OpenRes, GetList.Res, CloseRes) as the meter sends it.

    format "sml-edl40" or "isa-edl40p-sml" by the list's content; signed_data is the 320-byte
    block rebuilt from the entries; signature is r||s without the 2 logbook bytes; the curve is the
    one the signature's length selects (48+2 bytes P-192, 64+2 P-256); meter_id is the server id
    in lower-case hex; counter is the pagination; readings hold the signed value(s) in Wh with
    their UTC time (the block holds EDL40's local time)."""
    if not isinstance(raw, (bytes, bytearray)):
        raise MeterRecordError("malformed", "an SML file is given as bytes")
    if len(raw) > MAX_RECORD_BYTES:
        raise MeterRecordError("too-large", f"the record is {len(raw)} bytes, at most {MAX_RECORD_BYTES}")
    messages = read_messages(unframe(bytes(raw)))
    tags = [m.tag for m in messages]
    for tag in tags:
        if tag not in (OPEN_RES, GET_LIST_RES, CLOSE_RES):
            raise MeterRecordError("unsupported", f"SML message type 0x{tag:04x} is not taken in a signed file")
    if tags != [OPEN_RES, GET_LIST_RES, CLOSE_RES]:
        raise MeterRecordError("integrity", "a signed SML file is exactly OpenRes, GetList.Res, CloseRes")
    fields = _open_res(messages[0].body)
    signed_list = _get_list_res(messages[1].body)
    _close_res(messages[2].body)
    return edl40.record_from_list(signed_list, fields)


# ---------------------------------------------------------------------------------------------
# the meter's identity
# ---------------------------------------------------------------------------------------------

def server_id_hex(server_id: bytes | str) -> str:
    """A server id in the one spelling records use (lower-case hex, no separators), from bytes or
    from hex text as certificates and meter labels write it ("0A 01 45 4D ...", "0x0a0145...")."""
    if isinstance(server_id, (bytes, bytearray)):
        return bytes(server_id).hex()
    text = "".join(server_id.split())
    if text[:2].lower() == "0x":
        text = text[2:]
    try:
        return bytes.fromhex(text).hex()
    except ValueError:
        raise MeterRecordError("malformed", f"server id {server_id!r} is not hex") from None


def matches_server_id(record: MeterRecord, certified_server_id: bytes | str) -> bool:
    """Whether `record` comes from the meter certified with this server id (the id is inside the
    signed block, so a record from another meter cannot pass for this one)."""
    return record.meter_id == server_id_hex(certified_server_id)


# ---------------------------------------------------------------------------------------------
# the other direction: what an EDL40 test meter sends
# ---------------------------------------------------------------------------------------------

def _local_time(seconds: int, local_offset_min: int) -> tuple:
    return (SmlInt(3, False, 1), (SmlInt(seconds, False, 4), SmlInt(local_offset_min, True, 2), SmlInt(0, True, 2)))


def encode_edl40_file(server_id: bytes, value_wh_tenths: int, scaler: int, time_utc: int, local_offset_min: int,
                      pagination: int, seconds_index: int, sign: Callable[[bytes], bytes], *,
                      logbook: bytes = b"\x00\x00", curve: str = "secp256r1", contract_id: bytes = b"",
                      status: int = 0) -> bytes:
    """The SML file an EDL40 meter sends for one signed reading: OpenRes, a GetList.Res with the
    signed value 1-0:1.17.0*255 (`value_wh_tenths` x 10^`scaler` Wh, at `time_utc` with the meter's
    `local_offset_min`), its seconds index, pagination and contract id, and CloseRes.

    `sign` receives the 320-byte block (built by the same code the parser rebuilds it with) and
    returns r||s on `curve` (secp192r1: 48 bytes, secp256r1: 64 bytes); the 2 `logbook` bytes are
    appended to the list signature and are part of the block. ValueError for arguments a meter
    could not send."""
    if len(server_id) != 10 or len(logbook) != 2 or len(contract_id) > 128:
        raise ValueError("server id is 10 bytes, logbook 2, contract id at most 128")
    if not all(0 <= n < 1 << 32 for n in (time_utc, pagination, seconds_index, status)):
        raise ValueError("time, pagination, seconds index and status are Unsigned32")
    if not -(1 << 15) <= local_offset_min < 1 << 15:
        raise ValueError("the local offset is an Integer16 (minutes)")
    width = CURVE_BYTES.get(curve)
    if curve not in edl40.CURVE_BY_SIGNATURE_BYTES.values() or width is None:
        raise ValueError(f"an EDL40 meter signs on secp192r1 or secp256r1, not {curve}")
    when = _local_time(time_utc, local_offset_min)
    sec_index = (SmlInt(1, False, 1), SmlInt(seconds_index, False, 4))        # SML_Time tag 1
    entries = (
        (edl40.EDL40_VALUE, SmlInt(status, False, 4), when, SmlInt(edl40.UNIT_WH, False, 1),
         SmlInt(scaler, True, 1), SmlInt(value_wh_tenths, True, 8), None),
        (edl40.SECONDS_INDEX, None, None, None, None, (SmlInt(1, False, 1), sec_index), None),
        (edl40.EDL40_PAGINATION, None, None, None, None, SmlInt(pagination, False, 4), None),
        (edl40.CONTRACT_ID, None, when, None, None, contract_id or None, None),
    )

    def get_list_res(list_signature: bytes) -> tuple:
        return (None, server_id, edl40.EDL40_VALUE, sec_index, entries, list_signature, None)

    # the block depends on the signature only through its length and the logbook bytes
    placeholder = bytes(2 * width) + logbook
    block = edl40.build_edl40_block(_get_list_res(get_list_res(placeholder)))
    rs = sign(block)
    if len(rs) != 2 * width:
        raise ValueError(f"sign returned {len(rs)} bytes, r||s on {curve} is {2 * width}")
    ids = [(pagination & 0xFFFFFFFF).to_bytes(4, "big") + bytes([k]) for k in range(3)]
    open_res = (None, None, ids[0], server_id, sec_index, None)
    payload = b"".join(encode_message(m) for m in (
        SmlMessage(ids[0], 0, 0, OPEN_RES, open_res),
        SmlMessage(ids[1], 0, 0, GET_LIST_RES, get_list_res(bytes(rs) + logbook)),
        SmlMessage(ids[2], 0, 0, CLOSE_RES, (None,))))
    return frame(payload)

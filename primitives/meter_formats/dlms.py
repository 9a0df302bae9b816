"""DLMS/COSEM general-signing APDUs (IEC 62056-5-3, security suites 1 and 2) carrying a meter's
register push, as gridchain takes them.

The APDU, every length in A-XDR form (one byte below 0x80, else `81 nn` or `82 nn nn`, always the
shortest form):

    DF                                   general-signing tag (not signed)
    len transaction-id                   any length
    len originator-system-title          8 bytes: the meter's system title, its id (lower-case hex)
    len recipient-system-title           0 or 8 bytes
    len date-time                        0 (absent) or 12 bytes (COSEM date-time, kept as hex)
    len other-information                any length
    len content                          the xDLMS APDU the meter protects (below)
    len signature                        suite 1: 64 bytes r||s (P-256, SHA-256);
                                         suite 2: 96 bytes r||s (P-384, SHA-384)

Nothing may follow the signature, and the content is decoded before the signature is looked at, so
a content length that does not match the content is always refused as malformed. The signed bytes
are the five header fields, each with its length bytes, followed by the content without its length:
`APDU[1 : start of content length] || content`.
When the caller names the meter's suite, a signature of the other suite's length is refused; when it
does not, the signature's length decides. r and s must lie in [1, n-1].

The content must be a data-notification (plaintext; a ciphered content is refused as unsupported,
since the chain cannot read its registers):

    0F  long-invoke-id-and-priority (u32)  bits 0-23 the invoke id: the meter's counter, which
                                           rises by one per push; bits 24-27 (reserved) must be 0
        date-time                          00 (absent) or 0C + 12 bytes (kept as hex)
        notification-body                  one A-XDR Data value, gridchain's register push:

    structure(2) {
        capture-time   octet-string(12)    COSEM date-time of the capture, fully specified
        registers      array(1..32) of structure(3) {       (a Profile Generic-like capture)
            logical-name  octet-string(6)  OBIS A B C D E F, e.g. 01 00 01 08 00 FF = 1-0:1.8.0
            value         unsigned | long-unsigned | double-long-unsigned | long64-unsigned
            scaler-unit   structure(2) { scaler integer, unit enum }
        }
    }

A register's value is exactly value x 10^scaler in its unit: 27 W, 28 VA, 29 var, 30 Wh, 31 VAh,
32 varh (other units are refused). The OBIS code becomes "A-B:C.D.E", with "*F" appended unless F is
255 (as for OCMF). Two registers with the same OBIS code in one push are refused.

Data types accepted, and nothing else (tag, A-XDR encoding): array 0x01 and structure 0x02 (element
count as an A-XDR length), octet-string 0x09 (A-XDR length + bytes), double-long-unsigned 0x06
(4 bytes), integer 0x0F (1 byte, signed), unsigned 0x11 (1 byte), long-unsigned 0x12 (2 bytes),
long64-unsigned 0x15 (8 bytes), enum 0x16 (1 byte); all big-endian. Containers nest at most
`MAX_DATA_DEPTH` deep (the layout needs 3), so the decoder's recursion is bounded whatever the input.

COSEM date-time (12 bytes): year (u16), month, day of month, day of week (1 = Monday, or FF), hour,
minute, second, hundredths (or FF), deviation (i16, minutes), clock status. The capture time must be
fully specified (no FF/FD/FE wildcards, deviation not 0x8000), a real calendar date, the day of week
(if given) the date's. Deviation follows the Blue Book: minutes from local time to UTC, so
UTC = local + deviation (CET -60, CEST -120). Hundredths are dropped. The clock status byte, unless FF
(not specified), is each register's `status` (bit 0 invalid value, 1 doubtful, 2 different clock
base, 3 invalid clock status, 7 daylight saving active).
"""
from __future__ import annotations

import datetime

from primitives.meter_formats.ecdsa import check_signature_range, signature_from_raw
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError, RegisterValue

#: Security suite -> (curve, hash, width of r and s in bytes).
SUITES = {1: ("secp256r1", "sha256", 32), 2: ("secp384r1", "sha384", 48)}

#: Deepest nesting of arrays and structures in a notification body.
MAX_DATA_DEPTH = 4

#: Most registers one push may carry.
MAX_REGISTERS = 32

GENERAL_SIGNING = 0xDF
DATA_NOTIFICATION = 0x0F
SYSTEM_TITLE_BYTES = 8
DATE_TIME_BYTES = 12

ARRAY, STRUCTURE, OCTET_STRING = 0x01, 0x02, 0x09
INTEGER, ENUM = 0x0F, 0x16
#: Integer Data types: tag -> (bytes, signed).
_INTEGERS = {0x06: (4, False), 0x0F: (1, True), 0x11: (1, False), 0x12: (2, False), 0x15: (8, False),
             0x16: (1, False)}
#: The Data types a register value may have.
VALUE_TYPES = (0x11, 0x12, 0x06, 0x15)
#: COSEM unit enum -> unit name.
UNITS = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh"}

_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()

Data = tuple[int, object]   # (type tag, int | bytes | list of Data)


class _Reader:
    """Bytes read front to back; running out is a malformed record, never an IndexError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int, field: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise MeterRecordError("malformed", f"the {self.what} ends inside its {field}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self, field: str) -> int:
        return self.take(1, field)[0]

    def length(self, field: str) -> int:
        """An A-XDR length in its shortest form: nn (< 0x80), 81 nn (>= 0x80), 82 nn nn (>= 0x100)."""
        first = self.byte(f"{field} length")
        if first < 0x80:
            return first
        if first == 0x81:
            n = self.byte(f"{field} length")
            if n >= 0x80:
                return n
        elif first == 0x82:
            n = int.from_bytes(self.take(2, f"{field} length"), "big")
            if n >= 0x100:
                return n
        raise MeterRecordError("malformed", f"the {field} length is not a shortest A-XDR length")

    def octets(self, field: str) -> bytes:
        return self.take(self.length(field), field)

    def left(self) -> int:
        return len(self.data) - self.pos


def parse(raw: bytes, suite: int | None = None) -> MeterRecord:
    """A general-signing APDU carrying gridchain's register push, parsed strictly; not yet verified.
    `suite` is the meter's certified security suite (1 or 2), or None to take the signature's.

    MeterRecordError ("too-large", "malformed", "integrity", "unsupported", "bad-signature-encoding")
    for anything refused; never another exception."""
    if not isinstance(raw, (bytes, bytearray)):
        raise MeterRecordError("malformed", "a DLMS APDU is bytes")
    if len(raw) > MAX_RECORD_BYTES:
        raise MeterRecordError("too-large", f"the APDU is {len(raw)} bytes, more than {MAX_RECORD_BYTES}")
    if suite is not None and (type(suite) is not int or suite not in SUITES):
        raise MeterRecordError("unsupported", f"security suite {suite!r} does not sign (1 or 2)")
    raw = bytes(raw)
    r = _Reader(raw, "APDU")
    if r.byte("tag") != GENERAL_SIGNING:
        raise MeterRecordError("malformed", "not a general-signing APDU (tag 0xDF)")
    transaction_id = r.octets("transaction-id")
    originator = r.octets("originator-system-title")
    recipient = r.octets("recipient-system-title")
    date_time = r.octets("date-time")
    other = r.octets("other-information")
    header_end = r.pos
    content = r.octets("content")
    signature_bytes = r.octets("signature")
    if r.left():
        raise MeterRecordError("malformed", f"{r.left()} bytes follow the signature")
    if len(originator) != SYSTEM_TITLE_BYTES:
        raise MeterRecordError("malformed", f"the originator system title is {len(originator)} bytes, not 8")
    if len(recipient) not in (0, SYSTEM_TITLE_BYTES):
        raise MeterRecordError("malformed", f"the recipient system title is {len(recipient)} bytes, not 0 or 8")
    if len(date_time) not in (0, DATE_TIME_BYTES):
        raise MeterRecordError("malformed", f"the date-time is {len(date_time)} bytes, not 0 or 12")

    invoke_id, liip, notification_time, body = _data_notification(content)
    capture_time, clock_status, readings = _register_push(body)

    suite = _suite(signature_bytes, suite)
    curve, hash_name, width = SUITES[suite]
    signature = signature_from_raw(signature_bytes, width)
    check_signature_range(signature, curve)
    fields = {"suite": str(suite), "transaction-id": transaction_id.hex(),
              "recipient-system-title": recipient.hex(), "date-time": date_time.hex(),
              "other-information": other.hex(), "long-invoke-id-and-priority": f"{liip:08x}",
              "notification-date-time": notification_time.hex()}
    status = None if clock_status == 0xFF else clock_status
    return MeterRecord(
        format="dlms-general-signing", meter_id=originator.hex(),
        signed_data=raw[1:header_end] + content, signature=signature, curve=curve, hash=hash_name,
        readings=tuple(RegisterValue(obis, mantissa, exponent, unit, capture_time, status)
                       for obis, mantissa, exponent, unit in readings),
        counter=invoke_id, time=capture_time, fields=fields)


def _suite(signature: bytes, suite: int | None) -> int:
    by_length = {2 * width: s for s, (_, _, width) in SUITES.items()}
    if suite is None:
        if len(signature) not in by_length:
            raise MeterRecordError("bad-signature-encoding", f"a general-signing signature is 64 (suite 1) "
                                                             f"or 96 (suite 2) bytes r||s, not {len(signature)}")
        return by_length[len(signature)]
    if len(signature) != 2 * SUITES[suite][2]:
        raise MeterRecordError("bad-signature-encoding", f"a suite {suite} signature is {2 * SUITES[suite][2]} "
                                                         f"bytes r||s, not {len(signature)}")
    return suite


def _data_notification(content: bytes) -> tuple[int, int, bytes, Data]:
    """(invoke id, long-invoke-id-and-priority, date-time bytes, body) of a data-notification."""
    r = _Reader(content, "content")
    tag = r.byte("tag")
    if tag != DATA_NOTIFICATION:
        raise MeterRecordError("unsupported", f"the signed content is APDU 0x{tag:02x}, not a plaintext "
                                              "data-notification (0x0f)")
    liip = int.from_bytes(r.take(4, "long-invoke-id-and-priority"), "big")
    if liip & 0x0F000000:
        raise MeterRecordError("malformed", "the reserved bits 24-27 of long-invoke-id-and-priority are set")
    date_time = r.octets("date-time")
    if len(date_time) not in (0, DATE_TIME_BYTES):
        raise MeterRecordError("malformed", f"the notification date-time is {len(date_time)} bytes, not 0 or 12")
    body = _data(r, 0)
    if r.left():
        raise MeterRecordError("malformed", f"{r.left()} bytes follow the notification body")
    return liip & 0x00FFFFFF, liip, date_time, body


def _data(r: _Reader, depth: int) -> Data:
    """One A-XDR Data value of an accepted type; containers at most MAX_DATA_DEPTH deep."""
    tag = r.byte("Data type")
    if tag in (ARRAY, STRUCTURE):
        if depth >= MAX_DATA_DEPTH:
            raise MeterRecordError("malformed", f"Data nests deeper than {MAX_DATA_DEPTH}")
        count = r.length("element count")
        if count > r.left():
            raise MeterRecordError("malformed", f"the {r.what} ends inside an array or structure")
        return tag, [_data(r, depth + 1) for _ in range(count)]
    if tag == OCTET_STRING:
        return tag, r.octets("octet-string")
    if tag in _INTEGERS:
        size, signed = _INTEGERS[tag]
        return tag, int.from_bytes(r.take(size, "integer"), "big", signed=signed)
    raise MeterRecordError("unsupported", f"DLMS Data type {tag} is not one gridchain takes")


def _register_push(body: Data) -> tuple[int, int, list[tuple[str, int, int, str]]]:
    """(capture time, clock status, [(obis, mantissa, exponent, unit)]) of gridchain's push layout."""
    capture, registers = _structure(body, 2, "the notification body")
    if capture[0] != OCTET_STRING or len(capture[1]) != DATE_TIME_BYTES:
        _not_layout("its capture time is not an octet-string(12)")
    capture_time, clock_status = cosem_time(capture[1])
    if registers[0] != ARRAY or not 1 <= len(registers[1]) <= MAX_REGISTERS:
        _not_layout(f"its registers are not an array of 1 to {MAX_REGISTERS}")
    out, seen = [], set()
    for entry in registers[1]:
        name, value, scaler_unit = _structure(entry, 3, "a register")
        scaler, unit = _structure(scaler_unit, 2, "a scaler-unit")
        if name[0] != OCTET_STRING or len(name[1]) != 6:
            _not_layout("a register's logical name is not an octet-string(6)")
        if value[0] not in VALUE_TYPES:
            _not_layout("a register's value is not an unsigned integer type")
        if scaler[0] != INTEGER or unit[0] != ENUM:
            _not_layout("a scaler-unit is not {integer, enum}")
        if unit[1] not in UNITS:
            raise MeterRecordError("unsupported", f"unit {unit[1]} is not one of {sorted(UNITS)}")
        a, b, c, d, e, f = name[1]
        obis = f"{a}-{b}:{c}.{d}.{e}" + ("" if f == 255 else f"*{f}")
        if obis in seen:
            raise MeterRecordError("integrity", f"register {obis} appears twice in one push")
        seen.add(obis)
        out.append((obis, value[1], scaler[1], UNITS[unit[1]]))
    return capture_time, clock_status, out


def _structure(value: Data, size: int, what: str) -> list[Data]:
    if value[0] != STRUCTURE or len(value[1]) != size:
        _not_layout(f"{what} is not a structure of {size}")
    return value[1]


def _not_layout(why: str) -> None:
    raise MeterRecordError("unsupported", f"the notification body is not gridchain's register push: {why}")


def cosem_time(data: bytes) -> tuple[int, int]:
    """(unix seconds UTC, clock status) of a fully specified 12-byte COSEM date-time."""
    year = int.from_bytes(data[0:2], "big")
    month, day, weekday, hour, minute, second, hundredths = data[2:9]
    deviation = int.from_bytes(data[9:11], "big", signed=True)
    if year == 0xFFFF or 0xFD <= month or 0xFD <= day or 0xFF in (hour, minute, second) \
            or deviation == -0x8000:
        raise MeterRecordError("unsupported", "the capture time is not fully specified")
    try:
        date = datetime.date(year, month, day)
    except ValueError:
        raise MeterRecordError("malformed", f"the capture time {data.hex()} is not a calendar date") from None
    if weekday not in (0xFF, date.isoweekday()) or hour > 23 or minute > 59 or second > 59 \
            or not (hundredths <= 99 or hundredths == 0xFF) or not -720 <= deviation <= 720:
        raise MeterRecordError("malformed", f"the capture time {data.hex()} is not a valid COSEM date-time")
    seconds = (date.toordinal() - _EPOCH_DAY) * 86400 + hour * 3600 + minute * 60 + second
    return seconds + deviation * 60, data[11]

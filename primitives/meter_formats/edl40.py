"""What an EDL40 meter signs: the 320-byte block, and the signedMeterValue XML that carries it.

Calibration-law (Eichrecht) meters with an EDL40 signature module sign a fixed 320-byte block with
ECDSA over SHA-256. Over SML (`sml.py`) the block itself is never sent: the meter sends a
GetList.Res whose entries hold the block's fields, plus the list signature, and the verifier must
rebuild the block byte for byte (mixed byte orders, local time, the logbook bytes copied from the
end of the signature). Two layouts exist:

- EDL40 (EasyMeter, EMH eMOC and others): the signed value is `1-0:1.17.0*255`; the list
  signature is r||s on P-192 (48 bytes) or P-256 (64 bytes), followed by 2 logbook bytes.
- ISA-EDL-40P (Isabellenhuette): the signed value is `1-0:1.8.0*255` with the transaction's start
  value `1-0:1.8.0*128`; P-256 only.

The signedMeterValue XML (OCPP's container) transmits the EDL40 block itself, base64-encoded, so
it is verified as transmitted and only decoded for display and for the chain's rules.

The layouts follow the S.A.F.E. transparency software's reader, as the README of the public
meter-signature test vectors documents them. Pure: no clock, no floats, no I/O; everything refused
is a MeterRecordError.
"""
from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from primitives.meter_formats.ecdsa import CURVE_BYTES, check_signature_range, signature_from_raw
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError, RegisterValue

BLOCK_BYTES = 320
LOGBOOK_BYTES = 2
UNIT_WH = 30                                  # the DLMS/SML unit code of watt-hours

# OBIS names (6 bytes) of the entries the blocks are built from
EDL40_VALUE = bytes.fromhex("0100011100ff")        # 1-0:1.17.0*255, the signed register value
SECONDS_INDEX = bytes.fromhex("810060080001")      # the meter's seconds index (an SML secIndex)
EDL40_PAGINATION = bytes.fromhex("8180817101ff")
CONTRACT_ID = bytes.fromhex("8182815401ff")
HISTORICAL = bytes.fromhex("010001110064")         # EMH eMOC: historical value
HISTORICAL_COMPENSATED = bytes.fromhex("0100011100c8")
POWERLINE_RESISTANCE = bytes.fromhex("00af6c6c72ff")
STOPWATCH = bytes.fromhex("00af647572ff")
PRICE = bytes.fromhex("00af707263ff")
ISA_ACTUAL = bytes.fromhex("0100010800ff")         # 1-0:1.8.0*255, the actual energy counter
ISA_START = bytes.fromhex("010001080080")          # 1-0:1.8.0*128, the transaction's start value
ISA_ESTH = bytes.fromhex("8180816101ff")
ISA_PAGINATION = bytes.fromhex("8180c7f040ff")

#: The curve a list signature's length selects (r||s plus the 2 logbook bytes).
CURVE_BY_SIGNATURE_BYTES = {50: "secp192r1", 66: "secp256r1"}
#: signedMeterValue's signatureMethod names.
SIGNATURE_METHODS = {"ECDSA192SHA256": "secp192r1", "ECDSA256SHA256": "secp256r1"}


@dataclass(frozen=True)
class SmlTime:
    """An SML_Time: a seconds index (tag 1), a UTC timestamp (tag 2), or a UTC timestamp with the
    local and daylight-saving offsets in minutes (tag 3, localTimestamp)."""

    kind: int
    seconds: int
    local_offset_min: int = 0
    season_offset_min: int = 0

    @property
    def utc(self) -> int | None:
        """Unix seconds (UTC), or None for a seconds index, which is no calendar time."""
        return None if self.kind == 1 else self.seconds

    @property
    def block_seconds(self) -> int:
        """The number the EDL40 block holds: local seconds for a localTimestamp, else as sent."""
        if self.kind == 3:
            return self.seconds + 60 * (self.local_offset_min + self.season_offset_min)
        return self.seconds


#: An SML value as the list carries it.
SmlValue = int | bytes | bool | SmlTime | None


@dataclass(frozen=True)
class ListEntry:
    """One SML_ListEntry: (objName, status, valTime, unit, scaler, value, valueSignature)."""

    obis: bytes
    status: int | None
    time: SmlTime | None
    unit: int | None
    scaler: int | None
    value: SmlValue
    value_signature: bytes | None


@dataclass(frozen=True)
class SignedList:
    """The signed part of a GetList.Res: the server id, list name, entries (names unique) and
    the list signature as transmitted (r||s and the 2 logbook bytes)."""

    server_id: bytes
    list_name: bytes | None
    entries: tuple[ListEntry, ...]
    list_signature: bytes | None

    def entry(self, obis: bytes) -> ListEntry | None:
        """The entry named `obis` exactly (all 6 bytes), or None."""
        for e in self.entries:
            if e.obis == obis:
                return e
        return None


def obis_text(obis: bytes) -> str:
    """The canonical OBIS code of a 6-byte OBIS name, as `ocmf.canonical_obis` spells codes:
    "A-B:C.D.E", with "*F" only when F is not 255 (the current value). So ISA-EDL-40P's start
    value `01 00 01 08 00 80` is "1-0:1.8.0*128", distinct from its actual value "1-0:1.8.0"."""
    a, b, c, d, e, f = obis[:6]
    return f"{a}-{b}:{c}.{d}.{e}" + ("" if f == 255 else f"*{f}")


def _obis_full(obis: bytes) -> str:
    a, b, c, d, e, f = obis[:6]
    return f"{a}-{b}:{c}.{d}.{e}*{f}"


def emoc_status(word: int) -> int:
    """The EMH eMOC block status byte from the 32-bit SML status word (the eMOC's bit mapping):
    bit 0 <- 17, bit 3 <- 31, bit 4 <- 16, bit 5 <- 11, bit 6 <- 9, bit 7 <- 8."""
    out = 0
    for bit, source in ((0, 17), (3, 31), (4, 16), (5, 11), (6, 9), (7, 8)):
        if word >> source & 1:
            out |= 1 << bit
    return out


# ---------------------------------------------------------------------------------------------
# field encodings of the block
# ---------------------------------------------------------------------------------------------

def _fixed(value: int, width: int, what: str, order: str = "little") -> bytes:
    """`value` in `width` bytes: a negative value in two's complement, a non-negative one as
    unsigned. A value that does not fit is refused rather than cut (the reference cuts)."""
    bits = 8 * width
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise MeterRecordError("integrity", f"{what} {value} does not fit the block's {width} bytes")
    return (value % (1 << bits)).to_bytes(width, order)


def _need(lst: SignedList, obis: bytes, what: str) -> ListEntry:
    e = lst.entry(obis)
    if e is None:
        raise MeterRecordError("integrity", f"the list has no {what} entry ({_obis_full(obis)})")
    return e


def _integer(e: ListEntry, what: str) -> int:
    if not isinstance(e.value, int) or isinstance(e.value, bool):
        raise MeterRecordError("integrity", f"the {what} ({_obis_full(e.obis)}) is not an integer")
    return e.value


def _counter(e: ListEntry, what: str) -> int:
    value = _integer(e, what)
    if not 0 <= value < 1 << 32:
        raise MeterRecordError("integrity", f"the {what} {value} is not a 32-bit counter")
    return value


def _octets(e: ListEntry, what: str, max_len: int) -> bytes:
    if e.value is None:                         # "not set": no bytes
        return b""
    if not isinstance(e.value, bytes):
        raise MeterRecordError("integrity", f"the {what} ({_obis_full(e.obis)}) is not an octet string")
    if len(e.value) > max_len:
        raise MeterRecordError("integrity", f"the {what} is {len(e.value)} bytes, at most {max_len} fit")
    return e.value


def _time4(e: ListEntry, what: str) -> bytes:
    if e.time is None:
        raise MeterRecordError("integrity", f"the {what} ({_obis_full(e.obis)}) has no time")
    seconds = e.time.block_seconds
    if not 0 <= seconds < 1 << 32:
        raise MeterRecordError("integrity", f"the time of the {what} does not fit 32 bits")
    return seconds.to_bytes(4, "little")


def _status_word(e: ListEntry, what: str) -> int:
    if e.status is None:
        raise MeterRecordError("integrity", f"the {what} ({_obis_full(e.obis)}) has no status")
    return e.status


def _wh_value(e: ListEntry, what: str) -> tuple[int, int]:
    """(value, scaler) of an energy entry in Wh; other units are refused."""
    if e.unit != UNIT_WH:
        raise MeterRecordError("unsupported", f"the {what} is in unit code {e.unit}, only Wh ({UNIT_WH}) is taken")
    if e.scaler is None:
        raise MeterRecordError("integrity", f"the {what} ({_obis_full(e.obis)}) has no scaler")
    value = _integer(e, what)
    if not -(1 << 63) <= value < 1 << 63:
        raise MeterRecordError("integrity", f"the {what} does not fit the block's signed 64 bits")
    return value, e.scaler


def _list_signature(lst: SignedList, lengths: tuple[int, ...], layout: str) -> bytes:
    sig = lst.list_signature
    if sig is None:
        raise MeterRecordError("bad-signature-encoding", "the GetList.Res carries no list signature")
    if len(sig) not in lengths:
        want = " or ".join(f"{n - LOGBOOK_BYTES}+{LOGBOOK_BYTES}" for n in lengths)
        raise MeterRecordError("bad-signature-encoding",
                               f"an {layout} list signature is {want} bytes, not {len(sig)}")
    return sig


def _server_id(lst: SignedList) -> bytes:
    if len(lst.server_id) != 10:
        raise MeterRecordError("integrity", f"the server id is {len(lst.server_id)} bytes, the block holds 10")
    return lst.server_id


# ---------------------------------------------------------------------------------------------
# the two blocks
# ---------------------------------------------------------------------------------------------

def build_edl40_block(lst: SignedList) -> bytes:
    """The 320-byte EDL40 block the list signature covers, rebuilt from the list's entries."""
    sig = _list_signature(lst, tuple(CURVE_BY_SIGNATURE_BYTES), "EDL40")
    v = _need(lst, EDL40_VALUE, "signed value")
    value, scaler = _wh_value(v, "signed value")
    status = _status_word(v, "signed value")
    seconds_index = _need(lst, SECONDS_INDEX, "seconds index")
    if not isinstance(seconds_index.value, SmlTime) or seconds_index.value.kind != 1:
        raise MeterRecordError("integrity", "the seconds index entry does not hold an SML seconds index")
    pagination = _counter(_need(lst, EDL40_PAGINATION, "pagination"), "pagination")
    contract = _need(lst, CONTRACT_ID, "contract id")
    block = bytearray(BLOCK_BYTES)
    block[0:10] = _server_id(lst)
    block[10:14] = _time4(v, "signed value")
    # an EMH eMOC (P-256, 66-byte signature) maps its status word; EDL40 P-192 meters send the byte
    block[14] = emoc_status(status) if len(sig) == 66 else status & 0xFF
    block[15:19] = _fixed(seconds_index.value.seconds, 4, "seconds index")
    block[19:23] = _fixed(pagination, 4, "pagination")
    block[23:29] = v.obis
    block[29] = UNIT_WH
    block[30:31] = _fixed(scaler, 1, "scaler")
    block[31:39] = _fixed(value, 8, "value")
    block[39:41] = sig[-LOGBOOK_BYTES:]
    contract_id = _octets(contract, "contract id", 128)
    block[41:41 + len(contract_id)] = contract_id
    block[169:173] = _time4(contract, "contract id")
    for obis, offset, width, order in ((HISTORICAL, 173, 8, "little"),
                                       (HISTORICAL_COMPENSATED, 181, 8, "little"),
                                       (POWERLINE_RESISTANCE, 189, 2, "little"),
                                       (STOPWATCH, 191, 4, "little"),
                                       (PRICE, 195, 2, "big")):   # price big-endian, as the reference builds it
        e = lst.entry(obis)
        if e is not None:
            block[offset:offset + width] = _fixed(_integer(e, _obis_full(obis)), width, _obis_full(obis), order)
    return bytes(block)


def build_isa_block(lst: SignedList) -> bytes:
    """The 320-byte ISA-EDL-40P block the list signature covers, rebuilt from the list's entries."""
    sig = _list_signature(lst, (66,), "ISA-EDL-40P")
    actual = _need(lst, ISA_ACTUAL, "actual energy")
    start = _need(lst, ISA_START, "start energy")
    contract = _need(lst, CONTRACT_ID, "contract id")
    esth = _need(lst, ISA_ESTH, "ESTH")
    pagination = _counter(_need(lst, ISA_PAGINATION, "pagination"), "pagination")
    actual_value, actual_scaler = _wh_value(actual, "actual energy value")
    start_value, start_scaler = _wh_value(start, "start energy value")
    if actual.value_signature is None or len(actual.value_signature) != 66:
        raise MeterRecordError("integrity", "the actual energy value's own signature must be 64+2 bytes")
    esth_value = _octets(esth, "ESTH", 20)
    if len(esth_value) != 20:
        raise MeterRecordError("integrity", f"the ESTH is {len(esth_value)} bytes, not 20")
    if lst.list_name is None or len(lst.list_name) != 6:
        raise MeterRecordError("integrity", "an ISA-EDL-40P list name is 6 bytes")
    block = bytearray(BLOCK_BYTES)
    block[0:10] = _server_id(lst)
    block[10:14] = _time4(actual, "actual energy value")
    block[14] = _status_word(actual, "actual energy value") & 0xFF
    block[15:21] = actual.obis
    block[21] = UNIT_WH
    block[22:23] = _fixed(actual_scaler, 1, "scaler")
    block[23:31] = _fixed(actual_value, 8, "actual energy value")
    block[31:33] = sig[-LOGBOOK_BYTES:]
    block[33:99] = actual.value_signature
    contract_id = _octets(contract, "contract id", 128)
    block[99:99 + len(contract_id)] = contract_id
    block[227:231] = _time4(start, "start energy value")
    block[231:251] = esth_value
    block[251] = _status_word(start, "start energy value") & 0xFF
    block[252:258] = start.obis
    block[258] = UNIT_WH
    block[259:260] = _fixed(start_scaler, 1, "scaler")
    block[260:268] = _fixed(start_value, 8, "start energy value")
    block[268:274] = lst.list_name
    block[274:278] = _fixed(pagination, 4, "pagination")
    return bytes(block)


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------

def _signature(sig: bytes, curve: str) -> tuple[int, int]:
    rs = signature_from_raw(sig[:-LOGBOOK_BYTES], CURVE_BYTES[curve])
    check_signature_range(rs, curve)
    return rs


def _reading(e: ListEntry, status_byte: int, label: str) -> RegisterValue:
    """A signed value as a RegisterValue. Its status is the byte the block holds: the rest of the
    SML status word is not signed (fields["status_word"] shows it)."""
    assert e.time is not None and isinstance(e.value, int) and e.scaler is not None  # the block needed them
    return RegisterValue(obis=obis_text(e.obis), mantissa=e.value, exponent=e.scaler, unit="Wh",
                         time=e.time.utc, status=status_byte, label=label)


def is_isa_list(lst: SignedList) -> bool:
    """Which layout a GetList.Res uses, from its content: an EDL40 list signs 1-0:1.17.0*255, an
    ISA-EDL-40P list signs 1-0:1.8.0*255 (and names itself 81 80 81 62 nn FF). A list with both
    or neither is refused."""
    edl40, isa = lst.entry(EDL40_VALUE) is not None, lst.entry(ISA_ACTUAL) is not None
    if edl40 == isa:
        raise MeterRecordError("integrity", "the list holds neither or both of the EDL40 signed value "
                                            "(1-0:1.17.0*255) and the ISA-EDL-40P one (1-0:1.8.0*255)")
    return isa


def record_from_list(lst: SignedList, fields: dict[str, str] | None = None) -> MeterRecord:
    """The MeterRecord of a GetList.Res: the rebuilt block as the signed data, the list signature
    without its logbook bytes, the curve its length selects, and the signed register values.

    readings[0] is always the signed register value (EDL40 1-0:1.17.0*255, ISA 1-0:1.8.0*255); an
    ISA list adds the transaction's start value (1-0:1.8.0*128) as readings[1]. Both ISA values
    read "1-0:1.8.0" once F is dropped, so the order is the distinction. Each is labelled with the
    list name, which only the ISA block signs (an EDL40 label is display only)."""
    label = lst.list_name.hex() if lst.list_name else ""
    extra = dict(fields or {})
    extra.update(server_id=lst.server_id.hex(), list_name=label)
    if is_isa_list(lst):
        block = build_isa_block(lst)
        curve, fmt = "secp256r1", "isa-edl40p-sml"
        actual, start = lst.entry(ISA_ACTUAL), lst.entry(ISA_START)
        assert actual is not None and start is not None
        extra["status_word"] = str(actual.status)
        readings = (_reading(actual, block[14], label), _reading(start, block[251], label))
        counter = int.from_bytes(block[274:278], "little")
    else:
        block = build_edl40_block(lst)
        assert lst.list_signature is not None
        curve, fmt = CURVE_BY_SIGNATURE_BYTES[len(lst.list_signature)], "sml-edl40"
        value = lst.entry(EDL40_VALUE)
        assert value is not None
        extra["status_word"] = str(value.status)
        readings = (_reading(value, block[14], label),)
        counter = int.from_bytes(block[19:23], "little")
        extra["seconds_index"] = str(int.from_bytes(block[15:19], "little"))
    assert lst.list_signature is not None
    contract = lst.entry(CONTRACT_ID)
    if contract is not None and isinstance(contract.value, bytes):
        extra["contract_id"] = contract.value.hex()
    extra["logbook"] = lst.list_signature[-LOGBOOK_BYTES:].hex()
    return MeterRecord(format=fmt, meter_id=lst.server_id.hex(), signed_data=block,
                       signature=_signature(lst.list_signature, curve), curve=curve, hash="sha256",
                       readings=readings, counter=counter, time=readings[0].time, fields=extra)


# ---------------------------------------------------------------------------------------------
# signedMeterValue XML
# ---------------------------------------------------------------------------------------------

_FORBIDDEN_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_FIELDS = ("publicKey", "meterValueSignature", "signatureMethod", "encodingMethod", "encodedMeterValue")
_BOM = "\ufeff"


def _xml_fields(raw: bytes) -> dict[str, ET.Element]:
    """The signedMeterValue's child elements by name, parsed safely: size capped, UTF-8 only, and
    no DOCTYPE or ENTITY declaration (no entity expansion, no external references)."""
    if not isinstance(raw, (bytes, bytearray)):
        raise MeterRecordError("malformed", "a signedMeterValue is given as bytes")
    if len(raw) > MAX_RECORD_BYTES:
        raise MeterRecordError("too-large", f"the record is {len(raw)} bytes, at most {MAX_RECORD_BYTES}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise MeterRecordError("malformed", "the signedMeterValue is not UTF-8 text") from None
    text = text.removeprefix(_BOM).strip()
    if _FORBIDDEN_DECLARATION.search(text):
        raise MeterRecordError("malformed", "DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError):
        raise MeterRecordError("malformed", "the signedMeterValue is not well-formed XML") from None
    if root.tag != "signedMeterValue":
        raise MeterRecordError("malformed", f"the root element is {root.tag!r}, not 'signedMeterValue'")
    found: dict[str, ET.Element] = {}
    for child in root:
        if child.tag in _XML_FIELDS:
            if child.tag in found:
                raise MeterRecordError("malformed", f"the signedMeterValue has two {child.tag} elements")
            if len(child):
                raise MeterRecordError("malformed", f"{child.tag} must hold text only")
            found[child.tag] = child
    for name in _XML_FIELDS[1:]:
        if name not in found:
            raise MeterRecordError("malformed", f"the signedMeterValue has no {name}")
    return found


def _base64_field(element: ET.Element, code: str) -> bytes:
    encoding = element.get("encoding", "base64")
    if encoding != "base64":
        raise MeterRecordError("unsupported", f"{element.tag} in encoding {encoding!r}; only base64 is taken")
    try:
        return base64.b64decode((element.text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MeterRecordError(code, f"{element.tag} is not valid base64") from None


def parse_signed_meter_value(raw: bytes) -> MeterRecord:
    """A signedMeterValue XML (encodingMethod EDL): the transmitted 320-byte block is the signed
    data. The block's fields are decoded for the record; the block's time is the meter's local
    time without its offset, so the readings carry no UTC time (fields["block_time_local"] has it).
    The publicKey it carries is kept in fields["publicKey"] (hex) only: whether to trust it is the
    verifier's decision, never this parser's."""
    found = _xml_fields(raw)
    method = (found["signatureMethod"].text or "").strip()
    curve = SIGNATURE_METHODS.get(method)
    if curve is None:
        raise MeterRecordError("unsupported", f"signatureMethod {method!r} is not ECDSA192SHA256 or ECDSA256SHA256")
    encoding_method = (found["encodingMethod"].text or "").strip()
    if encoding_method != "EDL":
        raise MeterRecordError("unsupported", f"encodingMethod {encoding_method!r} is not EDL")
    block = _base64_field(found["encodedMeterValue"], "malformed")
    if len(block) != BLOCK_BYTES:
        raise MeterRecordError("malformed", f"encodedMeterValue is {len(block)} bytes, not {BLOCK_BYTES}")
    sig = _base64_field(found["meterValueSignature"], "bad-signature-encoding")
    width = CURVE_BYTES[curve]
    if len(sig) != 2 * width + LOGBOOK_BYTES:
        raise MeterRecordError("bad-signature-encoding", f"a {method} meterValueSignature is "
                                                         f"{2 * width}+{LOGBOOK_BYTES} bytes, not {len(sig)}")
    if sig[-LOGBOOK_BYTES:] != block[39:41]:
        raise MeterRecordError("integrity", "the signature's logbook bytes differ from the block's")
    fields = {"signatureMethod": method}
    if "publicKey" in found:
        fields["publicKey"] = _base64_field(found["publicKey"], "bad-key").hex()
    return _record_from_block(block, _signature(sig, curve), curve, fields)


def _record_from_block(block: bytes, signature: tuple[int, int], curve: str,
                       fields: dict[str, str]) -> MeterRecord:
    """The MeterRecord of a transmitted EDL40 block: its fields decoded, its bytes kept as signed."""
    if block[29] != UNIT_WH:
        raise MeterRecordError("unsupported",
                               f"the block's value is in unit code {block[29]}, only Wh ({UNIT_WH}) is taken")
    u32 = lambda offset: int.from_bytes(block[offset:offset + 4], "little")  # noqa: E731
    server_id, obis = block[0:10], block[23:29]
    pagination = u32(19)
    reading = RegisterValue(obis=obis_text(obis), mantissa=int.from_bytes(block[31:39], "little", signed=True),
                            exponent=int.from_bytes(block[30:31], "little", signed=True), unit="Wh",
                            time=None, status=block[14])
    fields = dict(fields)
    fields.update(server_id=server_id.hex(), block_time_local=str(u32(10)), seconds_index=str(u32(15)),
                  contract_id=block[41:169].rstrip(b"\x00").hex(), logbook=block[39:41].hex())
    return MeterRecord(format="edl40-xml", meter_id=server_id.hex(), signed_data=bytes(block),
                       signature=signature, curve=curve, hash="sha256", readings=(reading,),
                       counter=pagination, time=None, fields=fields)

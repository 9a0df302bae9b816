"""OCMF (Open Charge Metering Format) records as Eichrecht chargers and meters sign them.

A record is transmitted as the text `OCMF|{payload}|{signature}`. The signature covers the payload
section exactly as transmitted (every byte between the first and the second `|`), never a canonical
form of its JSON: `parse` keeps those bytes untouched as `signed_data` and reads the JSON only to
learn what the meter said. Surrounding whitespace of the whole string is stripped, nothing inside.

Strict, deterministic reading (the runtime and `gridchain meter verify` must agree on every byte):
- Exactly three sections. A fourth section (a key attached to the record) is refused: the key is the
  one in the meter's certificate, never one that travels with the data. A `|` inside a JSON string
  would split the record the same way and is refused too.
- Both JSON sections are UTF-8 objects, nested at most `MAX_JSON_DEPTH` deep (checked before the
  JSON decoder runs, so no input can exhaust the stack), without duplicate keys, without NaN or
  Infinity, without lone surrogates. Numbers are kept as their exact text; no float is ever made.
- Payload: `MS` (meter serial, the meter id) and `PG` (pagination, `T` or `F` and digits; the digits
  are the counter, the whole text stays in fields["PG"]) are required; every other top-level field
  is kept in `fields` for display (strings as sent, numbers as their text, others as compact JSON).
- `RD` is a non-empty list of readings. Each needs `RV`, `RI` and `RU`:
  - `RV` is a JSON number or a string of one (spaces around it allowed: `"       9.038"`), in plain
    decimal: `-`? digits, then `.` and digits; at most 30 digits. No exponent, no `+`, nothing else.
    It becomes mantissa and exponent as written: `"57.584"` is 57584 x 10^-3, `"0.0"` is 0 x 10^-1.
  - `RI` is an OBIS code in any of the spellings meters use, made canonical by `canonical_obis`.
  - `RU` is the unit as sent (`kWh`, `Wh`, ...); the runtime checks it against the certificate.
  - `TM` is `YYYY-MM-DDThh:mm:ss,fff+hhmm X` (a `.` before the milliseconds is taken too; X is the
    time's sync state I, S, R or U), read exactly into unix seconds UTC with the offset it carries;
    the milliseconds are dropped (the second is floored). The first reading must have one; a later
    reading without `TM` belongs to the reading before it (LEM meters send the export register so):
    it takes that reading's time and, if it has no `TX` of its own, its `TX`.
  - `TX` (B, C, X, E, ...) is the reading's label; `ST` is its status when it is a JSON integer,
    otherwise (OCMF's letters, `G` for good) it stays in fields["RD[i].ST"] with the reading's other
    fields. The record's time is the latest reading time.
- Signature section: `SA` is `ECDSA-<curve>-SHA256` or `-SHA384` (default `ECDSA-secp256r1-SHA256`),
  `SE` is `hex` (default) or `base64` (strict, canonical padding), `SM` is `application/x-der` (the
  default, the only one). `SD` is the signature.
- DER or r||s: a signature that has the shape of a DER SEQUENCE of two INTEGERs is read as DER and
  must be canonical DER (the eBZ LD3's fixed-width INTEGERs are refused, as OpenSSL refuses them).
  Only a signature that does not have that shape and is exactly twice the curve's width is read as
  raw r||s: the Isabellenhuette meters send r||s although they declare DER, and their records
  verify. The two readings never overlap, so every byte string has one meaning.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import functools
import json
import re

from primitives.meter_formats.ecdsa import (CURVE_BYTES, check_signature_range, curve_name,
                                            signature_from_der, signature_from_raw)
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError, RegisterValue

#: Deepest JSON nesting taken. A real payload is 4 deep (payload, RD, a reading, its UC object).
MAX_JSON_DEPTH = 8

#: Most digits a register value may have (a 64-bit register has 20).
MAX_VALUE_DIGITS = 30

_DEFAULT_SA = "ECDSA-secp256r1-SHA256"
_DER = "application/x-der"
_HASH_NAMES = {"SHA256": "sha256", "SHA384": "sha384"}

_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_PAGINATION = re.compile(r"([TF])([0-9]{1,10})")
_GROUP = r"([0-9]{1,3}|[a-z])"
_OBIS = re.compile(_GROUP + "-" + _GROUP + ":" + _GROUP + r"\." + _GROUP + r"\." + _GROUP
                   + r"(?:[.*]([0-9]{1,3}|FF|ff))?")
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})[,.][0-9]{3}"
                   r"([+-])([0-9]{2})([0-9]{2}) ([ISRU])")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


class JsonNumber(str):
    """A JSON number, kept as the exact text the meter wrote (never converted to a float)."""


def parse(raw: bytes) -> MeterRecord:
    """The OCMF record `OCMF|{payload}|{signature}` (as bytes) parsed strictly; not yet verified.

    MeterRecordError ("too-large", "malformed", "unsupported", "curve-not-allowed",
    "bad-signature-encoding") for anything refused; never another exception."""
    if not isinstance(raw, (bytes, bytearray)):
        raise MeterRecordError("malformed", "an OCMF record is bytes")
    if len(raw) > MAX_RECORD_BYTES:
        raise MeterRecordError("too-large", f"the record is {len(raw)} bytes, more than {MAX_RECORD_BYTES}")
    sections = bytes(raw).strip().split(b"|")
    if sections[0] != b"OCMF" or len(sections) < 3:
        raise MeterRecordError("malformed", "an OCMF record is 'OCMF|{payload}|{signature}'")
    if len(sections) > 3:
        raise MeterRecordError("malformed", "an OCMF record has exactly three '|' sections (no attached "
                                            "key section, no '|' inside the payload)")
    payload_bytes = sections[1]
    payload = _load_object(payload_bytes, "payload")
    signature_section = _load_object(sections[2], "signature section")

    fields: dict[str, str] = {}
    for key, value in payload.items():
        if key != "RD":
            fields[key] = _display(value)
    meter_id = _required_text(payload, "MS", "the meter serial (MS)")
    pagination = _required_text(payload, "PG", "the pagination (PG)")
    m = _PAGINATION.fullmatch(pagination)
    if m is None:
        raise MeterRecordError("malformed", f"pagination PG {pagination!r} is not T or F and digits")
    readings = _readings(payload.get("RD"), fields)

    curve, hash_name = _algorithm(signature_section, fields)
    signature = _signature(signature_section, curve, fields)
    return MeterRecord(format="ocmf", meter_id=meter_id, signed_data=payload_bytes, signature=signature,
                       curve=curve, hash=hash_name, readings=readings, counter=int(m.group(2)),
                       time=max(r.time for r in readings if r.time is not None), fields=fields)


def canonical_obis(text: str) -> str:
    """`_canonical_obis`, remembered for the codes seen recently (a meter sends the same few codes in
    every record; the function is pure, so the cache changes no verdict)."""
    if type(text) is not str:
        return _canonical_obis(text)
    return _canonical_obis_cached(text)


def _canonical_obis(text: str) -> str:
    """The canonical OBIS code "A-B:C.D.E" of an OCMF `RI`, whichever way the meter spells it.

    `1-0:1.8.0`, `01-00:01.08.00.FF`, `1-0:1.8.0*255` and `1-0:1.8.0.255` are all "1-0:1.8.0":
    groups A to E are decimal (leading zeros dropped, 0..255). Group F is dropped when it is absent
    or 255 (FF), the current value. Any other F (a billing period or, as BAUER meters send it, the
    session register `1-0:1.8.0*198`) stays as "*F", so such a value never passes for the current
    register. A lower-case letter naming its own group (`b` in B, `e` in E, as in `1-b:1.8.e`) is
    OBIS's placeholder for "not specified" and is kept as the letter: mapping it to a number would
    claim a channel or tariff the meter did not state. A certificate names the code as canonicalized
    here, so `1-b:1.8.0` is certified as "1-b:1.8.0"."""
    m = _OBIS.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise MeterRecordError("malformed", f"RI {text!r} is not an OBIS code A-B:C.D.E[*F]")
    groups = []
    for index, group in enumerate(m.groups()[:5]):
        if group.isdigit():
            if int(group) > 255:
                raise MeterRecordError("malformed", f"RI {text!r}: OBIS group {group} is above 255")
            groups.append(str(int(group)))
        elif group == "abcde"[index]:
            groups.append(group)
        else:
            raise MeterRecordError("malformed", f"RI {text!r}: {group!r} is not a placeholder for group "
                                                f"{'ABCDE'[index]}")
    obis = f"{groups[0]}-{groups[1]}:{groups[2]}.{groups[3]}.{groups[4]}"
    f = m.group(6)
    if f is None or f in ("FF", "ff"):
        return obis
    if int(f) > 255:
        raise MeterRecordError("malformed", f"RI {text!r}: OBIS group F {f} is above 255")
    return obis if int(f) == 255 else f"{obis}*{int(f)}"


_canonical_obis_cached = functools.lru_cache(maxsize=1024)(_canonical_obis)


def decimal_value(value: object) -> tuple[int, int]:
    """(mantissa, exponent) of an OCMF `RV`, exactly as written: a JSON number's text or a string of
    one with spaces around it, in plain decimal (no exponent). Integers only, never a float."""
    if not isinstance(value, str):
        raise MeterRecordError("malformed", f"RV {_display(value)} is not a number")
    text = value if isinstance(value, JsonNumber) else value.strip(" ")
    m = _DECIMAL.fullmatch(text)
    if m is None:
        raise MeterRecordError("malformed", f"RV {value!r} is not a plain decimal number")
    sign, whole, fraction = m.group(1), m.group(2), m.group(3) or ""
    if len(whole) + len(fraction) > MAX_VALUE_DIGITS:
        raise MeterRecordError("malformed", f"RV {value!r} has more than {MAX_VALUE_DIGITS} digits")
    mantissa = int(whole + fraction)
    return (-mantissa if sign else mantissa), -len(fraction)


def unix_time(text: object) -> int:
    """`_unix_time`, remembered for the times seen recently (a record's readings share one `TM`)."""
    if type(text) is not str:
        return _unix_time(text)
    return _unix_time_cached(text)


def _unix_time(text: object) -> int:
    """Unix seconds (UTC) of an OCMF `TM` like `2021-10-26T10:20:52,000+0200 I`; the offset is the
    one written, the milliseconds are dropped."""
    m = _TIME.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise MeterRecordError("malformed", f"TM {text!r} is not 'YYYY-MM-DDThh:mm:ss,fff+hhmm S'")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    sign, off_h, off_m = m.group(7), int(m.group(8)), int(m.group(9))
    try:
        days = datetime.date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:
        raise MeterRecordError("malformed", f"TM {text!r} is not a calendar date") from None
    if hour > 23 or minute > 59 or second > 59 or off_h > 23 or off_m > 59:
        raise MeterRecordError("malformed", f"TM {text!r} is not a time of day with a UTC offset")
    offset = (off_h * 3600 + off_m * 60) * (-1 if sign == "-" else 1)
    return days * 86400 + hour * 3600 + minute * 60 + second - offset


_unix_time_cached = functools.lru_cache(maxsize=1024)(_unix_time)


# --- the payload's readings --------------------------------------------------------------------

_READING_KEYS = ("RV", "RI", "RU", "TX")


def _readings(rd: object, fields: dict[str, str]) -> tuple[RegisterValue, ...]:
    if not isinstance(rd, list) or not rd:
        raise MeterRecordError("malformed", "the payload has no readings (RD is not a non-empty list)")
    out: list[RegisterValue] = []
    for i, reading in enumerate(rd):
        if not isinstance(reading, dict):
            raise MeterRecordError("malformed", f"reading RD[{i}] is not an object")
        for key in ("RV", "RI", "RU"):
            if key not in reading:
                raise MeterRecordError("malformed", f"reading RD[{i}] has no {key}")
        mantissa, exponent = decimal_value(reading["RV"])
        unit = reading["RU"]
        if not isinstance(unit, str) or isinstance(unit, JsonNumber) or not unit:
            raise MeterRecordError("malformed", f"reading RD[{i}]: the unit RU is not a text")
        label = reading.get("TX", None)
        if label is not None and (not isinstance(label, str) or isinstance(label, JsonNumber)):
            raise MeterRecordError("malformed", f"reading RD[{i}]: TX is not a text")
        if "TM" in reading:
            time = unix_time(reading["TM"])
        elif out:
            time = out[-1].time
            label = out[-1].label if label is None else label
        else:
            raise MeterRecordError("malformed", "the first reading has no time (TM)")
        status = None
        for key, value in reading.items():
            if key == "ST" and isinstance(value, JsonNumber) and re.fullmatch("[0-9]{1,10}", value):
                status = int(value)
            elif key not in _READING_KEYS:
                fields[f"RD[{i}].{key}"] = _display(value)
        out.append(RegisterValue(obis=canonical_obis(reading["RI"]), mantissa=mantissa, exponent=exponent,
                                 unit=unit, time=time, status=status, label=label or ""))
    return tuple(out)


def _required_text(payload: dict, key: str, what: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or isinstance(value, JsonNumber) or not value:
        raise MeterRecordError("malformed", f"the payload has no {what}")
    return value


# --- the signature section ---------------------------------------------------------------------

def _algorithm(section: dict, fields: dict[str, str]) -> tuple[str, str]:
    """(curve, hash) from SA `ECDSA-<curve>-SHA256|SHA384`."""
    sa = section.get("SA", _DEFAULT_SA)
    if not isinstance(sa, str) or isinstance(sa, JsonNumber):
        raise MeterRecordError("malformed", "SA is not a text")
    if "SA" in section:
        fields["SA"] = sa
    method, _, rest = sa.partition("-")
    curve_text, _, hash_text = rest.rpartition("-")
    if method.upper() != "ECDSA" or not curve_text:
        raise MeterRecordError("unsupported", f"signature algorithm SA {sa!r} is not ECDSA-<curve>-<hash>")
    hash_name = _HASH_NAMES.get(hash_text.upper())
    if hash_name is None:
        raise MeterRecordError("unsupported", f"SA {sa!r}: the hash is not SHA256 or SHA384")
    return curve_name(curve_text), hash_name


def _signature(section: dict, curve: str, fields: dict[str, str]) -> tuple[int, int]:
    encoding = section.get("SE", "hex")
    mime = section.get("SM", _DER)
    sd = section.get("SD")
    for key, value in (("SE", encoding), ("SM", mime), ("SD", sd)):
        if not isinstance(value, str) or isinstance(value, JsonNumber):
            raise MeterRecordError("malformed", f"{key} is missing or not a text")
    for key, value in section.items():
        if key not in ("SA", "SD"):
            fields[key] = _display(value)
    if mime != _DER:
        raise MeterRecordError("unsupported", f"signature mime type SM {mime!r} (only {_DER})")
    if encoding == "hex":
        if not _HEX.fullmatch(sd):
            raise MeterRecordError("bad-signature-encoding", "SD is not hex")
        data = bytes.fromhex(sd)
    elif encoding == "base64":
        try:
            data = base64.b64decode(sd, validate=True) if _BASE64.fullmatch(sd) else b""
        except binascii.Error:
            data = b""
        if not data or base64.b64encode(data).decode() != sd:
            raise MeterRecordError("bad-signature-encoding", "SD is not canonical base64")
    else:
        raise MeterRecordError("unsupported", f"signature encoding SE {encoding!r} (hex or base64)")
    if _der_shaped(data):
        signature = signature_from_der(data)
        fields["signature-encoding"] = "der"
    elif len(data) == 2 * CURVE_BYTES[curve]:
        signature = signature_from_raw(data, CURVE_BYTES[curve])
        fields["signature-encoding"] = "raw-rs"
    else:
        raise MeterRecordError("bad-signature-encoding", f"the signature is neither DER nor {curve} r||s "
                                                         f"({2 * CURVE_BYTES[curve]} bytes)")
    check_signature_range(signature, curve)
    return signature


def _der_shaped(sig: bytes) -> bool:
    """True when `sig` has the shape of a DER SEQUENCE of two INTEGERs spanning all of it (minimal
    encoding aside, which `signature_from_der` then insists on)."""
    pos = 0

    def header(tag: int) -> int:
        nonlocal pos
        if pos + 2 > len(sig) or sig[pos] != tag:
            return -1
        length = sig[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 2 or pos + count > len(sig):
                return -1
            length = int.from_bytes(sig[pos:pos + count], "big")
            pos += count
        return length

    if header(0x30) != len(sig) - pos:
        return False
    for _ in range(2):
        length = header(0x02)
        if length <= 0 or pos + length > len(sig):
            return False
        pos += length
    return pos == len(sig)


# --- strict JSON -------------------------------------------------------------------------------

def _load_object(data: bytes, what: str) -> dict:
    """A JSON object from `data`, strictly: UTF-8, bounded depth, no duplicate keys, no NaN or
    Infinity, no lone surrogates, numbers kept as JsonNumber text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MeterRecordError("malformed", f"the {what} is not UTF-8") from None
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH:     # else it cannot nest that deep
        _check_depth(text, what)
    try:
        value = _DECODER.decode(text)
    except MeterRecordError:
        raise
    except (ValueError, RecursionError):
        raise MeterRecordError("malformed", f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise MeterRecordError("malformed", f"the {what} is not a JSON object")
    if "\\u" in text:       # strict UTF-8 cannot hold a lone surrogate: only a \u escape can spell one
        _check_strings(value)
    return value


def _check_depth(text: str, what: str) -> None:
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise MeterRecordError("malformed", f"the {what} nests deeper than {MAX_JSON_DEPTH}")
        elif ch in "]}":
            depth -= 1


def _object(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise MeterRecordError("malformed", f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _check_strings(value: object) -> None:
    """Every key and string in `value` must be encodable as UTF-8 (JSON's \\u escapes can spell a
    lone surrogate, which no later step could print or store)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise MeterRecordError("malformed", "a JSON string holds a lone surrogate") from None


def _no_constant(name: str) -> None:
    raise MeterRecordError("malformed", f"{name} is not a JSON number")


#: one decoder with the strict hooks, built once (json.loads builds one per call)
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_float=JsonNumber, parse_int=JsonNumber,
                            parse_constant=_no_constant)


def _display(value: object) -> str:
    """A field value as text for display: strings as sent, numbers as written, the rest as JSON."""
    if isinstance(value, str) and not isinstance(value, JsonNumber):
        return value
    return _json_text(value)


def _json_text(value: object) -> str:
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_json_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)   # true, false, null

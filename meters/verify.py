"""`gridchain meter verify`: check a field meter's signed record offline, as a consumer would.

    gridchain meter verify [FILE|-] --format ocmf|sml-edl40|dlms|auto [--public-key HEX] [--json]

This is what the S.A.F.E. transparency software does for an EV driver with a charging receipt: take
the record exactly as the meter signed it, check its signature with the meter's public key, and show
what was signed (meter id, readings with time, OBIS code, value and unit), or why it is not valid.
It uses the same strict parsers and the same ECDSA check as the runtime (primitives/meter_formats),
so the verdict here is the chain's verdict on the signature. It applies none of the chain's other
rules (interval window, certificate, counters), so records from past years verify too.

Input, read from FILE or stdin (`-`):
  - OCMF: the text `OCMF|{payload}|{signature}`. Surrounding whitespace (and a UTF-8 byte-order
    mark) is stripped, nothing inside: the payload is signed byte for byte.
  - SML/EDL40: a complete SML file, as binary (it starts with the escape 1b1b1b1b 01010101) or as
    hex text (whitespace between the digits allowed); or the EDL40 `signedMeterValue` XML.
  - DLMS: a general-signing APDU, as binary (first byte 0xDF) or hex text.
  The rule is: input that starts with the format's binary start bytes is binary and used untouched;
  anything else is text.

`--format auto` tells the formats apart by those same start bytes: "OCMF|", the SML escape (binary
or hex), "<" with a signedMeterValue element, or 0xDF (binary or hex "df").

The key: `--public-key` takes hex of a DER SubjectPublicKeyInfo, a SEC1 point or raw X||Y; a SEC1
or raw key is taken on the curve the record declares (for EDL40, whose records name no curve, the
key's length decides: 48 bytes X||Y is P-192, 64 is P-256). An EDL40 signedMeterValue XML carries
its meter's key; that key is used when no --public-key is given, and the output says so, because a
key that travels with the data proves only that the data were not changed since someone signed
them, not who signed them. OCMF records are checked only with a given key (an OCMF string's optional
4th section is not used), as are SML files and DLMS APDUs.

Exit status: 0 valid, 1 invalid (including a record that does not parse or no key to check it
with), 2 a usage error (unknown option, unreadable file, --public-key not hex, format not detected).
"""
from __future__ import annotations

import datetime
import decimal
import json
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import click

from meters.record_sources import unhex
from primitives.meter_formats.ecdsa import MeterPublicKey, load_public_key, verify_record
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError, RegisterValue

FORMAT_CHOICES = ("ocmf", "sml-edl40", "dlms", "auto")

SML_START = bytes.fromhex("1b1b1b1b01010101")
DLMS_TAG = 0xDF
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n\f\v"

#: The most input read: a record at the size limit written as hex with a separator per byte, plus slack.
MAX_INPUT_BYTES = 3 * MAX_RECORD_BYTES + 1024

#: How each kind of input is named before it parses (after, the record names its own format).
KIND_NAMES = {"ocmf": "ocmf", "sml": "sml-edl40", "edl40-xml": "edl40-xml", "dlms": "dlms-general-signing"}

#: The curve an EDL40 key's length selects (raw X||Y field width -> curve).
_EDL40_CURVE_BY_WIDTH = {24: "secp192r1", 32: "secp256r1"}


class NotDetected(Exception):
    """`--format auto` found none of the formats' start bytes."""


@dataclass
class Outcome:
    """The verdict on one record, and what is known about it."""

    valid: bool
    format: str
    record: MeterRecord | None = None
    curve: str = ""
    key_source: str = "none"       # "given" | "container" | "none"
    reason: str | None = None
    code: str | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------------------------

def _text(data: bytes) -> bytes:
    """Text input without a byte-order mark and surrounding whitespace (never anything inside)."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    return data.strip(_WHITESPACE)


def detect(data: bytes) -> str:
    """The kind of input: "ocmf", "sml", "edl40-xml" or "dlms"; NotDetected if none fits."""
    if data.startswith(SML_START):
        return "sml"
    if data[:1] == bytes([DLMS_TAG]):
        return "dlms"
    text = _text(data)
    if text.startswith(b"OCMF|"):
        return "ocmf"
    if text.startswith(b"<") and b"signedMeterValue" in text:
        return "edl40-xml"
    raw = unhex(text)
    if raw is not None and raw.startswith(SML_START):
        return "sml"
    if raw is not None and raw[:1] == bytes([DLMS_TAG]):
        return "dlms"
    raise NotDetected("the input is none of: an OCMF string (OCMF|...), an SML file (binary or hex), "
                      "a signedMeterValue XML, a DLMS general-signing APDU (0xDF, binary or hex); "
                      "name the format with --format")


def _kind_for(data: bytes, fmt: str) -> str:
    """The kind of input under an explicit --format (sml-edl40 covers the SML file and the XML)."""
    if fmt == "ocmf":
        return "ocmf"
    if fmt == "dlms":
        return "dlms"
    return "edl40-xml" if not data.startswith(SML_START) and _text(data).startswith(b"<") else "sml"


def _binary(data: bytes, start: bytes, what: str) -> bytes:
    """Binary input untouched when it starts with the format's start bytes, else the hex it spells."""
    if data.startswith(start):
        return data
    raw = unhex(_text(data))
    if raw is None:
        raise MeterRecordError("malformed", f"the input is neither a binary {what} nor hex text")
    return raw


def parse(data: bytes, kind: str) -> MeterRecord:
    """The record in `data`, parsed strictly by the format's own parser."""
    if kind == "ocmf":
        from primitives.meter_formats import ocmf  # noqa: PLC0415 - parsers load only when used
        return ocmf.parse(_text(data))
    if kind == "edl40-xml":
        from primitives.meter_formats import edl40  # noqa: PLC0415
        return edl40.parse_signed_meter_value(_text(data))
    if kind == "sml":
        from primitives.meter_formats import sml  # noqa: PLC0415
        return sml.parse(_binary(data, SML_START, "SML file"))
    from primitives.meter_formats import dlms  # noqa: PLC0415
    return dlms.parse(_binary(data, bytes([DLMS_TAG]), "DLMS APDU (0xDF ...)"))


# ---------------------------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------------------------

def _key_curve(record: MeterRecord, key: bytes) -> str | None:
    """The curve to read a SEC1 or raw key on: the record's, or for a record that names none
    (EDL40: the key decides) the curve the key's length selects."""
    if record.curve:
        return record.curve
    if len(key) % 2 == 0:
        width = len(key) // 2                       # raw X || Y
    elif key[:1] == b"\x04":
        width = (len(key) - 1) // 2                 # SEC1 uncompressed
    else:
        width = len(key) - 1                        # SEC1 compressed
    return _EDL40_CURVE_BY_WIDTH.get(width)


def _load_key(key: bytes, record: MeterRecord) -> MeterPublicKey:
    """The key, as DER SPKI, SEC1 or raw X||Y (on the record's curve, or the one its length implies;
    the length tells DER from a raw key that happens to begin with 0x30)."""
    return load_public_key(key, _key_curve(record, key))


def _container_key(record: MeterRecord) -> bytes | None:
    """The public key an EDL40 signedMeterValue container carries, if the parser kept it."""
    text = record.fields.get("publicKey", "")
    try:
        return bytes.fromhex(text) if text else None
    except ValueError:
        return None


def verify(data: bytes, fmt: str, public_key: bytes | None) -> Outcome:
    """The verdict on `data` read as `fmt` ("auto" detects it), checked with `public_key`.
    Raises NotDetected (a usage error) only for --format auto on unrecognised input."""
    kind = detect(data) if fmt == "auto" else _kind_for(data, fmt)
    out = Outcome(valid=False, format=KIND_NAMES[kind])
    if len(data) > MAX_INPUT_BYTES:
        out.reason, out.code = f"the input is larger than any record ({len(data)} bytes)", "too-large"
        return out
    try:
        record = parse(data, kind)
    except MeterRecordError as e:
        out.reason, out.code = e.message, e.code
        return out
    out.record, out.format, out.curve = record, record.format, record.curve
    key = public_key
    if key is not None:
        out.key_source = "given"
        contained = _container_key(record) if kind == "edl40-xml" else None
        if contained is not None and contained != key:
            out.notes.append("the container carries another public key; the given one was used")
    elif kind == "edl40-xml":
        key = _container_key(record)
        if key is not None:
            out.key_source = "container"
    if key is None:
        out.reason, out.code = "no public key given (use --public-key HEX)", "no-key"
        return out
    try:
        meter_key = _load_key(key, record)
        out.curve = record.curve or meter_key.curve
        verify_record(record, meter_key)
    except MeterRecordError as e:
        out.reason, out.code = e.message, e.code
        return out
    out.valid = True
    return out


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------

def exact_value(v: RegisterValue) -> str:
    """The register value as an exact decimal string: mantissa 211966, exponent -1 -> "21196.6"."""
    with decimal.localcontext() as ctx:
        ctx.prec = max(28, len(str(abs(v.mantissa))) + abs(v.exponent) + 2)
        return f"{decimal.Decimal(v.mantissa).scaleb(v.exponent):f}"


def iso_utc(ts: int | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (`2024-05-01T12:15:00Z`), or None."""
    if ts is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{ts} (unix seconds, beyond the calendar)"


def _readings(out: Outcome) -> list[dict[str, Any]]:
    """The record's readings for display. An EDL40 signedMeterValue block holds the meter's local
    time without its offset, so its readings have no UTC time; `localTime` gives what it holds."""
    rec = out.record
    if rec is None:
        return []
    rows: list[dict[str, Any]] = []
    for i, v in enumerate(rec.readings):
        row: dict[str, Any] = {"obis": v.obis, "value": exact_value(v), "unit": v.unit,
                               "time": iso_utc(v.time if v.time is not None else rec.time)}
        if v.label:
            row["label"] = v.label
        if rec.format == "isa-edl40p-sml":
            row["role"] = ("actual value (1-0:1.8.0*255)", "transaction start value (1-0:1.8.0*128)")[min(i, 1)]
        if row["time"] is None and "block_time_local" in rec.fields:
            row["localTime"] = iso_utc(int(rec.fields["block_time_local"]))[:-1]  # type: ignore[index]
        rows.append(row)
    return rows


def as_json(out: Outcome) -> dict[str, Any]:
    """The JSON object `--json` prints."""
    rec = out.record
    return {"valid": out.valid, "format": out.format, "meterId": rec.meter_id if rec else None,
            "curve": out.curve or None, "readings": _readings(out), "reason": out.reason,
            "code": out.code, "counter": rec.counter if rec else None,
            "publicKeySource": out.key_source, "notes": out.notes}


_KEY_SOURCES = {"given": "the key given with --public-key",
                "container": "the key inside the signedMeterValue container (no --public-key given): "
                             "this shows the data are unchanged since signed, not who signed them"}


def as_text(out: Outcome) -> str:
    """The human-readable report."""
    rec = out.record
    lines = [f"Verdict:   {'VALID' if out.valid else 'INVALID'}"]
    if not out.valid:
        lines.append(f"Reason:    {out.reason} [{out.code}]")
    lines.append(f"Format:    {out.format}" + (f", ECDSA on {out.curve}" if out.curve else "")
                 + (f" with {rec.hash.upper()}" if rec else ""))
    if rec is not None:
        lines.append(f"Meter id:  {rec.meter_id}")
        if rec.counter is not None:
            lines.append(f"Counter:   {rec.counter}")
    if out.key_source != "none":
        lines.append(f"Key:       {_KEY_SOURCES[out.key_source]}")
    lines += [f"Note:      {n}" for n in out.notes]
    readings = _readings(out)
    if readings:
        lines.append("Readings:" if out.valid else "Readings (NOT verified, do not rely on them):")
        for r in readings:
            when = r["time"] or (f"{r['localTime']} (meter's local time)" if "localTime" in r else "(no time)")
            label = f"  TX {r['label']}" if "label" in r and out.format == "ocmf" else f"  {r.get('role', '')}"
            lines.append(f"  {when:<21} {r['obis']:<14} {r['value']:>16} {r['unit']}{label}".rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------

def _hex_key(ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    key = unhex(value.encode())
    if key is None:
        raise click.BadParameter("not hex (DER SubjectPublicKeyInfo, SEC1 point or raw X||Y, in hex)")
    return key


@click.command("verify")
@click.argument("file", type=click.File("rb"), default="-", metavar="[FILE|-]")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="The record's format; auto tells them apart by their first bytes.")
@click.option("--public-key", "public_key", callback=_hex_key, default=None, metavar="HEX",
              help="The meter's public key: DER SubjectPublicKeyInfo, SEC1 point or raw X||Y, in hex.")
@click.option("--json", "as_json_flag", is_flag=True, help="Print one JSON object instead of text.")
def verify_cmd(file: BinaryIO, fmt: str, public_key: bytes | None,
               as_json_flag: bool) -> None:
    """Verify a meter's signed record (OCMF, SML/EDL40, DLMS) offline: exit 0 valid, 1 invalid."""
    data = file.read(MAX_INPUT_BYTES + 1)
    try:
        out = verify(data, fmt, public_key)
    except NotDetected as e:
        raise click.UsageError(str(e)) from None
    click.echo(json.dumps(as_json(out), indent=2) if as_json_flag else as_text(out))
    # SystemExit rather than ctx.exit: the gridchain entry point runs click outside standalone mode,
    # where ctx.exit's status would be returned and lost
    sys.exit(0 if out.valid else 1)

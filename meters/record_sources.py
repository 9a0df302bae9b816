"""Field meters' own signed records, as a gateway finds them: a file a logger appends to, or a directory.

A field meter (OCMF, SML/EDL40, DLMS/COSEM general-signing) signs its records itself; the gateway
forwards them byte for byte (`gridchain meter run --source ocmf:PATH|sml:PATH|dlms:PATH`). It never
re-signs or edits a record and does not judge it: the chain parses and verifies it. The gateway
parses a record only to learn what it needs to spool and send it in order: the format's counter
(the chain's seq for it), the interval the record closes, and its registers in Wh for the summary
(`record_info`, mirroring the field_meters pallet's mapping; a record the chain will refuse for its
values is still sent, and kept in the spool with the chain's reason).

Where records come from (`PATH` in the source spec):

  - a **file** that is appended to, one record per line: for `ocmf:` the OCMF string itself
    (`OCMF|{...}|{...}`), for `sml:` and `dlms:` the binary record written as hex (what `gridchain
    meter verify` accepts; whitespace between digits and a `0x` prefix allowed). Blank lines and
    lines starting with `#` are ignored; a last line without its newline is not read until it is
    complete. The position reached is kept in the spool with the records it produced, in one
    transaction, so a restarted gateway continues exactly where it stopped. A file replaced or
    truncated (log rotation) is read again from its start: records already spooled or on chain are
    recognised by their counter and skipped.
  - a **directory**, one record per file, taken in name order (name files so that they sort in the
    order written, e.g. by counter or time, zero-padded), new files picked up as they appear. A file
    holds the OCMF string, or the SML/DLMS record as binary or as hex text. Write a file under a name
    beginning with `.` and rename it into place, so the gateway never reads half a record; files
    whose names begin with `.` are ignored. A file that appears with a name sorting before one
    already taken is reported and not read.

A line or file that cannot be read as a record of its format is reported once, as `PATH:LINE: what
is wrong; record skipped`, and skipped (the source goes on): the chain would refuse it as malformed.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from primitives.extrinsic import Call, Extrinsic
from primitives.hashing import keccak256
from primitives.meter_formats import dlms, ocmf, sml
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError
from rpc.client import call_from_metadata

log = logging.getLogger("gridchain.meter")

#: source prefix -> the scheme a meter of that kind is certified with (as `energy_meter` names it)
SOURCE_SCHEMES = {"ocmf": "ocmf", "sml": "sml-edl40", "dlms": "dlms-general-signing"}
#: scheme name -> the scheme number of the field_meters pallet (its call arguments and meter ids)
SCHEME_NUMBERS = {"ocmf": 1, "sml-edl40": 2, "dlms-general-signing": 3}
#: the formats the chain takes from each scheme (EDL40 and its ISA-EDL-40P variant are both SML)
RECORD_FORMATS = {"ocmf": ("ocmf",), "sml-edl40": ("sml-edl40", "isa-edl40p-sml"),
                  "dlms-general-signing": ("dlms-general-signing",)}
#: the field_meters pallet's defaults, used when a node's metadata does not publish them
DEFAULT_TIME_TOLERANCE_S = 60
#: units a register may be in, as the power of ten that makes them Wh (as the pallet takes them)
_UNIT_EXPONENTS = {"Wh": 0, "kWh": 3}
SML_START = bytes.fromhex("1b1b1b1b01010101")
DLMS_TAG = b"\xdf"
#: the most bytes one line or file may hold: a record at the size limit as spaced hex, plus slack
MAX_ENTRY_BYTES = 3 * MAX_RECORD_BYTES + 1024
#: the most bytes a file source reads in one poll (a long history is taken over several rounds)
READ_CHUNK_BYTES = 1 << 20


class RecordSourceError(ValueError):
    """A record source that cannot be used at all (bad spec, missing path): one clear line."""


def field_meter_id(scheme: str, public_key_sec1: bytes) -> bytes:
    """A field meter's id on chain, as the field_meters pallet derives it (docs/protocol.md):
    keccak-256 of a domain tag, the scheme's number and the key as an uncompressed SEC1 point."""
    return keccak256(b"gridchain/field-meter/v1" + bytes([SCHEME_NUMBERS[scheme]]) + public_key_sec1)


# -----------------------------------------------------------------------------------------------
# what the gateway reads from a record
# -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordInfo:
    """What a record says about its place in the meter's series (not whether it is true)."""

    counter: int              # the format's counter: the chain's seq for the record
    interval_start: int       # the interval the record closes
    import_wh: int            # the certified registers as the chain reads them (0 if absent)
    export_wh: int
    device_id: str            # the meter's id as the record carries it
    format: str


def parse_record(scheme: str, record: bytes) -> MeterRecord:
    """The record parsed by its scheme's parser (not verified); MeterRecordError if it does not parse."""
    if len(record) > MAX_RECORD_BYTES:
        raise MeterRecordError("too-large", f"the record is larger than {MAX_RECORD_BYTES} bytes")
    parsers = {"ocmf": ocmf.parse, "sml-edl40": sml.parse, "dlms-general-signing": dlms.parse}
    if scheme not in parsers:
        raise MeterRecordError("unsupported", f"no field meter scheme {scheme!r}")
    rec = parsers[scheme](record)
    if rec.format not in RECORD_FORMATS[scheme]:
        raise MeterRecordError("unsupported", f"a {rec.format} record, not one of a {scheme} meter")
    return rec


def _register_wh(rec: MeterRecord, obis: str) -> tuple[int, int | None]:
    """(whole Wh floored, time) of register `obis` in the record, as the chain maps it; (0, None)
    when the register is not certified, absent, repeated or in another unit (the chain refuses such
    a record, with its reason)."""
    values = [v for v in rec.readings if obis and v.obis == obis]
    if len(values) != 1:
        return 0, None
    v = values[0]
    exponent = _UNIT_EXPONENTS.get(v.unit)
    if exponent is None or v.mantissa < 0:
        return 0, v.time
    exponent += v.exponent
    wh = v.mantissa * 10**exponent if exponent >= 0 else v.mantissa // 10**-exponent
    return wh, v.time if v.time is not None else rec.time


def record_info(scheme: str, record: bytes, import_obis: str, export_obis: str, interval_s: int,
                time_tolerance_s: int = DEFAULT_TIME_TOLERANCE_S) -> RecordInfo:
    """Counter, interval and registers of a record of a meter certified with `scheme` and these
    registers; MeterRecordError if it does not parse or carries no counter or time."""
    rec = parse_record(scheme, record)
    if rec.counter is None:
        raise MeterRecordError("malformed", "the record carries no counter (pagination or invoke id)")
    import_wh, t_import = _register_wh(rec, import_obis)
    export_wh, t_export = _register_wh(rec, export_obis)
    t = t_import if t_import is not None else t_export if t_export is not None else rec.time
    if t is None:
        raise MeterRecordError("malformed", "the record carries no time for its registers")
    end = t + time_tolerance_s - (t + time_tolerance_s) % interval_s
    return RecordInfo(rec.counter, end - interval_s, import_wh, export_wh, rec.meter_id, rec.format)


class RecordExtrinsics:
    """The unsigned extrinsic `field_meters.submit_record(meter, record)`, call indices from the
    node's metadata (never hard-coded); the record goes in untouched."""

    def __init__(self, metadata: dict) -> None:
        probe = call_from_metadata(metadata, "field_meters", "submit_record", [b"\0" * 32, b""])
        self.pallet_index, self.call_index = probe.pallet_index, probe.call_index

    def wrap(self, meter: bytes, record: bytes) -> bytes:
        return Extrinsic(Call(self.pallet_index, self.call_index, (meter, record))).encode()


# -----------------------------------------------------------------------------------------------
# sources
# -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceRecord:
    """One record as found: its bytes, or why they could not be read; where it was (PATH:LINE or a
    file's path)."""

    where: str
    raw: bytes | None
    error: str | None = None


class RecordSource(Protocol):
    """A field meter's records, in the order the meter wrote them."""

    scheme: str
    description: str

    def configure(self, state: dict[str, Any]) -> None:
        """Restore the position kept in the spool."""

    def poll(self, now_s: float) -> list[SourceRecord]:
        """Records that appeared since the last poll (chain time `now_s`, for sources that make them)."""

    def state(self) -> dict[str, Any]:
        """The position after the records returned so far (kept in the spool with them)."""


def unhex(text: bytes) -> bytes | None:
    """The bytes hex text spells (whitespace between digits and a 0x prefix allowed), else None."""
    compact = b"".join(text.split())
    if compact[:2].lower() == b"0x":
        compact = compact[2:]
    try:
        return bytes.fromhex(compact.decode("ascii")) if compact else None
    except (UnicodeDecodeError, ValueError):
        return None


def decode_entry(fmt: str, data: bytes, *, binary_allowed: bool) -> bytes:
    """A record from one line (or one file's content, `binary_allowed`) of a `fmt` source; ValueError
    with a sentence when it is none."""
    if len(data) > MAX_ENTRY_BYTES:
        raise ValueError(f"{len(data)} bytes, more than any record ({MAX_RECORD_BYTES} bytes, as hex "
                         f"{MAX_ENTRY_BYTES})")
    if fmt == "ocmf":
        text = data.strip()
        if not text.startswith(b"OCMF|"):
            raise ValueError("not an OCMF record (it must begin with OCMF|)")
        return text
    start = SML_START if fmt == "sml" else DLMS_TAG
    if binary_allowed and data.startswith(start):
        return data
    raw = unhex(data)
    if raw is None:
        what = "SML file" if fmt == "sml" else "DLMS general-signing APDU"
        raise ValueError(f"not a {what} in hex" + (" nor binary" if binary_allowed else ""))
    return raw


class RecordFileSource:
    """Records one per line in a file that is appended to (module docstring)."""

    def __init__(self, fmt: str, path: Path | str) -> None:
        self.format, self.scheme = fmt, SOURCE_SCHEMES[fmt]
        self.path = Path(path)
        self.description = f"{fmt}:{self.path}"
        if not self.path.is_file():
            raise RecordSourceError(f"{fmt} source {self.path}: no such file (a directory of records is also taken)")
        self._offset = 0
        self._line = 0
        self._identity: tuple[int, int] | None = None
        self._missing_logged = False

    def configure(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "records" or state.get("path") != str(self.path) or state.get("format") != self.format:
            return
        if int(state.get("dev", -1)) < 0:
            return                               # kept before the file was first read
        try:
            st = os.stat(self.path)
        except OSError:
            return
        identity = (int(state.get("dev", -1)), int(state.get("ino", -1)))
        offset = int(state.get("offset", 0))
        if identity == (st.st_dev, st.st_ino) and st.st_size >= offset:
            self._offset, self._line, self._identity = offset, int(state.get("line", 0)), identity
        else:
            log.info("%s: the file was replaced since the gateway last read it; reading it from its start "
                     "(records already spooled or on chain are recognised by their counter)", self.path)

    def state(self) -> dict[str, Any]:
        dev, ino = self._identity or (-1, -1)
        return {"kind": "records", "format": self.format, "path": str(self.path), "offset": self._offset,
                "line": self._line, "dev": dev, "ino": ino}

    def poll(self, now_s: float) -> list[SourceRecord]:
        try:
            st = os.stat(self.path)
        except OSError as e:
            if not self._missing_logged:
                log.warning("%s source %s cannot be read (%s); waiting for it", self.format, self.path, e.strerror or e)
                self._missing_logged = True
            return []
        self._missing_logged = False
        identity = (st.st_dev, st.st_ino)
        if self._identity is not None and (identity != self._identity or st.st_size < self._offset):
            log.info("%s: the file was replaced or truncated; reading it from its start (records already "
                     "spooled or on chain are recognised by their counter)", self.path)
            self._offset = self._line = 0
        self._identity = identity
        if st.st_size <= self._offset:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(READ_CHUNK_BYTES)
        except OSError:
            return []
        end = data.rfind(b"\n")
        out: list[SourceRecord] = []
        if end < 0:
            if len(data) < READ_CHUNK_BYTES:
                return []                        # a line still being written
            end = len(data) - 1                  # a line beyond any record: skip this much of it
            self._line += 1
            out.append(SourceRecord(f"{self.path}:{self._line}", None, "a line longer than any record"))
            self._offset += end + 1
            return out
        chunk = data[:end + 1]
        self._offset += len(chunk)
        for raw_line in chunk.split(b"\n")[:-1]:
            self._line += 1
            text = raw_line.strip()
            if not text or text.startswith(b"#"):
                continue
            where = f"{self.path}:{self._line}"
            try:
                out.append(SourceRecord(where, decode_entry(self.format, text, binary_allowed=False)))
            except ValueError as e:
                out.append(SourceRecord(where, None, str(e)))
        return out


class RecordDirectorySource:
    """Records one per file in a directory, taken in name order (module docstring)."""

    def __init__(self, fmt: str, path: Path | str) -> None:
        self.format, self.scheme = fmt, SOURCE_SCHEMES[fmt]
        self.path = Path(path)
        self.description = f"{fmt}:{self.path}/"
        if not self.path.is_dir():
            raise RecordSourceError(f"{fmt} source {self.path}: no such directory")
        self._last: str | None = None
        self._known: set[str] | None = None      # names sorting at or before _last seen so far
        self._late_logged: set[str] = set()

    def configure(self, state: dict[str, Any]) -> None:
        if (state.get("kind") == "records" and state.get("path") == str(self.path)
                and state.get("format") == self.format and isinstance(state.get("last"), str)):
            self._last = state["last"]

    def state(self) -> dict[str, Any]:
        return {"kind": "records", "format": self.format, "path": str(self.path), "last": self._last}

    def poll(self, now_s: float) -> list[SourceRecord]:
        try:
            names = sorted(n for n in os.listdir(self.path) if not n.startswith("."))
        except OSError as e:
            log.warning("%s source %s cannot be listed (%s)", self.format, self.path, e.strerror or e)
            return []
        last = self._last
        old = {n for n in names if last is not None and n <= last}
        if self._known is None:
            self._known = old
        for n in sorted(old - self._known - self._late_logged):
            self._late_logged.add(n)
            log.warning("%s: %s appeared after %s was taken and sorts before it: not read (name record files "
                        "so that they sort in the order written)", self.path, n, last)
        self._known |= old
        out: list[SourceRecord] = []
        for n in names:
            if last is not None and n <= last:
                continue
            p = self.path / n
            if not p.is_file():
                continue
            try:
                with open(p, "rb") as f:
                    data = f.read(MAX_ENTRY_BYTES + 1)
            except OSError as e:
                out.append(SourceRecord(str(p), None, f"cannot be read ({e.strerror or e})"))
            else:
                try:
                    out.append(SourceRecord(str(p), decode_entry(self.format, data, binary_allowed=True)))
                except ValueError as e:
                    out.append(SourceRecord(str(p), None, str(e) if data.strip() else "an empty file"))
            self._last = n
            self._known.add(n)
        return out


def is_record_source(spec: str) -> bool:
    return spec.strip().split(":", 1)[0] in SOURCE_SCHEMES


def parse_record_source(spec: str) -> RecordFileSource | RecordDirectorySource:
    """`ocmf:PATH`, `sml:PATH` or `dlms:PATH` (a file appended to, or a directory); RecordSourceError."""
    fmt, _, path = spec.strip().partition(":")
    if fmt not in SOURCE_SCHEMES:
        raise RecordSourceError(f"unknown record source {spec!r}: use ocmf:PATH, sml:PATH or dlms:PATH")
    if not path:
        raise RecordSourceError(f"{fmt} source needs a path: {fmt}:PATH (a file or a directory)")
    if Path(path).is_dir():
        return RecordDirectorySource(fmt, path)
    return RecordFileSource(fmt, path)

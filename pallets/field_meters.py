"""Field meters: meters already installed in homes and chargers, whose own signed records the chain
verifies byte for byte, with no gateway re-signing them.

Calibration-law meters and Eichrecht chargers sign OCMF records or SML/EDL40 blocks, DLMS/COSEM
meters sign general-signing APDUs, all with ECDSA. A DSO (for its zone) or a licensed registrar
certifies such a meter with its *scheme* (`ocmf`, `sml-edl40`, `dlms-general-signing`; gridchain's
own ed25519 meters are the metering pallet's `certify_meter`), its public key as the scheme gives
it (DER SubjectPublicKeyInfo, or a SEC1 point or raw X||Y with the curve named), the id the format
carries (OCMF meter serial `MS`, SML server id in hex, DLMS system title in hex) and the OBIS codes
of its import and export registers (one may be empty: an EDL40 block signs one value).

The meter is then an ordinary meter of the metering pallet, under an id derived from its scheme and
key (`field_meter_id`): suspend, reinstate, retire and the DSO's baseline reset are the metering
pallet's calls; `replace` here certifies a new field meter in an old one's place.

A record is submitted unsigned (no account, no fee) as `submit_record(meter, record)`, the bytes
exactly as the meter sent them. Validation parses them with the scheme's strict parser
(`primitives.meter_formats`), the node checks the ECDSA signature in its worker batch with the
ed25519 ones (`signature_of_unsigned`), and then the record is mapped onto the metering pallet's
reading rules (`metering.check_values`):
  - the record's format is the meter's scheme, and its id is the certified one;
  - the certified import and export registers are in it, each exactly once, in Wh or kWh;
  - values become whole Wh by flooring each cumulative register: what a reading floors away is
    counted by a later one, so over any run of readings the energy recorded, floor(last) -
    floor(first), is within 1 Wh of the energy metered, and one interval's delta is at most the
    fraction of a Wh carried from before it above that interval's own energy;
  - the record's time (the registers' time) is an interval's end, within `time_tolerance_s`;
    the record closes that interval;
  - the format's own counter (OCMF pagination, SML pagination, DLMS invoke-id) is the reading's
    seq, and it runs without gaps: each record's counter is the last one plus one (a lost record
    stops the meter until the DSO resets its baseline, as for a wrapped register);
  - then metering's rules: active meter, timing window, one reading per interval, registers never
    decrease, plausibility against the rated power, rogue-meter suspension.
Per interval the chain keeps what it keeps for any meter (`metering.interval_energy`, with the
keccak-256 of the record as the reading hash): a field meter costs no more state than an ed25519 one.
"""
from __future__ import annotations

from collections import OrderedDict

from pallets import grid, metering, timestamp
from primitives.codec import BYTES, U8, U32, U64, Bytes, Text, struct
from primitives.hashing import keccak256
from primitives.meter_formats import dlms, ecdsa, ocmf, sml
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError
from primitives.types import AccountId
from runtime.api import InvalidKind, InvalidTransaction, SignatureCheck, TransactionSource, ValidTransaction
from runtime.pallet import (NONE, SIGNED, CallDef, DispatchError, Origin, Pallet, PalletError, PostInfo,
                            deposit_event, ensure, ensure_none, ensure_signed, fail)

pallet = Pallet("field_meters", index=13, doc=__doc__)


# --- config ----------------------------------------------------------------------------------
@pallet.config
class Config:
    #: largest record taken, bytes (an OCMF string with two readings is ~0.6 KB)
    max_record_bytes = MAX_RECORD_BYTES
    #: how far a record's time may be from the end of the interval it closes, seconds
    time_tolerance_s = 60


SCHEME_ED25519, SCHEME_OCMF, SCHEME_SML, SCHEME_DLMS = 0, 1, 2, 3
SCHEME_NAMES = {SCHEME_ED25519: "ed25519-gridchain", SCHEME_OCMF: "ocmf", SCHEME_SML: "sml-edl40",
                SCHEME_DLMS: "dlms-general-signing"}

#: curves each scheme may be certified with. P-192 (old EDL40 meters) is left out: its 96-bit
#: security is below what a settlement system should trust; `gridchain meter verify` still checks it.
ALLOWED_CURVES = {
    SCHEME_OCMF: ("secp256r1", "secp256k1", "brainpoolP256r1", "secp384r1", "brainpoolP384r1"),
    SCHEME_SML: ("secp256r1",),
    SCHEME_DLMS: ("secp256r1", "secp384r1"),    # security suites 1 and 2
}

#: the formats a record of each scheme may come in (EDL40 and the ISA-EDL-40P variant are both SML)
RECORD_FORMATS = {SCHEME_OCMF: ("ocmf",), SCHEME_SML: ("sml-edl40", "isa-edl40p-sml"),
                  SCHEME_DLMS: ("dlms-general-signing",)}

#: units a register may be in, as the power of ten that makes them Wh
UNIT_EXPONENTS = {"Wh": 0, "kWh": 3}

#: weights, nanoseconds of reference compute, measured by bench/field_meter_bench.py on the cold
#: path (a syncing node has parsed nothing): parsing, validation and metering's storage work per
#: scheme, plus one ECDSA verify in the node's workers per curve (a brainpool verify costs about
#: five P-256 ones)
W_RECORD_BASE = {SCHEME_OCMF: 250_000, SCHEME_SML: 300_000, SCHEME_DLMS: 200_000}
W_VERIFY = {"secp256r1": 70_000, "secp256k1": 320_000, "brainpoolP256r1": 330_000,
            "secp384r1": 520_000, "brainpoolP384r1": 720_000}
W_CERTIFY = metering.W_CERTIFY + 20_000
W_REPLACE = metering.W_REPLACE + 20_000

MeterId = metering.MeterId


@struct
class FieldMeter:
    scheme: U8                 # SCHEME_OCMF | SCHEME_SML | SCHEME_DLMS
    curve: Text(16)            # one of ALLOWED_CURVES[scheme]
    public_key: Bytes(max_len=97)   # uncompressed SEC1 point, 04 || X || Y
    device_id: Text(64)        # OCMF MS, SML server id (hex), DLMS system title (hex)
    import_obis: Text(16)      # canonical "A-B:C.D.E", or "" if the meter reports no import
    export_obis: Text(16)      # likewise for export


# --- storage ---------------------------------------------------------------------------------
field_meters = pallet.map("field_meters", key=MeterId, value=FieldMeter,
                          doc="Meter id -> how its records are read and verified")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class FieldMeterCertified:
    meter: MeterId
    scheme: U8
    curve: Text(16)
    device_id: Text(64)
    import_obis: Text(16)
    export_obis: Text(16)
    by: AccountId


@pallet.event
class RecordAccepted:
    """A field meter's record was taken; metering's ReadingAccepted carries the energy."""
    meter: MeterId
    counter: U64
    interval_start: U64


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    UnknownScheme = "the scheme is 1 (ocmf), 2 (sml-edl40) or 3 (dlms-general-signing)"
    CurveNotAllowed = "the scheme does not allow this curve"
    BadPublicKey = "the public key is malformed, not in canonical form, or not a point on its curve"
    BadDeviceId = ("a field meter needs the id its records carry: its OCMF serial, its SML server id "
                   "(10 bytes in hex) or its DLMS system title (8 bytes in hex)")
    BadObis = "a register's OBIS code must be canonical (A-B:C.D.E) or empty, and at least one given"
    NotFieldMeter = "no field meter with this id is certified"
    RecordTooLarge = "the record is larger than max_record_bytes"
    WrongFormat = "the record's format does not match the meter's scheme"
    CurveMismatch = "the record is signed on another curve than the meter's certified key"
    Malformed = "the record does not parse as its format requires"
    BadSignature = "the record's signature is not the meter's (tampered with, or signed by another key)"
    DeviceMismatch = "the record names another meter than the certified one (serial, server id or system title)"
    MissingRegister = "a certified register is missing from the record, or appears in it more than once"
    UnitNotAllowed = "a register's unit is not Wh or kWh, or its value is negative"
    NoTime = "the record carries no time for its registers"
    TimeNotOnGrid = "the record's time is not within time_tolerance_s of the end of a delivery interval"
    NoCounter = "the record carries no counter (pagination or invoke-id)"
    CounterGap = ("the record's counter is not the last accepted one plus one: a record was lost or "
                  "repeated (the DSO's metering.reset_baseline resumes a meter after a lost record)")


pallet.errors(Error)


# --- public interface --------------------------------------------------------------------------
def field_meter_id(scheme: int, public_key_sec1: bytes) -> bytes:
    """The metering id of a field meter: keccak-256 of a domain tag, its scheme and its key."""
    return keccak256(b"gridchain/field-meter/v1" + bytes([scheme]) + public_key_sec1)


def get(meter_id: bytes) -> FieldMeter | None:
    return field_meters.get(meter_id)


def parse_record(scheme: int, record: bytes) -> MeterRecord:
    """The record parsed by its scheme's parser; MeterRecordError if it does not parse."""
    if len(record) > Config.max_record_bytes:
        raise MeterRecordError("too-large", "the record is too large")
    if scheme == SCHEME_OCMF:
        return ocmf.parse(record)
    if scheme == SCHEME_SML:
        return sml.parse(record)
    if scheme == SCHEME_DLMS:
        return dlms.parse(record)
    raise MeterRecordError("unsupported", "unknown scheme")


# --- record validation (pool and block) --------------------------------------------------------
class _Parsed:
    """Records parsed recently, by (scheme, bytes): a record is parsed for its weight, its
    signature check and its validation in the pool, and again at import; parsing is pure, so one
    parse serves them all. The least recently used go first past `MAX` (more than a block holds,
    so a block's records stay parsed from its decoding to its execution)."""

    MAX = 8192

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[int, bytes], MeterRecord | MeterRecordError] = OrderedDict()

    def get(self, scheme: int, record: bytes) -> MeterRecord:
        key = (scheme, record)
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = parse_record(scheme, record)
            except MeterRecordError as e:
                hit = e
            self._cache[key] = hit
            if len(self._cache) > self.MAX:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        if isinstance(hit, MeterRecordError):
            # a fresh exception each time: re-raising the cached one would grow its traceback
            raise MeterRecordError(hit.code, hit.message)
        return hit


_parsed = _Parsed()


def _reject(kind: InvalidKind, error, detail: str = "") -> InvalidTransaction:
    return InvalidTransaction(kind, error.message + (f": {detail}" if detail else ""))


_CODE_ERRORS = {"too-large": Error.RecordTooLarge, "bad-signature": Error.BadSignature,
                "bad-signature-encoding": Error.BadSignature, "key-mismatch": Error.BadSignature,
                "curve-not-allowed": Error.BadSignature, "bad-key": Error.BadSignature}


def _record_of(fm: FieldMeter, record: bytes) -> MeterRecord:
    try:
        rec = _parsed.get(fm.scheme, record)
    except MeterRecordError as e:
        raise _reject(InvalidKind.CALL if e.code != "bad-signature" else InvalidKind.BAD_PROOF,
                      _CODE_ERRORS.get(e.code, Error.Malformed), e.message) from None
    if rec.format not in RECORD_FORMATS[fm.scheme]:
        raise _reject(InvalidKind.CALL, Error.WrongFormat, rec.format)
    return rec


def _register_wh(rec: MeterRecord, obis: str) -> tuple[int, int | None]:
    """(whole Wh, time) of the certified register `obis` in the record; (0, None) if not certified."""
    if not obis:
        return 0, None
    values = [v for v in rec.readings if v.obis == obis]
    if len(values) != 1:
        raise _reject(InvalidKind.CUSTOM, Error.MissingRegister, obis)
    v = values[0]
    exponent = UNIT_EXPONENTS.get(v.unit)
    if exponent is None or v.mantissa < 0:
        raise _reject(InvalidKind.CUSTOM, Error.UnitNotAllowed, f"{obis} in {v.unit!r}")
    exponent += v.exponent
    wh = v.mantissa * 10**exponent if exponent >= 0 else v.mantissa // 10**-exponent
    return wh, v.time if v.time is not None else rec.time


def _interval_closed_by(time_s: int) -> int:
    """The start of the interval whose end is within time_tolerance_s of `time_s`."""
    step, tol = grid.Config.interval_s, Config.time_tolerance_s
    end = grid.interval_start(time_s + tol)
    if abs(time_s - end) > tol:
        raise _reject(InvalidKind.CUSTOM, Error.TimeNotOnGrid)
    return end - step


def check_record(meter_id: bytes, record: bytes, *, verify_signature: bool) -> tuple[int, int, int, int, metering.CheckedReading]:
    """Every rule a field meter's record must pass, against current state: (counter, interval
    start, import Wh, export Wh, metering's check). Raises InvalidTransaction."""
    fm = field_meters.get(meter_id)
    if fm is None:
        raise _reject(InvalidKind.CUSTOM, Error.NotFieldMeter)
    m = metering.get_meter(meter_id)
    if m is None:
        raise _reject(InvalidKind.CUSTOM, Error.NotFieldMeter)
    rec = _record_of(fm, record)
    if rec.curve and rec.curve != fm.curve:
        raise _reject(InvalidKind.CALL, Error.CurveMismatch, f"{rec.curve}, the key is on {fm.curve}")
    if verify_signature:
        chk = _signature_check(fm, rec)
        if not chk.verify():
            raise _reject(InvalidKind.BAD_PROOF, Error.BadSignature)
    if rec.meter_id != fm.device_id:
        raise _reject(InvalidKind.CUSTOM, Error.DeviceMismatch, rec.meter_id)
    import_wh, t_import = _register_wh(rec, fm.import_obis)
    export_wh, t_export = _register_wh(rec, fm.export_obis)
    t = t_import if t_import is not None else t_export
    if t is None:
        raise _reject(InvalidKind.CUSTOM, Error.NoTime)
    interval_start = _interval_closed_by(t)
    counter = rec.counter
    if counter is None:
        raise _reject(InvalidKind.CUSTOM, Error.NoCounter)
    if m.has_reading and counter > m.last_seq + 1:     # equal or lower: metering's replay rules
        raise _reject(InvalidKind.CUSTOM, Error.CounterGap, f"expected {m.last_seq + 1}, got {counter}")
    checked = metering.check_values(meter_id, m, counter, interval_start, import_wh, export_wh)
    return counter, interval_start, import_wh, export_wh, checked


def _signature_check(fm: FieldMeter, rec: MeterRecord) -> SignatureCheck:
    return SignatureCheck(fm.public_key, ecdsa.signature_der(rec.signature), rec.signed_data,
                          ecdsa.check_scheme(fm.curve, rec.hash))


@pallet.signature_of_unsigned
def _record_signature(call_def: CallDef, args: tuple) -> SignatureCheck | None:
    """The record's ECDSA check, for the node's batch verifier (None: the validator checks inline)."""
    if call_def is not submit_record.call_def:
        return None
    meter_id, record = args
    fm = field_meters.get(meter_id)
    if fm is None:
        return None
    try:
        rec = _parsed.get(fm.scheme, record)
    except MeterRecordError:
        return None
    if rec.curve and rec.curve != fm.curve:
        return None                     # refused by validation as CurveMismatch
    return _signature_check(fm, rec)


@pallet.validate_unsigned
def _validate_unsigned(call_def: CallDef, args: tuple, source: TransactionSource,
                       signature_ok: bool | None = None) -> ValidTransaction:
    if call_def is not submit_record.call_def:
        raise InvalidTransaction(InvalidKind.CALL, "only field_meters.submit_record may be submitted unsigned")
    meter_id, record = args
    result = check_record(meter_id, record, verify_signature=signature_ok is None)
    if source == TransactionSource.IN_BLOCK:
        _pre_dispatch.held = (record, result)
    counter, _t, _i, _e, checked = result
    return ValidTransaction(
        priority=metering.Config.reading_priority,
        requires=(),
        provides=(metering.reading_tag(meter_id, counter),),
        longevity=max(1, checked.window_end_s - timestamp.now_s()),
        propagate=True,
    )


class _PreDispatch:
    """The check of the record about to be dispatched, handed from validation to the call: the
    executive validates an unsigned extrinsic in a block immediately before dispatching it, on the
    same state, so the call takes the result for the very record object just validated (and checks
    again on any other path), as metering's readings do."""

    held: tuple[bytes, tuple] | None = None

    def take(self, record: bytes) -> tuple | None:
        held, self.held = self.held, None
        return held[1] if held is not None and held[0] is record else None


_pre_dispatch = _PreDispatch()


# --- calls -----------------------------------------------------------------------------------
def _field_meter(scheme: int, public_key: bytes, curve: str, device_id: str, import_obis: str,
                 export_obis: str) -> FieldMeter:
    """The certificate's checks, whoever certifies: scheme, curve, key, id and registers."""
    ensure(scheme in ALLOWED_CURVES, Error.UnknownScheme)
    try:
        key = ecdsa.load_public_key(public_key, curve or None)
    except MeterRecordError:
        fail(Error.BadPublicKey)
    ensure(key.curve in ALLOWED_CURVES[scheme], Error.CurveNotAllowed)
    device_id = _canonical_device_id(scheme, device_id)
    ensure(_obis_ok(import_obis) and _obis_ok(export_obis), Error.BadObis)
    ensure(import_obis != "" or export_obis != "", Error.BadObis)
    return FieldMeter(scheme, key.curve, key.sec1, device_id, import_obis, export_obis)


def _canonical_device_id(scheme: int, device_id: str) -> str:
    """The id as records carry it: an SML server id or DLMS system title as lower-case hex without
    separators ("0A 01 45 4D ..." certifies as "0a01454d..."), an OCMF serial as given."""
    if scheme in (SCHEME_SML, SCHEME_DLMS):
        text = "".join(device_id.split()).lower().removeprefix("0x")
        expected = 10 if scheme == SCHEME_SML else 8
        ensure(len(text) == 2 * expected and all(c in "0123456789abcdef" for c in text), Error.BadDeviceId)
        return text
    ensure(device_id != "", Error.BadDeviceId)
    return device_id


def _obis_ok(obis: str) -> bool:
    """Empty, or an OBIS code in its canonical spelling (as records are compared by it)."""
    if obis == "":
        return True
    try:
        return ocmf.canonical_obis(obis) == obis
    except MeterRecordError:
        return False


@pallet.call(0, weight=W_CERTIFY, origin=SIGNED)
def certify(origin: Origin, scheme: U8, public_key: Bytes(max_len=160), curve: Text(16), device_id: Text(64),
            import_obis: Text(16), export_obis: Text(16), owner: AccountId, zone: U32, kind: U8,
            rated_power_w: U64) -> None:
    """Certify a field meter: its scheme, its public key (DER SubjectPublicKeyInfo; or a SEC1 point
    or raw X||Y with `curve` named), the id its records carry, and the OBIS codes of its import and
    export registers (one may be ""), for a licensed owner in a zone. Signed by the zone's DSO or a
    licensed registrar, as for any meter."""
    who = ensure_signed(origin)
    fm = _field_meter(scheme, public_key, curve, device_id, import_obis, export_obis)
    meter_id = field_meter_id(fm.scheme, fm.public_key)
    metering.certify(who, meter_id, owner, zone, kind, rated_power_w)
    field_meters.insert(meter_id, fm)
    deposit_event(FieldMeterCertified(meter_id, fm.scheme, fm.curve, fm.device_id, fm.import_obis,
                                      fm.export_obis, who))


@pallet.call(1, weight=W_REPLACE, origin=SIGNED)
def replace(origin: Origin, old: MeterId, scheme: U8, public_key: Bytes(max_len=160), curve: Text(16),
            device_id: Text(64), import_obis: Text(16), export_obis: Text(16), new_rated_power_w: U64) -> None:
    """Retire meter `old` (of any scheme) and certify a field meter in its place, for the same
    owner, zone and kind; its first record is its baseline. Zone DSO or registrar."""
    who = ensure_signed(origin)
    fm = _field_meter(scheme, public_key, curve, device_id, import_obis, export_obis)
    meter_id = field_meter_id(fm.scheme, fm.public_key)
    metering.replace(who, old, meter_id, new_rated_power_w)
    field_meters.insert(meter_id, fm)
    deposit_event(FieldMeterCertified(meter_id, fm.scheme, fm.curve, fm.device_id, fm.import_obis,
                                      fm.export_obis, who))


def scheme_of_record(record: bytes) -> int | None:
    """The scheme a record's first bytes announce (OCMF text, the SML escape, the DLMS tag)."""
    if record.startswith(b"OCMF|"):
        return SCHEME_OCMF
    if record.startswith(b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"):
        return SCHEME_SML
    if record[:1] == b"\xdf":
        return SCHEME_DLMS
    return None


def _record_weight(meter: bytes, record: bytes) -> int:
    """Parsing and storage, plus the verify of the curve the record declares (weights are known
    before state is read, so the record says; the dearest verify when it says nothing usable: such
    a record is refused before any of it is spent)."""
    scheme = scheme_of_record(record)
    curve = ""
    if scheme is not None:
        try:
            curve = _parsed.get(scheme, record).curve
        except MeterRecordError:
            pass
    base = W_RECORD_BASE.get(scheme, max(W_RECORD_BASE.values()))
    return base + W_VERIFY.get(curve, max(W_VERIFY.values())) + metering.W_MINT_AND_MISSED


@pallet.call(2, weight=_record_weight, origin=NONE)
def submit_record(origin: Origin, meter: MeterId, record: BYTES) -> PostInfo:
    """A field meter's signed record, byte for byte as the meter sent it (unsigned extrinsic, no
    fee): checked as the module docstring says, then recorded as a reading of the meter."""
    ensure_none(origin)
    result = _pre_dispatch.take(record)
    if result is None:
        try:
            result = check_record(meter, record, verify_signature=False)
        except InvalidTransaction as e:
            raise DispatchError(e.reason) from None
    counter, interval_start, import_wh, export_wh, checked = result
    extra = metering.record_reading(meter, checked, counter, interval_start, import_wh, export_wh,
                                    keccak256(record))
    deposit_event(RecordAccepted(meter, counter, interval_start))
    fm = field_meters.get(meter)
    return PostInfo(actual_weight=W_RECORD_BASE[fm.scheme] + W_VERIFY[fm.curve] + extra)


# --- genesis ---------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"meters": [{"scheme": "ocmf" | "sml-edl40" | "dlms-general-signing", "public_key": "0x<DER
    SPKI, or SEC1/raw with "curve">", "curve": "", "device_id": "...", "import_obis": "1-0:1.8.0",
    "export_obis": "1-0:2.8.0", "owner": ss58, "zone": 1, "kind": 2, "rated_power_w": 10000}]};
    checked as `certify` checks it (runs after identity, grid and metering)."""
    by_name = {name: scheme for scheme, name in SCHEME_NAMES.items() if scheme != SCHEME_ED25519}
    for entry in config.get("meters", []):
        what = f"field meter {entry.get('device_id', '?')}"
        try:
            scheme = by_name[entry["scheme"]]
            fm = _field_meter(scheme, bytes.fromhex(entry["public_key"].removeprefix("0x")), entry.get("curve", ""),
                              entry["device_id"], entry.get("import_obis", ""), entry.get("export_obis", ""))
        except KeyError as e:
            raise ValueError(f"field_meters genesis, {what}: unknown or missing {e}") from None
        except DispatchError as e:
            raise ValueError(f"field_meters genesis, {what}: {e}") from None
        meter_id = field_meter_id(fm.scheme, fm.public_key)
        metering.certify_at_genesis(meter_id, entry, what)
        field_meters.insert(meter_id, fm)

"""Field meters on chain: meters that sign OCMF, SML/EDL40 or DLMS records are certified with their
scheme and key, and their records, byte for byte as the meter sent them, become readings under the
metering pallet's rules. The test meters (`meters/field_meters.py`) sign with their own test keys.

Genesis is the metering tests' (tests/test_metering.py): Dave is the DSO of zone 1, Charlie a
registrar, Bob a licensed prosumer; Eve holds no licence.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meters.field_meters import DlmsTestMeter, OcmfTestMeter, SmlTestMeter
from pallets import field_meters, metering
from primitives.extrinsic import Call, Extrinsic
from primitives.meter_formats.ecdsa import load_public_key
from runtime.api import InvalidKind, InvalidTransaction, TransactionSource
from runtime.executive import BlockError
from tests.runtime_harness import ChainHarness, events_named
from tests.test_metering import (DSO, EVE, I, OWNER, REGISTRAR, T, after, goto, metering_genesis)
from tests.runtime_harness import chain_factory
from tests.mutations import mutate

FE = field_meters.Error
new_chain = chain_factory(metering_genesis())
RT = new_chain.runtime
OBIS_IMPORT, OBIS_EXPORT = "1-0:1.8.0", "1-0:2.8.0"
EDL40_OBIS = "1-0:1.17.0"


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


def certify_args(meter, *, scheme: int | None = None, key: bytes | None = None, curve: str = "",
                 import_obis: str = OBIS_IMPORT, export_obis: str = OBIS_EXPORT, kind: int = 2,
                 rated_power_w: int = 10_000) -> tuple:
    scheme = {"ocmf": 1, "sml-edl40": 2, "dlms-general-signing": 3}[meter.scheme] if scheme is None else scheme
    return (scheme, meter.public_key_der() if key is None else key, curve, meter.meter_id, import_obis,
            export_obis, OWNER.public_key, 1, kind, rated_power_w)


def certify(chain: ChainHarness, meter, **kw) -> bytes:
    result = chain.block(chain.xt(DSO, "field_meters", "certify", *certify_args(meter, **kw)))
    assert not events_named(result, RT, "system", "ExtrinsicFailed"), "certification failed"
    (event,) = events_named(result, RT, "field_meters", "FieldMeterCertified")
    return event[0]


def record_xt(meter_id: bytes, record: bytes) -> bytes:
    cd = field_meters.submit_record.call_def
    return Extrinsic(Call(field_meters.pallet.index, cd.index, (meter_id, record))).encode()


def refused(chain: ChainHarness, meter_id: bytes, record: bytes) -> InvalidTransaction:
    """The pool refuses the record, a block carrying it is invalid, and nothing changed."""
    before = dict(chain.state)
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(record_xt(meter_id, record))
    with pytest.raises(BlockError):
        chain.block(record_xt(meter_id, record))
    assert dict(chain.state) == before
    return e.value


def energy(chain, meter_id: bytes, t: int):
    return chain.read(lambda: metering.energy_in_interval(meter_id, t))


METERS = {
    "ocmf-p256": lambda: OcmfTestMeter("secp256r1", uri="//Bob//ocmf"),
    "ocmf-brainpool": lambda: OcmfTestMeter("brainpoolP256r1", uri="//Bob//ocmf-bp"),
    "ocmf-p384": lambda: OcmfTestMeter("secp384r1", uri="//Bob//ocmf-384"),
    "sml-edl40": lambda: SmlTestMeter(uri="//Bob//sml"),
    "dlms-suite1": lambda: DlmsTestMeter(suite=1, uri="//Bob//dlms"),
    "dlms-suite2": lambda: DlmsTestMeter(suite=2, uri="//Bob//dlms2"),
}


def registers_for(meter) -> dict:
    """Certification arguments for the registers this kind of meter reports."""
    if meter.scheme == "sml-edl40":
        return {"import_obis": EDL40_OBIS, "export_obis": "", "kind": 0}
    return {}


def values(meter, import_wh: int, export_wh: int) -> tuple[int, int]:
    return (import_wh, 0) if meter.scheme == "sml-edl40" else (import_wh, export_wh)


@pytest.mark.parametrize("name", sorted(METERS))
def test_a_field_meter_reports_each_interval_and_its_energy_is_recorded(chain, name):
    meter = METERS[name]()
    meter_id = certify(chain, meter, **registers_for(meter))
    assert meter_id == field_meters.field_meter_id(
        {"ocmf": 1, "sml-edl40": 2, "dlms-general-signing": 3}[meter.scheme], meter.public_key_sec1())
    registers = [(10_000, 5_000), (10_400, 5_900), (11_000, 7_100)]
    for k, (imp, exp) in enumerate(registers):
        t = T + k * I
        goto(chain, after(t))
        imp, exp = values(meter, imp, exp)
        result = chain.block(record_xt(meter_id, meter.record(t + I, imp, exp)))
        assert not events_named(result, RT, "system", "ExtrinsicFailed")
        (accepted,) = events_named(result, RT, "field_meters", "RecordAccepted")
        assert accepted[2] == t
    e1, e2 = energy(chain, meter_id, T + I), energy(chain, meter_id, T + 2 * I)
    d_exp = (900, 1_200) if meter.scheme != "sml-edl40" else (0, 0)
    assert (e1.import_wh, e1.export_wh, e1.plausible) == (400, d_exp[0], True)
    assert (e2.import_wh, e2.export_wh, e2.intervals) == (600, d_exp[1], 1)
    m = chain.read(lambda: metering.get_meter(meter_id))
    assert m.last_seq == meter.counter - 1


def ocmf_with_values(meter: OcmfTestMeter, interval_end: int, import_kwh: str, export_kwh: str) -> bytes:
    """An OCMF record of `meter` whose registers are written as given (kWh, any decimals), signed
    with its key: what a meter with 0.1 Wh resolution sends."""
    payload = meter.payload(interval_end, 0, 0, meter.counter)
    assert payload.count('"RV":0.000') == 2
    payload = payload.replace('"RV":0.000', f'"RV":{import_kwh}', 1).replace('"RV":0.000', f'"RV":{export_kwh}', 1)
    r, s = meter._sign(payload.encode())
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: PLC0415
    sig = '{"SA":"ECDSA-%s-SHA256","SD":"%s"}' % (meter.curve, encode_dss_signature(r, s).hex().upper())
    meter.counter += 1
    return f"OCMF|{payload}|{sig}".encode()


def test_kwh_with_fractions_is_floored_and_nothing_is_lost_over_readings(chain):
    """A register in kWh with 4 decimals (0.1 Wh): each reading floors it to whole Wh, the next one
    counts what was floored away, so the recorded energy is the metered energy floored once."""
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf-frac")
    meter_id = certify(chain, meter)
    totals = [("1.0003", "0.0001"), ("1.0007", "0.0019"), ("1.0015", "0.0020"), ("1.0031", "0.0049")]
    for k, (imp, exp) in enumerate(totals):
        t = T + k * I
        goto(chain, after(t))
        result = chain.block(record_xt(meter_id, ocmf_with_values(meter, t + I, imp, exp)))
        assert not events_named(result, RT, "system", "ExtrinsicFailed")
    recorded = [energy(chain, meter_id, T + k * I) for k in range(1, 4)]
    # 1000.3 -> 1000, 1000.7 -> 1000, 1001.5 -> 1001, 1003.1 -> 1003 Wh; export 0.1, 1.9, 2.0, 4.9
    assert [e.import_wh for e in recorded] == [0, 1, 2]
    assert [e.export_wh for e in recorded] == [1, 1, 2]
    assert sum(e.import_wh for e in recorded) == 1003 - 1000      # floor(last) - floor(first)


def test_a_tampered_record_or_another_keys_signature_is_refused(chain):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    good = meter.record(T + I, 10_000, 5_000)
    tampered = good.replace(b'"RV":10.000', b'"RV":19.000', 1)
    assert tampered != good
    e = refused(chain, meter_id, tampered)
    assert e.kind is InvalidKind.BAD_PROOF and FE.BadSignature.message in e.reason
    impostor = OcmfTestMeter("secp256r1", uri="//Eve//ocmf", serial=meter.serial)
    e = refused(chain, meter_id, impostor.record(T + I, 10_000, 5_000))
    assert FE.BadSignature.message in e.reason
    chain.block(record_xt(meter_id, good))           # the genuine record still goes through


def test_pagination_must_run_without_gaps_or_repeats(chain):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    chain.block(record_xt(meter_id, meter.record(T + I, 10_000, 5_000)))
    goto(chain, after(T + I))
    meter.counter += 1                                  # a record lost on the way
    e = refused(chain, meter_id, meter.record(T + 2 * I, 10_100, 5_100))
    assert FE.CounterGap.message in e.reason
    meter.counter -= 3                                   # a repeated pagination number
    e = refused(chain, meter_id, meter.record(T + 2 * I, 10_100, 5_100))
    assert e.reason in (metering.Error.ReadingReplayed.message, metering.Error.SequenceTooLow.message)
    chain.block(record_xt(meter_id, meter.record(T + 2 * I, 10_100, 5_100)))


def test_a_record_whose_unit_or_obis_is_not_the_certified_one_is_refused(chain):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter, import_obis="1-0:1.8.1")      # a tariff register, not 1.8.0
    goto(chain, after(T))
    e = refused(chain, meter_id, meter.record(T + I, 10_000, 5_000))
    assert FE.MissingRegister.message in e.reason


def test_an_sml_block_with_another_meters_server_id_is_refused(chain):
    meter = SmlTestMeter(uri="//Bob//sml")
    meter_id = certify(chain, meter, **registers_for(meter))
    other = SmlTestMeter(uri="//Bob//sml", server_id=b"\x0a\x01GRD\x00\x00\x00\x00\x01")
    goto(chain, after(T))
    e = refused(chain, meter_id, other.record(T + I, 10_000))
    assert FE.DeviceMismatch.message in e.reason


def test_a_record_of_another_format_than_the_meters_scheme_is_refused(chain):
    ocmf_meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    sml_meter = SmlTestMeter(uri="//Bob//sml")
    meter_id = certify(chain, ocmf_meter)
    goto(chain, after(T))
    e = refused(chain, meter_id, sml_meter.record(T + I, 10_000))
    assert e.kind is InvalidKind.CALL


def test_a_record_above_the_size_limit_is_refused(chain):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    big = meter.record(T + I, 10_000, 5_000) + b" " * field_meters.Config.max_record_bytes
    e = refused(chain, meter_id, big)
    assert FE.RecordTooLarge.message in e.reason


@pytest.mark.parametrize("scheme, curve, error", [
    (2, "secp384r1", FE.CurveNotAllowed),        # SML/EDL40 is P-256 only here
    (3, "brainpoolP256r1", FE.CurveNotAllowed),  # DLMS suites are P-256 and P-384
    (1, "secp192r1", FE.CurveNotAllowed),        # P-192: too weak to settle on
    (9, "secp256r1", FE.UnknownScheme),
])
def test_certifying_with_a_curve_the_scheme_does_not_allow_is_refused(chain, scheme, curve, error):
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    curves = {"secp384r1": ec.SECP384R1, "brainpoolP256r1": ec.BrainpoolP256R1, "secp192r1": ec.SECP192R1,
              "secp256r1": ec.SECP256R1}
    key = ec.derive_private_key(12345, curves[curve]()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    args = certify_args(meter, scheme=scheme, key=key)
    result = chain.block(chain.xt(DSO, "field_meters", "certify", *args))
    (failed,) = events_named(result, RT, "system", "ExtrinsicFailed")
    assert failed[0][2] == error.message


@pytest.mark.parametrize("mangle", ["flip-point", "truncate", "der-trailing", "der-reencoded-long-length"])
def test_a_malformed_or_non_canonical_key_is_refused_at_certification(chain, mangle):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    der = meter.public_key_der()
    if mangle == "flip-point":
        key = der[:-1] + bytes([der[-1] ^ 1])
    elif mangle == "truncate":
        key = der[:-3]
    elif mangle == "der-trailing":
        key = der + b"\x00"
    else:   # the outer SEQUENCE length in long form: valid BER, not DER
        key = b"\x30\x81" + der[1:]
    result = chain.block(chain.xt(DSO, "field_meters", "certify", *certify_args(meter, key=key)))
    (failed,) = events_named(result, RT, "system", "ExtrinsicFailed")
    assert failed[0][2] == FE.BadPublicKey.message


def test_sec1_and_raw_keys_with_the_curve_named_certify_the_same_meter(chain):
    meter = OcmfTestMeter("brainpoolP256r1", uri="//Bob//ocmf-bp")
    sec1 = meter.public_key_sec1()
    mid = certify(chain, meter, key=sec1, curve="brainpoolP256r1")
    assert mid == field_meters.field_meter_id(1, load_public_key(meter.public_key_der()).sec1)
    # the same key again, raw X||Y this time: keys are never certified twice
    result = chain.block(chain.xt(DSO, "field_meters", "certify",
                                  *certify_args(meter, key=sec1[1:], curve="brainpoolP256r1")))
    (failed,) = events_named(result, RT, "system", "ExtrinsicFailed")
    assert failed[0][2] == metering.Error.MeterExists.message


def test_only_the_zone_dso_or_a_registrar_certifies_and_suspend_retire_replace_work(chain):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    result = chain.block(chain.xt(EVE, "field_meters", "certify", *certify_args(meter)))
    (failed,) = events_named(result, RT, "system", "ExtrinsicFailed")
    assert failed[0][2] == metering.Error.NotAuthorized.message
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    chain.block(chain.xt(REGISTRAR, "metering", "suspend_meter", meter_id))
    e = refused(chain, meter_id, meter.record(T + I, 10_000, 5_000))
    assert e.reason == metering.Error.MeterSuspendedError.message
    chain.block(chain.xt(DSO, "metering", "reinstate_meter", meter_id))
    meter.counter -= 1
    chain.block(record_xt(meter_id, meter.record(T + I, 10_000, 5_000)))
    # replaced by a DLMS meter: the old one is retired, the new one reports
    new = DlmsTestMeter(suite=1, uri="//Bob//dlms")
    args = certify_args(new)
    result = chain.block(chain.xt(DSO, "field_meters", "replace", meter_id, *args[:6], 8_000))
    assert not events_named(result, RT, "system", "ExtrinsicFailed")
    new_id = field_meters.field_meter_id(3, new.public_key_sec1())
    assert chain.read(lambda: metering.get_meter(meter_id)).status == metering.STATUS_RETIRED
    goto(chain, after(T + I))
    e = refused(chain, meter_id, meter.record(T + 2 * I, 10_100, 5_100))
    assert e.reason == metering.Error.MeterRetiredError.message
    chain.block(record_xt(new_id, new.record(T + 2 * I, 20_000, 1_000)))
    assert chain.read(lambda: metering.get_meter(new_id)).has_reading


def test_the_records_time_must_be_an_interval_end(chain):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter)
    goto(chain, after(T + I))
    e = refused(chain, meter_id, meter.record(T + I + 300, 10_000, 5_000))
    assert FE.TimeNotOnGrid.message in e.reason
    meter.counter -= 1
    # a meter clock a few seconds off still closes the interval
    chain.block(record_xt(meter_id, meter.record(T + I + 7, 10_000, 5_000)))
    assert energy(chain, meter_id, T) is not None


def test_signature_check_goes_to_the_batch_and_the_validator_trusts_it(chain):
    """The node verifies a record's ECDSA signature in its worker batch: the pallet hands out a
    check that succeeds for the genuine record and fails for a tampered one."""
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    good = meter.record(T + I, 10_000, 5_000)
    ctx = RT.validation_context(chain.state, chain.hashes[-1], chain.number)
    d = ctx.decode(record_xt(meter_id, good))
    chk = ctx.signature_check(d)
    assert chk is not None and chk.scheme == "ecdsa-secp256r1-sha256" and chk.verify()
    bad = ctx.signature_check(ctx.decode(record_xt(meter_id, good.replace(b'"RV":10.000', b'"RV":11.000', 1))))
    assert bad is not None and not bad.verify()
    assert ctx.validate(d, TransactionSource.EXTERNAL, True).provides


@pytest.fixture(scope="module")
def certified_meters():
    """A chain with an OCMF, an SML and a DLMS test meter certified, at the end of interval T."""
    chain = new_chain()
    meters = {name: METERS[name]() for name in ("ocmf-p256", "sml-edl40", "dlms-suite1")}
    ids = {name: certify(chain, m, **registers_for(m)) for name, m in meters.items()}
    goto(chain, after(T))
    # signed once: ECDSA signatures are randomized, and hypothesis needs the same input each run
    records = {name: m.record(T + I, *values(m, 10_000, 5_000)) for name, m in meters.items()}
    return chain, records, ids


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_records_are_refused_with_pallet_errors_only(certified_meters, data):
    """Every parser and the pallet's validation, driven by mutated valid records: a record is either
    taken or refused with an InvalidTransaction; no other exception ever escapes."""
    chain, records, ids = certified_meters
    name = data.draw(st.sampled_from(sorted(records)))
    record = records[name]
    record = mutate(data.draw, record, rounds=(1, 3))
    ctx = RT.validation_context(chain.state, chain.hashes[-1], chain.number)
    try:
        ctx.validate(ctx.decode(record_xt(ids[name], record)), TransactionSource.EXTERNAL)
    except InvalidTransaction:
        pass
    from primitives.meter_formats.record import MeterRecordError  # noqa: PLC0415
    for scheme in (1, 2, 3):
        try:
            field_meters.parse_record(scheme, record)
        except MeterRecordError:
            pass


def test_a_raw_key_that_begins_with_the_der_tag_is_read_as_raw(chain):
    """About one raw X||Y key in 256 begins with 0x30, DER's SEQUENCE tag: its length tells it apart."""
    meter = DlmsTestMeter(suite=1, uri="//raw30-29//dlms")
    raw = meter.public_key_sec1()[1:]
    assert raw[0] == 0x30
    assert load_public_key(raw, "secp256r1").sec1 == meter.public_key_sec1()
    meter_id = certify(chain, meter, key=raw, curve="secp256r1")
    assert meter_id == field_meters.field_meter_id(3, meter.public_key_sec1())


def test_field_meters_in_a_chain_spec_are_certified_at_genesis():
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf-genesis")
    g = metering_genesis()
    g["field_meters"] = {"meters": [{"scheme": "ocmf", "public_key": "0x" + meter.public_key_der().hex(),
                                     "device_id": meter.meter_id, "import_obis": OBIS_IMPORT,
                                     "export_obis": OBIS_EXPORT, "owner": OWNER.address(), "zone": 1,
                                     "kind": 2, "rated_power_w": 10_000}]}
    chain = chain_factory(g)()
    meter_id = field_meters.field_meter_id(1, meter.public_key_sec1())
    assert chain.read(lambda: field_meters.get(meter_id)).device_id == meter.meter_id
    goto(chain, after(T))
    chain.block(record_xt(meter_id, meter.record(T + I, 1_000, 0)))
    assert energy(chain, meter_id, T) is not None
    bad = dict(g["field_meters"]["meters"][0], scheme="sml-edl40")      # P-256 OK, but...
    bad["public_key"] = "0x" + OcmfTestMeter("secp384r1", uri="//x").public_key_der().hex()
    with pytest.raises(ValueError, match="field_meters genesis"):
        chain_factory(dict(g, field_meters={"meters": [bad]}))()


def test_a_register_in_a_unit_that_is_not_energy_is_refused(chain):
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    payload = meter.payload(T + I, 1_000, 0, meter.counter).replace('"RU":"kWh"', '"RU":"kvarh"', 1)
    r, s = meter._sign(payload.encode())
    from primitives.meter_formats.ecdsa import signature_der  # noqa: PLC0415
    record = f'OCMF|{payload}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{signature_der((r, s)).hex()}"}}'.encode()
    e = refused(chain, meter_id, record)
    assert FE.UnitNotAllowed.message in e.reason


def test_a_dlms_apdu_with_trailing_bytes_is_refused(chain):
    meter = DlmsTestMeter(suite=1, uri="//Bob//dlms")
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    e = refused(chain, meter_id, meter.record(T + I, 1_000, 0) + b"\x00")
    assert e.kind is InvalidKind.CALL and FE.Malformed.message in e.reason


def test_an_isa_edl40p_record_names_its_actual_value_once():
    """ISA-EDL-40P signs an actual and a start value of the same register (F 255 and F 128): a
    certificate naming 1-0:1.8.0 finds exactly the actual one (the public vector isa-edl40p-ok)."""
    from primitives.meter_formats import sml  # noqa: PLC0415
    from tests.meter_vectors import load_cases  # noqa: PLC0415
    case = next(c for c in load_cases() if c["id"] == "isa-edl40p-ok")
    record = sml.parse(bytes.fromhex(case["transmitted_hex"]))
    assert [r.obis for r in record.readings] == ["1-0:1.8.0", "1-0:1.8.0*128"]
    actual = next(r for r in case["readings"] if r["obis"] == "1-0:1.8.0*255")
    raw, scaler = actual["register_value_raw"], actual["scaler"]
    expected_wh = raw * 10**scaler if scaler >= 0 else raw // 10**-scaler
    assert field_meters._register_wh(record, "1-0:1.8.0")[0] == expected_wh


@pytest.mark.parametrize("spelling", ["upper", "spaced", "0x"])
def test_an_sml_server_id_certifies_in_any_hex_spelling(chain, spelling):
    meter = SmlTestMeter(uri="//Bob//sml")
    hex_id = meter.meter_id
    given = {"upper": hex_id.upper(), "spaced": " ".join(hex_id[i:i + 2].upper() for i in range(0, 20, 2)),
             "0x": "0x" + hex_id}[spelling]
    args = list(certify_args(meter, **{k: v for k, v in registers_for(meter).items() if k != "kind"}))
    args[3], args[8] = given, 0
    result = chain.block(chain.xt(DSO, "field_meters", "certify", *args))
    assert not events_named(result, RT, "system", "ExtrinsicFailed")
    meter_id = field_meters.field_meter_id(2, meter.public_key_sec1())
    assert chain.read(lambda: field_meters.get(meter_id)).device_id == hex_id
    goto(chain, after(T))
    chain.block(record_xt(meter_id, meter.record(T + I, 1_000)))
    args[3] = "0a01"      # too short for a server id
    result = chain.block(chain.xt(DSO, "field_meters", "certify", *args))
    (failed,) = events_named(result, RT, "system", "ExtrinsicFailed")
    assert failed[0][2] == FE.BadDeviceId.message


def test_a_record_whose_batched_signature_check_fails_gets_the_pallets_sentence(chain):
    """The node checks record signatures in its worker batch; a refused one is still answered with
    the field_meters pallet's own error, as a meter vendor's guide promises."""
    meter = OcmfTestMeter("secp256r1", uri="//Bob//ocmf")
    meter_id = certify(chain, meter)
    goto(chain, after(T))
    tampered = meter.record(T + I, 10_000, 5_000).replace(b'"RV":10.000', b'"RV":19.000', 1)
    ctx = RT.validation_context(chain.state, chain.hashes[-1], chain.number)

    def verify_in_batch(checks):
        oks = [c.verify() for c in checks]
        return lambda: oks
    ((_h, verdict),) = ctx.validate_batch([record_xt(meter_id, tampered)], TransactionSource.EXTERNAL,
                                          verify_in_batch)
    assert isinstance(verdict, InvalidTransaction) and verdict.kind is InvalidKind.BAD_PROOF
    assert FE.BadSignature.message in verdict.reason

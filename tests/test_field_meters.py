"""The field test meters (meters/field_meters.py): each record parses with its format's parser,
verifies with the meter's key, carries exactly the register values it was given, and the format's
counter runs without gaps."""
from __future__ import annotations

import json
from fractions import Fraction

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meters.field_meters import (EDL40_COMMISSIONED_AT, OCMF_CURVES, DlmsTestMeter, OcmfTestMeter, SmlTestMeter,
                                 axdr_length, cosem_date_time, derive_test_key, kwh_text, ocmf_time)
from primitives.meter_formats import dlms, edl40, ocmf, sml
from primitives.meter_formats.ecdsa import load_public_key, verify_record
from primitives.meter_formats.record import MeterRecord, MeterRecordError, RegisterValue

T0 = 1_714_564_800          # 2024-05-01T12:00:00Z
INTERVAL = 900
#: Register totals over a few intervals: zero, a value needing all three kWh decimals, large ones.
SERIES = [(0, 0), (1, 999), (12_345, 1_000), (12_346, 1_001), (987_654_321, 123_456_789)]


def wh(v: RegisterValue) -> Fraction:
    """A register value in Wh, exactly."""
    scale = {"Wh": 1, "kWh": 1000}[v.unit]
    return Fraction(v.mantissa) * Fraction(10) ** v.exponent * scale


def registers(rec: MeterRecord) -> dict[str, Fraction]:
    return {v.obis: wh(v) for v in rec.readings}


def test_test_keys_are_deterministic_and_per_label():
    a = derive_test_key("gridchain test meter //Bob//ocmf", "secp256r1")
    b = derive_test_key("gridchain test meter //Bob//ocmf", "secp256r1")
    c = derive_test_key("gridchain test meter //Alice//ocmf", "secp256r1")
    assert a.private_numbers().private_value == b.private_numbers().private_value
    assert a.private_numbers().private_value != c.private_numbers().private_value
    assert OcmfTestMeter(uri="//Bob//ocmf").public_key_der() == OcmfTestMeter(uri="//Bob//ocmf").public_key_der()
    # every curve, including brainpoolP256r1 whose order is far below 2^256 (the retry path)
    for curve in OCMF_CURVES:
        assert derive_test_key("x", curve).curve.name.lower() == curve.lower()


def test_kwh_text_and_ocmf_time_are_exact():
    assert [kwh_text(w) for w in (0, 1, 999, 1000, 12_345, 10**12)] == \
        ["0.000", "0.001", "0.999", "1.000", "12.345", "1000000000.000"]
    assert ocmf_time(T0 + INTERVAL) == "2024-05-01T12:15:00,000+0000 S"


def test_bad_register_values_are_refused():
    m = OcmfTestMeter()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="import_wh"):
            m.record(T0, bad, 0)
    assert m.counter == 1, "a refused reading does not advance the counter"
    with pytest.raises(ValueError, match="not 'secp192r1'"):
        OcmfTestMeter("secp192r1")


# ---------------------------------------------------------------------------------------------
# OCMF
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("curve", OCMF_CURVES)
@pytest.mark.parametrize("rv_as_string", [False, True])
def test_ocmf_records_parse_verify_and_are_exact(curve, rv_as_string):
    m = OcmfTestMeter(curve, uri="//Bob//ocmf", pagination=7, rv_as_string=rv_as_string)
    key = load_public_key(m.public_key_der())
    assert load_public_key(m.public_key_sec1(), curve) == key
    for i, (imp, exp) in enumerate(SERIES):
        end = T0 + (i + 1) * INTERVAL
        raw = m.record(end, imp, exp)
        rec = ocmf.parse(raw)
        verify_record(rec, key)
        assert rec.format == "ocmf" and rec.meter_id == m.meter_id == m.serial
        assert (rec.curve, rec.hash) == (curve, "sha256")
        assert rec.counter == 7 + i, "pagination runs without gaps"
        assert registers(rec) == {"1-0:1.8.0": imp, "1-0:2.8.0": exp}
        assert all(v.unit == "kWh" and v.time == end for v in rec.readings)
        assert m.counter == 8 + i


def test_ocmf_record_shape_is_what_chargers_send():
    m = OcmfTestMeter("secp256k1")
    raw = m.record(T0 + INTERVAL, 12_345, 678).decode()
    head, payload, sig_section = raw.split("|")
    assert head == "OCMF"
    doc = json.loads(payload)
    assert (doc["FV"], doc["PG"], doc["MS"], doc["IS"]) == ("1.0", "T1", m.serial, False)
    assert [(r["RI"], r["RU"], r["ST"], r["TM"]) for r in doc["RD"]] == [
        ("1-0:1.8.0", "kWh", "G", "2024-05-01T12:15:00,000+0000 S"),
        ("1-0:2.8.0", "kWh", "G", "2024-05-01T12:15:00,000+0000 S")]
    assert '"RV":12.345,' in payload and '"RV":0.678,' in payload, "RV written with 3 decimals, not a float"
    sig = json.loads(sig_section)
    assert sig["SA"] == "ECDSA-secp256k1-SHA256"
    # independent of our parser: the signature is DER over the payload bytes exactly as emitted
    pub = serialization.load_der_public_key(m.public_key_der())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(bytes.fromhex(sig["SD"]), payload.encode(), ec.ECDSA(hashes.SHA256()))


def test_ocmf_record_from_another_key_does_not_verify():
    m = OcmfTestMeter()
    mallory = OcmfTestMeter(uri="//Mallory//ocmf", serial=m.serial)
    rec = ocmf.parse(mallory.record(T0, 1, 2))
    with pytest.raises(MeterRecordError) as e:
        verify_record(rec, load_public_key(m.public_key_der()))
    assert e.value.code == "bad-signature"


# ---------------------------------------------------------------------------------------------
# SML / EDL40
# ---------------------------------------------------------------------------------------------

def test_sml_records_parse_verify_and_are_exact():
    m = SmlTestMeter(uri="//Bob//sml", pagination=41)
    key = load_public_key(m.public_key_raw(), "secp256r1")
    assert load_public_key(m.public_key_der()) == key == load_public_key(m.public_key_sec1(), "secp256r1")
    for i, (imp, _exp) in enumerate(SERIES):
        end = T0 + (i + 1) * INTERVAL
        rec = sml.parse(m.record(end, imp))
        verify_record(rec, key)
        assert (rec.format, rec.curve, rec.hash) == ("sml-edl40", "secp256r1", "sha256")
        assert rec.meter_id == m.meter_id == m.server_id.hex() and sml.matches_server_id(rec, m.server_id)
        assert rec.counter == 41 + i, "pagination runs without gaps"
        (value,) = rec.readings
        assert (value.obis, value.unit, value.exponent, value.time) == ("1-0:1.17.0", "Wh", -1, end)
        assert value.mantissa == imp * 10 and wh(value) == imp, "0.1 Wh steps, exact"
        # the block holds the meter's local time (CET here) and the seconds index since commissioning
        assert int.from_bytes(rec.signed_data[10:14], "little") == end + 3600
        assert int(rec.fields["seconds_index"]) == end - EDL40_COMMISSIONED_AT
    assert m.counter == 41 + len(SERIES)


def test_sml_meter_is_import_only_and_refuses_what_it_cannot_sign():
    m = SmlTestMeter()
    with pytest.raises(ValueError, match="export must be 0"):
        m.record(T0, 10, 1)
    with pytest.raises(ValueError, match="seconds index"):
        m.record(EDL40_COMMISSIONED_AT - 1, 10)
    assert m.counter == 1


def test_sml_file_is_the_signed_meter_values_block():
    """The block the SML file's list signature covers is the same EDL40 block a signedMeterValue
    XML transmits, so the same meter's key verifies it through both transports."""
    import base64

    m = SmlTestMeter()
    raw = m.record(T0 + INTERVAL, 4_242)
    rec = sml.parse(raw)
    width = 32
    r, s = rec.signature
    sig = r.to_bytes(width, "big") + s.to_bytes(width, "big") + m.logbook
    xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\" ?><signedMeterValue>"
           f"<publicKey encoding=\"base64\">{base64.b64encode(m.public_key_raw()).decode()}</publicKey>"
           f"<meterValueSignature encoding=\"base64\">{base64.b64encode(sig).decode()}</meterValueSignature>"
           "<signatureMethod>ECDSA256SHA256</signatureMethod><encodingMethod>EDL</encodingMethod>"
           f"<encodedMeterValue encoding=\"base64\">{base64.b64encode(rec.signed_data).decode()}</encodedMeterValue>"
           "</signedMeterValue>")
    xml_rec = edl40.parse_signed_meter_value(xml.encode())
    verify_record(xml_rec, load_public_key(m.public_key_raw(), "secp256r1"))
    assert (xml_rec.meter_id, xml_rec.counter, xml_rec.readings[0].mantissa) == (m.meter_id, 1, 42_420)


# ---------------------------------------------------------------------------------------------
# DLMS/COSEM general-signing
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suite, curve, hash_name", [(1, "secp256r1", "sha256"), (2, "secp384r1", "sha384")])
def test_dlms_pushes_parse_verify_and_are_exact(suite, curve, hash_name):
    big = SERIES + [(2**32 - 1, 2**32), (2**64 - 1, 0)]     # double-long-unsigned and long64-unsigned
    m = DlmsTestMeter(suite, uri="//Bob//dlms", invoke_id=2**24 - len(big))   # up to the last invoke id
    key = load_public_key(m.public_key_der())
    assert load_public_key(m.public_key_sec1(), curve) == key
    for i, (imp, exp) in enumerate(big):
        end = T0 + (i + 1) * INTERVAL
        raw = m.record(end, imp, exp)
        for named in (suite, None):
            rec = dlms.parse(raw, named)
            verify_record(rec, key)
            assert (rec.format, rec.curve, rec.hash) == ("dlms-general-signing", curve, hash_name)
            assert rec.meter_id == m.meter_id == m.system_title.hex()
            assert rec.counter == 2**24 - len(big) + i, "the invoke id runs without gaps"
            assert registers(rec) == {"1-0:1.8.0": imp, "1-0:2.8.0": exp}
            assert all(v.exponent == 0 and v.time == end for v in rec.readings)
            assert rec.time == end
    with pytest.raises(ValueError, match="24 bits"):
        m.record(T0, 1, 1)


def test_dlms_signed_bytes_are_the_header_without_tag_and_the_content_without_length():
    """Independent of our parser: the rule of docs/protocol.md and the vectors' README (Gurux and
    the EnergyICT stack agree): header fields with their lengths, then the content's bytes."""
    from cryptography.hazmat.primitives.asymmetric import utils

    m = DlmsTestMeter(1)
    raw = m.record(T0 + INTERVAL, 1, 2)
    content = m.content(T0 + INTERVAL, 1, 2, 1)
    header = b"\x04\x00\x00\x00\x01" + b"\x08" + m.system_title + b"\x00\x00\x00"
    assert raw == b"\xdf" + header + axdr_length(len(content)) + content + b"\x40" + raw[-64:]
    r, s = int.from_bytes(raw[-64:-32], "big"), int.from_bytes(raw[-32:], "big")
    pub = serialization.load_der_public_key(m.public_key_der())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(utils.encode_dss_signature(r, s), header + content, ec.ECDSA(hashes.SHA256()))


def test_cosem_date_time_is_local_with_the_deviation():
    # 2024-05-01T12:15:00Z seen by a CET meter: 13:15 local, a Wednesday, deviation -60
    assert cosem_date_time(T0 + INTERVAL, 60).hex() == "07e80501030d0f0000ffc400"
    assert dlms.cosem_time(cosem_date_time(T0 + INTERVAL, 60)) == (T0 + INTERVAL, 0)
    assert dlms.cosem_time(cosem_date_time(T0 + INTERVAL, -300)) == (T0 + INTERVAL, 0)
    assert [axdr_length(n).hex() for n in (0, 0x7F, 0x80, 0xFF, 0x100)] == ["00", "7f", "8180", "81ff", "820100"]


def test_dlms_meter_refuses_what_it_cannot_send():
    with pytest.raises(ValueError, match="suites 1 and 2"):
        DlmsTestMeter(3)
    m = DlmsTestMeter(1)
    with pytest.raises(ValueError, match="export_wh"):
        m.record(T0, 1, -2)
    with pytest.raises(ValueError, match="64 bits"):
        m.record(T0, 2**64, 0)
    assert m.counter == 1

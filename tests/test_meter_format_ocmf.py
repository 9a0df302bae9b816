"""OCMF records (primitives.meter_formats.ocmf): every public OCMF vector gets its expected verdict,
the same as the independent reference verifier's, with the signed bytes and readings the vector
states; strict refusals with their codes; and a fuzz test that mutated records only ever raise
MeterRecordError."""
from __future__ import annotations

import base64
import datetime
import decimal
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives.meter_formats import ocmf
from primitives.meter_formats.ecdsa import load_public_key, verify_record
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecordError
from tests.meter_vectors import load_cases, reference_verifier
from tests.mutations import mutate

CASES = [c for c in load_cases(parse_float=decimal.Decimal) if c["format"] == "ocmf"]
BY_ID = {c["id"]: c for c in CASES}


REFERENCE = reference_verifier()


def verdict(raw: bytes, key_bytes: bytes, key_curve: str | None) -> tuple[str, str]:
    """('valid', '') or ('invalid', error code) for a record under a key, as the runtime decides."""
    try:
        record = ocmf.parse(raw)
        verify_record(record, load_public_key(key_bytes, key_curve))
    except MeterRecordError as e:
        return "invalid", e.code
    return "valid", ""


def reference_verdict(case: dict) -> str:
    try:
        REFERENCE.verify_ocmf(dict(case))
    except REFERENCE.Reject:
        return "invalid"
    return "valid"


def case_key(case: dict) -> tuple[bytes, str]:
    return bytes.fromhex(case["public_key_hex"]), case["public_key_curve"]


# --- the public vectors ------------------------------------------------------------------------

def test_the_vector_set_holds_all_sixteen_ocmf_cases():
    assert len(CASES) == 16


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_ocmf_vector_gets_its_expected_verdict_and_the_reference_verifiers(case):
    got, code = verdict(case["transmitted"].encode(), *case_key(case))
    assert got == case["expected_verdict"], code
    assert reference_verdict(case) == got


def test_the_non_canonical_der_signature_is_refused_strictly_at_parse():
    case = BY_ID["ocmf-p192-nonminimal-der"]
    assert case["lenient_verdict"] == "valid"
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(case["transmitted"].encode())
    assert e.value.code == "bad-signature-encoding"


@pytest.mark.parametrize("case_id, code", [("ocmf-p256-reading-modified", "bad-signature"),
                                           ("ocmf-derived-rv-one-digit", "bad-signature"),
                                           ("ocmf-derived-json-reserialized", "bad-signature"),
                                           ("ocmf-secp256k1-sig-with-p256-key", "key-mismatch")])
def test_invalid_vectors_fail_for_their_reason(case_id, code):
    case = BY_ID[case_id]
    assert verdict(case["transmitted"].encode(), *case_key(case)) == ("invalid", code)


def test_a_signature_is_never_checked_with_another_key_curve():
    """The secp256k1 signature in the 'second key' case is genuine under the transaction's begin
    key; only the P-256 key it travels with is refused."""
    case = BY_ID["ocmf-secp256k1-sig-with-p256-key"]
    assert ocmf.parse(case["transmitted"].encode()).curve == "secp256k1"


PARSEABLE = [c for c in CASES if c["id"] != "ocmf-p192-nonminimal-der"]

#: Each RI spelling in the vectors and its canonical OBIS, written out by hand.
CANONICAL = {"1-0:1.8.0": "1-0:1.8.0", "1-0:2.8.0": "1-0:2.8.0", "1-0:1.8.1": "1-0:1.8.1",
             "1-b:1.8.0": "1-b:1.8.0", "1-b:1.8.e": "1-b:1.8.e", "01-00:01.08.00.FF": "1-0:1.8.0",
             "1-0:1.8.0*198": "1-0:1.8.0*198", "1-0:98.8.0.FF": "1-0:98.8.0", "1-0:2.8.0.FF": "1-0:2.8.0"}


def _tm_seconds(tm: str) -> int:
    """TM in unix seconds through the standard library's own parser (independent of ocmf.py)."""
    stamp = datetime.datetime.strptime(tm[:19] + tm[23:28], "%Y-%m-%dT%H:%M:%S%z")
    return int(stamp.timestamp())


@pytest.mark.parametrize("case", PARSEABLE, ids=[c["id"] for c in PARSEABLE])
def test_signed_bytes_meter_and_readings_are_the_vectors(case):
    record = ocmf.parse(case["transmitted"].encode())
    assert record.format == "ocmf"
    assert record.signed_data == case["signed_data"].encode("utf-8")
    assert record.signed_data.hex() == case["signed_data_hex"]
    assert record.signature == (int(case["signature_r_hex"], 16), int(case["signature_s_hex"], 16))
    assert record.curve == case["curve"]
    assert record.hash == "sha256"
    meter = case["meter"]
    assert record.meter_id == meter["MS"]
    assert record.fields["PG"] == meter["PG"] and record.counter == int(meter["PG"][1:])
    for name in ("GI", "GS", "GV", "MV", "MM", "MF"):
        if name in meter:
            assert record.fields[name] == meter[name]
    assert len(record.readings) == len(case["readings"])
    time, label = None, ""
    for got, want in zip(record.readings, case["readings"]):
        value = decimal.Decimal(str(want["register_value_RV"]).strip())
        sign, digits, exponent = value.as_tuple()
        mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
        assert (got.mantissa, got.exponent) == (mantissa, exponent)
        assert got.unit == want["unit_RU"]
        assert got.obis == CANONICAL[want["obis_RI"]]
        if want.get("timestamp_TM"):
            time, label = _tm_seconds(want["timestamp_TM"]), want.get("type_TX") or ""
        assert (got.time, got.label) == (time, label)
    assert record.time == max(r.time for r in record.readings)


def test_a_reading_without_time_belongs_to_the_one_before():
    record = ocmf.parse(BY_ID["ocmf-p256-lem-import-export"]["transmitted"].encode())
    begin_import, begin_export, end_import, end_export = record.readings
    assert (begin_export.obis, begin_export.time, begin_export.label) == ("1-0:2.8.0", begin_import.time, "B")
    assert (end_export.time, end_export.label) == (end_import.time, "E")
    assert end_import.time - begin_import.time == 77


def test_status_letters_and_other_reading_fields_are_kept_for_display():
    record = ocmf.parse(BY_ID["ocmf-p256-lem-import-export"]["transmitted"].encode())
    assert record.readings[0].status is None
    assert record.fields["RD[0].ST"] == "G"
    assert record.fields["RD[0].UC"] == '{"UN":"No_Comp","UI":2,"UR":0}'
    assert record.fields["RD[0].TM"] == "2021-10-06T13:13:56,000+0200 R"
    assert record.fields["IF"] == '["RFID_RELATED","OCPP_AUTH_TLS","ISO15118_NONE","PLMN_NONE"]'
    assert record.fields["IS"] == "true"
    sd_base64 = ocmf.parse(BY_ID["ocmf-p256-sd-base64"]["transmitted"].encode())
    assert sd_base64.fields["FV"] == "1.0" and sd_base64.fields["SE"] == "base64"


def test_the_isabellenhuette_raw_signature_is_read_as_r_and_s():
    record = ocmf.parse(BY_ID["ocmf-p256-raw-rs-raw-key"]["transmitted"].encode())
    assert record.fields["signature-encoding"] == "raw-rs"
    assert record.readings[0].obis == "1-b:1.8.e" and record.readings[1].label == "C"


# --- records of our own, signed here ----------------------------------------------------------

P256 = ec.derive_private_key(0x6F636D66, ec.SECP256R1())       # test keys only
P384 = ec.derive_private_key(0x6F636D66, ec.SECP384R1())
PAYLOAD = ('{"FV":"1.0","GI":"gridchain test","GS":"1","GV":"1","PG":"T7","MV":"test","MS":"GC-0001",'
           '"IS":false,"RD":[{"TM":"2024-03-31T01:59:59,999+0100 S","TX":"B","RV":"12.345","RI":"1-0:1.8.0",'
           '"RU":"kWh","ST":"G"},{"RV":0.5,"RI":"1-0:2.8.0","RU":"kWh","ST":3}]}')


def signed(payload: str, key=P256, *, sa: str | None = "ECDSA-secp256r1-SHA256", digest=hashes.SHA256,
           encoding: str = "der", extra: str = "") -> bytes:
    """An OCMF record over `payload` signed by `key` (DER hex, or raw r||s hex, or DER base64)."""
    der = key.sign(payload.encode(), ec.ECDSA(digest()))
    if encoding == "raw":
        width = key.curve.key_size // 8
        r, s = utils.decode_dss_signature(der)
        sd = f'"SD":"{(r.to_bytes(width, "big") + s.to_bytes(width, "big")).hex()}"'
    elif encoding == "base64":
        sd = f'"SD":"{base64.b64encode(der).decode()}","SE":"base64"'
    else:
        sd = f'"SD":"{der.hex().upper()}"'
    sa_field = f'"SA":"{sa}",' if sa is not None else ""
    return f"OCMF|{payload}|{{{sa_field}{sd}{extra}}}".encode()


def key_of(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_our_own_record_parses_exactly():
    record = ocmf.parse(signed(PAYLOAD))
    assert verdict(signed(PAYLOAD), key_of(P256), None) == ("valid", "")
    assert record.counter == 7 and record.meter_id == "GC-0001"
    first, second = record.readings
    assert (first.mantissa, first.exponent, first.unit, first.label) == (12345, -3, "kWh", "B")
    # 01:59:59 at UTC+1 is 00:59:59 UTC; the milliseconds are dropped, never rounded up
    assert first.time == int(datetime.datetime(2024, 3, 31, 0, 59, 59, tzinfo=datetime.UTC).timestamp())
    assert (second.mantissa, second.exponent, second.status, second.time) == (5, -1, 3, first.time)


@pytest.mark.parametrize("encoding", ["der", "raw", "base64"])
def test_signature_encodings_verify(encoding):
    assert verdict(signed(PAYLOAD, encoding=encoding), key_of(P256), None) == ("valid", "")


def test_sha384_is_taken_when_sa_says_so():
    raw = signed(PAYLOAD, P384, sa="ECDSA-secp384r1-SHA384", digest=hashes.SHA384)
    assert ocmf.parse(raw).hash == "sha384"
    assert verdict(raw, key_of(P384), None) == ("valid", "")
    lying = signed(PAYLOAD, P384, sa="ECDSA-secp384r1-SHA256", digest=hashes.SHA384)
    assert verdict(lying, key_of(P384), None) == ("invalid", "bad-signature")


def test_the_default_algorithm_is_p256_sha256():
    record = ocmf.parse(signed(PAYLOAD, sa=None))
    assert (record.curve, record.hash) == ("secp256r1", "sha256")


def test_surrounding_whitespace_is_stripped_but_nothing_inside():
    raw = signed(PAYLOAD)
    assert ocmf.parse(b"\r\n  " + raw + b"\n\t").signed_data == PAYLOAD.encode()
    spaced = raw.replace(b"OCMF|{", b"OCMF| {", 1)
    assert ocmf.parse(spaced).signed_data == b" " + PAYLOAD.encode()
    assert verdict(spaced, key_of(P256), None) == ("invalid", "bad-signature")


def test_a_record_above_the_size_limit_is_refused_first():
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(b"\xff" * (MAX_RECORD_BYTES + 1))
    assert e.value.code == "too-large"
    padded = signed(PAYLOAD.replace('"GS":"1"', '"GS":"' + "x" * MAX_RECORD_BYTES + '"'))
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(padded)
    assert e.value.code == "too-large"


def _payload_refused(payload: str) -> str:
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(signed(payload))
    return e.value.code


@pytest.mark.parametrize("payload", [
    PAYLOAD.replace('"MS":"GC-0001"', '"MS":"GC-0001","MS":"GC-0002"'),          # duplicate key
    PAYLOAD.replace('"RV":0.5', '"RV":NaN'),
    PAYLOAD.replace('"RV":0.5', '"RV":Infinity'),
    PAYLOAD.replace('"RV":0.5', '"RV":-Infinity'),
    PAYLOAD.replace('"RV":0.5', '"RV":5e-1'),                                      # exponent
    PAYLOAD.replace('"RV":0.5', '"RV":"5E-1"'),
    PAYLOAD.replace('"RV":0.5', '"RV":"+0.5"'),
    PAYLOAD.replace('"RV":0.5', '"RV":"0,5"'),
    PAYLOAD.replace('"RV":0.5', '"RV":".5"'),
    PAYLOAD.replace('"RV":0.5', '"RV":""'),
    PAYLOAD.replace('"RV":0.5', '"RV":true'),
    PAYLOAD.replace('"RV":0.5', '"RV":"' + "9" * 31 + '"'),
    PAYLOAD.replace('"RV":0.5', '"RV":"\u0661"'),                                  # an Arabic-Indic one
    PAYLOAD.replace('"GS":"1"', '"GS":"\\ud800"'),                                 # lone surrogate
    PAYLOAD.replace('"IS":false', '"IS":[' * 9 + ']' * 9),                         # too deep
    PAYLOAD.replace('"MS":"GC-0001",', ''),
    PAYLOAD.replace('"MS":"GC-0001"', '"MS":1'),
    PAYLOAD.replace('"PG":"T7"', '"PG":"7"'),
    PAYLOAD.replace('"PG":"T7"', '"PG":"X7"'),
    PAYLOAD.replace('"PG":"T7",', ''),
    PAYLOAD.replace('"TM":"2024-03-31T01:59:59,999+0100 S",', ''),                 # first reading without time
    PAYLOAD.replace("+0100 S", "+0100"),                                           # no sync state
    PAYLOAD.replace("+0100 S", "+01:00 S"),
    PAYLOAD.replace("+0100 S", "Z S"),
    PAYLOAD.replace("2024-03-31", "2023-02-29"),
    PAYLOAD.replace("01:59:59", "24:00:00"),
    PAYLOAD.replace("01:59:59", "01:59:60"),
    PAYLOAD.replace(',999+', '+'),
    PAYLOAD.replace('"RI":"1-0:2.8.0",', ''),
    PAYLOAD.replace('"RI":"1-0:2.8.0"', '"RI":"1-0:2.8"'),
    PAYLOAD.replace('"RU":"kWh","ST":3', '"RU":"","ST":3'),
    PAYLOAD.replace('"RD":[', '"RD":[1,'),
    PAYLOAD.replace('"RD":[{', '"RX":[{'),
    '[' + PAYLOAD + ']',
    PAYLOAD + ' x',
])
def test_malformed_payloads_are_refused(payload):
    assert _payload_refused(payload) == "malformed"


@pytest.mark.parametrize("raw", [
    b"", b"OCMF", b"OCMF|{}", b"ocmf|{}|{}", b"\xef\xbb\xbfOCMF|{}|{}",
    b"OCMF|\xff|{}", b"OCMF|{}|{}|{}", b"OCMF|{\"MS\":\"a|b\"}|{}",
])
def test_malformed_frames_are_refused(raw):
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(raw)
    assert e.value.code == "malformed"


def test_a_str_instead_of_bytes_is_refused():
    with pytest.raises(MeterRecordError):
        ocmf.parse(signed(PAYLOAD).decode())   # type: ignore[arg-type]


@pytest.mark.parametrize("sa, code", [("ECDSA-secp192k1-SHA256", "curve-not-allowed"),
                                      ("ECDSA-secp521r1-SHA256", "curve-not-allowed"),
                                      ("RSA-secp256r1-SHA256", "unsupported"),
                                      ("ECDSA-secp256r1-SHA512", "unsupported"),
                                      ("ECDSA-secp256r1", "unsupported")])
def test_algorithms_outside_the_scheme_are_refused(sa, code):
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(signed(PAYLOAD, sa=sa))
    assert e.value.code == code


@pytest.mark.parametrize("mutate, code", [
    (lambda r: r.replace(b'"SD":"30', b'"SD":"30 ', 1), "bad-signature-encoding"),   # space in hex
    (lambda r: r.replace(b'"SD":"30', b'"SD":"3', 1), "bad-signature-encoding"),     # odd length
    (lambda r: r.replace(b'"SD":"30', b'"SD":"3000', 1), "bad-signature-encoding"),  # neither DER nor r||s
    (lambda r: r.replace(b'"SD"', b'"SE":"HEX","SD"', 1), "unsupported"),
    (lambda r: r.replace(b'"SD"', b'"SM":"application/octet-stream","SD"', 1), "unsupported"),
    (lambda r: r.replace(b'"SD":"', b'"SD":1,"X":"', 1), "malformed"),
])
def test_signature_sections_are_read_strictly(mutate, code):
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(mutate(signed(PAYLOAD)))
    assert e.value.code == code


def test_base64_must_be_canonical():
    raw = signed(PAYLOAD, encoding="base64")
    sd = raw.split(b'"SD":"')[1].split(b'"')[0]
    for bad in (sd[:-1], sd + b"==", b" " + sd, sd + b"\\n", sd.replace(b"+", b"-").replace(b"/", b"_") + b"-"):
        with pytest.raises(MeterRecordError) as e:
            ocmf.parse(raw.replace(sd, bad))
        assert e.value.code == "bad-signature-encoding"


def test_base64_with_stray_bits_before_its_padding_is_refused():
    """'...Q=' and '...R=' decode to the same bytes; only the canonical one is taken."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    raw = next(r for r in (signed(PAYLOAD, encoding="base64") for _ in range(200)) if b'="' in r)
    sd = raw.split(b'"SD":"')[1].split(b'"')[0]
    last = sd.rstrip(b"=")[-1]
    stray = sd.rstrip(b"=")[:-1] + bytes([alphabet[alphabet.index(last) ^ 1]]) + sd[len(sd.rstrip(b"=")):]
    assert base64.b64decode(stray) == base64.b64decode(sd)
    assert ocmf.parse(raw).signature
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(raw.replace(sd, stray))
    assert e.value.code == "bad-signature-encoding"


def test_raw_signatures_only_at_the_curves_exact_width():
    raw = signed(PAYLOAD, encoding="raw")
    sd = raw.split(b'"SD":"')[1].split(b'"')[0]
    for bad in (sd[:-2], sd + b"00"):
        with pytest.raises(MeterRecordError) as e:
            ocmf.parse(raw.replace(sd, bad))
        assert e.value.code == "bad-signature-encoding"


def test_r_or_s_out_of_range_is_a_bad_encoding():
    n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
    for r, s in ((n, 1), (1, n), (0, 1)):
        sd = (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()
        with pytest.raises(MeterRecordError) as e:
            ocmf.parse(f'OCMF|{PAYLOAD}|{{"SD":"{sd}"}}'.encode())
        assert e.value.code == "bad-signature-encoding"


def test_der_with_a_padded_integer_is_refused_even_at_raw_width():
    """64 bytes shaped like DER (r with a superfluous 0x00) are judged as DER only, never re-read as
    r||s."""
    shaped = bytes([0x30, 62, 0x02, 29, 0x00]) + b"\x11" * 28 + bytes([0x02, 29, 0x00]) + b"\x22" * 28
    assert len(shaped) == 64 and ocmf._der_shaped(shaped)
    with pytest.raises(MeterRecordError) as e:
        ocmf.parse(f'OCMF|{PAYLOAD}|{{"SD":"{shaped.hex()}"}}'.encode())
    assert e.value.code == "bad-signature-encoding"


@pytest.mark.parametrize("text, want", [
    ("1-0:1.8.0", "1-0:1.8.0"), ("01-00:01.08.00.FF", "1-0:1.8.0"), ("1-0:1.8.0*255", "1-0:1.8.0"),
    ("1-0:1.8.0.255", "1-0:1.8.0"), ("1-0:1.8.0*ff", "1-0:1.8.0"), ("1-0:1.8.0*198", "1-0:1.8.0*198"),
    ("1-0:1.8.0.01", "1-0:1.8.0*1"), ("1-b:1.8.e", "1-b:1.8.e"), ("001-000:098.008.000", "1-0:98.8.0"),
])
def test_obis_spellings_become_canonical(text, want):
    assert ocmf.canonical_obis(text) == want


@pytest.mark.parametrize("text", ["1-0:1.8", "1.8.0", "1-e:1.8.0", "1-0:1.8.b", "1-B:1.8.0",
                                  "1-0:256.8.0", "1-0:1.8.0*256", "1-0:1.8.0.FE", "1-0:1.8.0*", "1-0:1.8.0 ",
                                  "1-0:1.8.0:1", "1-0:1\u0660.8.0", "1-0:1.8.0000"])
def test_obis_spellings_that_are_not_obis_are_refused(text):
    with pytest.raises(MeterRecordError) as e:
        ocmf.canonical_obis(text)
    assert e.value.code == "malformed"


@pytest.mark.parametrize("value, want", [
    (ocmf.JsonNumber("57.584"), (57584, -3)), ("       9.038", (9038, -3)), ("00000000.000", (0, -3)),
    (ocmf.JsonNumber("0"), (0, 0)), ("1.0", (10, -1)), (ocmf.JsonNumber("-0.25"), (-25, -2)),
    (ocmf.JsonNumber("18446744073709551615"), (18446744073709551615, 0)),
])
def test_register_values_are_exact(value, want):
    assert ocmf.decimal_value(value) == want


@pytest.mark.parametrize("tm, want", [
    ("2021-10-26T10:20:52,000+0200 I", datetime.datetime(2021, 10, 26, 8, 20, 52, tzinfo=datetime.UTC)),
    ("2021-10-26T10:20:52.999-0130 U", datetime.datetime(2021, 10, 26, 11, 50, 52, tzinfo=datetime.UTC)),
    ("2024-02-29T00:00:00,000+0000 S", datetime.datetime(2024, 2, 29, tzinfo=datetime.UTC)),
    ("1970-01-01T01:00:00,000+0100 R", datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)),
])
def test_times_are_read_exactly_with_their_own_offset(tm, want):
    assert ocmf.unix_time(tm) == int(want.timestamp())


# --- fuzz --------------------------------------------------------------------------------------

OWN = [signed(PAYLOAD), signed(PAYLOAD, encoding="base64"), signed(PAYLOAD, encoding="raw"),
       signed(PAYLOAD, P384, sa="ECDSA-secp384r1-SHA384", digest=hashes.SHA384)]
VALID = [c["transmitted"].encode() for c in CASES if c["expected_verdict"] == "valid"] + OWN
KEYS = {c["transmitted"].encode(): case_key(c) for c in CASES}
KEYS.update({OWN[0]: (key_of(P256), None), OWN[1]: (key_of(P256), None), OWN[2]: (key_of(P256), None),
             OWN[3]: (key_of(P384), None)})
#: Bytes that matter to the format: JSON syntax, digits, separators, escapes, non-ASCII.
TOKENS = [b'"', b"{", b"}", b"[", b"]", b":", b",", b"|", b"\\", b"\\u", b"e", b"E", b".", b"-", b"+", b"0",
          b"9", b" ", b"\n", b"NaN", b"1e999", b"null", b"\xff", b"\xc3\xa9", b"\x00", b"T", b"*", b"FF"]


@st.composite
def mutated_records(draw):
    original = draw(st.sampled_from(VALID))
    return original, mutate(draw, original, tokens=TOKENS)


@settings(max_examples=600, deadline=None)
@given(mutated_records())
def test_parse_and_verify_of_mutated_records_only_raise_meter_record_errors(case):
    original, raw = case
    key_bytes, curve = KEYS[original]
    try:
        record = ocmf.parse(raw)
        verify_record(record, load_public_key(key_bytes, curve))
    except MeterRecordError as e:
        assert e.code and str(e)

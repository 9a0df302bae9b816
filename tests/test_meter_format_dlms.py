"""DLMS/COSEM general-signing (primitives.meter_formats.dlms): our own vectors (tests/vectors/dlms,
made with our own test keys) get their expected verdicts and read as stated, the vector file is what
its generator builds from the stored signatures, the push layout and COSEM date-time are read
strictly, and mutated APDUs only ever raise MeterRecordError."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives.meter_formats import dlms
from primitives.meter_formats.ecdsa import _CURVE_CLASSES, CURVE_ORDERS, load_public_key, verify_record
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecordError
from tests.meter_vectors import load_module
from tests.mutations import mutate

HERE = Path(__file__).resolve().parent / "vectors" / "dlms"


GEN = load_module(HERE / "make_vectors.py", "make_dlms_vectors")
DOCUMENT = json.loads((HERE / "vectors.json").read_text(encoding="utf-8"))
CASES = DOCUMENT["cases"]
BY_ID = {c["id"]: c for c in CASES}


def key_bytes(name: str) -> bytes:
    return bytes.fromhex(DOCUMENT["keys"][name]["public_key_der_hex"])


def verdict(raw: bytes, suite: int | None, key_name: str) -> tuple[str, str | None]:
    try:
        verify_record(dlms.parse(raw, suite), load_public_key(key_bytes(key_name)))
    except MeterRecordError as e:
        return "invalid", e.code
    return "valid", None


# --- the vector file ---------------------------------------------------------------------------

def test_the_vector_file_is_what_the_generator_builds_from_the_stored_signatures():
    assert GEN.dump(GEN.build(GEN.stored_signatures())) == (HERE / "vectors.json").read_text(encoding="utf-8")


def test_the_published_test_keys_derive_from_their_labels():
    for name in GEN.KEYS:
        pem = (HERE / DOCUMENT["keys"][name]["private_key_file"]).read_bytes()
        assert pem == GEN.private_key_pem(name)
        key = serialization.load_pem_private_key(pem, None)
        assert key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == key_bytes(name)


def test_every_stored_signature_verifies_over_its_message_with_cryptography_alone():
    for name, entry in DOCUMENT["signatures"].items():
        key = serialization.load_der_public_key(key_bytes(entry["key"]))
        width = key.curve.key_size // 8
        sig = bytes.fromhex(entry["signature_hex"])
        digest = hashes.SHA256() if width == 32 else hashes.SHA384()
        der = utils.encode_dss_signature(int.from_bytes(sig[:width], "big"), int.from_bytes(sig[width:], "big"))
        key.verify(der, bytes.fromhex(entry["message_hex"]), ec.ECDSA(digest))


def test_the_vectors_cover_the_negative_cases_the_readme_asks_for():
    ids = set(BY_ID)
    for wanted in ("dlms-content-byte-flipped", "dlms-signed-by-another-key", "dlms-signature-63-bytes",
                   "dlms-signature-65-bytes", "dlms-r-zero", "dlms-s-zero", "dlms-r-equals-n",
                   "dlms-trailing-byte", "dlms-wrong-axdr-length", "dlms-content-length-one-more",
                   "dlms-suite2-signature-to-suite1-meter"):
        assert wanted in ids
    assert {c["expected_verdict"] for c in CASES} == {"valid", "invalid"}


# --- verdicts and readings ---------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_dlms_vector_gets_its_expected_verdict_and_error(case):
    got = verdict(bytes.fromhex(case["apdu_hex"]), case["suite"], case["public_key"])
    assert got == (case["expected_verdict"], case["expected_error"])


VALID = [c for c in CASES if c["expected_verdict"] == "valid"]


@pytest.mark.parametrize("case", VALID, ids=[c["id"] for c in VALID])
def test_valid_vectors_read_as_stated(case):
    record = dlms.parse(bytes.fromhex(case["apdu_hex"]), case["suite"])
    suite = case["suite"] or 1
    assert record.format == "dlms-general-signing"
    assert (record.curve, record.hash) == {1: ("secp256r1", "sha256"), 2: ("secp384r1", "sha384")}[suite]
    assert record.fields["suite"] == str(suite)
    assert record.signed_data.hex() == case["signed_data_hex"]
    assert (record.meter_id, record.counter, record.time) == (case["meter_id"], case["counter"], case["time"])
    assert [{"obis": r.obis, "mantissa": r.mantissa, "exponent": r.exponent, "unit": r.unit, "time": r.time,
             "status": r.status} for r in record.readings] == case["readings"]


def test_the_signed_bytes_leave_out_the_tag_and_the_content_length():
    raw = bytes.fromhex(BY_ID["dlms-suite1-twelve-registers"]["apdu_hex"])
    record = dlms.parse(raw)
    content_length_at = 1 + 5 + 8                                    # tag, four empty fields + title
    assert raw[content_length_at] == 0x82
    content = raw[content_length_at + 3:-65]                         # signature: 40 + 64 bytes
    assert record.signed_data == raw[1:content_length_at] + content
    assert dlms.parse(bytes.fromhex(BY_ID["dlms-suite2-p384-six-registers"]["apdu_hex"])).fields[
        "long-invoke-id-and-priority"] == "c0abcdef"


def test_the_capture_time_is_local_time_plus_the_deviation():
    record = dlms.parse(bytes.fromhex(BY_ID["dlms-suite1-p256-import-export"]["apdu_hex"]))
    # 14:15 local with deviation -120 (CEST) is 12:15 UTC; clock status 0x80: daylight saving active
    assert record.time == int(datetime.datetime(2024, 6, 1, 12, 15, tzinfo=datetime.UTC).timestamp())
    assert record.readings[0].status == 0x80
    record = dlms.parse(bytes.fromhex(BY_ID["dlms-suite2-p384-six-registers"]["apdu_hex"]))
    assert record.time == int(datetime.datetime(2025, 1, 1, 0, 45, tzinfo=datetime.UTC).timestamp())
    assert record.readings[0].status is None                         # clock status FF: not specified
    assert [r.obis for r in record.readings][3] == "1-0:1.8.0*101"


def test_the_readme_example_with_a_bare_value_body_is_not_our_push():
    key = GEN.derive_test_key("suite1-p256")
    head = GEN.header(originator=bytes.fromhex("4d4d4d0000bc614e"))[1]
    content = bytes.fromhex("0f" "00000001" "00" "0600003039")
    r, s = utils.decode_dss_signature(key.sign(head + content, ec.ECDSA(hashes.SHA256())))
    raw = GEN.apdu(head, content, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    with pytest.raises(MeterRecordError) as e:
        dlms.parse(raw, 1)
    assert e.value.code == "unsupported"


# --- strict reading, parse only (a dummy signature in range) -----------------------------------

SIG = b"\x01" * 64
HEAD = GEN.header(originator=b"GRD" + bytes(4) + b"\x01")[1]
CAPTURE = GEN.cosem_datetime(2024, 6, 1, 14, 15, 0, deviation=-120, status=0)
IMPORT = GEN.register((1, 0, 1, 8, 0, 255), 100, "long64-unsigned", 0, 30)


def push(body: bytes | None = None, *, liip: int = 1, head: bytes = HEAD, notification_time: bytes = b"",
         sig: bytes = SIG) -> bytes:
    body = GEN.push_body(CAPTURE, [IMPORT]) if body is None else body
    return GEN.apdu(head, GEN.data_notification(liip, body, notification_time), sig)


def refused(raw: object, suite: int | None = None) -> str:
    with pytest.raises(MeterRecordError) as e:
        dlms.parse(raw, suite)  # type: ignore[arg-type]
    return e.value.code


def test_a_minimal_push_parses():
    record = dlms.parse(bytearray(push()))
    assert record.readings[0].obis == "1-0:1.8.0" and record.counter == 1


def struct(*items: bytes) -> bytes:
    return bytes([0x02, len(items)]) + b"".join(items)


@pytest.mark.parametrize("body, code", [
    (GEN.push_body(CAPTURE, []), "unsupported"),                                            # no registers
    (GEN.push_body(CAPTURE, [GEN.register((1, 0, c, 8, 0, 255), 1, "unsigned", 0, 30) for c in range(33)]),
     "unsupported"),                                                                        # 33 registers
    (GEN.push_body(CAPTURE, [IMPORT, IMPORT]), "integrity"),                                # same OBIS twice
    (GEN.push_body(CAPTURE, [GEN.register((1, 0, 32, 7, 0, 255), 230, "long-unsigned", 0, 35)]),
     "unsupported"),                                                                        # volts
    (GEN.push_body(CAPTURE, [IMPORT.replace(b"\x15\x00", b"\x14\x00", 1)]), "unsupported"),  # long64 (signed)
    (GEN.push_body(CAPTURE, [IMPORT.replace(b"\x16\x1e", b"\x11\x1e")]), "unsupported"),    # unit not an enum
    (GEN.push_body(CAPTURE, [IMPORT.replace(b"\x09\x06\x01", b"\x09\x05\x01")[:-1]]), "unsupported"),
    (struct(b"\x09\x0c" + CAPTURE), "unsupported"),                                         # no registers field
    (bytes([0x02, 0x02, 0x09, 0x0B]) + CAPTURE[:11] + b"\x01\x01" + IMPORT, "unsupported"),  # 11-byte time
    (bytes([0x01, 0x02, 0x09, 0x0C]) + CAPTURE + b"\x01\x01" + IMPORT, "unsupported"),      # array, not structure
    (b"\x06\x00\x00\x30\x39", "unsupported"),
    (b"\x05\x00\x00\x30\x39", "unsupported"),                                               # double-long
    (b"\x17\x00\x00\x00\x00", "unsupported"),                                               # float32
    (b"\x00", "unsupported"),                                                               # null-data
    (b"\x02" * 5 + b"\x01" * 5 + b"\x00", "malformed"),                                     # too deep
    (b"\x02\x01" * 3000, "malformed"),
    (b"\x01\x81\xff\x11\x00", "malformed"),                                                 # count > bytes
    (GEN.push_body(CAPTURE, [IMPORT])[:-1], "malformed"),                                   # truncated
    (GEN.push_body(CAPTURE, [IMPORT]) + b"\x00", "malformed"),                              # bytes after body
    (GEN.push_body(CAPTURE, [IMPORT]).replace(b"\x01\x01", b"\x01\x81\x01", 1), "malformed"),  # long count
])
def test_bodies_outside_the_layout_are_refused(body, code):
    assert refused(push(body)) == code


def _capture(**change: int) -> bytes:
    fields = dict(y=2024, mo=6, d=1, dow=6, h=14, mi=15, s=0, hs=0, dev=-120, st=0)
    fields.update(change)
    return (fields["y"].to_bytes(2, "big") + bytes([fields[k] for k in ("mo", "d", "dow", "h", "mi", "s", "hs")])
            + fields["dev"].to_bytes(2, "big", signed=True) + bytes([fields["st"]]))


@pytest.mark.parametrize("change, code", [
    ({"y": 0xFFFF}, "unsupported"), ({"mo": 0xFF}, "unsupported"), ({"mo": 0xFE}, "unsupported"),
    ({"d": 0xFD}, "unsupported"), ({"h": 0xFF}, "unsupported"), ({"dev": -0x8000}, "unsupported"),
    ({"mo": 2, "d": 30}, "malformed"), ({"mo": 13}, "malformed"), ({"d": 0}, "malformed"),
    ({"dow": 1}, "malformed"), ({"dow": 0}, "malformed"), ({"h": 24}, "malformed"), ({"mi": 60}, "malformed"),
    ({"s": 60}, "malformed"), ({"hs": 100}, "malformed"), ({"dev": 721}, "malformed"), ({"dev": -721}, "malformed"),
])
def test_capture_times_are_fully_specified_cosem_date_times(change, code):
    assert refused(push(GEN.push_body(_capture(**change), [IMPORT]))) == code


@pytest.mark.parametrize("change, want", [
    ({}, datetime.datetime(2024, 6, 1, 12, 15)), ({"dow": 0xFF, "hs": 0xFF}, datetime.datetime(2024, 6, 1, 12, 15)),
    ({"hs": 99, "s": 59}, datetime.datetime(2024, 6, 1, 12, 15, 59)),
    ({"dev": 0}, datetime.datetime(2024, 6, 1, 14, 15)),
    ({"dev": 720}, datetime.datetime(2024, 6, 2, 2, 15)), ({"dev": -720}, datetime.datetime(2024, 6, 1, 2, 15)),
    ({"y": 2024, "mo": 2, "d": 29, "dow": 4}, datetime.datetime(2024, 2, 29, 12, 15)),
])
def test_capture_times_read_exactly(change, want):
    seconds, status = dlms.cosem_time(_capture(**change))
    assert seconds == int(want.replace(tzinfo=datetime.UTC).timestamp()) and status == 0


@pytest.mark.parametrize("raw", [
    b"", b"\xdf", b"\x0f" + push()[1:], push(head=GEN.header(originator=b"GRD0001")[1]),
    push(head=GEN.header(originator=b"GRD00001", recipient=b"GRD1")[1]),
    push(head=GEN.header(originator=b"GRD00001", date_time=CAPTURE[:5])[1]),
    push(liip=0x01000001), push(notification_time=CAPTURE[:11]),
    push()[:-1], push() + b"\x00",
    push().replace(bytes([0x00, 0x08]) + b"GRD", bytes([0x00, 0x82, 0x00, 0x08]) + b"GRD", 1),
    push().replace(bytes([0x00, 0x08]) + b"GRD", bytes([0x00, 0x83, 0x00, 0x00, 0x08]) + b"GRD", 1),
    push().replace(bytes([0x00, 0x08]) + b"GRD", bytes([0x00, 0x80]) + b"GRD", 1),
])
def test_apdus_that_do_not_frame_are_malformed(raw):
    assert refused(raw) == "malformed"


def test_priority_and_service_class_bits_are_not_the_counter():
    assert dlms.parse(push(liip=0xF0FFFFFF)).counter == 0xFFFFFF


@pytest.mark.parametrize("suite", [0, 3, True, "1", [1], 1.0])
def test_only_suites_1_and_2_sign(suite):
    assert refused(push(), suite) == "unsupported"


@pytest.mark.parametrize("sig, suite", [(b"\x01" * 64, 2), (b"\x01" * 96, 1), (b"\x01" * 48, None),
                                        (b"", None), (b"\x01" * 128, None)])
def test_signature_lengths_must_be_the_suites(sig, suite):
    assert refused(push(sig=sig), suite) == "bad-signature-encoding"


def test_a_too_large_apdu_is_refused_before_anything_else():
    assert refused(b"\x00" * (MAX_RECORD_BYTES + 1)) == "too-large"
    big = push(head=GEN.header(originator=b"GRD00001", other=b"\x00" * MAX_RECORD_BYTES)[1])
    assert refused(big, 7) == "too-large"


def test_input_that_is_not_bytes_is_refused():
    assert refused(push().hex()) == "malformed"


def test_curve_orders_are_the_curves_own():
    """ecdsa.CURVE_ORDERS (the r, s range check) against OpenSSL: n-1 is a valid private scalar, n is not."""
    for curve, n in CURVE_ORDERS.items():
        ec.derive_private_key(n - 1, _CURVE_CLASSES[curve]())
        with pytest.raises(ValueError):
            ec.derive_private_key(n, _CURVE_CLASSES[curve]())


# --- fuzz --------------------------------------------------------------------------------------

ORIGINALS = [(bytes.fromhex(c["apdu_hex"]), c["public_key"]) for c in VALID] + [(push(), "suite1-p256")]


@st.composite
def mutated_apdus(draw):
    original, key = draw(st.sampled_from(ORIGINALS))
    # bytes that mean something to the format: a length form, a type tag, a limit
    tokens = [bytes([b]) for b in (0x00, 0x01, 0x02, 0x06, 0x09, 0x0C, 0x0F, 0x11, 0x12, 0x15, 0x16,
                                   0x1E, 0x40, 0x60, 0x7F, 0x80, 0x81, 0x82, 0x83, 0xDF, 0xFF)]
    return mutate(draw, original, tokens=tokens), key, draw(st.sampled_from([None, 1, 2]))


@settings(max_examples=600, deadline=None)
@given(mutated_apdus())
def test_parse_and_verify_of_mutated_apdus_only_raise_meter_record_errors(case):
    raw, key, suite = case
    try:
        verify_record(dlms.parse(raw, suite), load_public_key(key_bytes(key)))
    except MeterRecordError as e:
        assert e.code and str(e)

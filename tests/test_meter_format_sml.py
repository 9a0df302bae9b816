"""SML/EDL40 records (primitives.meter_formats.sml, .edl40): every public EDL40-over-SML,
signedMeterValue and ISA-EDL-40P vector gets its expected verdict, the same as the independent
reference verifier's, with the 320-byte block and readings the vector states; the meter's server id;
the EDL40 file encoder the test meters use; strict refusals with their codes; and fuzz tests that
mutated records (with and without CRCs recomputed) only ever raise MeterRecordError."""
from __future__ import annotations

import base64
import datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from primitives.meter_formats import edl40, sml
from tests.meter_vectors import load_cases, reference_verifier
from primitives.meter_formats.ecdsa import load_public_key, verify_record
from primitives.meter_formats.record import MAX_RECORD_BYTES, MeterRecord, MeterRecordError

FORMATS = ("edl40-sml", "edl40-signed-meter-value", "isa-edl40p-sml")
CASES = [c for c in load_cases()
         if c["format"] in FORMATS]
BY_ID = {c["id"]: c for c in CASES}
SML_CASES = [c for c in CASES if "transmitted_hex" in c]
XML_CASES = [c for c in CASES if c["format"] == "edl40-signed-meter-value"]
PARSED_CASES = [c for c in CASES if c["id"] != "isa-edl40p-data-fail"]   # the one refused at parse


REFERENCE = reference_verifier()


def raw_of(case: dict) -> bytes:
    return bytes.fromhex(case["transmitted_hex"]) if "transmitted_hex" in case else case["transmitted"].encode()


def parse_case(case: dict) -> MeterRecord:
    if case["format"] == "edl40-signed-meter-value":
        return sml.parse_signed_meter_value(raw_of(case))
    return sml.parse(raw_of(case))


def verdict_of(parse, raw: bytes, key: bytes) -> tuple[str, str]:
    """('valid', '') or ('invalid', error code) for a record under a raw X||Y key, as the runtime
    decides: parse strictly, read the key on the record's curve, check the signature."""
    try:
        record = parse(raw)
        verify_record(record, load_public_key(key, record.curve))
    except MeterRecordError as e:
        return "invalid", e.code
    return "valid", ""


def reference_verdict(case: dict) -> str:
    try:
        REFERENCE.DISPATCH[case["format"]](dict(case))
    except REFERENCE.Reject:
        return "invalid"
    return "valid"


def utc_seconds(iso: str) -> int:
    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def fix_crcs(payload: bytes) -> bytes:
    """`payload` with every message's CRC16 recomputed (the messages' structure must decode)."""
    out, pos = bytearray(), 0
    while pos < len(payload):
        start, pos = pos, pos + 1
        for _ in range(4):
            _, pos = sml.decode_node(payload, pos, 2)
        out += payload[start:pos] + b"\x63" + sml.crc16_x25(payload[start:pos]).to_bytes(2, "little") + b"\x00"
        pos += 4
    return bytes(out)


def unframe_ignoring_crc(raw: bytes) -> bytes:
    """The messages of a file whose transport CRC may be wrong (no escapes in these vectors)."""
    assert raw.count(sml.ESCAPE) == 2
    return raw[8:len(raw) - 8 - raw[-3]]


def with_messages(raw: bytes, change) -> bytes:
    """The file `raw` with its decoded messages passed through `change` and re-encoded, so every
    CRC is valid again."""
    messages = sml.read_messages(sml.unframe(raw))
    return sml.frame(b"".join(sml.encode_message(m) for m in change(messages)))


def change_entries(raw: bytes, change) -> bytes:
    """The file `raw` with its GetList.Res valList passed through `change`."""
    def on_messages(messages):
        m = messages[1]
        body = list(m.body)
        body[4] = tuple(change(list(body[4])))
        return [messages[0], sml.SmlMessage(m.transaction_id, m.group_no, m.abort_on_error, m.tag, tuple(body),
                                            m.tag_width), messages[2]]
    return with_messages(raw, on_messages)


def refused(parse, raw) -> str:
    with pytest.raises(MeterRecordError) as e:
        parse(raw)
    return e.value.code


# --- the public vectors ------------------------------------------------------------------------

def test_the_vector_set_holds_twelve_sml_and_xml_cases():
    assert [sum(c["format"] == f for c in CASES) for f in FORMATS] == [3, 2, 7]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_sml_vector_gets_its_expected_verdict_and_the_reference_verifiers(case):
    parse = sml.parse_signed_meter_value if case["format"] == "edl40-signed-meter-value" else sml.parse
    got, code = verdict_of(parse, raw_of(case), bytes.fromhex(case["public_key_hex"]))
    assert got == case["expected_verdict"], code
    assert reference_verdict(case) == got


@pytest.mark.parametrize("case", PARSED_CASES, ids=[c["id"] for c in PARSED_CASES])
def test_the_signed_data_is_the_vectors_320_byte_block(case):
    record = parse_case(case)
    assert record.signed_data.hex() == case["signed_data_hex"]
    assert len(record.signed_data) == edl40.BLOCK_BYTES
    r, s = record.signature
    width = {"secp192r1": 24, "secp256r1": 32}[case["curve"]]
    assert (r.to_bytes(width, "big") + s.to_bytes(width, "big")).hex() == case["signature_hex"]
    assert record.curve == case["curve"] and record.hash == "sha256"
    assert record.meter_id == case["meter"]["server_id_hex"]
    assert record.counter == case["meter"]["pagination"]


@pytest.mark.parametrize("case", [c for c in PARSED_CASES if c in SML_CASES],
                         ids=[c["id"] for c in PARSED_CASES if c in SML_CASES])
def test_sml_readings_are_the_vectors_with_utc_times(case):
    record = parse_case(case)
    assert record.format == {"edl40-sml": "sml-edl40", "isa-edl40p-sml": "isa-edl40p-sml"}[case["format"]]
    by_obis = {r["obis_hex"]: r for r in case["readings"]}
    order = ["0100011100ff"] if case["format"] == "edl40-sml" else ["0100010800ff", "010001080080"]
    assert len(record.readings) == len(order)
    for got, obis_hex in zip(record.readings, order):
        want = by_obis[obis_hex]
        # F is kept unless it is 255: the ISA start value 1-0:1.8.0*128 is not the actual 1-0:1.8.0
        code, _, f = want["obis"].partition("*")
        assert got.obis == (code if f in ("", "255") else want["obis"])
        assert (got.mantissa, got.exponent, got.unit) == (want["register_value_raw"], want["scaler"], want["unit"])
        assert got.time == utc_seconds(want["timestamp"]["utc"])
        signed_byte = case["meter"].get("status_byte_in_block_hex", "%x" % (int(want["status_raw_hex"], 16) & 0xFF))
        assert got.status == int(signed_byte if obis_hex == order[0] else want["status_raw_hex"][-2:], 16)
        assert got.label == case["meter"]["list_name_hex"]
    assert record.fields["status_word"] == str(int(by_obis[order[0]]["status_raw_hex"], 16))
    assert record.time == record.readings[0].time


def test_the_edl40_block_keeps_local_time_while_the_reading_is_utc():
    case = BY_ID["edl40-sml-emoc-p256-begin"]
    record = parse_case(case)
    stamp = case["readings"][0]["timestamp"]
    local = stamp["timestamp_raw"] + 60 * (stamp["local_offset_min"] + stamp["season_offset_min"])
    assert int.from_bytes(record.signed_data[10:14], "little") == local
    assert record.readings[0].time == stamp["timestamp_raw"] == local - 7200
    assert record.signed_data[14] == 0x88            # eMOC status word 0x80040104 mapped


@pytest.mark.parametrize("case", XML_CASES, ids=[c["id"] for c in XML_CASES])
def test_signed_meter_value_fields_come_from_the_block(case):
    record = parse_case(case)
    want = case["readings"][0]
    got = record.readings[0]
    assert record.format == "edl40-xml"
    assert (got.obis, got.mantissa, got.exponent, got.unit) == ("1-0:1.17.0", want["register_value_raw"],
                                                                want["scaler"], "Wh")
    assert got.time is None and record.time is None      # the block's time is local, its offset unknown
    assert record.fields["block_time_local"] == str(want["timestamp"]["block_timestamp_raw_le"])
    assert got.status == int(case["meter"]["status_byte_hex"], 16)
    assert record.fields["publicKey"] == case["public_key_hex"]
    assert record.fields["contract_id"] == case["meter"]["contract_id_hex"]
    assert record.fields["seconds_index"] == str(case["meter"]["seconds_index"])


def test_the_emoc_block_rebuilt_from_sml_is_the_xmls_encoded_meter_value():
    from_sml = parse_case(BY_ID["edl40-sml-emoc-p256-begin"])
    from_xml = parse_case(BY_ID["edl40-smv-emoc-p256-begin"])
    assert from_sml.signed_data == from_xml.signed_data
    assert from_sml.signature == from_xml.signature
    assert from_sml.meter_id == from_xml.meter_id and from_sml.counter == from_xml.counter
    assert from_sml.readings[0].mantissa == from_xml.readings[0].mantissa


def test_refusals_of_the_broken_vectors_name_the_rule():
    assert refused(sml.parse, raw_of(BY_ID["isa-edl40p-data-fail"])) == "integrity"
    assert verdict_of(sml.parse, raw_of(BY_ID["isa-edl40p-sign-fail"]),
                      bytes.fromhex(BY_ID["isa-edl40p-sign-fail"]["public_key_hex"])) == ("invalid", "bad-key")
    for cid in ("edl40-derived-value-changed", "isa-derived-value-changed"):
        case = BY_ID[cid]
        assert verdict_of(sml.parse, raw_of(case), bytes.fromhex(case["public_key_hex"])) == \
            ("invalid", "bad-signature")


def test_the_isa_data_fail_entry_name_is_refused_even_with_every_crc_recomputed():
    # the changed byte is an entry name outside the block: only the exact-name lookup still sees it
    raw = sml.frame(fix_crcs(unframe_ignoring_crc(raw_of(BY_ID["isa-edl40p-data-fail"]))))
    with pytest.raises(MeterRecordError, match="ESTH") as e:
        sml.parse(raw)
    assert e.value.code == "integrity"


def test_every_sml_vector_round_trips_through_the_message_encoder():
    for case in SML_CASES:
        if case["id"] == "isa-edl40p-data-fail":
            continue
        raw = raw_of(case)
        payload = sml.unframe(raw)
        assert b"".join(sml.encode_message(m) for m in sml.read_messages(payload)) == payload
        assert sml.frame(payload) == raw


# --- the meter's identity ----------------------------------------------------------------------

def test_a_record_matches_only_its_own_certified_server_id():
    record = parse_case(BY_ID["edl40-sml-p192"])
    for spelling in ("09014553591103956940", "09 01 45 53 59 11 03 95 69 40", "0x0901455359110395694 0",
                     "09014553591103956940".upper(), bytes.fromhex("09014553591103956940")):
        assert sml.matches_server_id(record, spelling)
    assert not sml.matches_server_id(record, BY_ID["edl40-sml-emoc-p256-begin"]["meter"]["server_id_hex"])
    with pytest.raises(MeterRecordError):
        sml.matches_server_id(record, "not hex")


def test_a_block_carrying_another_meters_server_id_is_that_meters_and_fails_this_ones_key():
    case = BY_ID["edl40-sml-p192"]
    other = bytes.fromhex(BY_ID["edl40-smv-p192-wirelane-begin"]["meter"]["server_id_hex"])

    def swap(messages):
        m = messages[1]
        body = list(m.body)
        body[1] = other
        return [messages[0], sml.SmlMessage(m.transaction_id, m.group_no, m.abort_on_error, m.tag, tuple(body),
                                            m.tag_width), messages[2]]
    record = sml.parse(with_messages(raw_of(case), swap))
    assert record.meter_id == other.hex()
    assert not sml.matches_server_id(record, case["meter"]["server_id_hex"])
    assert verdict_of(sml.parse, with_messages(raw_of(case), swap), bytes.fromhex(case["public_key_hex"])) == \
        ("invalid", "bad-signature")


# --- the EDL40 file encoder (the SML test meter's core) ------------------------------------------

SERVER_ID = bytes.fromhex("0a01475243000000002a")


def signer(curve: ec.EllipticCurve):
    """A test meter's key: sign(block) -> r||s, and its public key as raw X||Y."""
    key = ec.generate_private_key(curve)
    width = (curve.key_size + 7) // 8

    def sign(block: bytes) -> bytes:
        r, s = utils.decode_dss_signature(key.sign(block, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")
    numbers = key.public_key().public_numbers()
    return sign, numbers.x.to_bytes(width, "big") + numbers.y.to_bytes(width, "big")


@pytest.mark.parametrize("curve", [ec.SECP192R1(), ec.SECP256R1()], ids=["p192", "p256"])
def test_an_encoded_edl40_file_parses_and_verifies_here_and_in_the_reference(curve):
    sign, public = signer(curve)
    status = 0x80040104
    raw = sml.encode_edl40_file(SERVER_ID, 1234567, -1, 1_700_000_000, 60, 42, 98765, sign,
                                logbook=b"\x00\x81", curve=curve.name, contract_id=b"household-7", status=status)
    record = sml.parse(raw)
    verify_record(record, load_public_key(public, record.curve))
    assert (record.format, record.curve, record.meter_id, record.counter) == \
        ("sml-edl40", curve.name, SERVER_ID.hex(), 42)
    (reading,) = record.readings
    status_byte = 0x88 if curve.name == "secp256r1" else 0x04                 # eMOC mapping on P-256
    assert (reading.obis, reading.mantissa, reading.exponent, reading.unit, reading.time, reading.status) == \
        ("1-0:1.17.0", 1234567, -1, "Wh", 1_700_000_000, status_byte)
    block = record.signed_data
    assert int.from_bytes(block[10:14], "little") == 1_700_000_000 + 3600      # local time in the block
    assert block[14] == status_byte and record.fields["status_word"] == str(status)
    assert int.from_bytes(block[15:19], "little") == 98765 and block[39:41] == b"\x00\x81"
    assert block[41:52] == b"household-7"
    # the independent reference rebuilds the same block from the same file and verifies it
    case = {"transmitted_hex": raw.hex(), "signed_data_hex": block.hex(), "public_key_hex": public.hex(),
            "curve": curve.name}
    REFERENCE.verify_sml(case, REFERENCE.edl40_block)
    tampered = sml.encode_edl40_file(SERVER_ID, 1234568, -1, 1_700_000_000, 60, 42, 98765, lambda b: sign(block),
                                     logbook=b"\x00\x81", curve=curve.name, contract_id=b"household-7", status=status)
    assert verdict_of(sml.parse, tampered, public) == ("invalid", "bad-signature")
    with pytest.raises(REFERENCE.Reject):
        REFERENCE.verify_sml({**case, "transmitted_hex": tampered.hex(),
                              "signed_data_hex": sml.parse(tampered).signed_data.hex()}, REFERENCE.edl40_block)


def test_an_encoded_file_escapes_the_escape_sequence_in_its_data():
    sign, public = signer(ec.SECP256R1())
    raw = sml.encode_edl40_file(SERVER_ID, 7, 0, 1_700_000_000, 0, 1, 2, sign, contract_id=b"\x1b" * 9)
    assert sml.ESCAPE * 2 in raw
    record = sml.parse(raw)
    verify_record(record, load_public_key(public, "secp256r1"))
    assert record.fields["contract_id"] == "1b" * 9
    REFERENCE.verify_sml({"transmitted_hex": raw.hex(), "signed_data_hex": record.signed_data.hex(),
                          "public_key_hex": public.hex(), "curve": "secp256r1"}, REFERENCE.edl40_block)


def test_the_encoder_refuses_what_a_meter_could_not_send():
    sign, _ = signer(ec.SECP256R1())
    with pytest.raises(ValueError, match="r\\|\\|s"):
        sml.encode_edl40_file(SERVER_ID, 1, -1, 0, 0, 1, 1, lambda block: sign(block)[:-1])
    with pytest.raises(ValueError, match="secp384r1"):
        sml.encode_edl40_file(SERVER_ID, 1, -1, 0, 0, 1, 1, sign, curve="secp384r1")
    with pytest.raises(ValueError, match="10 bytes"):
        sml.encode_edl40_file(SERVER_ID[:9], 1, -1, 0, 0, 1, 1, sign)


# --- strict refusals ---------------------------------------------------------------------------

P192 = raw_of(BY_ID["edl40-sml-p192"])
ISA = raw_of(BY_ID["isa-edl40p-ok"])
WIRELANE = BY_ID["edl40-smv-p192-wirelane-begin"]["transmitted"]


def entry_named(entries: list, obis_hex: str) -> int:
    return next(k for k, e in enumerate(entries) if e[0] == bytes.fromhex(obis_hex))


def with_entry_field(raw: bytes, obis_hex: str, field: int, value) -> bytes:
    def change(entries):
        k = entry_named(entries, obis_hex)
        e = list(entries[k])
        e[field] = value
        entries[k] = tuple(e)
        return entries
    return change_entries(raw, change)


def with_get_list_field(raw: bytes, field: int, value) -> bytes:
    def change(messages):
        m = messages[1]
        body = list(m.body)
        body[field] = value
        return [messages[0], sml.SmlMessage(m.transaction_id, m.group_no, m.abort_on_error, m.tag, tuple(body),
                                            m.tag_width), messages[2]]
    return with_messages(raw, change)


def test_size_is_refused_first():
    assert refused(sml.parse, b"\x1b" * (MAX_RECORD_BYTES + 1)) == "too-large"
    assert refused(sml.parse_signed_meter_value, b"<" * (MAX_RECORD_BYTES + 1)) == "too-large"
    assert refused(sml.parse, P192.hex()) == "malformed"          # text is not an SML file


def test_transport_framing_is_strict():
    assert refused(sml.parse, P192[1:]) == "malformed"                       # no start sequence
    assert refused(sml.parse, P192 + b"\x00") == "malformed"                 # bytes after the end
    assert refused(sml.parse, P192[:-9]) == "malformed"                      # no end sequence
    assert refused(sml.parse, P192[:-1] + bytes([P192[-1] ^ 1])) == "integrity"   # transport CRC
    assert refused(sml.parse, sml.START + sml.ESCAPE + b"\x02\x02\x02\x02" + P192[8:]) == "malformed"
    payload = sml.unframe(P192)
    assert P192[-3] == 2                                                     # 2 padding bytes
    for pad, fill in ((2, b"\x00\x07"), (6, b"\x00\x00")):
        head = sml.START + payload + fill + sml.ESCAPE + bytes([0x1A, pad])
        assert refused(sml.parse, head + sml.crc16_x25(head).to_bytes(2, "little")) == "integrity"
    head = sml.START + payload + b"\x00" + sml.ESCAPE + bytes([0x1A, 1])      # not aligned to 4 bytes
    assert refused(sml.parse, head + sml.crc16_x25(head).to_bytes(2, "little")) == "integrity"


def test_a_message_crc_is_checked_even_when_the_transport_crc_holds():
    payload = bytearray(sml.unframe(P192))
    messages = [sml.encode_message(m) for m in sml.read_messages(bytes(payload))]
    crc_at = len(messages[0]) + len(messages[1]) - 3
    payload[crc_at] ^= 0x01
    with pytest.raises(MeterRecordError, match="message 2") as e:
        sml.parse(sml.frame(bytes(payload)))
    assert e.value.code == "integrity"
    assert refused(sml.parse, sml.frame(bytes(sml.unframe(P192)) + b"\x00" * 4)) == "malformed"   # stray bytes


def _message(body: bytes) -> bytes:
    head = b"\x76\x02\x01\x62\x00\x62\x00" + body
    return head + b"\x63" + sml.crc16_x25(head).to_bytes(2, "little") + b"\x00"


def test_hostile_tl_fields_are_refused_cheaply_and_never_recurse_without_bound():
    deep = sml.frame(_message(b"\x71" * 7000 + b"\x01"))
    assert len(deep) < MAX_RECORD_BYTES
    with pytest.raises(MeterRecordError, match="nested deeper") as e:
        sml.parse(deep)
    assert e.value.code == "malformed"
    for body, match in ((b"\xff\x8f\x8f\x0f", "more elements"),            # a list of 65,535 elements
                        (b"\x8f\x8f\x8f\x8f\x0f", "TL field longer"),
                        (b"\x72\x65\x00\x00\x07\x01\xf0\x97", "continuation byte"),
                        (b"\x5a" + bytes(9), "integer of 9 bytes"),
                        (b"\x12\x00", "TL type 1"),
                        (b"\x72\x63\x01\x01\x09\x00", "does not fit"),
                        (b"\x72\x63\x01\x01\x43\x00\x00", "boolean")):
        with pytest.raises(MeterRecordError, match=match) as e:
            sml.parse(sml.frame(_message(body)))
        assert e.value.code == "malformed"


def test_a_signed_file_is_exactly_open_get_list_close():
    def drop_close(messages):
        return messages[:2]

    def get_list_twice(messages):
        return [messages[0], messages[1], messages[1], messages[2]]

    def other_type(messages):
        m = messages[2]
        return messages[:2] + [sml.SmlMessage(m.transaction_id, 0, 0, 0x0401, (None,))]
    assert refused(sml.parse, with_messages(P192, drop_close)) == "integrity"
    assert refused(sml.parse, with_messages(P192, get_list_twice)) == "integrity"
    assert refused(sml.parse, with_messages(P192, other_type)) == "unsupported"


def test_every_field_must_have_its_sml_type():
    cases = [
        ("0100011100ff", 1, sml.SmlInt(0, True, 4), "status"),            # status signed
        ("0100011100ff", 4, sml.SmlInt(255, False, 1), "scaler"),         # scaler unsigned
        ("0100011100ff", 3, sml.SmlInt(300, False, 2), "unit"),           # unit above Unsigned8
        ("0100011100ff", 2, (sml.SmlInt(7, False, 1), sml.SmlInt(1, False, 4)), "SML_Time tag"),
        ("0100011100ff", 0, bytes(5), "6-byte OBIS"),
    ]
    for obis_hex, field, value, match in cases:
        with pytest.raises(MeterRecordError, match=match) as e:
            sml.parse(with_entry_field(P192, obis_hex, field, value))
        assert e.value.code == "malformed"
    assert refused(sml.parse, with_get_list_field(P192, 1, None)) == "malformed"   # no serverId


def test_the_signed_entries_must_be_present_once_and_fit_the_block():
    assert refused(sml.parse, with_entry_field(P192, "0100011100ff", 3, sml.SmlInt(27, False, 1))) == "unsupported"
    assert refused(sml.parse, with_entry_field(P192, "0100011100ff", 5, b"1234")) == "integrity"
    assert refused(sml.parse, with_entry_field(P192, "0100011100ff", 2, None)) == "integrity"      # no time
    assert refused(sml.parse, with_entry_field(P192, "810060080001", 5, sml.SmlInt(729, False, 4))) == "integrity"
    assert refused(sml.parse, with_entry_field(P192, "8182815401ff", 5, bytes(129))) == "integrity"
    assert refused(sml.parse, with_entry_field(P192, "8180817101ff", 5, sml.SmlInt(-1, True, 1))) == "integrity"
    assert refused(sml.parse, with_entry_field(P192, "8180817101ff", 5, sml.SmlInt(1 << 32, False, 8))) == \
        "integrity"
    value_list_type = (sml.SmlInt(2, False, 1), (None, sml.SmlInt(1, False, 1)))
    assert refused(sml.parse, with_entry_field(P192, "8180817101ff", 5, value_list_type)) == "unsupported"
    assert refused(sml.parse, change_entries(P192, lambda es: es + es[-1:])) == "integrity"        # twice
    assert refused(sml.parse, change_entries(P192, lambda es: [e for e in es if e[0] != bytes.fromhex(
        "8180817101ff")])) == "integrity"                                                        # no pagination
    assert refused(sml.parse, change_entries(ISA, lambda es: es + [(bytes.fromhex("0100011100ff"),) + es[0][1:]])) \
        == "integrity"                                                                            # both layouts
    assert refused(sml.parse, with_get_list_field(P192, 1, bytes(9))) == "integrity"             # 9-byte server id
    assert refused(sml.parse, with_entry_field(ISA, "8180816101ff", 5, bytes(19))) == "integrity"  # ESTH


def test_what_a_reading_reports_is_what_the_block_signs():
    # only the status byte is in the block: the rest of the status word may change without a trace
    case = BY_ID["edl40-sml-p192"]
    changed = with_entry_field(P192, "0100011100ff", 1, sml.SmlInt(0xABCD00, False, 4))
    assert verdict_of(sml.parse, changed, bytes.fromhex(case["public_key_hex"])) == ("valid", "")
    assert sml.parse(changed).readings == sml.parse(P192).readings
    # only local time is signed: offsets that belong to no time zone are refused
    for local, season in ((-721, 0), (841, 0), (60, 121), (60, -121)):
        stamp = (sml.SmlInt(3, False, 1), (sml.SmlInt(777, False, 4), sml.SmlInt(local, True, 2),
                                           sml.SmlInt(season, True, 2)))
        with pytest.raises(MeterRecordError, match="no time zone") as e:
            sml.parse(with_entry_field(P192, "0100011100ff", 2, stamp))
        assert e.value.code == "integrity"


def test_list_signatures_must_have_their_layouts_length_and_range():
    sig = bytes.fromhex(BY_ID["edl40-sml-p192"]["signature_transmitted_hex"])
    for bad in (None, sig[:-1], sig + b"\x00", bytes(48) + sig[-2:]):
        assert refused(sml.parse, with_get_list_field(P192, 5, bad)) == "bad-signature-encoding"
    assert refused(sml.parse, with_get_list_field(ISA, 5, sig)) == "bad-signature-encoding"   # ISA is P-256 only
    n192 = 0xffffffffffffffffffffffff99def836146bc9b1b4d22831
    assert refused(sml.parse, with_get_list_field(P192, 5, n192.to_bytes(24, "big") + sig[24:])) == \
        "bad-signature-encoding"


# --- signedMeterValue XML ------------------------------------------------------------------------

def xml_refusal(text: str) -> str:
    return refused(sml.parse_signed_meter_value, text.encode())


def test_a_signed_meter_value_with_bom_and_surrounding_whitespace_is_taken():
    record = sml.parse_signed_meter_value(b"\xef\xbb\xbf\n  " + WIRELANE.encode() + b"\r\n")
    assert record.signed_data.hex() == BY_ID["edl40-smv-p192-wirelane-begin"]["signed_data_hex"]


def test_xml_declarations_that_expand_or_fetch_are_refused_before_parsing():
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
              '<signedMeterValue><encodingMethod>&lol2;</encodingMethod></signedMeterValue>')
    external = '<!doctype s [<!entity x SYSTEM "file:///etc/passwd">]><signedMeterValue>&x;</signedMeterValue>'
    for text in (laughs, external, WIRELANE.replace("<signedMeterValue>", "<!ENTITY x 'y'><signedMeterValue>")):
        with pytest.raises(MeterRecordError, match="DOCTYPE and ENTITY") as e:
            sml.parse_signed_meter_value(text.encode())
        assert e.value.code == "malformed"
    assert refused(sml.parse_signed_meter_value, WIRELANE.encode("utf-16")) == "malformed"


def test_the_signed_meter_value_container_is_strict():
    block = base64.b64decode(WIRELANE.split('<encodedMeterValue encoding="base64">')[1].split("<")[0])
    sig = base64.b64decode(WIRELANE.split('<meterValueSignature encoding="base64">')[1].split("<")[0])

    def with_sig(new: bytes) -> str:
        return WIRELANE.replace(base64.b64encode(sig).decode(), base64.b64encode(new).decode())

    def with_block(new: bytes) -> str:
        return WIRELANE.replace(base64.b64encode(block).decode(), base64.b64encode(new).decode())
    assert xml_refusal(WIRELANE[:-5]) == "malformed"                                         # not well-formed
    assert xml_refusal(WIRELANE.replace("signedMeterValue", "meterValue")) == "malformed"
    assert xml_refusal(WIRELANE.replace("<signatureMethod>", "<x>").replace("</signatureMethod>", "</x>")) == \
        "malformed"
    assert xml_refusal(WIRELANE.replace("</signedMeterValue>", "<encodingMethod>EDL</encodingMethod>"
                                                                "</signedMeterValue>")) == "malformed"
    assert xml_refusal(WIRELANE.replace("ECDSA192SHA256", "ECDSA384SHA384")) == "unsupported"
    assert xml_refusal(WIRELANE.replace(">EDL<", ">ALFEN<")) == "unsupported"
    assert xml_refusal(WIRELANE.replace('<encodedMeterValue encoding="base64">',
                                        '<encodedMeterValue encoding="hex">')) == "unsupported"
    assert xml_refusal(with_block(block[:-1])) == "malformed"
    assert xml_refusal(WIRELANE.replace("CQFFTUgAAH", "CQFFTUgAA!")) == "malformed"       # not base64
    assert xml_refusal(with_sig(sig[:-2])) == "bad-signature-encoding"                    # no logbook bytes
    assert xml_refusal(WIRELANE.replace("ECDSA192SHA256", "ECDSA256SHA256")) == "bad-signature-encoding"
    assert xml_refusal(with_sig(sig[:-1] + b"\x82")) == "integrity"                       # logbook differs
    assert xml_refusal(with_block(block[:29] + b"\x1b" + block[30:])) == "unsupported"   # unit varh
    assert xml_refusal(WIRELANE.replace("vEa0GLtow", "vEa0GLto!")) == "bad-key"


# --- fuzz: mutated records never raise anything but MeterRecordError -------------------------------

VALID_SML = [c for c in SML_CASES if c["expected_verdict"] == "valid"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_and_verify(parse, raw: bytes, key: bytes) -> None:
    try:
        record = parse(raw)
        verify_record(record, load_public_key(key, record.curve))
    except MeterRecordError as e:
        assert e.code in ("too-large", "malformed", "integrity", "unsupported", "curve-not-allowed", "bad-key",
                          "key-mismatch", "bad-signature-encoding", "bad-signature")


mutation = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate", "extend"]),
                     st.integers(0, 1 << 16), st.integers(0, 255))


def mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for op, where, byte in mutations:
        at = where % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= byte or 1
        elif op == "insert":
            out[at:at] = bytes([byte])
        elif op == "delete" and out:
            del out[at % len(out)]
        elif op == "truncate":
            del out[at:]
        elif op == "extend":
            out += bytes([byte]) * (where % 64)
    return bytes(out)


@FUZZ
@given(st.sampled_from(SML_CASES), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_sml_files_only_raise_meter_record_errors(case, mutations):
    parse_and_verify(sml.parse, mutate(raw_of(case), mutations), bytes.fromhex(case["public_key_hex"]))


@FUZZ
@given(st.sampled_from(VALID_SML), st.integers(0, 2), st.lists(mutation, min_size=1, max_size=3),
       st.booleans())
def test_mutated_messages_with_crcs_recomputed_only_raise_meter_record_errors(case, which, mutations, regroup):
    messages = [sml.encode_message(m) for m in sml.read_messages(sml.unframe(raw_of(case)))]
    head = mutate(messages[which][:-4], mutations)
    messages[which] = head + b"\x63" + sml.crc16_x25(head).to_bytes(2, "little") + b"\x00"
    payload = b"".join(messages)
    if regroup:                                  # the CRCs as a parser that re-walks the bytes finds them
        try:
            payload = fix_crcs(payload)
        except (MeterRecordError, IndexError):
            pass
    parse_and_verify(sml.parse, sml.frame(payload), bytes.fromhex(case["public_key_hex"]))


sml_nodes = st.recursive(
    st.none() | st.booleans() | st.binary(max_size=140)
    | st.builds(lambda v, w: sml.SmlInt(v % (1 << (8 * w)), False, w), st.integers(0, 1 << 64), st.integers(1, 8))
    | st.builds(lambda v, w: sml.SmlInt(v % (1 << (8 * w)) - (1 << (8 * w - 1)), True, w),
                st.integers(0, 1 << 64), st.integers(1, 8)),
    lambda children: st.lists(children, max_size=8).map(tuple), max_leaves=20)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, tuple):
        for k, child in enumerate(node):
            yield from paths(child, prefix + (k,))


def replace(node, path, new):
    if not path:
        return new
    items = list(node)
    items[path[0]] = replace(items[path[0]], path[1:], new)
    return tuple(items)


@FUZZ
@given(st.sampled_from(VALID_SML), st.integers(0, 2), st.integers(0, 1 << 16), sml_nodes)
def test_mutated_sml_trees_with_valid_crcs_only_raise_meter_record_errors(case, which, where, new):
    def change(messages):
        m = messages[which]
        spots = list(paths(m.body))
        body = replace(m.body, spots[where % len(spots)], new)
        messages[which] = sml.SmlMessage(m.transaction_id, m.group_no, m.abort_on_error, m.tag, body, m.tag_width)
        return messages
    parse_and_verify(sml.parse, with_messages(raw_of(case), change), bytes.fromhex(case["public_key_hex"]))


@FUZZ
@given(st.sampled_from(XML_CASES), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_signed_meter_values_only_raise_meter_record_errors(case, mutations):
    parse_and_verify(sml.parse_signed_meter_value, mutate(raw_of(case), mutations),
                     bytes.fromhex(case["public_key_hex"]))


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_after_the_start_sequence_only_raise_meter_record_errors(tail):
    for raw in (sml.START + tail, sml.frame(tail)):
        parse_and_verify(sml.parse, raw, bytes.fromhex(VALID_SML[0]["public_key_hex"]))


def _crc16_x25_bitwise(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def test_crc16_x25_is_the_catalogued_crc():
    # the CRC catalogue's check value of CRC-16/X-25 (also called CRC-16/IBM-SDLC) over "123456789"
    assert sml.crc16_x25(b"123456789") == 0x906E
    assert sml.crc16_x25(b"") == 0x0000


@given(st.binary(max_size=1200))
def test_crc16_x25_equals_the_bitwise_definition(data):
    assert sml.crc16_x25(data) == _crc16_x25_bitwise(data)

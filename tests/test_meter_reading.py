"""Signed meter readings (primitives.meter_reading): encoding, signature rule, hash; and the test
vector for docs/protocol.md (`python -m tests.test_meter_reading` prints it)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives.codec import CodecError
from primitives.extrinsic import Call, Extrinsic, extrinsic_hash
from primitives.hashing import keccak256
from primitives.keys import Keypair, secret_seed_from_uri, signing_message
from primitives.meter_reading import (READING_DOMAIN, Reading, SignedReading, reading_hash,
                                      reading_message, reading_signature_ok, sign_reading)

GENESIS = bytes.fromhex("11" * 32)          # the genesis hash the protocol doc's vectors use
METER = Keypair.from_uri("//Meter1")


def reading_vector() -> dict[str, str]:
    """Meter `//Meter1` reports interval 1_700_000_100 (seq 1): import 12,345 Wh, export 6,789 Wh,
    on the chain with genesis hash 0x11..11; submitted as metering.submit_reading (pallet 8, call 5)."""
    from pallets import metering
    r = Reading(METER.public_key, 1, 1_700_000_100, 12_345, 6_789)
    signed = sign_reading(METER, r, GENESIS)
    xt = Extrinsic(Call(metering.pallet.index, metering.submit_reading.call_def.index,
                        (signed.to_plain(),))).encode()
    return {
        "meter.seed": "0x" + secret_seed_from_uri("//Meter1").hex(),
        "meter.public": "0x" + METER.public_key.hex(),
        "reading": "0x" + r.encode().hex(),
        "reading.message": "0x" + reading_message(r, GENESIS).hex(),
        "reading.signature": "0x" + signed.signature.hex(),
        "reading.signed": "0x" + signed.encode().hex(),
        "reading.hash": "0x" + reading_hash(signed).hex(),
        "reading.extrinsic": "0x" + xt.hex(),
        "reading.extrinsic.hash": "0x" + extrinsic_hash(xt).hex(),
    }


def _reading(seq: int = 1, t: int = 1_700_000_100, imp: int = 100, exp: int = 50) -> Reading:
    return Reading(METER.public_key, seq, t, imp, exp)


def test_vector_is_stable_and_self_consistent():
    v = reading_vector()
    signed = SignedReading.decode(bytes.fromhex(v["reading.signed"][2:]))
    assert reading_signature_ok(signed, GENESIS)
    assert v["reading.hash"] == "0x" + keccak256(signed.encode()).hex()
    assert v["reading.message"].startswith("0x" + bytes([len(READING_DOMAIN)]).hex() + READING_DOMAIN.hex()
                                           + GENESIS.hex())
    assert reading_vector() == v            # ed25519 is deterministic


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
       st.integers(0, 2**64 - 1))
def test_signed_reading_round_trips_and_verifies(seq, t, imp, exp):
    signed = sign_reading(METER, Reading(METER.public_key, seq, t, imp, exp), GENESIS)
    again = SignedReading.decode(signed.encode())
    assert again == signed and again.encode() == signed.encode()
    assert reading_signature_ok(again, GENESIS)


def test_signature_over_another_genesis_fails():
    signed = sign_reading(METER, _reading(), GENESIS)
    assert not reading_signature_ok(signed, b"\x22" * 32)


@pytest.mark.parametrize("field", ["seq", "interval_start", "import_wh", "export_wh"])
def test_tampered_reading_fails(field):
    signed = sign_reading(METER, _reading(), GENESIS)
    r = signed.reading
    tampered = Reading(**{f: getattr(r, f) for f in ("meter", "seq", "interval_start", "import_wh", "export_wh")}
                       | {field: getattr(r, field) + 1})
    assert not reading_signature_ok(SignedReading(tampered, signed.signature), GENESIS)


def test_reading_signed_by_another_key_fails():
    other = Keypair.from_uri("//Meter2")
    forged = SignedReading(_reading(), other.sign(reading_message(_reading(), GENESIS)))
    assert not reading_signature_ok(forged, GENESIS)
    with pytest.raises(ValueError):
        sign_reading(other, _reading(), GENESIS)     # the SDK refuses to sign for another meter


def test_signature_covers_domain_and_genesis():
    r = _reading()
    assert reading_message(r, GENESIS) == signing_message(READING_DOMAIN, GENESIS, r.encode())
    # the same payload signed under another domain (e.g. as an extrinsic) is not a reading signature
    wrong_domain = METER.sign_domain(b"gridchain/extrinsic/v1", GENESIS, r.encode())
    assert not reading_signature_ok(SignedReading(r, wrong_domain), GENESIS)


def test_hash_changes_with_any_byte():
    a = sign_reading(METER, _reading(imp=100), GENESIS)
    b = sign_reading(METER, _reading(imp=101), GENESIS)
    assert reading_hash(a) != reading_hash(b) and len(reading_hash(a)) == 32


def test_decoding_rejects_malformed_input():
    signed = sign_reading(METER, _reading(), GENESIS)
    data = signed.encode()
    with pytest.raises(CodecError):
        SignedReading.decode(data + b"\x00")          # trailing bytes
    with pytest.raises(CodecError):
        SignedReading.from_plain([signed.reading.to_plain(), signed.signature[:63]])
    with pytest.raises(CodecError):
        Reading.from_plain([METER.public_key, -1, 0, 0, 0])


if __name__ == "__main__":
    for k, val in reading_vector().items():
        print(f"{k}: {val}")

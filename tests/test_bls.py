"""BLS12-381 (POP ciphersuite) and finality certificates.

The fast backend (primitives.bls on py-arkworks-bls12381) must agree byte for byte with py_ecc, the
independent pure-Python reference, and with Ethereum's published test vectors; py_ecc must accept a
certificate the fast backend built; and every way a certificate can be wrong must be refused.
py_ecc takes ~0.1 s per sign and ~0.3 s per verify, so it is called only a handful of times.
"""
from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_arkworks_bls12381 import G1Point, Scalar

# py_ecc raises the interpreter's recursion limit to 100,000 when imported, process-wide; other tests
# (the RPC server's deeply nested JSON) rely on the default limit to stop before the C stack overflows.
_recursion_limit = sys.getrecursionlimit()
from py_ecc.bls import G2ProofOfPossession as Reference  # noqa: E402
from py_ecc.bls.g2_primitives import G1_to_pubkey, G2_to_signature
from py_ecc.bls.point_compression import modular_squareroot_in_FQ2
from py_ecc.optimized_bls12_381 import FQ, FQ2, b, b2, curve_order, is_inf, multiply  # noqa: E402

sys.setrecursionlimit(_recursion_limit)

from primitives import bls  # noqa: E402
from consensus import finality_certificate as fc
from primitives.bls import BlsError
from consensus.finality_certificate import FinalityCertificate, InvalidCertificate
from primitives.codec import CodecError

GENESIS = hashlib.sha256(b"gridchain test genesis").digest()
BLOCK = hashlib.sha256(b"block 42").digest()
HEIGHT = 42
N = 7  # f = 2, quorum = 5


def seed(i: int) -> bytes:
    return hashlib.sha256(b"validator" + i.to_bytes(4, "big")).digest()


@pytest.fixture(scope="module")
def validators() -> tuple[list[int], list[bytes]]:
    sks = [bls.keygen(seed(i)) for i in range(N)]
    return sks, [bls.sk_to_pk(sk) for sk in sks]


def partials(sks: list[int], indices, block_hash: bytes = BLOCK, genesis: bytes = GENESIS) -> dict[int, bytes]:
    return {i: fc.sign_finality(sks[i], genesis, HEIGHT, block_hash) for i in indices}


@pytest.fixture(scope="module")
def cert(validators) -> FinalityCertificate:
    sks, pks = validators
    return fc.build(partials(sks, [0, 2, 3, 5, 6]), pks, genesis_hash=GENESIS, height=HEIGHT,
                    block_hash=BLOCK, round=1)


# --------------------------------------------------------------------------------------------
# byte-identical with the references
# --------------------------------------------------------------------------------------------

def test_ethereum_consensus_spec_vector():
    # ethereum/bls12-381-tests sign_case_8cd3d4d0d9a5b265 and the matching public key
    sk = 0x263DBD792F5B1BE47ED85F8938C0F29586AF0D3AC7B977F21C278FE1462040E3
    assert bls.sk_to_pk(sk).hex() == (
        "a491d1b0ecd9bb917989f0e74f0dea0422eac4a873e5e2644f368dffb9a6e20fd6e10c1b77654d067c0618f6e5a7f79a")
    signature = bls.sign(sk, b"\x56" * 32)
    assert signature.hex() == (
        "882730e5d03f6b42c3abc26d3372625034e1d871b65a8a6b900a56dae22da98abbe1b68f85e49fe7652a55ec3d0591c2"
        "0767677e33e5cbb1207315c41a9ac03be39c2e7668edc043d6cb1d9fd93033caa8a1c5b0e84bedaeb6c64972503a43eb")
    assert bls.verify(bls.sk_to_pk(sk), b"\x56" * 32, signature)


@pytest.mark.parametrize("ikm, key_info, message", [
    (bytes(32), b"", b""),
    (bytes(range(32)), b"", b"gridchain"),
    (b"\xff" * 48, b"gridchain-bls", fc.finality_message(GENESIS, HEIGHT, BLOCK)),
], ids=["zero-seed", "counting-seed", "long-seed-key-info-finality-message"])
def test_keys_signatures_and_pops_match_py_ecc(ikm, key_info, message):
    sk = bls.keygen(ikm, key_info)
    assert sk == Reference.KeyGen(ikm, key_info)
    pk = bls.sk_to_pk(sk)
    assert pk == Reference.SkToPk(sk)
    assert bls.sign(sk, message) == Reference.Sign(sk, message)
    assert bls.pop_prove(sk) == Reference.PopProve(sk)


def test_py_ecc_verifies_fast_backend_signature_and_pop(validators):
    sks, pks = validators
    signature = bls.sign(sks[0], b"meter 7 reading")
    assert Reference.Verify(pks[0], b"meter 7 reading", signature)
    assert Reference.PopVerify(pks[0], bls.pop_prove(sks[0]))


def test_aggregate_matches_py_ecc(validators):
    sks, _ = validators
    sigs = [bls.sign(sk, b"same message") for sk in sks[:4]]
    assert bls.aggregate(sigs) == Reference.Aggregate(sigs)


def test_py_ecc_independently_verifies_a_certificate(validators, cert):
    _, pks = validators
    signer_pks = [pks[i] for i in cert.signer_indices()]
    message = fc.finality_message(GENESIS, HEIGHT, BLOCK)
    assert Reference.FastAggregateVerify(signer_pks, message, cert.signature)
    # and refuses it for another block, so the True above means something
    other = fc.finality_message(GENESIS, HEIGHT, bytes(32))
    assert not Reference.FastAggregateVerify(signer_pks, other, cert.signature)


# --------------------------------------------------------------------------------------------
# the scheme on the fast backend
# --------------------------------------------------------------------------------------------

def test_sign_verify_and_domain_separation(validators):
    sks, pks = validators
    signature = bls.sign(sks[1], b"payload")
    assert bls.verify(pks[1], b"payload", signature)
    assert not bls.verify(pks[1], b"payloaD", signature)
    assert not bls.verify(pks[2], b"payload", signature)
    # a proof of possession is a signature on the key under another tag: never a plain signature
    pop = bls.pop_prove(sks[1])
    assert bls.pop_verify(pks[1], pop)
    assert not bls.verify(pks[1], pks[1], pop)
    assert not bls.pop_verify(pks[1], bls.sign(sks[1], pks[1]))
    assert not bls.pop_verify(pks[2], pop)


def test_fast_aggregate_verify(validators):
    sks, pks = validators
    message = b"block"
    agg = bls.aggregate(bls.sign(sk, message) for sk in sks[:3])
    assert bls.fast_aggregate_verify(pks[:3], message, agg)
    assert not bls.fast_aggregate_verify(pks[:2], message, agg)
    assert not bls.fast_aggregate_verify(pks[:4], message, agg)
    assert not bls.fast_aggregate_verify(pks[:3], b"other", agg)


def test_keys_that_cancel_do_not_verify(validators):
    sks, pks = validators
    negated = (-bls.decode_pubkey(pks[0])).to_compressed_bytes()
    identity_sig = bls.aggregate([bls.sign(sks[0], b"m"), bls.sign(bls.CURVE_ORDER - sks[0], b"m")])
    assert not bls.fast_aggregate_verify([pks[0], negated], b"m", identity_sig)


def test_rogue_key_attack_is_stopped_by_proof_of_possession(validators):
    # Mallory publishes pk_m = x*G1 - pk_honest. The sum of the two keys is x*G1, so Mallory alone
    # can forge an "aggregate" that fast_aggregate_verify accepts for both. Only the PoP check at
    # registration stops it: Mallory does not know the secret key of pk_m.
    sks, pks = validators
    x = 123456789
    rogue = (G1Point() * Scalar(x) - bls.decode_pubkey(pks[0])).to_compressed_bytes()
    forged = bls.sign(x, b"fake finality")
    assert bls.fast_aggregate_verify([pks[0], rogue], b"fake finality", forged)
    best_try = bls.pop_prove(x)  # a PoP for x*G1, the only one Mallory can make
    with pytest.raises(BlsError, match="proof of possession"):
        fc.check_registration(rogue, best_try)
    fc.check_registration(pks[0], bls.pop_prove(sks[0]))  # an honest key passes


def test_keygen_is_deterministic_and_seeded():
    assert bls.keygen(seed(1)) == bls.keygen(seed(1))
    assert bls.keygen(seed(1)) != bls.keygen(seed(2))
    assert bls.keygen(seed(1)) != bls.keygen(seed(1), b"rotation-1")
    assert 0 < bls.keygen(seed(1)) < bls.CURVE_ORDER


# --------------------------------------------------------------------------------------------
# bad input is refused with BlsError, never anything else
# --------------------------------------------------------------------------------------------

def _g1_outside_subgroup() -> bytes:
    for x in range(1, 100):
        y = FQ(x) ** 3 + b
        root = y ** ((FQ.field_modulus + 1) // 4)
        if root * root == y:
            point = (FQ(x), root, FQ.one())
            if not is_inf(multiply(point, curve_order)):
                return G1_to_pubkey(point)
    raise AssertionError("no point found")


def _g2_outside_subgroup() -> bytes:
    for x0 in range(1, 100):
        x = FQ2([x0, 1])
        y = modular_squareroot_in_FQ2(x ** 3 + b2)
        if y is not None:
            point = (x, y, FQ2.one())
            if not is_inf(multiply(point, curve_order)):
                return G2_to_signature(point)
    raise AssertionError("no point found")


INFINITY_PK = b"\xc0" + bytes(47)
INFINITY_SIG = b"\xc0" + bytes(95)
FIELD_MODULUS_BYTES = FQ.field_modulus.to_bytes(48, "big")

BAD_PUBKEYS = {
    "infinity": INFINITY_PK,
    "infinity, sign bit set": b"\xe0" + bytes(47),
    "infinity, stray bits": b"\xc0" + bytes(46) + b"\x01",
    "uncompressed flag": bytes([FIELD_MODULUS_BYTES[0] & 0x1F]) + bytes(47),
    "x >= p": bytes([FIELD_MODULUS_BYTES[0] | 0x80]) + FIELD_MODULUS_BYTES[1:],
    "x = 1, not on the curve": b"\x80" + bytes(46) + b"\x01",
    "x = 0, on the curve but outside the subgroup": b"\x80" + bytes(47),
    "short": b"\x80" * 47,
    "long": b"\x80" * 49,
    "empty": b"",
}


def test_non_canonical_infinity_pubkeys_are_named():
    for name in ("infinity, sign bit set", "infinity, stray bits"):
        with pytest.raises(BlsError, match="canonical"):
            bls.decode_pubkey(BAD_PUBKEYS[name])
    with pytest.raises(BlsError, match="identity"):
        bls.decode_pubkey(INFINITY_PK)


@pytest.mark.parametrize("name", sorted(BAD_PUBKEYS))
def test_malformed_pubkeys_are_refused(validators, name):
    sks, _ = validators
    pk = BAD_PUBKEYS[name]
    signature = bls.sign(sks[0], b"m")
    assert not bls.key_validate(pk)
    with pytest.raises(BlsError):
        bls.verify(pk, b"m", signature)
    with pytest.raises(BlsError):
        bls.fast_aggregate_verify([pk], b"m", signature)
    with pytest.raises(BlsError):
        bls.pop_verify(pk, bls.pop_prove(sks[0]))


def test_points_outside_the_subgroup_are_refused(validators):
    sks, pks = validators
    bad_pk, bad_sig = _g1_outside_subgroup(), _g2_outside_subgroup()
    with pytest.raises(BlsError, match="subgroup"):
        bls.decode_pubkey(bad_pk)
    with pytest.raises(BlsError, match="subgroup"):
        bls.decode_signature(bad_sig)
    with pytest.raises(BlsError, match="signature 1"):
        bls.aggregate([bls.sign(sks[0], b"m"), bad_sig])
    with pytest.raises(BlsError):
        bls.verify(pks[0], b"m", bad_sig)


def test_malformed_signatures_and_secrets_are_refused(validators):
    sks, pks = validators
    for sig in [b"\x80" * 95, b"\xa0" + bytes(95), b"\x00" * 96, "not bytes", None]:
        with pytest.raises(BlsError):
            bls.verify(pks[0], b"m", sig)
    # the identity is a well-formed signature; it simply does not verify
    assert not bls.verify(pks[0], b"m", INFINITY_SIG)
    # ... but only in its one canonical encoding (the backend alone would accept these)
    for sig in [b"\xe0" + bytes(95), b"\xc0" + bytes(94) + b"\x01"]:
        with pytest.raises(BlsError, match="canonical"):
            bls.decode_signature(sig)
    for sk in [0, bls.CURVE_ORDER, -1, 1.5, b"\x01" * 32]:
        with pytest.raises(BlsError):
            bls.sign(sk, b"m")
        with pytest.raises(BlsError):
            bls.sk_to_pk(sk)
    with pytest.raises(BlsError):
        bls.sign(sks[0], "text, not bytes")
    with pytest.raises(BlsError, match="at least 32"):
        bls.keygen(b"\x01" * 31)
    with pytest.raises(BlsError):
        bls.aggregate([])
    with pytest.raises(BlsError):
        bls.fast_aggregate_verify([], b"m", bls.sign(sks[0], b"m"))


def _flagged(data: bytes) -> bytes:
    """Set the compression flag and clear the infinity flag, so decoding gets past the flag check."""
    return bytes([(data[0] & 0x3F) | 0x80]) + data[1:]


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=48, max_size=48), st.binary(min_size=96, max_size=96), st.booleans(), st.booleans())
def test_garbage_yields_bool_or_bls_error_only(pk, sig, flag_pk, flag_sig):
    pk = _flagged(pk) if flag_pk else pk
    sig = _flagged(sig) if flag_sig else sig
    for check in (lambda: bls.verify(pk, b"m", sig), lambda: bls.pop_verify(pk, sig),
                  lambda: bls.fast_aggregate_verify([pk], b"m", sig)):
        try:
            assert check() is False
        except BlsError:
            pass


# --------------------------------------------------------------------------------------------
# finality certificates
# --------------------------------------------------------------------------------------------

def test_finality_message_layout():
    message = fc.finality_message(GENESIS, HEIGHT, BLOCK)
    assert message == b"gridchain/finality/v1" + GENESIS + (42).to_bytes(8, "big") + BLOCK
    assert len(message) == 93
    with pytest.raises(BlsError):
        fc.finality_message(GENESIS[:31], HEIGHT, BLOCK)
    with pytest.raises(BlsError):
        fc.finality_message(GENESIS, -1, BLOCK)


def test_bitfield_bit_order_and_quorum():
    assert fc.make_bitfield([0, 9], 10) == b"\x01\x02"
    assert fc.bitfield_indices(b"\x81\x02") == [0, 7, 9]
    assert fc.make_bitfield([], 0) == b""
    with pytest.raises(BlsError):
        fc.make_bitfield([10], 10)
    assert [fc.default_quorum(n) for n in (1, 3, 4, 6, 7, 32, 100)] == [1, 3, 3, 5, 5, 22, 67]


def test_certificate_verifies_and_round_trips(validators, cert):
    _, pks = validators
    assert cert.signer_indices() == [0, 2, 3, 5, 6]
    assert cert.signers == b"\x6d"
    fc.verify(cert, pks, GENESIS)
    fc.verify(cert, pks, GENESIS, quorum=5)
    assert fc.is_valid(cert, pks, GENESIS)
    decoded = FinalityCertificate.decode(cert.encode())
    assert decoded == cert
    fc.verify(decoded, pks, GENESIS)
    # the round is informational, not signed: the same signatures prove the same finality
    fc.verify(replace(cert, round=7), pks, GENESIS)


def test_a_full_set_and_a_large_set_verify(validators):
    sks, pks = validators
    full = fc.build(partials(sks, range(N)), pks, genesis_hash=GENESIS, height=HEIGHT, block_hash=BLOCK)
    fc.verify(full, pks, GENESIS, quorum=N)
    big_sks = [bls.keygen(seed(100 + i)) for i in range(32)]
    big_pks = [bls.sk_to_pk(sk) for sk in big_sks]
    signers = random.Random(5).sample(range(32), fc.default_quorum(32))
    big = fc.build(partials(big_sks, signers), big_pks, genesis_hash=GENESIS, height=HEIGHT, block_hash=BLOCK)
    assert big.signer_indices() == sorted(signers)
    fc.verify(big, big_pks, GENESIS)


def _rejects(cert: FinalityCertificate, pks: list[bytes], match: str, genesis: bytes = GENESIS,
             quorum: int | None = None) -> None:
    with pytest.raises(InvalidCertificate, match=match):
        fc.verify(cert, pks, genesis, quorum)
    assert not fc.is_valid(cert, pks, genesis, quorum)


def test_too_few_signers(validators):
    sks, pks = validators
    four = fc.build(partials(sks, [0, 1, 2, 3]), pks, genesis_hash=GENESIS, height=HEIGHT, block_hash=BLOCK)
    _rejects(four, pks, "4 signers, quorum is 5")
    # the signatures themselves are fine: only the count fails
    assert bls.fast_aggregate_verify(pks[:4], fc.finality_message(GENESIS, HEIGHT, BLOCK), four.signature)


def test_wrong_block_height_or_genesis(validators, cert):
    _, pks = validators
    _rejects(replace(cert, block_hash=bytes(32)), pks, "does not verify")
    _rejects(replace(cert, height=HEIGHT + 1), pks, "does not verify")
    _rejects(cert, pks, "does not verify", genesis=hashlib.sha256(b"another chain").digest())


def test_signatures_for_another_block_do_not_build_or_verify(validators):
    sks, pks = validators
    mixed = partials(sks, [0, 1, 2, 3]) | partials(sks, [4], block_hash=bytes(32))
    with pytest.raises(BlsError, match="validator 4"):
        fc.build(mixed, pks, genesis_hash=GENESIS, height=HEIGHT, block_hash=BLOCK)
    unchecked = fc.build(mixed, pks, genesis_hash=GENESIS, height=HEIGHT, block_hash=BLOCK, check_partials=False)
    _rejects(unchecked, pks, "does not verify")


def test_flipped_bits(validators, cert):
    _, pks = validators
    added = bytes([cert.signers[0] | 0x02])      # validator 1 claimed but did not sign
    removed = bytes([cert.signers[0] & ~0x01])   # validator 0 signed but is not counted
    removed_and_added = bytes([(cert.signers[0] & ~0x01) | 0x02])  # same count, wrong set
    _rejects(replace(cert, signers=added), pks, "does not verify")
    _rejects(replace(cert, signers=removed), pks, "quorum")
    _rejects(replace(cert, signers=removed_and_added), pks, "does not verify")
    _rejects(replace(cert, signers=bytes([cert.signers[0] | 0x80])), pks, "beyond the validator set")
    _rejects(replace(cert, signers=cert.signers + b"\x00"), pks, "bitfield has 2 bytes")
    # flipping one bit of the signature itself
    sig = bytearray(cert.signature)
    sig[50] ^= 0x01
    _rejects(replace(cert, signature=bytes(sig)), pks, "signature")


def test_infinity_or_garbage_in_the_validator_set_or_signature(validators, cert):
    sks, pks = validators
    with_infinity = list(pks)
    with_infinity[2] = INFINITY_PK          # a signer's key
    _rejects(cert, with_infinity, "validator 2: public key is the identity")
    with_garbage = list(pks)
    with_garbage[3] = b"\x9a" + b"\x17" * 47
    _rejects(cert, with_garbage, "validator 3")
    _rejects(replace(cert, signature=b"\xab" * 96), pks, "signature")
    _rejects(replace(cert, signature=INFINITY_SIG), pks, "does not verify")
    _rejects(replace(cert, signature=b"\xab" * 95), pks, "malformed certificate")
    _rejects(replace(cert, height=-1), pks, "malformed certificate")
    with pytest.raises(BlsError, match="validator 2"):
        fc.build(partials(sks, [0, 1, 2]), with_infinity, genesis_hash=GENESIS, height=HEIGHT, block_hash=BLOCK)


def test_garbage_certificate_bytes_do_not_decode(cert):
    encoded = cert.encode()
    for data in [b"", b"\x00", encoded + b"\x00", encoded[:-1], b"\x95" + b"\xc0" * 5, bytes(range(256))]:
        with pytest.raises(CodecError):
            FinalityCertificate.decode(data)


def test_quorum_below_two_thirds_is_refused(validators, cert):
    _, pks = validators
    with pytest.raises(ValueError, match="quorum"):
        fc.verify(cert, pks, GENESIS, quorum=4)
    with pytest.raises(ValueError, match="quorum"):
        fc.verify(cert, pks, GENESIS, quorum=N + 1)
    _rejects(cert, pks, "quorum", quorum=6)  # stricter than needed: five signers are not enough


def test_build_refuses_bad_indices(validators):
    sks, pks = validators
    good = partials(sks, [0])[0]
    for bad in ({N: good}, {-1: good}, {"0": good}, {}):
        with pytest.raises(BlsError):
            fc.build(bad, pks, genesis_hash=GENESIS, height=HEIGHT, block_hash=BLOCK)

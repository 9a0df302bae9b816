"""BLS12-381 signatures for finality certificates: the IETF scheme, proof-of-possession ciphersuite.

Why BLS at all, when votes are ed25519: a light client that follows finality needs one compact proof
per block. BLS signatures over the same message add up to one 96-byte signature, checked with two
pairings however many validators signed; ed25519 would need one signature and one verify per signer.

What this module implements, and nothing else:

* draft-irtf-cfrg-bls-signature-05, ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_``,
  in the *minimal-pubkey-size* variant: public keys are G1 points (48 bytes compressed), signatures
  and proofs of possession are G2 points (96 bytes compressed), in the ZCash compressed encoding.
  This is exactly what Ethereum's consensus layer uses, so keys and signatures are byte-identical to
  py_ecc's ``G2ProofOfPossession`` (the independent reference in tests) and to blst/milagro.
* KeyGen is the draft's HKDF-SHA256 construction (salt ``BLS-SIG-KEYGEN-SALT-`` hashed once per
  attempt, L = 48), so the same seed gives the same key here, in py_ecc and in Ethereum tooling.

The curve arithmetic comes from py-arkworks-bls12381 (Rust): hash-to-curve (RFC 9380,
``BLS12381G2_XMD:SHA-256_SSWU_RO_``), point (de)compression with subgroup checks, and a
multi-pairing check. The scheme itself -- what is hashed with which tag, which pairing equation is
checked, what input is refused -- is written out here so it can be read and audited in one place.

Rogue-key defence: fast_aggregate_verify adds public keys together, which is only sound if every
key's owner proved knowledge of its secret key. That is what a proof of possession is: callers MUST
check ``pop_verify(pk, proof)`` once, when a key is registered (the validators pallet does, see consensus.finality_certificate),
and must never fast-aggregate a key that has not passed it.

Error contract: input that can never be a valid key or signature (wrong type or length, a
non-canonical or off-curve encoding, a point outside the prime-order subgroup, the identity as a
public key, a secret key out of range, an empty list) raises ``BlsError``. A well-formed signature
that simply does not verify returns ``False``. Nothing else escapes: errors from the Rust backend
are translated, so a peer's garbage cannot surface as an unexpected exception type.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable, Sequence

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

#: Domain separation tag for signatures (the ciphersuite id of the POP scheme).
DST_SIGN = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
#: Domain separation tag for proofs of possession; distinct, so a PoP is never a valid signature.
DST_POP = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"

#: Order r of the G1/G2 subgroups; secret keys are integers in [1, r).
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

PUBKEY_LEN = 48
SIGNATURE_LEN = 96
#: KeyGen needs at least 32 bytes of input keying material (draft section 2.3).
MIN_SEED_LEN = 32

_KEYGEN_SALT = b"BLS-SIG-KEYGEN-SALT-"
_KEYGEN_L = 48  # ceil((3 * ceil(log2(r))) / 16)
_G1_GENERATOR = G1Point()
_G1_GENERATOR_NEG = -G1Point()
_G2_IDENTITY = G2Point.identity()
_G1_IDENTITY = G1Point.identity()

#: Decoded, validated public keys by their bytes. A validator set is small and stable, and
#: decompression with a subgroup check is most of the per-signer cost of a certificate check.
_PUBKEY_CACHE_SIZE = 4096


class BlsError(ValueError):
    """Input that is not a valid BLS key, signature or secret: refused before any pairing is done."""


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------

def _as_bytes(value: object, what: str, length: int | None = None) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if type(value) is not bytes:
        raise BlsError(f"{what} must be bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise BlsError(f"{what} must be {length} bytes, got {len(value)}")
    return value


@functools.lru_cache(maxsize=_PUBKEY_CACHE_SIZE)
def _pubkey_point(pk: bytes) -> G1Point:
    """Decode and KeyValidate a 48-byte public key (cached: the same keys are checked every block)."""
    try:
        point = G1Point.from_compressed_bytes_unchecked(pk)
    except (ValueError, TypeError, OverflowError):
        raise BlsError("public key is not a valid compressed G1 point") from None
    # arkworks accepts some non-canonical encodings (an infinity flag with stray bits set, for
    # example); the draft and py_ecc do not. One key must have exactly one encoding.
    if point.to_compressed_bytes() != pk:
        raise BlsError("public key is not in canonical compressed form")
    if point == _G1_IDENTITY:
        raise BlsError("public key is the identity point")
    if not point.is_in_subgroup():
        raise BlsError("public key is not in the prime-order subgroup")
    return point


def decode_pubkey(pk: bytes) -> G1Point:
    """KeyValidate (draft section 2.5) and return the point; raise BlsError if `pk` is not a valid key."""
    return _pubkey_point(_as_bytes(pk, "public key", PUBKEY_LEN))


def key_validate(pk: bytes) -> bool:
    """True if `pk` is a canonical, non-identity public key in the prime-order subgroup."""
    try:
        decode_pubkey(pk)
    except BlsError:
        return False
    return True


def decode_signature(sig: bytes) -> G2Point:
    """Decode a 96-byte signature and check it is in the G2 subgroup; raise BlsError otherwise.

    The identity is a legal signature encoding (it is in the subgroup); it simply never verifies
    against a valid key, so it is not singled out here.
    """
    sig = _as_bytes(sig, "signature", SIGNATURE_LEN)
    try:
        point = G2Point.from_compressed_bytes_unchecked(sig)
    except (ValueError, TypeError, OverflowError):
        raise BlsError("signature is not a valid compressed G2 point") from None
    if point.to_compressed_bytes() != sig:
        raise BlsError("signature is not in canonical compressed form")
    if not point.is_in_subgroup():
        raise BlsError("signature is not in the prime-order subgroup")
    return point


def _check_sk(sk: int) -> Scalar:
    if type(sk) is not int:
        raise BlsError(f"secret key must be an int, got {type(sk).__name__}")
    if not 0 < sk < CURVE_ORDER:
        raise BlsError("secret key is out of range [1, r)")
    return Scalar(sk)


def _hash_to_g2(message: bytes, dst: bytes) -> G2Point:
    try:
        return G2Point.hash_to_curve(message, dst)
    except (ValueError, TypeError) as e:  # not expected for bytes input; keep the contract anyway
        raise BlsError(f"hash to curve failed: {e}") from None


# --------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------

def keygen(seed: bytes, key_info: bytes = b"") -> int:
    """Derive a secret key from at least 32 bytes of secret seed (draft section 2.3, KeyGen).

    Deterministic, so a validator's BLS key can be recreated from its backed-up seed, and identical
    to py_ecc's ``G2ProofOfPossession.KeyGen`` (and Ethereum's EIP-2333 base step). The 32-byte
    minimum is the draft's requirement, enforced here although py_ecc does not: a short seed is
    a guessable key.
    """
    seed = _as_bytes(seed, "seed")
    key_info = _as_bytes(key_info, "key_info")
    if len(seed) < MIN_SEED_LEN:
        raise BlsError(f"seed must be at least {MIN_SEED_LEN} bytes, got {len(seed)}")
    salt = _KEYGEN_SALT
    sk = 0
    while sk == 0:
        salt = hashlib.sha256(salt).digest()
        prk = hmac.new(salt, seed + b"\x00", hashlib.sha256).digest()  # HKDF-Extract
        okm = _hkdf_expand(prk, key_info + _KEYGEN_L.to_bytes(2, "big"), _KEYGEN_L)
        sk = int.from_bytes(okm, "big") % CURVE_ORDER
    return sk


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand with SHA-256 (RFC 5869)."""
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def sk_to_pk(sk: int) -> bytes:
    """The 48-byte compressed public key sk * G1."""
    return (_G1_GENERATOR * _check_sk(sk)).to_compressed_bytes()


# --------------------------------------------------------------------------------------------
# sign / verify
# --------------------------------------------------------------------------------------------

def _core_sign(sk: int, message: bytes, dst: bytes) -> bytes:
    scalar = _check_sk(sk)
    message = _as_bytes(message, "message")
    return (_hash_to_g2(message, dst) * scalar).to_compressed_bytes()


def _core_verify(pk_point: G1Point, message: bytes, sig_point: G2Point, dst: bytes) -> bool:
    """e(pk, H(m)) == e(G1, sig), checked as e(pk, H(m)) * e(-G1, sig) == 1 in one multi-pairing."""
    h = _hash_to_g2(message, dst)
    try:
        return GT.pairing_check([pk_point, _G1_GENERATOR_NEG], [h, sig_point])
    except (ValueError, TypeError) as e:  # not expected for valid points; keep the contract anyway
        raise BlsError(f"pairing check failed: {e}") from None


def sign(sk: int, message: bytes) -> bytes:
    """Sign `message` (any bytes; the caller includes its own domain tag): 96-byte signature."""
    return _core_sign(sk, message, DST_SIGN)


def verify(pk: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` is `pk`'s signature on `message`; BlsError if pk or signature is malformed."""
    pk_point = decode_pubkey(pk)
    sig_point = decode_signature(signature)
    return _core_verify(pk_point, _as_bytes(message, "message"), sig_point, DST_SIGN)


def aggregate(signatures: Iterable[bytes]) -> bytes:
    """Add signatures into one (draft section 2.8). Each input is decoded and subgroup-checked.

    Checking every input here, rather than only the result, means a single bad partial is named
    by the error instead of silently spoiling the aggregate.
    """
    total = _G2_IDENTITY
    count = 0
    for i, sig in enumerate(signatures):
        try:
            total = total + decode_signature(sig)
        except BlsError as e:
            raise BlsError(f"signature {i}: {e}") from None
        count += 1
    if count == 0:
        raise BlsError("cannot aggregate an empty list of signatures")
    return total.to_compressed_bytes()


def aggregate_pubkeys(pks: Iterable[bytes]) -> G1Point:
    """Sum of validated public keys. Only sound for keys that passed pop_verify (rogue-key attack)."""
    total = _G1_IDENTITY
    count = 0
    for i, pk in enumerate(pks):
        try:
            total = total + decode_pubkey(pk)
        except BlsError as e:
            raise BlsError(f"public key {i}: {e}") from None
        count += 1
    if count == 0:
        raise BlsError("cannot aggregate an empty list of public keys")
    return total


def fast_aggregate_verify(pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """True if `signature` is the aggregate of every key in `pks` signing the same `message`.

    Draft section 3.3.4. Costs one hash-to-curve and one two-pairing check whatever len(pks) is;
    that is the point of the scheme. Every key must have passed pop_verify at registration.
    """
    message = _as_bytes(message, "message")
    agg = aggregate_pubkeys(pks)
    sig_point = decode_signature(signature)
    if agg == _G1_IDENTITY:
        # Keys that cancel out; impossible for PoP-checked keys, and the draft's KeyValidate of
        # the aggregate would refuse it, so it is a plain failure rather than malformed input.
        return False
    return _core_verify(agg, message, sig_point, DST_SIGN)


# --------------------------------------------------------------------------------------------
# proof of possession
# --------------------------------------------------------------------------------------------

def pop_prove(sk: int) -> bytes:
    """Proof that the holder of sk_to_pk(sk) knows sk: a signature on the public key under DST_POP."""
    return _core_sign(sk, sk_to_pk(sk), DST_POP)


def pop_verify(pk: bytes, proof: bytes) -> bool:
    """True if `proof` is a valid proof of possession for `pk`; BlsError if either is malformed.

    Must be checked once when a key is registered, before the key is ever aggregated.
    """
    pk = _as_bytes(pk, "public key", PUBKEY_LEN)
    pk_point = decode_pubkey(pk)
    proof_point = decode_signature(proof)
    return _core_verify(pk_point, pk, proof_point, DST_POP)


#: domain of the BLS key a validator derives from its ed25519 seed
_SEED_DERIVATION_TAG = b"gridchain/bls-from-ed25519-seed/v1"


def secret_from_seed(ed25519_seed: bytes) -> int:
    """A validator's BLS secret key, derived from its ed25519 seed: one secret (URI, mnemonic or
    key file) then gives an operator both keys, and backing up the one backs up the other. The
    hash separates the two uses of the seed."""
    return keygen(hashlib.sha256(_SEED_DERIVATION_TAG + bytes(ed25519_seed)).digest())

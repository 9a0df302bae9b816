"""Finality certificates: one BLS aggregate signature per block, so a light client can check finality.

Full nodes agree on blocks with ed25519 precommits (cheap to verify one by one). A light client does
not want 2f+1 ed25519 signatures per block; it wants one compact proof. So, once a validator has
committed a block, it also signs a *finality statement* with its BLS key; anyone collects 2f+1 of
those and adds them into a FinalityCertificate: a bitfield naming the signers and one 96-byte
aggregate signature, checked with a single two-pairing verify.

Signed message (exact bytes, 93 in total)::

    b"gridchain/finality/v1"          21 bytes, ASCII domain tag
    genesis_hash                       32 bytes
    height                              8 bytes, unsigned big-endian
    block_hash                         32 bytes (keccak-256 of the encoded header)

This message is then signed with the ciphersuite's own DST (see primitives.bls), so it is separated
from ed25519 votes, from proofs of possession and from other chains (genesis hash) by construction.

Why the round is NOT in the message: the statement means "block_hash is final at height", which is
the same fact whatever round the commit happened in, and a validator signs it only *after* it has
seen 2f+1 precommits for that block in one round and committed it. It is therefore not a vote and
must never be produced alongside a precommit: unlike precommits, finality signatures from different
rounds are meant to aggregate. `round` is carried in the certificate for diagnostics only; it is not
authenticated and a light client must not rely on it.

Signer bitfield: bit i is validator i of the ordered validator set for `height`. Byte i // 8, bit
i % 8 counted from the least significant bit (SSZ's bit order). Its length is exactly
ceil(n / 8) bytes and the unused high bits of the last byte are zero, so every signer set has one
encoding (the certificate's bytes are hashed and stored).

Rogue-key defence: the aggregate public key is a plain sum of the signers' keys, which an attacker
could cancel with a key crafted from others' keys unless every key was proven to be owned. So when
a validator registers (or rotates) its BLS key it MUST submit a proof of possession, and the
registering code MUST call `check_registration(pubkey, proof)` (= bls.pop_verify) and refuse the key
if it fails. `verify` assumes every key in `validator_bls_pubkeys` has passed that check.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from primitives import bls
from primitives.bls import BlsError
from primitives.codec import H256, U32, U64, Bytes, CodecError, struct

#: Domain tag at the start of every finality message; bump the version if the layout changes.
FINALITY_DOMAIN = b"gridchain/finality/v1"

#: Largest validator set a certificate can describe (bitfield of 1024 bytes).
MAX_VALIDATORS = 8192


class InvalidCertificate(BlsError):
    """A finality certificate that does not prove finality; the message says which check failed."""


@struct
class FinalityCertificate:
    """2f+1 validators' BLS signatures on (genesis, height, block_hash), added into one."""

    height: U64
    round: U32
    block_hash: H256
    signers: Bytes(max_len=MAX_VALIDATORS // 8)
    signature: Bytes(bls.SIGNATURE_LEN)

    def signer_indices(self) -> list[int]:
        """Indices of the validators whose bits are set, ascending."""
        return bitfield_indices(self.signers)


# --------------------------------------------------------------------------------------------
# message, bitfield, quorum
# --------------------------------------------------------------------------------------------

def finality_message(genesis_hash: bytes, height: int, block_hash: bytes) -> bytes:
    """The exact bytes every validator signs for (height, block_hash); see the module docstring."""
    try:
        genesis_hash = H256.to_plain(genesis_hash)
        block_hash = H256.to_plain(block_hash)
        height = U64.to_plain(height)
    except CodecError as e:
        raise BlsError(f"finality message: {e}") from None
    return FINALITY_DOMAIN + genesis_hash + height.to_bytes(8, "big") + block_hash


def sign_finality(sk: int, genesis_hash: bytes, height: int, block_hash: bytes) -> bytes:
    """A validator's partial signature for a block it has committed (never for a mere precommit)."""
    return bls.sign(sk, finality_message(genesis_hash, height, block_hash))


def make_bitfield(indices: Iterable[int], n: int) -> bytes:
    """Canonical bitfield of length ceil(n / 8) with the bits of `indices` set."""
    out = bytearray((n + 7) // 8)
    for i in indices:
        if type(i) is not int or not 0 <= i < n:
            raise BlsError(f"validator index {i!r} is outside the set of {n}")
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def bitfield_indices(bits: bytes) -> list[int]:
    """Set bit positions of `bits`, ascending."""
    return [8 * byte_i + b for byte_i, byte in enumerate(bits) if byte for b in range(8) if byte >> b & 1]


def default_quorum(n: int) -> int:
    """floor(2n/3) + 1: the smallest count that is more than two thirds of n (2f+1 when n = 3f+1)."""
    return 2 * n // 3 + 1


def check_registration(bls_pubkey: bytes, proof_of_possession: bytes) -> None:
    """Refuse a validator BLS key without a valid proof of possession (the rogue-key defence).

    Call this wherever a BLS key enters the validator set; `verify` is only sound if every key
    in the set went through it.
    """
    if not bls.pop_verify(bls_pubkey, proof_of_possession):
        raise BlsError("proof of possession does not verify for this BLS public key")


# --------------------------------------------------------------------------------------------
# build and verify
# --------------------------------------------------------------------------------------------

def build(
    partial_signatures: Mapping[int, bytes],
    validator_bls_pubkeys: Sequence[bytes],
    *,
    genesis_hash: bytes,
    height: int,
    block_hash: bytes,
    round: int = 0,
    check_partials: bool = True,
) -> FinalityCertificate:
    """Aggregate validators' finality signatures (index in the ordered set -> 96-byte signature).

    With `check_partials` (the default) each partial is verified against its validator's key first
    and a bad one raises BlsError naming the index: one faulty or malicious signer would otherwise
    spoil the aggregate with no way to tell who. Callers that verified partials on receipt can
    pass False. The quorum is not enforced here (that is `verify`'s job, with the caller's set).
    """
    n = len(validator_bls_pubkeys)
    if not partial_signatures:
        raise BlsError("no partial signatures to aggregate")
    for i in partial_signatures:
        if type(i) is not int or not 0 <= i < n:
            raise BlsError(f"validator index {i!r} is outside the set of {n}")
    indices = sorted(partial_signatures)
    if check_partials:
        message = finality_message(genesis_hash, height, block_hash)
        for i in indices:
            try:
                ok = bls.verify(validator_bls_pubkeys[i], message, partial_signatures[i])
            except BlsError as e:
                raise BlsError(f"validator {i}: {e}") from None
            if not ok:
                raise BlsError(f"validator {i}: partial signature does not verify")
    signature = bls.aggregate(partial_signatures[i] for i in indices)
    cert = FinalityCertificate(
        height=height, round=round, block_hash=block_hash,
        signers=make_bitfield(indices, n), signature=signature,
    )
    try:
        cert.encode()  # the dataclass does not check field types; the codec does
    except CodecError as e:
        raise BlsError(f"certificate field: {e}") from None
    return cert


def verify(
    cert: FinalityCertificate,
    validator_bls_pubkeys: Sequence[bytes],
    genesis_hash: bytes,
    quorum: int | None = None,
) -> None:
    """Raise InvalidCertificate unless `cert` proves that cert.block_hash is final at cert.height.

    `validator_bls_pubkeys` is the ordered validator set for cert.height, every key PoP-checked at
    registration. `quorum` defaults to floor(2n/3)+1; a smaller one is refused because it would not
    prove BFT finality. The caller still compares cert.block_hash with the header it cares about.
    A malformed `genesis_hash` is the caller's bug and raises plain BlsError.
    """
    if not isinstance(cert, FinalityCertificate):
        raise InvalidCertificate(f"expected a FinalityCertificate, got {type(cert).__name__}")
    n = len(validator_bls_pubkeys)
    if n == 0:
        raise InvalidCertificate("empty validator set")
    if n > MAX_VALIDATORS:
        raise InvalidCertificate(f"validator set of {n} exceeds {MAX_VALIDATORS}")
    threshold = default_quorum(n)
    if quorum is None:
        quorum = threshold
    elif type(quorum) is not int or not threshold <= quorum <= n:
        raise ValueError(f"quorum must be an int in [{threshold}, {n}] for {n} validators, got {quorum!r}")

    try:
        cert.encode()  # field types and sizes: the certificate may have been built by hand
    except CodecError as e:
        raise InvalidCertificate(f"malformed certificate: {e}") from None
    if len(cert.signers) != (n + 7) // 8:
        raise InvalidCertificate(f"signer bitfield has {len(cert.signers)} bytes, expected {(n + 7) // 8}")
    if n % 8 and cert.signers[-1] >> (n % 8):
        raise InvalidCertificate("signer bitfield has bits set beyond the validator set")
    indices = cert.signer_indices()
    if len(indices) < quorum:
        raise InvalidCertificate(f"{len(indices)} signers, quorum is {quorum} of {n}")

    signer_keys = [validator_bls_pubkeys[i] for i in indices]
    for i, pk in zip(indices, signer_keys):
        try:
            bls.decode_pubkey(pk)  # cached; done here so the error names the validator
        except BlsError as e:
            raise InvalidCertificate(f"validator {i}: {e}") from None
    message = finality_message(genesis_hash, cert.height, cert.block_hash)
    try:
        ok = bls.fast_aggregate_verify(signer_keys, message, cert.signature)
    except BlsError as e:
        raise InvalidCertificate(str(e)) from None
    if not ok:
        raise InvalidCertificate("aggregate signature does not verify for the signers and this block")


def is_valid(
    cert: FinalityCertificate,
    validator_bls_pubkeys: Sequence[bytes],
    genesis_hash: bytes,
    quorum: int | None = None,
) -> bool:
    """`verify` as a yes/no, for callers that only branch on the result."""
    try:
        verify(cert, validator_bls_pubkeys, genesis_hash, quorum)
    except InvalidCertificate:
        return False
    return True

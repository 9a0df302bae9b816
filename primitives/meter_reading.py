"""A smart meter's signed reading: what meter firmware produces and the metering pallet checks.

A reading reports the meter's two cumulative energy registers at the *end* of one delivery interval:
the import register (OBIS 1.8.0, energy taken from the grid) and the export register (OBIS 2.8.0,
energy fed into the grid), both in watt-hours. The meter signs it with its own ed25519 key; the
public key is the meter's id on chain. As every gridchain signature, it covers a domain tag and the
genesis hash, so a reading signed for one chain (or as anything else) is void elsewhere:

    message   = signing_message(READING_DOMAIN, genesis_hash, reading.encode())
              = u8(len(domain)) || domain || genesis_hash || msgpack [meter, seq, interval_start,
                                                                      import_wh, export_wh]
    signed    = msgpack [reading, signature]

`seq` is the meter's own counter, strictly increasing over its readings; `interval_start` is the unix
second at which the delivery interval begins (aligned to the chain's interval grid). This module is
pure (primitives only), so meter SDKs and the runtime share it.
"""
from __future__ import annotations

from primitives.codec import H256, H512, U64, struct
from primitives.hashing import keccak256
from primitives.keys import Keypair, signing_message, verify

READING_DOMAIN = b"gridchain/reading/v1"


@struct
class Reading:
    """One interval's register values, as the meter measured them at the interval's end."""

    meter: H256            # the meter's ed25519 public key, which is also its id on chain
    seq: U64               # the meter's reading counter, strictly increasing
    interval_start: U64    # unix seconds, start of the delivery interval this reading closes
    import_wh: U64         # OBIS 1.8.0, cumulative energy imported from the grid, Wh
    export_wh: U64         # OBIS 2.8.0, cumulative energy exported to the grid, Wh


@struct
class SignedReading:
    reading: Reading
    signature: H512        # ed25519 by `reading.meter` over reading_message(...)


def reading_message(reading: Reading, genesis_hash: bytes) -> bytes:
    """The exact bytes a meter signs for `reading` on the chain with `genesis_hash`."""
    return signing_message(READING_DOMAIN, genesis_hash, reading.encode())


def sign_reading(keypair: Keypair, reading: Reading, genesis_hash: bytes) -> SignedReading:
    """Sign `reading` with the meter's key; the key must be the one the reading names."""
    if keypair.public_key != reading.meter:
        raise ValueError("a reading must be signed by the meter it names")
    return SignedReading(reading, keypair.sign(reading_message(reading, genesis_hash)))


def reading_signature_ok(signed: SignedReading, genesis_hash: bytes) -> bool:
    """True if the meter named in the reading signed exactly this reading for this chain."""
    return verify(signed.reading.meter, signed.signature, reading_message(signed.reading, genesis_hash))


def reading_hash(signed: SignedReading) -> bytes:
    """keccak-256 of the signed reading's encoding: what the chain keeps instead of the raw values."""
    return keccak256(signed.encode())

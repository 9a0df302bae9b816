"""The extrinsic: what an account (or a meter, unsigned) submits to the chain.

Wire form, a msgpack array:  [version, signature, call]
  version    u8, currently 1
  signature  nil for unsigned extrinsics (inherents, meter readings), else
             [signer: 32 bytes, signature: 64 bytes, mortality: [birth u64, period u64], nonce u32, tip u64]
  call       [pallet index u8, call index u8, args: array]

The signature covers signing_message("gridchain/extrinsic/v1", genesis_hash, payload) with
payload = msgpack([call, mortality, nonce, tip, spec_version, transaction_version, birth_hash]):
so a signature is void on another chain, after a runtime upgrade that changes the transaction
format, and on a fork that does not contain the birth block. period 0 means immortal (birth 0,
birth_hash = genesis hash).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from primitives import codec
from primitives.codec import CodecError
from primitives.hashing import keccak256
from primitives.keys import Keypair, signing_message, verify
from primitives.types import MAX_EXTRINSIC_BYTES

EXTRINSIC_VERSION = 1
EXTRINSIC_DOMAIN = b"gridchain/extrinsic/v1"


@dataclass(frozen=True, slots=True)
class Call:
    pallet_index: int
    call_index: int
    args: tuple  # plain msgpack values, checked against the call's declared types by the runtime

    def to_plain(self) -> list:
        return [self.pallet_index, self.call_index, list(self.args)]

    @classmethod
    def from_plain(cls, plain: Any) -> "Call":
        if type(plain) is not list or len(plain) != 3:
            raise CodecError("call: expected [pallet, call, args]")
        p, c, a = plain
        if type(p) is not int or not 0 <= p < 256 or type(c) is not int or not 0 <= c < 256:
            raise CodecError("call: pallet and call index are u8")
        if type(a) is not list:
            raise CodecError("call: args must be an array")
        return cls(p, c, tuple(a))

    def encode(self) -> bytes:
        return codec.pack(self.to_plain())


@dataclass(frozen=True, slots=True)
class Mortality:
    birth: int = 0
    period: int = 0  # 0: immortal

    @property
    def immortal(self) -> bool:
        return self.period == 0

    def to_plain(self) -> list:
        return [self.birth, self.period]


@dataclass(frozen=True, slots=True)
class SignatureData:
    signer: bytes
    signature: bytes
    mortality: Mortality
    nonce: int
    tip: int


@dataclass(frozen=True, slots=True)
class Extrinsic:
    call: Call
    signature: SignatureData | None = None

    @property
    def signed(self) -> bool:
        return self.signature is not None

    def to_plain(self) -> list:
        sig = None
        if self.signature is not None:
            s = self.signature
            sig = [s.signer, s.signature, s.mortality.to_plain(), s.nonce, s.tip]
        return [EXTRINSIC_VERSION, sig, self.call.to_plain()]

    def encode(self) -> bytes:
        return codec.pack(self.to_plain())

    @classmethod
    def decode(cls, data: bytes) -> "Extrinsic":
        # typed: every field is checked below and call arguments by the runtime's declared types
        plain = codec.unpack(data, MAX_EXTRINSIC_BYTES, typed=True)
        if type(plain) is not list or len(plain) != 3:
            raise CodecError("extrinsic: expected [version, signature, call]")
        version, sig, call = plain
        if version != EXTRINSIC_VERSION or type(version) is not int:
            raise CodecError(f"extrinsic: unsupported version {version!r}")
        signature = None
        if sig is not None:
            signature = _decode_signature(sig)
        return cls(Call.from_plain(call), signature)


def _decode_signature(sig: Any) -> SignatureData:
    if type(sig) is not list or len(sig) != 5:
        raise CodecError("signature: expected [signer, signature, mortality, nonce, tip]")
    signer, signature, mortality, nonce, tip = sig
    if type(signer) is not bytes or len(signer) != 32:
        raise CodecError("signature: signer must be 32 bytes")
    if type(signature) is not bytes or len(signature) != 64:
        raise CodecError("signature: signature must be 64 bytes")
    if (type(mortality) is not list or len(mortality) != 2
            or any(type(x) is not int or x < 0 or x >= 2**64 for x in mortality)):
        raise CodecError("signature: mortality must be [birth u64, period u64]")
    if type(nonce) is not int or not 0 <= nonce < 2**32:
        raise CodecError("signature: nonce must be u32")
    if type(tip) is not int or not 0 <= tip < 2**64:
        raise CodecError("signature: tip must be u64")
    m = Mortality(*mortality)
    if m.immortal and m.birth != 0:
        raise CodecError("signature: an immortal extrinsic has birth 0")
    return SignatureData(signer, signature, m, nonce, tip)


def extrinsic_hash(data: bytes) -> bytes:
    return keccak256(data)


def signing_payload(call: Call, mortality: Mortality, nonce: int, tip: int, spec_version: int,
                    transaction_version: int, birth_hash: bytes) -> bytes:
    # msgpack directly: every element is an int, bytes or a call whose args are plain values; a
    # float smuggled into args would only make an extrinsic the node refuses to decode
    return msgpack.packb([call.to_plain(), mortality.to_plain(), nonce, tip, spec_version,
                          transaction_version, birth_hash], use_bin_type=True)


def sign_extrinsic(keypair: Keypair, call: Call, *, nonce: int, genesis_hash: bytes, spec_version: int,
                   transaction_version: int, tip: int = 0, mortality: Mortality = Mortality(),
                   birth_hash: bytes | None = None) -> Extrinsic:
    """Build a signed extrinsic. For a mortal one, `birth_hash` is the hash of block `mortality.birth`."""
    if mortality.immortal:
        birth_hash = genesis_hash
    elif birth_hash is None:
        raise ValueError("a mortal extrinsic needs the hash of its birth block")
    payload = signing_payload(call, mortality, nonce, tip, spec_version, transaction_version, birth_hash)
    sig = keypair.sign(signing_message(EXTRINSIC_DOMAIN, genesis_hash, payload))
    return Extrinsic(call, SignatureData(keypair.public_key, sig, mortality, nonce, tip))


def verify_extrinsic_signature(xt: Extrinsic, genesis_hash: bytes, spec_version: int,
                               transaction_version: int, birth_hash: bytes) -> bool:
    s = xt.signature
    if s is None:
        return False
    payload = signing_payload(xt.call, s.mortality, s.nonce, s.tip, spec_version, transaction_version,
                              birth_hash)
    return verify(s.signer, s.signature, signing_message(EXTRINSIC_DOMAIN, genesis_hash, payload))
